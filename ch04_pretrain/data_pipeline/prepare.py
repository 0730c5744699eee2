"""Tokenize a corpus into uint16 shards that training reads with memory maps.

Layout of an output folder:

  manifest.json      what was prepared, how (the tokenizer too), and which shards are finished
  train_00000.bin    token ids of shard 0's training documents (uint16, little-endian)
  val_00000.bin      the same for shard 0's validation documents
  ...
  tokenizer.tiktoken with a rank file of our own (`tokenizer=PATH`): a copy of it, so that the
                     folder is self-contained (GPT-2's, the default, is always the vendored file)

Design, in the order things can go wrong:

* Documents are numbered in reading order; shard k holds documents
  [k * docs_per_shard, (k + 1) * docs_per_shard). Each document is preceded by
  <|endoftext|>, so every document, the first one included, starts right after
  the token the model sees at a document start; to generate a fresh document
  later, one prompts with <|endoftext|> alone, exactly as in training.
* Train or val is decided per document by `SplitRule.is_val(index)`, a seeded
  function of the document's number alone: the same on every run and rerun.
* Encoding runs in a pool of worker processes (spawn start method, the default
  on macOS and Windows, used everywhere so that every platform behaves alike),
  a bounded number of batches at a time, and results are written in order: the
  output never depends on the number of workers, and memory never grows with
  the corpus.
* A shard is written to .tmp files, flushed to disk, renamed into place, and
  only then recorded in the manifest, itself replaced atomically. After a crash
  the manifest lists exactly the finished shards; a rerun deletes the rest and
  continues with the next document. Nothing is duplicated or dropped, and the
  result is byte-identical to an uninterrupted run.
* Every reader gets the manifest through `read_manifest`, which checks it
  field by field (`check_manifest`): a damaged or hand-edited manifest is
  refused in one line naming its first problem, never met later as a
  TypeError, a file outside the folder, or a size that nothing on disk backs.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import sys
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from coursekit import CourseError, check_positive, write_json
from coursekit.files import fsync_dir, load_json, own_folder, sha256_of, write_bytes_atomically
from coursekit.numbers import nonnegative_int, positive_int
from coursekit.numbers import seed as seed_number
from coursekit.progress import progress_bar
from coursekit.settings import check_fields, setting

from .bpe import (
    GPT2,
    GPT2_RECORD,
    RANKS_FILE,
    RANKS_PATH,
    RANKS_SHA256,
    encoding_spec,
    load_ranks,
    rank_file_encoding,
    tokenizer_record,
    write_ranks,
)
from .encode_workers import encode_documents, init_worker
from .sources import Document, SourceOptions, check_source, describe, iter_documents

MANIFEST = "manifest.json"
FORMAT = "ch04_pretrain shards, version 1"
SPLITS = ("train", "val")
DOCS_PER_SHARD = 50_000     # about 55M tokens (110 MB) per shard of OpenWebText
BATCH_BYTES = 1 << 18       # text per task sent to a worker: large enough to hide the cost of sending it
BATCH_DOCS = 1024
MAX_VOCAB = 1 << 16         # the ids a uint16 shard can hold


@dataclass(frozen=True)
class SplitRule:
    """Which documents are held out for validation.

    Documents are grouped in consecutive blocks; one document per block, at a
    position drawn from a hash of (seed, block), goes to validation. The first
    `min_val_docs` blocks have `small_block` documents (so a small corpus still
    gets a useful validation set, 10% like Chapter 1's split); after them,
    blocks have `block` documents: 1 in 2,000 = 0.05%, the fraction of the
    published OpenWebText split.
    """

    seed: int = setting(2357, seed_number, "seed of the train/val split; the same seed gives the same split")
    block: int = setting(2000, positive_int, flag=False)
    small_block: int = setting(10, positive_int, flag=False)
    min_val_docs: int = setting(100, nonnegative_int, flag=False)

    def __post_init__(self):
        check_fields(self)

    def is_val(self, index: int) -> bool:
        _, _, val = self.block_of(index)
        return index == val

    def block_of(self, index: int) -> tuple[int, int, int]:
        """(first document, end, validation document) of the block holding document `index`."""
        small_span = self.small_block * self.min_val_docs
        if index < small_span:
            number, start, size = index // self.small_block, index - index % self.small_block, self.small_block
        else:
            j = (index - small_span) // self.block
            number, start, size = self.min_val_docs + j, small_span + j * self.block, self.block
        digest = hashlib.blake2b(f"{self.seed}/{number}".encode(), digest_size=8).digest()
        return start, start + size, start + int.from_bytes(digest, "little") % size


# --------------------------------------------------------------------------- #
# The manifest
# --------------------------------------------------------------------------- #

class ManifestDamaged(CourseError):
    """A manifest.json that `prepare` cannot have written (unreadable, a field missing or of the wrong type, totals
    that do not add up); `prepare --overwrite` replaces it, where other refusals stand."""


def read_manifest(out: str | Path) -> dict:
    """The manifest of the prepared folder `out`, checked by `check_manifest`: every reader of the folder gets it
    from here, so none meets a field of the wrong type, a file name outside the folder or an unchecked total."""
    path = Path(out) / MANIFEST
    if not path.is_file():
        raise CourseError(f"{path} not found: prepare the data first (python -m ch04_pretrain prepare ...)")
    try:
        manifest = load_json(path)
    except OSError as e:
        raise CourseError(f"cannot read {path}: {e.strerror or e}") from None
    except ValueError as e:  # not JSON, or too large to be a manifest (a CourseError naming the file)
        raise ManifestDamaged(_damaged(path, str(e).removeprefix(f"{path}, ").removeprefix(f"{path} "))) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CourseError(f"{path} is not a manifest of this chapter ({FORMAT!r})")
    check_manifest(manifest, path)
    return manifest


def _damaged(path: Path, problem: str) -> str:
    return f"{path} is damaged ({problem}); prepare again with --overwrite"


# --------------------------------------------------------------------------- #
# Checking a manifest
# --------------------------------------------------------------------------- #

class _Bad(Exception):
    """The first problem found in a manifest, as a phrase: 'shards[3].train.tokens is "x", expected ...'."""


def check_manifest(manifest: dict, path: Path) -> None:
    """Refuse, with a one-line ManifestDamaged naming `path` and the first problem, a manifest (a dict with this
    chapter's "format") that `prepare` cannot have written.

    Checked: every field `prepare` writes is there with its type (whole numbers
    are ints >= 0, never bools or floats); the settings and the tokenizer
    record; each shard's place in the list, its first document, and its file
    names, which must be exactly the ones `prepare` gives (so never a path out
    of the folder); and every count against the others, down to the totals.
    What is then left to compare is each shard's size and sha256 with its file
    (`find_damage`); once the sizes match, every count that sizes a memory map
    or an array is that of a file on disk, however large the manifest's
    numbers were. Keys that nothing reads are allowed.
    """
    try:
        settings = _field(manifest, "settings", dict)
        _check_settings(settings)
        _field(manifest, "complete", bool)
        shards = _field(manifest, "shards", list)
        for position, shard in enumerate(shards):
            _check_shard(shard, position, settings["docs_per_shard"])
        _check_totals(manifest, shards)
    except _Bad as e:
        raise ManifestDamaged(_damaged(path, str(e))) from None


_KINDS = {str: "a string", bool: "true or false", dict: "an object", list: "a list"}


def _checked(value, kind: type, name: str, *, minimum: int = 0, optional: bool = False):
    """`value` if it is of `kind` (for int: a whole number >= `minimum`), or None where `optional`; else _Bad."""
    if value is None and optional:
        return value
    # type() and not isinstance(): JSON's true is a bool, and a bool is an int to isinstance.
    if type(value) is not kind or (kind is int and value < minimum):
        expected = f"a whole number >= {minimum}" if kind is int else _KINDS[kind]
        raise _Bad(f"{name} is {_show(value)}, expected {expected}{' or null' if optional else ''}")
    return value


def _field(record: dict, key: str, kind: type, where: str = "", **limits):
    """record[key], checked by `_checked`; `where` names the record in the message ("shards[3].train")."""
    name = f"{where}.{key}" if where else key
    if key not in record:
        raise _Bad(f"{name} is missing")
    return _checked(record[key], kind, name, **limits)


def _show(value) -> str:
    """A value as a message shows it: lists and objects by their kind (they may be huge), anything else in JSON's
    spelling, cut to 40 characters."""
    if isinstance(value, (dict, list)):
        return "an object" if isinstance(value, dict) else "a list"
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_settings(settings: dict) -> None:
    where = "settings.tokenizer"
    tokenizer = _field(settings, "tokenizer", dict, "settings")
    for key in ("name", "ranks_sha256", "eot_position", "dtype"):
        _field(tokenizer, key, str, where)  # the form of ranks_sha256 is load_ranks' to check, with the file
    vocab_size = _field(tokenizer, "vocab_size", int, where, minimum=1)
    if vocab_size > MAX_VOCAB:
        raise _Bad(f"{where}.vocab_size is {vocab_size:,}, more ids than uint16 shards hold ({MAX_VOCAB:,})")
    eot = _field(tokenizer, "eot", int, where)
    if eot >= vocab_size:
        raise _Bad(f"{where}.eot is {eot:,}, not one of its {vocab_size:,} ids")
    _field(_field(settings, "source", dict, "settings"), "kind", str, "settings.source")
    split = _field(settings, "split", dict, "settings")
    for key in ("seed", "min_val_docs"):
        _field(split, key, int, "settings.split")
    for key in ("block", "small_block"):
        _field(split, key, int, "settings.split", minimum=1)
    _field(settings, "docs_per_shard", int, "settings", minimum=1)
    for key in ("max_docs", "max_tokens"):
        _field(settings, key, int, "settings", minimum=1, optional=True)


def _check_shard(shard, position: int, docs_per_shard: int) -> None:
    """One entry of "shards", as `_ShardWriter.commit` writes it."""
    where = f"shards[{position}]"
    _checked(shard, dict, where)
    index = _field(shard, "index", int, where)
    if index != position:  # shards are recorded in order, and a rerun deletes every file past the last one
        raise _Bad(f"{where}.index is {index:,}, expected {position:,} (shards are listed in order)")
    first = _field(shard, "first_document", int, where)
    if first != index * docs_per_shard:  # a damaged shard is redone from this document of the source
        raise _Bad(f"{where}.first_document is {first:,}, expected {index * docs_per_shard:,} "
                   f"({docs_per_shard:,} documents per shard)")
    documents = _field(shard, "documents", int, where)
    if documents > docs_per_shard:
        raise _Bad(f"{where}.documents is {documents:,}, more than {docs_per_shard:,} documents per shard")
    skipped = _field(shard, "skipped", int, where)
    held = {split: _check_split(shard, index, split, where) for split in SPLITS}
    if sum(held.values()) + skipped != documents:  # every document read went to one split; the others were skipped
        raise _Bad(f"{where} has {documents:,} documents, but its splits hold {held['train']:,} + {held['val']:,} "
                   f"and {skipped:,} were skipped")


SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _check_split(shard: dict, index: int, split: str, where: str) -> int:
    """One split of a shard, {file, documents, tokens, sha256}; its number of documents."""
    entry = _field(shard, split, dict, where)
    where = f"{where}.{split}"
    name = _field(entry, "file", str, where)
    if name != shard_file(index, split):  # the name prepare gives, and so never a path out of the folder
        raise _Bad(f"{where}.file is {_show(name)}, expected {_show(shard_file(index, split))}")
    documents = _field(entry, "documents", int, where)
    tokens = _field(entry, "tokens", int, where)
    if not SHA256_HEX.fullmatch(_field(entry, "sha256", str, where)):
        raise _Bad(f"{where}.sha256 is {_show(entry['sha256'])}, expected 64 hexadecimal digits")
    # Each document is written as <|endoftext|> and its tokens: at least one token per document, and tokens only
    # where there are documents.
    if tokens < documents:
        raise _Bad(f"{where} has {documents:,} documents in {tokens:,} tokens, fewer than one per document")
    if tokens and not documents:
        raise _Bad(f"{where} has {tokens:,} tokens but no documents")
    return documents


def _check_totals(manifest: dict, shards: list[dict]) -> None:
    """The totals must be the shards' sums (what `_summarize` writes)."""
    want = _totals(shards)
    for key in ("documents", "skipped", "tokens"):
        _expect(manifest, key, want[key], "")
    splits = _field(manifest, "splits", dict)
    for split in SPLITS:
        entry = _field(splits, split, dict, "splits")
        for key in ("documents", "tokens"):
            _expect(entry, key, want["splits"][split][key], f"splits.{split}")


def _expect(record: dict, key: str, want: int, where: str) -> None:
    got = _field(record, key, int, where)
    if got != want:
        raise _Bad(f"{f'{where}.' if where else ''}{key} is {got:,}, but the shards add up to {want:,}")


def prepared_tokenizer(out: str | Path) -> tuple[dict, dict[bytes, int] | None]:
    """The tokenizer a prepared folder's manifest records, and for a rank file of our own its ranks, read from
    the copy kept in the folder and checked against the recorded sha256 (None for GPT-2's).

    The record is {"name", "ranks_sha256", "vocab_size", "eot", ...}; each number is checked against the
    rank file, so a damaged manifest cannot give a model a vocabulary its data does not have.
    """
    out = Path(out)
    record = read_manifest(out)["settings"]["tokenizer"]
    if record["name"] == GPT2:
        if any(record.get(key) != value for key, value in GPT2_RECORD.items()):
            raise CourseError(f"{out / MANIFEST} names GPT-2's tokenizer with other figures than GPT-2's; the "
                              f"manifest is damaged: prepare again with --overwrite")
        return record, None
    ranks = load_ranks(out / RANKS_FILE, record["ranks_sha256"])
    if any(record.get(key) != value for key, value in tokenizer_record(ranks).items()):
        raise CourseError(f"{out / MANIFEST} does not describe the rank file {out / RANKS_FILE} (name, size or "
                          f"<|endoftext|>); the manifest is damaged: prepare again with --overwrite")
    return record, ranks


def _totals(shards: list[dict]) -> dict:
    """The totals a manifest records beside its shards: documents, skipped, per split documents and tokens, tokens."""
    splits = {split: {"documents": sum(s[split]["documents"] for s in shards),
                      "tokens": sum(s[split]["tokens"] for s in shards)} for split in SPLITS}
    return {"documents": sum(s["documents"] for s in shards), "skipped": sum(s["skipped"] for s in shards),
            "splits": splits, "tokens": sum(v["tokens"] for v in splits.values())}


def _summarize(manifest: dict) -> None:
    manifest.update(_totals(manifest["shards"]))


def report(manifest: dict, out: Path, seconds: float) -> str:
    """What `python -m ch04_pretrain prepare` prints at the end: documents and tokens per split, and the size."""
    splits, tokenizer = manifest["splits"], manifest["settings"]["tokenizer"]
    size = sum(s[k]["tokens"] for s in manifest["shards"] for k in splits) * 2
    lines = [f"{out}: {manifest['documents']:,} documents in {len(manifest['shards'])} shard(s), "
             f"{manifest['skipped']:,} skipped (not UTF-8)",
             f"  train: {splits['train']['documents']:,} documents, {splits['train']['tokens']:,} tokens",
             f"  val:   {splits['val']['documents']:,} documents, {splits['val']['tokens']:,} tokens",
             f"  {size / 1e6:,.1f} MB of uint16 tokens; this run took {seconds:.1f} s"]
    if tokenizer["name"] != GPT2:
        lines.append(f"  tokenizer {tokenizer['name']} ({tokenizer['vocab_size']:,} ids), its rank file kept as "
                     f"{out / RANKS_FILE}")
    return "\n".join(lines)


def shard_file(index: int, split: str) -> str:
    return f"{split}_{index:05d}.bin"


def verify(out: str | Path) -> dict:
    """Check every shard's size and sha256 against the manifest, hashing every file; return the manifest."""
    out = Path(out)
    manifest = read_manifest(out)
    problems = find_damage(out, manifest, use_cache=False)
    if problems:
        raise CourseError(damage_message(out, problems))
    return manifest


# Beside the shards: the sha256 of each shard file already checked, with the state its file had then (size,
# modification time, inode change time, inode number), so that a start of training hashes an 18 GB data set once,
# not every time. The cache only ever saves work: the hash is always compared with the manifest's, and a file
# whose state changed is hashed again.
#
# What it sees: any change made through the file system, even one whose modification time was set back (os.utime,
# touch -d, rsync -t): setting a time is itself a change of the inode, which moves its change time (ctime) to the
# clock's now, and no call on the file can set the ctime back; a file replaced by another has another inode.
# What it cannot see: damage the disk or its controller does without the file system knowing (bit rot); a second
# change within the same tick of the file system's clock as the change before the hash (milliseconds; a second or
# two on FAT, HFS+ or ext3), which leaves the ctime as it was; and, on Windows, where st_ctime is the creation
# time, a change with its modification time restored. For those, hash every file: `verify(DIR)` does it now
# (python -c "import ch04_pretrain; ch04_pretrain.verify('DIR')"), and deleting verified.json makes the next start
# of training do it.
VERIFIED = "verified.json"
_VERIFIED_HERE: dict[str, dict] = {}  # the same, for this process (a read-only folder, or train then val)


def _file_state(stat: os.stat_result, sha256: str) -> dict:
    """What the cache records of a file that had `stat` when its content hashed to `sha256`."""
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns,
            "inode": stat.st_ino, "sha256": sha256}


def _read_verified(out: Path) -> dict:
    try:
        cache = load_json(out / VERIFIED)
    except (OSError, ValueError):
        return {}  # no cache, or an unreadable one: everything is hashed again
    files = cache.get("files") if isinstance(cache, dict) else None
    return files if isinstance(files, dict) else {}


def find_damage(out: str | Path, manifest: dict, splits=SPLITS, *, use_cache: bool = True) -> list[tuple[int, str]]:
    """(shard index, one-line problem) for each shard file of `splits` that does not match `manifest` (one that
    `read_manifest` checked, or that `prepare` is writing).

    Sizes are always checked, for every file, before anything is hashed. A
    sha256 is computed once per file and remembered, with the state of the
    file, in VERIFIED beside the shards (when the folder is writable; see the
    comment above for what that state shows); `use_cache=False` hashes every
    file.
    """
    out = Path(out)
    problems: list[tuple[int, str]] = []
    to_hash = []
    for shard in manifest["shards"]:
        for split in splits:
            index, entry = shard["index"], shard[split]
            path = out / entry["file"]
            try:
                stat = path.stat()
            except OSError:
                problems.append((index, f"{path} is missing"))
                continue
            if stat.st_size != 2 * entry["tokens"]:
                problems.append((index, (f"{path} has {stat.st_size:,} bytes, the manifest says "
                                         f"{entry['tokens']:,} tokens ({2 * entry['tokens']:,} bytes)")))
            else:
                to_hash.append((index, path, stat, entry["sha256"]))
    if not to_hash:
        return problems
    cached = _read_verified(out) if use_cache else {}
    changed = False
    pending = []
    for index, path, stat, want in to_hash:
        key = str(path.resolve())
        if use_cache and _file_state(stat, want) in (_VERIFIED_HERE.get(key), cached.get(path.name)):
            continue
        pending.append((index, path, stat, want, key))
    total = sum(stat.st_size for _, _, stat, _, _ in pending)
    bar = progress_bar(total=total, unit="B", unit_scale=True, desc="checking shards", disable=total < 1 << 30)
    try:
        for index, path, stat, want, key in pending:
            got = sha256_of(path, bar.update)
            if got != want:
                problems.append((index, f"{path} does not match the sha256 in the manifest (a changed byte?)"))
                cached.pop(path.name, None)
                continue
            if use_cache:
                _VERIFIED_HERE[key] = cached[path.name] = _file_state(stat, want)
                changed = True
    finally:
        bar.close()
    if changed:
        try:
            about = ("sha256 of shards already checked against manifest.json, with the size, times and inode each "
                     "file had then; safe to delete: every shard is then hashed again at the next start")
            write_json(out / VERIFIED, {"about": about, "files": cached})
        except OSError:
            pass  # a read-only folder: check again next time
    return problems


def damage_message(out: Path, problems: list[tuple[int, str]]) -> str:
    more = f" (and {len(problems) - 1} more damaged file(s))" if len(problems) > 1 else ""
    return (f"{problems[0][1]}{more}; the prepared data in {out} is damaged: rerun the same `python -m "
            f"ch04_pretrain prepare` command, which redoes the damaged shards")


def check_prepared(out: str | Path, splits=SPLITS) -> dict:
    """The manifest of a complete preparation whose shards of `splits` are whole (sizes always, sha256 once,
    see `find_damage`); a one-line CourseError naming the first bad shard otherwise."""
    out = Path(out)
    manifest = read_manifest(out)
    if not manifest.get("complete"):
        raise CourseError(f"{out} is only partly prepared; rerun the prepare command to finish it")
    problems = find_damage(out, manifest, splits)
    if problems:
        raise CourseError(damage_message(out, problems))
    return manifest


# --------------------------------------------------------------------------- #
# Writing one shard
# --------------------------------------------------------------------------- #

class _SplitFile:
    """One split of one shard, written to a .tmp file and hashed on the way."""

    def __init__(self, path: Path):
        self.path, self.tmp = path, path.with_name(path.name + ".tmp")
        self.file = open(self.tmp, "wb")  # noqa: SIM115 (open across writes; commit or abort closes it)
        self.hash = hashlib.sha256()
        self.tokens = self.documents = 0

    def write(self, tokens: np.ndarray, documents: int) -> None:
        data = memoryview(tokens).cast("B")
        self.file.write(data)
        self.hash.update(data)
        self.tokens += len(tokens)
        self.documents += documents

    def commit(self) -> dict:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.tmp, self.path)
        return {"file": self.path.name, "documents": self.documents, "tokens": self.tokens,
                "sha256": self.hash.hexdigest()}

    def abort(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)


