"""GPT-2's byte-pair encoding, offline, and a byte-pair encoder trained from scratch.

GPT-2 reads text as bytes, cuts it into word-like chunks with a regular
expression, and inside each chunk merges frequent pairs of symbols into new
tokens, in the order the merges were learned. The learned merges are its "rank
file": 50,256 byte strings, each with its rank (= token id). We keep a copy of
that file in `assets/` and check its sha256 on every load, so the tokenizer
never needs the network (tiktoken.get_encoding("gpt2") downloads it).

`train_bpe` learns merges the same way on a text of our own, small enough to
watch merge by merge (the notebook does). Its result, a `TinyBPE`, is written
as a rank file of the same format (`write_ranks(bpe.ranks(), path)`): ids
0..255 are the bytes, id 256 + k is merge k, and <|endoftext|> comes after the
last. tiktoken then encodes with it as fast as with GPT-2's (`rank_file_encoding`).
Byte-level, it can encode any text, with no unknown token.

A folder that holds data or weights made with such a tokenizer keeps a copy of
its rank file, RANKS_FILE, beside its manifest.json or config.json, which
records the file's sha256 (`tokenizer_record`); the copy is checked against
it whenever it is read. GPT-2's own tokenizer is recorded as before and never
copied: it is always the vendored file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import regex
import tiktoken

from coursekit import CourseError
from coursekit.files import write_bytes_atomically

RANKS_PATH = Path(__file__).resolve().parent / "assets" / "gpt2.tiktoken"
RANKS_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
EOT_TEXT = "<|endoftext|>"
EOT = 50256          # GPT-2's end-of-text token, the last id
VOCAB_SIZE = 50257   # 50,256 merged byte strings + <|endoftext|>
GPT2 = "gpt2"        # the name under which manifests and checkpoints record GPT-2's tokenizer

RANKS_FILE = "tokenizer.tiktoken"  # the copy of a course BPE's rank file kept beside the data or weights using it
# Bounds on a rank file, which may be damaged or hostile: GPT-2's has 50,256 ranks in 0.8 MB.
MAX_RANKS = 1 << 18
MAX_RANKS_BYTES = 16 << 20
# The most merges whose vocabulary (256 bytes + merges + <|endoftext|>) fits the uint16 ids of Chapter 4's shards.
MAX_MERGES = (1 << 16) - 256 - 1

# GPT-2's chunking rule: contractions, runs of letters, runs of digits, runs of
# other symbols (each optionally led by one space), and whitespace. Merges never
# cross a chunk boundary, so " dog." can become " dog" + "." but never "g.".
# This is GPT-2's original expression in the equivalent, faster form tiktoken uses.
GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""


# --------------------------------------------------------------------------- #
# GPT-2's encoding from the vendored rank file
# --------------------------------------------------------------------------- #

def load_ranks(path: str | Path = RANKS_PATH, sha256: str | None = RANKS_SHA256) -> dict[bytes, int]:
    """Read a tiktoken rank file (`base64-token rank` per line) and check it.

    `sha256` is the hash recorded for the file (GPT-2's for the vendored one, a
    manifest's or checkpoint's for a copy); None for a file the user names,
    which has nothing to be checked against. Either way the file must describe
    a byte-level BPE: one token per line, ranks 0, 1, 2, ... in order, no token
    twice, and every single byte among them, so that any text can be encoded.
    Anything else is refused in one line that names the file and the line.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_RANKS_BYTES + 1)  # never more than the bound, whatever the file's size
    except OSError as e:
        raise CourseError(f"cannot read the rank file {path}: {e.strerror}") from None
    if len(raw) > MAX_RANKS_BYTES:
        raise CourseError(f"{path} is larger than {MAX_RANKS_BYTES >> 20} MB: too large for a rank file")
    if sha256 is not None:
        if not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise CourseError(f"the sha256 recorded for {path} is not 64 hexadecimal digits; the record is damaged")
        actual = hashlib.sha256(raw).hexdigest()
        if actual != sha256:
            whose = "GPT-2's" if sha256 == RANKS_SHA256 else "the one recorded"
            raise CourseError(f"{path} has sha256 {actual}, expected {sha256}; the rank file is damaged or not "
                              f"{whose}")
    lines = raw.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the newline that ends the last line
    if len(lines) > MAX_RANKS:
        raise CourseError(f"{path} has {len(lines):,} lines, more ranks than the {MAX_RANKS:,} a rank file may have")
    ranks: dict[bytes, int] = {}
    for rank, line in enumerate(lines):
        where = f"{path} line {rank + 1}"
        fields = line.split(b" ")
        if len(fields) != 2 or not fields[1].isdigit() or len(fields[1]) > 7:  # a rank below MAX_RANKS
            raise CourseError(f"{where}: expected 'base64-token rank', got {line[:40]!r}")
        try:
            token = base64.b64decode(fields[0], validate=True)
        except binascii.Error:
            token = b""
        if not token:
            raise CourseError(f"{where}: {fields[0][:40]!r} is not a token in base64")
        found = int(fields[1])
        if found < rank:
            raise CourseError(f"{where}: rank {found} comes a second time (ranks go 0, 1, 2, ... one per line)")
        if found > rank:
            raise CourseError(f"{where}: rank {found} where {rank} was expected, a gap in the ranks (they go 0, 1, "
                              f"2, ... one per line)")
        if token in ranks:
            raise CourseError(f"{where}: token {token!r} already has rank {ranks[token]}")
        ranks[token] = rank
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise CourseError(f"{path}: {len(missing)} of the 256 bytes have no rank (byte {missing[0]}, ...); a "
                          f"byte-level BPE needs all of them, or some texts could not be encoded")
    return ranks


