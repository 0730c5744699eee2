"""Where documents come from: the built-in stories, local files and folders, or OpenWebText on the Hub.

Every source yields its documents one at a time, always in the same order, so
preparation can number them, stop, and later resume at document N. A document
is yielded as str, as bytes (decoded later, in a worker; a document whose bytes
are not UTF-8 is skipped there and counted), or as None (a document the reader
already knows it cannot decode). Nothing reads a whole corpus into memory, and
no document may be larger than coursekit.readers.MAX_FILE_BYTES (without
--separator a whole file is one document; the error says so). A byte-order mark
at the start of a document is dropped, as Chapter 1 drops it at the start of its
text (coursekit.readers.decode_utf8): it is not text.

Local formats:
  .txt            one document per file, or several split by --separator
  .xz             the original OpenWebText release: an xz-compressed tar of .txt
                  documents; a plain xz-compressed text is one document
  .tar, .tar.xz   archives of .txt documents (and of the .xz archives above,
                  as in the full openwebtext.tar.xz)
  .jsonl          one JSON object per line, text in a field (default "text")
  .parquet        a table with a string column (default "text")
A folder is read recursively, in sorted order of paths.
"""

from __future__ import annotations

import argparse
import itertools
import lzma
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from ch01_bigram.corpus import DEFAULT_BYTES, generate_corpus
from coursekit import BUILTIN, CourseError, readers  # readers.MAX_FILE_BYTES is read when used: tests lower it
from coursekit.numbers import Number
from coursekit.numbers import seed as seed_number
from coursekit.readers import (
    bounded_lines,
    drop_bom,
    json_lines,
    message_of,
    parquet_rows,
    pyarrow_parquet,
    read_capped,
    shown,
    too_large,
)
from coursekit.settings import DEFAULT_SEED, check_fields, from_args, setting

Document = str | bytes | None

OPENWEBTEXT = "openwebtext"
HUB_REPO = "Skylion007/openwebtext"
SUFFIXES = (".txt", ".xz", ".tar", ".jsonl", ".parquet")
TAR_MAGIC_OFFSET = 257  # a tar header carries b"ustar" at byte 257


_SUFFIXES = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9}


def parse_count(text: str) -> int:
    """'10M' -> 10_000_000; also accepts K, B (or G), and 1,000 or 1_000."""
    match = re.fullmatch(r"\s*([\d_,]*\.?\d+)\s*([KMBG]?)\s*", text.upper())
    if not match:
        raise argparse.ArgumentTypeError(f"not a count: {text!r} (examples: 5000, 10M, 1.5B)")
    return int(float(match.group(1).replace(",", "").replace("_", "")) * _SUFFIXES[match.group(2)])


# A count of documents, tokens or bytes, at least 1: 5000, 10K, 10M, 1.5B.
count = Number(int, 1, parse=parse_count, called="positive")


@dataclass(frozen=True)
class SourceOptions:
    """How to read a source: recorded in the manifest, so a resumed run reads the same way.

    Each field is also an option of `prepare` and `bpe` (--separator, --text-field, ...)."""

    separator: str | None = setting(
        None, metavar="TEXT", unset="one document per file",
        help=r"split .txt/.xz text files into documents at TEXT (e.g. '\n\n'; backslash escapes are understood)")
    text_field: str = setting("text", metavar="NAME",
                              help="the field of .jsonl lines / the column of .parquet files that holds the text")
    builtin_bytes: int = setting(DEFAULT_BYTES, count, "size of the built-in corpus in bytes", metavar="N")
    builtin_seed: int = setting(DEFAULT_SEED, seed_number, "seed of the built-in corpus")
    revision: str | None = setting(None, help="Hub revision to read", unset="main, else refs/convert/parquet")

    def __post_init__(self):
        check_fields(self)
        if self.separator == "":
            raise CourseError("separator must not be empty")


def options_from_args(args: argparse.Namespace) -> SourceOptions:
    """The `SourceOptions` that `prepare` and `bpe` were given; a --separator is typed with backslash escapes
    ('\\n\\n' is a blank line), and an empty one is refused."""
    options = from_args(args, SourceOptions())
    if options.separator:
        options = replace(options, separator=options.separator.encode("utf-8").decode("unicode_escape"))
    return options


def describe(source: str, options: SourceOptions) -> dict:
    """What the manifest records about a source."""
    if source == BUILTIN:
        return {"kind": BUILTIN, "seed": options.builtin_seed, "bytes": options.builtin_bytes}
    if source == OPENWEBTEXT:
        return {"kind": "hub", "repo": HUB_REPO, "revision": options.revision, "text_field": options.text_field}
    return {"kind": "local", "path": str(Path(source).resolve()), "separator": options.separator,
            "text_field": options.text_field}


