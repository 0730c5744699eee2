"""Readers of the file formats the course takes data in: UTF-8 text, JSON Lines, Parquet and zip members.

Each names the file and the line or row of the first problem, in one line
(`CourseError`), so that a user can fix a bad file without reading a traceback.
Every file is untrusted: a reader never takes more than `MAX_FILE_BYTES` into
memory at once, checks a size it is told (a file's, a zip member's, a Parquet
text's) before it reads, and reads through a cap in case the size lied.
Parquet needs pyarrow, which only the chapters that read it ask for.
"""

from __future__ import annotations

import json
import lzma
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from .errors import CourseError

# The most bytes a reader takes into memory at once: one labelled file or zip member (Chapter 5), one
# document of a corpus (Chapter 4). Above the IMDb reviews as Kaggle's CSV (66 MB), the largest data set a
# reader of the course is likely to bring. What a reader holds is a few times this (the bytes, the decoded
# text, the rows made of it): reading a labelled zip just under the limit peaked at 0.8 to 1.3 GB, 0.64 GB
# of it the imports (ch05_finetune/MEASUREMENTS.md, "Reading untrusted files").
MAX_FILE_BYTES = 100_000_000

BOM = "\ufeff"               # a byte-order mark: some editors put it first; it is not text
UTF8_BOM = BOM.encode("utf-8")


# --------------------------------------------------------------------------- #
# Sizes and messages
# --------------------------------------------------------------------------- #

def size_text(n: float) -> str:
    """A size for a message: '1,234 bytes' below a megabyte, then '12.3 MB', '4.5 GB', '6.7 TB'."""
    if n < 1e6:
        return f"{n:,.0f} bytes"
    unit, scale = next((u, s) for u, s in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)) if n >= s or u == "MB")
    return f"{n / scale:,.1f} {unit}"


def the_limit() -> str:
    """MAX_FILE_BYTES as the errors name it."""
    return f"the {size_text(MAX_FILE_BYTES)} the course reads into memory at once"


def too_large(what: str) -> CourseError:
    """The error for something over MAX_FILE_BYTES; `what` says what, and how large where that is known."""
    return CourseError(f"{what}: more than {the_limit()}")


def check_size(size: int, source: str, what: str = "") -> None:
    """Refuse, before reading it, something of `size` bytes (`what` says which size: 'uncompressed')."""
    if size > MAX_FILE_BYTES:
        raise too_large(f"{source} is {size_text(size)}{' ' + what if what else ''}")


def read_capped(f: BinaryIO, source: str) -> bytes:
    """All of a stream, read through a cap: never more than MAX_FILE_BYTES + 1 bytes, whatever a size said."""
    data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise CourseError(f"{source} holds more than {the_limit()}")
    return data


def shown(text: str, width: int = 60, quote: bool = False) -> str:
    """A name or value read from a file, fit for a one-line message: cut to `width` characters, and quoted
    (as Python writes it, escapes and all) when asked or when it holds a line break or other unprintable
    character."""
    cut = text if len(text) <= width else text[:width] + "..."
    return repr(cut) if quote or not cut.isprintable() else cut


def message_of(error: BaseException) -> str:
    """A library's error message on one line (some span several), or its type where it has none."""
    return " ".join(str(error).split()) or type(error).__name__


# --------------------------------------------------------------------------- #
# Files and text
# --------------------------------------------------------------------------- #

def read_bytes(path: str | Path, source: str | None = None) -> bytes:
    """A file's bytes, refused by its size before any is read (and read through a cap, should it grow)."""
    path = Path(path)
    source = source or str(path)
    try:
        check_size(path.stat().st_size, source)
        with open(path, "rb") as f:
            return read_capped(f, source)
    except OSError as e:
        raise CourseError(f"cannot read {source}: {e.strerror or message_of(e)}") from None