class _ShardWriter:
    def __init__(self, out: Path, index: int, first_document: int):
        self.index, self.first_document = index, first_document
        self.documents = self.skipped = 0
        self.parts = {split: _SplitFile(out / shard_file(index, split)) for split in SPLITS}

    def write(self, train: np.ndarray, val: np.ndarray, is_val: list[bool], lengths: np.ndarray) -> None:
        read = lengths >= 0
        n_val = int(np.count_nonzero(read & np.asarray(is_val, dtype=bool)))
        self.parts["train"].write(train, int(np.count_nonzero(read)) - n_val)
        self.parts["val"].write(val, n_val)
        self.documents += len(lengths)
        self.skipped += int(np.count_nonzero(~read))

    def commit(self, out: Path) -> dict:
        entry = {"index": self.index, "first_document": self.first_document, "documents": self.documents,
                 "skipped": self.skipped}
        for split, part in self.parts.items():
            entry[split] = part.commit()
        fsync_dir(out)
        return entry

    def abort(self) -> None:
        for part in self.parts.values():
            part.abort()


# --------------------------------------------------------------------------- #
# The pipeline
# --------------------------------------------------------------------------- #

@dataclass
class _Batch:
    shard: int
    docs: list[Document]
    is_val: list[bool]


def _batches(docs: Iterator[Document], first: int, docs_per_shard: int, split: SplitRule,
             max_docs: int | None) -> Iterator[_Batch]:
    """Group documents into batches for the workers; a batch never spans two shards."""
    batch, size, index = None, 0, first
    block_end = val_index = -1
    try:
        for doc in docs:
            if max_docs is not None and index >= max_docs:
                break
            shard = index // docs_per_shard
            if batch is not None and (batch.shard != shard or size >= BATCH_BYTES or len(batch.docs) >= BATCH_DOCS):
                yield batch
                batch = None
            if batch is None:
                batch, size = _Batch(shard, [], []), 0
            if index >= block_end:  # split.is_val(index), with one hash per block instead of one per document
                _, block_end, val_index = split.block_of(index)
            batch.docs.append(doc)
            batch.is_val.append(index == val_index)
            size += len(doc) if doc is not None else 0
            index += 1
    except (CourseError, OSError):
        # A reading error (say, a corrupt archive): first hand over the documents
        # read before it, so that every shard they complete is still saved.
        if batch is not None:
            yield batch
        raise
    if batch is not None:
        yield batch