def format_ranks(ranks: dict[bytes, int]) -> bytes:
    """The rank file of `ranks`, in the layout of GPT-2's: one `base64-token rank` line per token, by rank."""
    return b"".join(base64.b64encode(token) + b" %d\n" % rank
                    for token, rank in sorted(ranks.items(), key=lambda item: item[1]))


def write_ranks(ranks: dict[bytes, int], path: str | Path) -> str:
    """Write `ranks` as a rank file, atomically; return its sha256."""
    data = format_ranks(ranks)
    write_bytes_atomically(path, data)
    return hashlib.sha256(data).hexdigest()


def tokenizer_record(ranks: dict[bytes, int]) -> dict:
    """What a manifest records about the tokenizer of these ranks: its name, the sha256 of its rank file (as
    `write_ranks` writes it), its number of ids and <|endoftext|>'s id (the one after the last rank)."""
    sha256 = hashlib.sha256(format_ranks(ranks)).hexdigest()
    name = GPT2 if sha256 == RANKS_SHA256 else f"bpe-{len(ranks) + 1}"
    return {"name": name, "ranks_sha256": sha256, "vocab_size": len(ranks) + 1, "eot": len(ranks)}


GPT2_RECORD = {"name": GPT2, "ranks_sha256": RANKS_SHA256, "vocab_size": VOCAB_SIZE, "eot": EOT}


def encoding_spec(path: str | Path = RANKS_PATH, sha256: str | None = RANKS_SHA256) -> dict:
    """The arguments of `tiktoken.Encoding` for the rank file at `path` (plain data, so it can be sent to
    worker processes): GPT-2's chunking pattern, and <|endoftext|> as the id after the last rank."""
    ranks = load_ranks(path, sha256)
    return {
        # Not "gpt2": tiktoken pickles an encoding with a registered name by name
        # alone, and the receiving process would then download it.
        "name": "gpt2-offline" if sha256 == RANKS_SHA256 else f"bpe-{len(ranks) + 1}",
        "pat_str": GPT2_SPLIT_PATTERN,
        "mergeable_ranks": ranks,
        "special_tokens": {EOT_TEXT: len(ranks)},
        "explicit_n_vocab": len(ranks) + 1,
    }