def decode_utf8(raw: bytes, source: str) -> str:
    """A file's bytes as text (a byte-order mark dropped), or a CourseError naming the line of the first bad byte."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise CourseError(f"{source}, line {line}: not UTF-8 (byte 0x{raw[e.start]:02x})") from None


def drop_bom(document: str | bytes) -> str | bytes:
    """A document without the byte-order mark it may start with (as text or as UTF-8 bytes)."""
    mark = UTF8_BOM if isinstance(document, bytes) else BOM
    return document.removeprefix(mark)


# A line ends at \n, \r\n or \r, as in a file opened in text mode; not at the other breaks str.splitlines
# knows (a form feed, U+2028...), which JSON allows inside a string and a message may hold.
LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def text_lines(text: str, keep_ends: bool = False) -> Iterator[str]:
    """The lines of `text`, one at a time: a file of many short lines never becomes a list of them all."""
    for match in LINE.finditer(text):
        yield match[0] if keep_ends else match[0].rstrip("\r\n")


def bounded_lines(f: BinaryIO, source: str) -> Iterator[bytes]:
    """The lines of a binary stream, each read through a cap: a line longer than MAX_FILE_BYTES is refused
    before it is held whole (a stream's own iteration reads a line of any length)."""
    for n, line in enumerate(iter(lambda: f.readline(MAX_FILE_BYTES + 1), b""), 1):
        if len(line) > MAX_FILE_BYTES:
            raise too_large(f"{source}, line {n} is too long")
        yield line


def json_lines(lines: Iterable[str | bytes], source: str, skip_bad_bytes: bool = False) -> Iterator[tuple[int, object]]:
    """(line number, parsed value) for each non-blank line of JSON Lines; a malformed line is named.

    Lines may be bytes (a file opened in binary, read as it streams). A line that is
    not UTF-8 is an error, or with `skip_bad_bytes` comes out as (n, None) for the
    caller to skip and count: one damaged document in a web crawl should not stop it.
    A byte-order mark before the first line is dropped, as `decode_utf8` drops it.
    """
    for n, line in enumerate(lines, 1):
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8-sig" if n == 1 else "utf-8")
            except UnicodeDecodeError:
                if skip_bad_bytes:
                    yield n, None
                    continue
                raise CourseError(f"{source}, line {n}: not UTF-8") from None
        elif n == 1:
            line = drop_bom(line)
        if not line.strip():
            continue
        yield n, parse_json(line, source, n)


def parse_json(text: str, source: str, line: int | None = None) -> object:
    """One JSON value: a whole file's, or with `line` that line's; a CourseError names the line of a problem."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise CourseError(f"{source}, line {line or e.lineno}: not valid JSON ({e.msg} at column {e.colno})") \
            from None
    except (ValueError, RecursionError) as e:  # what json.loads raises besides: a long number, deep nesting
        where = f", line {line}" if line is not None else ""
        problem = "JSON nested too deeply" if isinstance(e, RecursionError) else \
            "a number with more digits than Python reads"
        raise CourseError(f"{source}{where}: {problem}") from None


def pyarrow_parquet():
    """pyarrow's parquet module, or a one-line error that says how to install it."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise CourseError("reading .parquet files needs pyarrow: pip install pyarrow") from None
    return pq


def _open_parquet(pq, file: str | BinaryIO, source: str, **options):
    try:
        return pq.ParquetFile(file, **options)
    except Exception as e:
        raise CourseError(f"cannot read {source} as Parquet: {message_of(e)}") from None


def parquet_file(file: str | BinaryIO, columns: list[str], source: str, hint: str = ""):
    """A pyarrow ParquetFile ready to read `columns`, each a column of plain values (text, numbers...).

    A file that is not Parquet, or lacks a column, is a CourseError naming the columns it has
    (`hint` is added to that line: how to name another column); so is a column of lists or records.
    Text columns are read as dictionaries (see `parquet_rows`).
    """
    pq = pyarrow_parquet()
    import pyarrow as pa  # there, since pyarrow_parquet found it

    schema = _open_parquet(pq, file, source).schema_arrow
    names = schema.names
    missing = [c for c in columns if c not in names]
    if missing:
        shown_names = ", ".join(shown(n, 40) for n in names[:20]) + (", ..." if len(names) > 20 else "")
        raise CourseError(f"{source} has no column {shown(missing[0], quote=True)} (its columns: {shown_names})"
                          + (f"; {hint}" if hint else ""))
    for column in columns:
        if names.count(column) > 1:
            raise CourseError(f"{source} has {names.count(column)} columns named {shown(column, quote=True)}")
        kind = schema.field(column).type
        if pa.types.is_nested(kind):
            raise CourseError(f"{source}: column {shown(column, quote=True)} holds {shown(str(kind))}, "
                              f"not one value per row")
    if hasattr(file, "seek"):
        file.seek(0)
    return _open_parquet(pq, file, source, read_dictionary=columns)


def _is_text(kind) -> bool:
    """Whether an Arrow type holds text or bytes of any length (what a dictionary of it can repeat)."""
    import pyarrow as pa

    return any(test(kind) for test in (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary,
                                       pa.types.is_large_binary))


def _batches(table, columns: list[str], batch_rows: int, source: str):
    """The record batches of a ParquetFile, with pyarrow's errors (a damaged page...) as one line."""
    batches = table.iter_batches(batch_size=batch_rows, columns=columns)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except Exception as e:
            raise CourseError(f"cannot read {source} as Parquet: {message_of(e)}") from None
        yield batch


def _value_sizes(batch) -> list[int]:
    """Each row's bytes of text, summed over the batch's text columns (read as dictionaries), without
    making the text: the length of each dictionary entry, taken by the row's index."""
    import pyarrow as pa
    import pyarrow.compute as pc

    sizes = [0] * batch.num_rows
    for column in batch.columns:
        if pa.types.is_dictionary(column.type) and _is_text(column.type.value_type):
            lengths = pc.binary_length(column.dictionary).take(column.indices).fill_null(0).to_pylist()
            sizes = [a + b for a, b in zip(sizes, lengths)]
    return sizes


def _pieces(batch, sizes: list[int]):
    """`batch` cut into slices of at most MAX_FILE_BYTES of text each (a slice of one row may hold that much)."""
    begin, total = 0, 0
    for i, size in enumerate(sizes):
        if total + size > MAX_FILE_BYTES and i > begin:
            yield batch.slice(begin, i - begin)
            begin, total = i, 0
        total += size
    if begin < batch.num_rows:
        yield batch.slice(begin)


def parquet_rows(file: str | BinaryIO, columns: list[str], source: str, start: int = 0, hint: str = "",
                 batch_rows: int = 4096) -> Iterator[tuple]:
    """The values of `columns`, one tuple per row from row `start` on, read a few thousand rows at a time.

    Errors are as `parquet_file`'s. Text is read as dictionaries and its size is checked before it
    becomes Python strings: a few hundred bytes of Parquet can repeat one long text in every row, which
    pyarrow would otherwise spell out, gigabytes in one batch. A value of more than MAX_FILE_BYTES is
    refused; a batch is turned into strings MAX_FILE_BYTES of text at a time.
    """
    table = parquet_file(file, columns, source, hint)
    row = 0
    for batch in _batches(table, columns, batch_rows, source):
        if row + batch.num_rows <= start:
            row += batch.num_rows
            continue
        skip = max(0, start - row)
        batch, row = batch.slice(skip), row + skip
        sizes = _value_sizes(batch)
        largest = max(sizes, default=0)
        if largest > MAX_FILE_BYTES:
            raise too_large(f"{source}, row {row + sizes.index(largest)}: its text is {size_text(largest)}")
        for piece in _pieces(batch, sizes):
            yield from zip(*(_values(piece, c, source, row) for c in columns))
            row += piece.num_rows


def _values(piece, column: str, source: str, row: int) -> list:
    """A column of a slice as Python values; text that is not UTF-8 (a damaged file) as one line."""
    try:
        return piece.column(column).to_pylist()
    except UnicodeDecodeError:
        raise CourseError(f"{source}: column {shown(column, quote=True)} holds bytes that are not UTF-8 "
                          f"in rows {row:,} to {row + piece.num_rows - 1:,}") from None


# --------------------------------------------------------------------------- #
# Zip archives
# --------------------------------------------------------------------------- #

# What zipfile raises for a damaged archive besides BadZipFile: a bad compressed stream (zlib.error,
# LZMAError, OSError from bz2), an unknown method or version (NotImplementedError), a cut-off member
# (EOFError), an offset outside the file (ValueError), a member that wants a password (RuntimeError),
# a short header (struct.error).
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, NotImplementedError, EOFError, OSError, ValueError,
              RuntimeError, struct.error)