def _rank_file(tokenizer: dict, out: Path) -> tuple[Path, str]:
    """Where a preparation's tokenizer is read from, with its sha256: GPT-2's vendored file, or the copy in `out`."""
    if tokenizer["name"] == GPT2:
        return RANKS_PATH, RANKS_SHA256
    return out / RANKS_FILE, tokenizer["ranks_sha256"]


def _encode_in_order(batches: Iterator[_Batch], workers: int, start_method: str, rank_file: tuple[Path, str]):
    """(batch, encoded) pairs in input order, with at most a few batches in flight at a time.

    `rank_file` is (path, sha256) of the tokenizer's rank file; the workers get its
    ranks as plain data (`encoding_spec`) and build the tokenizer once each."""
    if workers == 0:
        encoding = rank_file_encoding(*rank_file)
        for batch in batches:
            yield batch, _as_arrays(encode_documents(batch.docs, batch.is_val, encoding, encoding.eot_token))
        return
    spec = encoding_spec(*rank_file)
    context = multiprocessing.get_context(start_method)
    # ProcessPoolExecutor rather than multiprocessing.Pool: if a worker dies (killed for memory, say), it
    # raises BrokenProcessPool instead of waiting forever.
    with ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker,
                             initargs=(spec, spec["explicit_n_vocab"] - 1, os.getpid())) as pool:
        pending: deque = deque()
        error = None
        try:
            for batch in batches:
                pending.append((batch, pool.submit(encode_documents, batch.docs, batch.is_val)))
                if len(pending) >= 2 * workers + 2:  # back-pressure: the reader may not run ahead of the workers
                    batch, future = pending.popleft()
                    yield batch, _as_arrays(future.result())
        except (CourseError, OSError) as e:  # a reading error: first write the batches read before it
            error = e
        while pending:
            batch, future = pending.popleft()
            yield batch, _as_arrays(future.result())
        if error is not None:
            raise error