def iter_documents(source: str, options: SourceOptions = SourceOptions(), start: int = 0,
                   cache_dir: str | Path | None = None) -> Iterator[Document]:
    """Documents of `source` (builtin, openwebtext, or a path), from document number `start` on."""
    if source == BUILTIN:
        docs = builtin_documents(options.builtin_seed, options.builtin_bytes)
    elif source == OPENWEBTEXT:
        return hub_documents(HUB_REPO, options.revision, options.text_field, start, cache_dir)
    else:
        docs = local_documents(Path(source), options)
    return _skip(docs, start)


def check_source(source: str) -> None:
    """Fail early, with a clear message, on a local path that holds no readable files."""
    if source not in (BUILTIN, OPENWEBTEXT):
        local_files(Path(source))


def source_text(source: str, options: SourceOptions = SourceOptions(), max_bytes: int = 10_000_000) -> str:
    """The first documents of `source` joined by blank lines, up to the one that brings the text to `max_bytes`
    of UTF-8: the text a byte-pair encoder learns its merges from (documents that are not UTF-8 are left out)."""
    check_source(source)
    parts, size = [], 0
    for doc in iter_documents(source, options):
        if isinstance(doc, bytes):
            try:
                doc = doc.decode("utf-8")
            except UnicodeDecodeError:
                continue
        if doc:
            parts.append(doc)
            size += len(doc.encode("utf-8")) + 2
            if size >= max_bytes:
                break
    if not parts:
        raise CourseError(f"the source {source} has no UTF-8 text to learn from")
    return "\n\n".join(parts)


def _skip(docs: Iterator[Document], n: int) -> Iterator[Document]:
    return itertools.islice(docs, n, None)  # not a generator of our own: no Python call per document


# --------------------------------------------------------------------------- #
# Built-in stories
# --------------------------------------------------------------------------- #

def builtin_documents(seed: int = DEFAULT_SEED, n_bytes: int = DEFAULT_BYTES) -> Iterator[str]:
    """Chapter 1's corpus, one story per document (the corpus separates stories by blank lines)."""
    yield from generate_corpus(seed, n_bytes).strip("\n").split("\n\n")


# --------------------------------------------------------------------------- #
# Local files
# --------------------------------------------------------------------------- #

def local_files(path: Path) -> list[Path]:
    """The readable files at `path`: the file itself, or a folder's files (recursively, sorted)."""
    if not path.exists():
        raise CourseError(f"source not found: {path} (use builtin, openwebtext, or a file or folder path)")
    if path.is_file():
        if not _supported(path):
            raise CourseError(f"{path}: unsupported file type; use one of {', '.join(SUFFIXES)}")
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and _supported(p))
    if not files:
        raise CourseError(f"no documents in folder {path}: it has no {', '.join(SUFFIXES)} files")
    return files


def _supported(path: Path) -> bool:
    return path.name.endswith(SUFFIXES) and not path.name.startswith(".")


def local_documents(path: Path, options: SourceOptions) -> Iterator[Document]:
    for file in local_files(path):
        name = file.name
        if name.endswith(".jsonl"):
            yield from jsonl_documents(file, options.text_field)
        elif name.endswith(".parquet"):
            yield from parquet_documents(file, options.text_field)
        elif name.endswith(".xz"):
            yield from xz_documents(file, options.separator)
        elif name.endswith(".tar"):
            with open(file, "rb") as f:
                yield from tar_documents(f, str(file), options.separator)
        else:
            with open(file, "rb") as f:
                yield from split_stream(f, options.separator, name=str(file))


def split_stream(f, separator: str | None, chunk_size: int = 1 << 20, name: str = "the text") -> Iterator[bytes]:
    """The documents of a binary text stream: the whole stream, or its pieces between separators.

    Works on bytes, so a piece with bad UTF-8 spoils only itself; empty pieces
    are dropped, and so is a byte-order mark at a piece's start. Memory holds one
    chunk plus the longest document, which may not exceed MAX_FILE_BYTES (`name`
    says which file in that error).
    """
    if separator is None:
        try:
            data = drop_bom(read_capped(f, name))
        except CourseError as e:
            raise CourseError(f"{e}; without --separator the whole file is one document") from None
        if data:
            yield data
        return
    sep = separator.encode("utf-8")
    buffer = b""
    while chunk := f.read(chunk_size):
        buffer += chunk
        *pieces, buffer = buffer.split(sep)
        yield from _documents(pieces, name, separator)
        _check_document(buffer, name, separator)  # the piece still growing: a file without separators stops here
    yield from _documents([buffer], name, separator)


def _documents(pieces: list[bytes], name: str, separator: str) -> Iterator[bytes]:
    """The pieces between separators that are documents: each checked, without a byte-order mark, not empty."""
    for piece in pieces:
        _check_document(piece, name, separator)
        if piece := drop_bom(piece):
            yield piece


def _check_document(piece: bytes, name: str, separator: str) -> None:
    """Refuse a document (or the start of one) larger than MAX_FILE_BYTES."""
    if len(piece) > readers.MAX_FILE_BYTES:
        raise too_large(f"{name}: a document (the text up to the next {separator!r}) runs on")