def open_zip(path: str | Path, source: str | None = None) -> zipfile.ZipFile:
    """A zip archive opened for reading, its size checked first: its directory (every member's name and
    sizes) is read into memory, a few hundred bytes a member."""
    source = source or str(path)
    try:
        check_size(Path(path).stat().st_size, source)
        return zipfile.ZipFile(path)
    except CourseError:
        raise
    except ZIP_ERRORS as e:
        raise CourseError(f"{source} is not a readable zip file ({message_of(e)})") from None


def points_outside(name: str) -> bool:
    """Whether a member's name points outside the archive's folder: absolute (/x, C:x, \\x) or through '..'."""
    posix = name.replace("\\", "/")
    return PurePosixPath(posix).is_absolute() or re.match(r"[A-Za-z]:", posix) is not None or \
        ".." in PurePosixPath(posix).parts


def zip_files(archive: zipfile.ZipFile, source: str) -> list[zipfile.ZipInfo]:
    """The files of an archive (no folders, no macOS __MACOSX metadata). An archive with a name that points
    outside its folder is refused: nothing is extracted here, but such an archive is not data to trust."""
    files = [i for i in archive.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX")]
    bad = next((i.filename for i in files if points_outside(i.filename)), None)
    if bad is not None:
        raise CourseError(f"{source} has a member named outside the archive's folder ({shown(bad, quote=True)}); "
                          f"the course does not read such archives")
    return files


def read_zip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: str) -> bytes:
    """A member's bytes: refused before reading when encrypted or declared larger than MAX_FILE_BYTES, and
    read through a cap, since the size in the directory can lie."""
    if info.flag_bits & 0x1:
        raise CourseError(f"{source} is encrypted; extract it with its password first")
    check_size(info.file_size, source, "uncompressed")
    try:
        with archive.open(info) as f:
            return read_capped(f, source)
    except CourseError:
        raise
    except ZIP_ERRORS as e:
        raise CourseError(f"{source} is damaged ({message_of(e)})") from None