def _as_arrays(encoded):
    """A worker's (train bytes, val bytes, lengths) as numpy arrays, without copying."""
    train, val, lengths = encoded
    return np.frombuffer(train, dtype="<u2"), np.frombuffer(val, dtype="<u2"), np.frombuffer(lengths, dtype=np.int64)


def _truncate(batch: _Batch, encoded, tokens_wanted: int):
    """Keep the batch's documents up to the one that brings the count to `tokens_wanted`."""
    train, val, lengths = encoded
    running = np.cumsum(np.maximum(lengths, 0))
    keep = int(np.searchsorted(running, tokens_wanted)) + 1  # first document reaching the count, included
    kept_val = np.asarray(batch.is_val[:keep], dtype=bool)
    kept_len = np.maximum(lengths[:keep], 0)
    batch.docs, batch.is_val = batch.docs[:keep], batch.is_val[:keep]
    return train[:int(kept_len[~kept_val].sum())], val[:int(kept_len[kept_val].sum())], lengths[:keep]


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise CourseError(f"cannot write to output folder {out}: {e.strerror or e}") from None


def _remove_leftovers(out: Path, finished: int) -> None:
    """Delete .tmp files and shards that a crash left behind unrecorded (they are redone)."""
    for path in out.glob("*.tmp"):
        path.unlink()
    for split in SPLITS:
        for path in out.glob(f"{split}_*.bin"):
            stem = path.stem.split("_")[-1]
            if stem.isdigit() and int(stem) >= finished:
                path.unlink()