@lru_cache(maxsize=8)
def rank_file_encoding(path: str | Path = RANKS_PATH, sha256: str = RANKS_SHA256) -> tiktoken.Encoding:
    """The fast tokenizer of a rank file whose sha256 is known (cached: a file with that hash has that content)."""
    return tiktoken.Encoding(**encoding_spec(path, sha256))


def gpt2_encoding(path: str | Path = RANKS_PATH) -> tiktoken.Encoding:
    """GPT-2's tokenizer, built from the vendored rank file: the same ids as tiktoken.get_encoding("gpt2")."""
    return rank_file_encoding(path, RANKS_SHA256)


# --------------------------------------------------------------------------- #
# The tokenizer a checkpoint records
# --------------------------------------------------------------------------- #

def checkpoint_tokenizer(record: dict) -> dict:
    """How a checkpoint's config.json names the tokenizer of a manifest's `record`: {"type": "gpt2"} for
    GPT-2's (as Chapters 3 and 5 have always read it), else {"type": "bpe", name, ranks_sha256, vocab_size,
    eot}, with the rank file kept beside config.json as RANKS_FILE."""
    if record["name"] == GPT2:
        return {"type": GPT2}
    return {"type": "bpe", **{key: record[key] for key in GPT2_RECORD}}


def tokenizer_sha256(tokenizer: dict | None) -> str | None:
    """What identifies a tokenizer, in a manifest's record or a checkpoint's: the sha256 of its rank file."""
    tokenizer = tokenizer if isinstance(tokenizer, dict) else {}
    if tokenizer.get("type") == GPT2:
        return RANKS_SHA256
    return tokenizer.get("ranks_sha256") if isinstance(tokenizer.get("ranks_sha256"), str) else None


def tokenizer_encoding(tokenizer: dict | None, folder: str | Path) -> tiktoken.Encoding | None:
    """The encoding a checkpoint's config.json records (`tokenizer`, its "tokenizer" entry): GPT-2's, or a
    course BPE read from the rank file in `folder` and checked against the recorded sha256 and size; None
    for any other kind (Chapter 3's characters, Chapter 5's trimmed GPT-2)."""
    tokenizer = tokenizer if isinstance(tokenizer, dict) else {}
    if tokenizer.get("type") == GPT2:
        return gpt2_encoding()
    if tokenizer.get("type") != "bpe":
        return None
    folder = Path(folder)
    sha256 = tokenizer.get("ranks_sha256")
    if not isinstance(sha256, str):
        raise CourseError(f"{folder / 'config.json'}: its tokenizer records no ranks_sha256; the checkpoint is "
                          f"damaged")
    encoding = rank_file_encoding(folder / RANKS_FILE, sha256)
    if (tokenizer.get("vocab_size"), tokenizer.get("eot")) != (encoding.n_vocab, encoding.eot_token):
        raise CourseError(f"{folder / 'config.json'} says its tokenizer has {tokenizer.get('vocab_size')} ids "
                          f"(<|endoftext|> {tokenizer.get('eot')}), its rank file gives {encoding.n_vocab} "
                          f"({encoding.eot_token}); the checkpoint is damaged")
    return encoding


# --------------------------------------------------------------------------- #
# A byte-pair encoder trained from scratch
# --------------------------------------------------------------------------- #