def xz_documents(file: Path, separator: str | None) -> Iterator[bytes]:
    """An .xz file: a tar of documents (OpenWebText's layout) or a single compressed text."""
    try:
        with lzma.open(file, "rb") as f:
            head = f.read(TAR_MAGIC_OFFSET + 5)
            is_tar = head[TAR_MAGIC_OFFSET:] == b"ustar"
        with lzma.open(file, "rb") as f:
            if is_tar:
                yield from tar_documents(f, str(file), separator)
            else:
                yield from split_stream(f, separator, name=str(file))
    except (lzma.LZMAError, EOFError, tarfile.TarError) as e:
        raise CourseError(f"corrupt archive {file}: {message_of(e)}") from None


def tar_documents(f, name: str, separator: str | None) -> Iterator[bytes]:
    """The .txt members of a tar stream, in archive order; nested .xz members are opened in turn.

    Members are read from the stream, never extracted: a name such as ../x or /x writes nothing.
    """
    try:
        with tarfile.open(fileobj=f, mode="r|*") as tar:  # "|": a stream, read once front to back
            for member in tar:
                tar.members = []  # a stream is read once: keeping every member's header would grow without end
                if not member.isfile():
                    continue
                data = tar.extractfile(member)
                where = f"{name}:{shown(member.name)}"
                if member.name.endswith(".xz"):
                    with lzma.open(data, "rb") as inner:
                        yield from tar_documents(inner, where, separator)
                elif member.name.endswith(".txt"):
                    yield from split_stream(data, separator, name=where)
    except (lzma.LZMAError, EOFError, tarfile.TarError) as e:
        raise CourseError(f"corrupt archive {name}: {message_of(e)}") from None


def jsonl_documents(file: Path, field: str) -> Iterator[Document]:
    with open(file, "rb") as f:
        for number, record in json_lines(bounded_lines(f, str(file)), str(file), skip_bad_bytes=True):
            if record is None:
                yield None  # bad bytes in this document only: skipped and counted
            elif not isinstance(record, dict) or not isinstance(record.get(field), str):
                raise CourseError(f"{file}, line {number}: expected an object with a string field {field!r}")
            else:
                yield drop_bom(record[field])


def parquet_documents(file: Path, column: str, start: int = 0) -> Iterator[str | None]:
    """The `column` of a parquet file, read a few thousand rows at a time, from row `start` on."""
    for (value,) in parquet_rows(file, [column], str(file), start, hint="name the text column with --text-field"):
        yield drop_bom(value) if isinstance(value, str) else None


# --------------------------------------------------------------------------- #
# OpenWebText on the Hugging Face Hub, as parquet (no dataset script)
# --------------------------------------------------------------------------- #

def _hub():
    try:
        import huggingface_hub
    except ImportError:
        raise CourseError("reading OpenWebText from the Hub needs two optional packages: "
                          "pip install huggingface_hub pyarrow") from None
    pyarrow_parquet()
    return huggingface_hub


def hub_parquet_files(repo: str, revision: str | None) -> tuple[str, list[str]]:
    """(revision, sorted parquet paths of the train split). Tries `main`, then the Hub's parquet conversion."""
    hub = _hub()
    revisions = [revision] if revision else ["main", "refs/convert/parquet"]
    for rev in revisions:
        try:
            files = hub.list_repo_files(repo, repo_type="dataset", revision=rev)
        except Exception as e:
            raise CourseError(f"cannot list {repo} on the Hugging Face Hub (revision {rev}): {str(e).rstrip('.')}. "
                              f"Check the network, or prepare from local files with --source PATH") from None
        parquet = sorted(f for f in files if f.endswith(".parquet") and "train" in f)
        if parquet:
            return rev, parquet
    raise CourseError(f"{repo} has no train parquet files at revision(s) {', '.join(revisions)}")


def hub_download(repo: str, filename: str, revision: str, cache_dir: str | Path | None = None) -> Path:
    """One file from the Hub: cached, and resumed if a previous download was interrupted."""
    hub = _hub()
    try:
        return Path(hub.hf_hub_download(repo, filename, repo_type="dataset", revision=revision,
                                        cache_dir=cache_dir))
    except Exception as e:
        raise CourseError(f"cannot download {filename} from {repo}: {str(e).rstrip('.')}. "
                          f"Rerun to resume the download") from None


def hub_documents(repo: str, revision: str | None, column: str, start: int = 0,
                  cache_dir: str | Path | None = None) -> Iterator[str | None]:
    """The Hub dataset's documents, downloading each parquet shard only when the reading reaches it."""
    pq = pyarrow_parquet()
    rev, files = hub_parquet_files(repo, revision)
    row = 0
    for name in files:
        path = hub_download(repo, name, rev, cache_dir)
        rows = pq.ParquetFile(path).metadata.num_rows
        if row + rows > start:
            yield from parquet_documents(path, column, start=max(0, start - row))
        row += rows