def prepare(source: str, out: str | Path, *, options: SourceOptions = SourceOptions(),  # noqa: B008 (frozen)
            max_docs: int | None = None, max_tokens: int | None = None, docs_per_shard: int = DOCS_PER_SHARD,
            workers: int | None = None, start_method: str = "spawn", split: SplitRule = SplitRule(),
            overwrite: bool = False, progress: bool = True, cache_dir: str | Path | None = None,
            log=print, tokenizer: str | Path = GPT2) -> dict:
    """Tokenize `source` into shards in `out`, resuming a preparation that was interrupted; return the manifest.

    `tokenizer` is "gpt2" (GPT-2's byte-pair encoding) or the path of a rank file
    (one of our own, from `python -m ch04_pretrain bpe`); a copy of the latter is
    kept in `out`, and the manifest records its sha256.
    """
    out = Path(out)
    workers = (os.cpu_count() or 1) if workers is None else workers
    for name, value in (("max docs", max_docs), ("max tokens", max_tokens)):
        if value is not None:
            check_positive(name, value)
    check_positive("documents per shard", docs_per_shard)
    if workers < 0:
        raise CourseError(f"workers must be >= 0 (0 encodes in this process), got {workers}")
    if start_method not in multiprocessing.get_all_start_methods():
        raise CourseError(f"start method {start_method!r} is not available here; "
                          f"use one of {', '.join(multiprocessing.get_all_start_methods())}")
    record, ranks = _choose_tokenizer(tokenizer)
    _check_writable(out)
    with own_folder(out, f"the data folder {out}"):  # a second preparation into it is refused
        settings = _settings(record, describe(source, options), split, docs_per_shard, max_docs, max_tokens)
        path = out / MANIFEST
        manifest = _manifest_to_continue(out, settings, overwrite)
        if manifest is None:
            _remove_leftovers(out, 0)
            (out / RANKS_FILE).unlink(missing_ok=True)  # left by an earlier preparation with another tokenizer
            manifest = {"format": FORMAT, "settings": settings, "complete": False, "shards": []}
        if ranks is not None:
            _keep_rank_file(ranks, out, record["ranks_sha256"])
        rank_file = _rank_file(record, out)
        redone = 0
        if manifest["shards"]:  # finished shards are checked against the manifest before they are trusted
            redone = _redo_damaged(source, out, manifest, options, docs_per_shard, split, workers, start_method,
                                   cache_dir, log, rank_file)
        if manifest["complete"]:
            state = f"repaired ({redone} damaged shard(s) redone)" if redone else "already prepared"
            log(f"{out} is {state}: {manifest['documents']:,} documents, {manifest['tokens']:,} tokens")
            return manifest
        _remove_leftovers(out, len(manifest["shards"]))

        shards = manifest["shards"]
        first = sum(s["documents"] for s in shards)
        tokens = sum(s[split_name]["tokens"] for s in shards for split_name in SPLITS)
        if shards:
            log(f"resuming after {len(shards)} finished shard(s): {first:,} documents, {tokens:,} tokens")

        check_source(source)  # a missing path or an empty folder is reported before any work starts
        docs = iter_documents(source, options, start=first, cache_dir=cache_dir)
        if max_tokens is not None and tokens >= max_tokens:
            docs = iter(())  # stopped after its last shard was saved but before it was marked complete
        bar = progress_bar(total=max_docs, initial=first, unit=" docs", desc="preparing", disable=not progress,
                   dynamic_ncols=True)
        writer: _ShardWriter | None = None
        start, new_tokens = time.perf_counter(), 0
        try:
            for batch, encoded in _encode_in_order(_batches(docs, first, docs_per_shard, split, max_docs),
                                                   workers, start_method, rank_file):
                done = max_tokens is not None and tokens + int(np.maximum(encoded[2], 0).sum()) >= max_tokens
                if done:
                    encoded = _truncate(batch, encoded, max_tokens - tokens)
                if writer is None:
                    writer = _ShardWriter(out, batch.shard, batch.shard * docs_per_shard)
                writer.write(*encoded[:2], batch.is_val, encoded[2])
                if writer.documents == docs_per_shard:  # the shard is complete: commit it now
                    shards.append(writer.commit(out))
                    _save(path, manifest)
                    writer = None
                added = int(np.maximum(encoded[2], 0).sum())
                tokens += added
                new_tokens += added
                bar.update(len(batch.docs))
                bar.set_postfix_str(f"{new_tokens / max(time.perf_counter() - start, 1e-9):,.0f} tokens/s")
                if done:
                    break
            if writer is not None:
                shards.append(writer.commit(out))
                writer = None
        except OSError as e:  # a full disk, a folder made read-only, an unreadable input file
            raise CourseError(f"{e.filename or out}: {e.strerror or e}; the {len(shards)} finished shard(s) in {out} "
                              f"are kept, rerun to continue") from None
        finally:
            bar.close()
            if writer is not None:  # an error or Ctrl-C in the middle of a shard: it will be redone
                writer.abort()
        if not shards:
            raise CourseError(f"the source {source} has no documents")
        if sum(s[split_name]["tokens"] for s in shards for split_name in SPLITS) == 0:
            _summarize(manifest)
            # Nothing worth keeping was written: remove it, so that a rerun on corrected input starts afresh.
            path.unlink(missing_ok=True)
            _remove_leftovers(out, 0)
            (out / RANKS_FILE).unlink(missing_ok=True)
            raise CourseError(f"the source {source} gave no tokens: {manifest['documents']:,} document(s), "
                              f"{manifest['skipped']:,} of them skipped as not UTF-8 text (a UTF-16 file, say; convert "
                              f"it to UTF-8) and the rest empty")
        manifest["complete"] = True
        _save(path, manifest)
        if manifest["splits"]["val"]["tokens"] == 0:
            print(f"warning: the val split of {out} is empty ({manifest['documents']:,} document(s); a .txt or .xz "
                  f"file is one document unless you pass --separator, e.g. --separator '\\n\\n'); pretraining needs "
                  f"val documents", file=sys.stderr)
        return manifest