@dataclass
class TinyBPE:
    """Merges learned by `train_bpe`: token ids 0..255 are the bytes, id 256 + k is merge k."""

    merges: list[tuple[int, int]] = field(default_factory=list)
    tokens_after_merge: list[int] = field(default_factory=list)  # size of the training text after each merge

    @property
    def vocab_size(self) -> int:
        return 256 + len(self.merges)

    def vocab(self) -> dict[int, bytes]:
        table = {i: bytes([i]) for i in range(256)}
        for k, (a, b) in enumerate(self.merges):
            table[256 + k] = table[a] + table[b]
        return table

    def ranks(self) -> dict[bytes, int]:
        """The vocabulary as a rank file holds it, token bytes -> id (tiktoken's "mergeable ranks").

        A rank file maps each byte string to one id, so two merges that made the
        same bytes could not be written; `train_bpe` never learns such a pair
        (it would need the same bytes split two ways in one text), but merges
        made by hand can.
        """
        ranks: dict[bytes, int] = {}
        for i, token in self.vocab().items():
            if token in ranks:
                raise CourseError(f"merge {i - 256} makes {token!r}, as token {ranks[token]} does; a rank file "
                                  f"gives each byte string one id")
            ranks[token] = i
        return ranks

    def encode(self, text: str) -> list[int]:
        rank = {pair: k for k, pair in enumerate(self.merges)}
        ids = []
        for chunk in regex.findall(GPT2_SPLIT_PATTERN, text):
            piece = list(chunk.encode("utf-8"))
            while len(piece) > 1:
                # Apply the earliest-learned merge present, as GPT-2 does.
                pair = min(itertools.pairwise(piece), key=lambda p: rank.get(p, len(rank)))
                if pair not in rank:
                    break
                piece = merge_pair(piece, pair, 256 + rank[pair])
            ids.extend(piece)
        return ids

    def decode(self, ids: list[int]) -> str:
        table = self.vocab()
        return b"".join(table[i] for i in ids).decode("utf-8", errors="replace")


def merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every non-overlapping occurrence of `pair` in `ids`, left to right, by `new_id`."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def train_bpe(text: str, num_merges: int) -> TinyBPE:
    """Learn `num_merges` merges on `text`: each time, merge the most frequent adjacent pair.

    Like GPT-2, the text is first cut into chunks with GPT2_SPLIT_PATTERN and
    pairs are counted inside chunks only. Identical chunks are counted once,
    with their frequency, which makes training fast.
    """
    if num_merges < 0:
        raise CourseError(f"number of merges must be >= 0, got {num_merges}")
    chunks = Counter(regex.findall(GPT2_SPLIT_PATTERN, text))
    words = [(list(chunk.encode("utf-8")), freq) for chunk, freq in chunks.items()]
    bpe = TinyBPE()
    for k in range(num_merges):
        pairs = Counter()
        for ids, freq in words:
            for pair in itertools.pairwise(ids):
                pairs[pair] += freq
        if not pairs:
            break  # every chunk is a single token: nothing left to merge
        # Most frequent pair; ties go to the smaller pair, so the result never depends on dict order.
        best = min(pairs, key=lambda p: (-pairs[p], p))
        words = [(merge_pair(ids, best, 256 + k), freq) for ids, freq in words]
        bpe.merges.append(best)
        bpe.tokens_after_merge.append(sum(len(ids) * freq for ids, freq in words))
    return bpe


def learn_rank_file(source: str, options, max_bytes: int, merges: int, out: Path) -> None:
    """`python -m ch04_pretrain bpe`: learn `merges` merges on the first `max_bytes` of `source` (read with
    `options`, a SourceOptions), write them as the rank file `out`, and say what came of it."""
    from .sources import source_text

    text = source_text(source, options, max_bytes)
    bpe = train_bpe(text, merges)
    write_ranks(bpe.ranks(), out)
    fewer = (f" (of {merges:,} asked: after {len(bpe.merges):,}, every chunk of the text is one token)"
             if len(bpe.merges) < merges else "")
    size = len(text.encode("utf-8"))
    tokens = bpe.tokens_after_merge[-1] if bpe.merges else size
    print(f"{out}: 256 bytes + {len(bpe.merges):,} merges{fewer} + <|endoftext|> = {bpe.vocab_size + 1:,} ids")
    print(f"  learned on {size:,} bytes of {source}: {tokens:,} tokens, {size / tokens:.2f} bytes per token")
    print(f"  use it: python -m ch04_pretrain prepare --source {source} --tokenizer {out} --out DIR")