def _settings(tokenizer: dict, source: dict, split: SplitRule, docs_per_shard: int, max_docs: int | None,
              max_tokens: int | None) -> dict:
    """The "settings" a manifest records: a preparation continues only with the same ones."""
    return {
        "tokenizer": {**tokenizer, "eot_position": "before each document", "dtype": "uint16 little-endian"},
        "source": source,
        "split": asdict(split),
        "docs_per_shard": docs_per_shard,
        "max_docs": max_docs,
        "max_tokens": max_tokens,
    }


def _manifest_to_continue(out: Path, settings: dict, overwrite: bool) -> dict | None:
    """The manifest of the preparation in `out` with these settings, to continue or repair; None where there is
    none, or where `overwrite` replaces one with other settings or a damaged one (its manifest is then deleted)."""
    path = out / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = read_manifest(out)
    except ManifestDamaged:
        if not overwrite:
            raise
        manifest = None
    if manifest is not None and manifest["settings"] == settings:
        return manifest
    if not overwrite:
        before, tokenizer = manifest["settings"]["tokenizer"], settings["tokenizer"]
        if before["ranks_sha256"] != tokenizer["ranks_sha256"]:
            raise CourseError(f"{out} was prepared with another tokenizer ({before['name']}, not {tokenizer['name']}); "
                              f"choose another --out, or pass --overwrite to replace it")
        raise CourseError(f"{out} already holds a preparation with other settings (source, limits or "
                          f"split); choose another --out, or pass --overwrite to replace it")
    path.unlink()
    return None


def save_as_prepared(out: str | Path, shards: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Write (train tokens, val tokens) of each shard as a prepared folder, with the manifest `prepare` would
    write for them (GPT-2's tokenizer; each split that has tokens counts as one document); return the manifest.

    For tests and exercise checks that need a folder of known tokens: made by the
    same writer as `prepare`'s, it passes every check a real preparation does.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    docs_per_shard = len(SPLITS)
    settings = _settings(GPT2_RECORD, {"kind": "tokens"}, SplitRule(), docs_per_shard, None, None)
    manifest = {"format": FORMAT, "settings": settings, "complete": True, "shards": []}
    for index, (train, val) in enumerate(shards):
        train, val = (np.ascontiguousarray(tokens, dtype="<u2") for tokens in (train, val))
        documents = [(len(tokens), to_val) for tokens, to_val in ((train, False), (val, True)) if len(tokens)]
        writer = _ShardWriter(out, index, index * docs_per_shard)
        writer.write(train, val, [to_val for _, to_val in documents],
                     np.array([n for n, _ in documents], dtype=np.int64))
        manifest["shards"].append(writer.commit(out))
    _save(out / MANIFEST, manifest)
    return manifest


def _choose_tokenizer(tokenizer: str | Path) -> tuple[dict, dict[bytes, int] | None]:
    """(the manifest's record of `tokenizer`, its ranks to copy into the folder, None for GPT-2's)."""
    if str(tokenizer) == GPT2:
        return GPT2_RECORD, None
    ranks = load_ranks(tokenizer, None)  # the user's file: nothing to check its sha256 against, only its content
    record = tokenizer_record(ranks)
    if record["name"] == GPT2:
        return GPT2_RECORD, None  # a copy of GPT-2's own rank file
    if record["vocab_size"] > MAX_VOCAB:
        raise CourseError(f"the tokenizer {tokenizer} has {record['vocab_size']:,} ids with <|endoftext|>; shards "
                          f"store ids as uint16, which holds at most {MAX_VOCAB:,}")
    return record, ranks


def _keep_rank_file(ranks: dict[bytes, int], out: Path, sha256: str) -> None:
    """Write the tokenizer's rank file into the prepared folder (unless the same bytes are already there)."""
    copy = out / RANKS_FILE
    try:
        if copy.is_file() and sha256_of(copy) == sha256:
            return
        write_ranks(ranks, copy)
    except OSError as e:
        raise CourseError(f"cannot write {copy}: {e.strerror or e}") from None


def _redo_damaged(source: str, out: Path, manifest: dict, options: SourceOptions, docs_per_shard: int,
                  split: SplitRule, workers: int, start_method: str, cache_dir, log,
                  rank_file: tuple[Path, str]) -> int:
    """Check the finished shards against the manifest and rewrite each damaged one from the source; return
    how many were redone.

    A shard is a pure function of its documents, so a redone shard must have
    exactly the sha256 the manifest recorded; if it does not, the source (or
    the manifest) changed since, and nothing is replaced.
    """
    found = find_damage(out, manifest)
    if not found:
        return 0
    problems = dict(reversed(found))  # the first problem of each shard
    damaged = sorted(problems)
    for index in damaged:
        shard = next(s for s in manifest["shards"] if s["index"] == index)
        log(f"{problems[index]}: redoing shard {index} "
            f"({shard['documents']:,} documents)")
        first = shard["first_document"]
        check_source(source)
        docs = iter_documents(source, options, start=first, cache_dir=cache_dir)
        writer = _ShardWriter(out, index, first)
        try:
            for batch, encoded in _encode_in_order(_batches(docs, first, docs_per_shard, split,
                                                            first + shard["documents"]), workers, start_method,
                                                   rank_file):
                writer.write(*encoded[:2], batch.is_val, encoded[2])
            same = writer.documents == shard["documents"] and all(
                writer.parts[name].tokens == shard[name]["tokens"]
                and writer.parts[name].hash.hexdigest() == shard[name]["sha256"] for name in SPLITS)
            if not same:
                raise CourseError(f"shard {index} of {out} is damaged, and the source {source} no longer gives the "
                                  f"tokens the manifest records (it changed since it was prepared, or the manifest "
                                  f"was edited); prepare again with --overwrite, or into a new --out")
            writer.commit(out)
            writer = None
        except OSError as e:
            raise CourseError(f"{e.filename or out}: {e.strerror or e}; could not redo shard {index} of "
                              f"{out}") from None
        finally:
            if writer is not None:
                writer.abort()
    still = find_damage(out, manifest)
    if still:
        raise CourseError(damage_message(out, still))
    return len(damaged)


def _save(path: Path, manifest: dict) -> None:
    _summarize(manifest)
    write_bytes_atomically(path, (json.dumps(manifest, indent=1) + "\n").encode("utf-8"))
