"""Readers of the file formats the course takes data in: UTF-8 text, JSON Lines and Parquet.

Each names the file and the line or row of the first problem, in one line
(`CourseError`), so that a user can fix a bad file without reading a traceback.
Parquet needs pyarrow, which only the chapters that read it ask for.
"""

from __future__ import annotations

import json
from typing import BinaryIO, Iterable, Iterator

from .errors import CourseError


def decode_utf8(raw: bytes, source: str) -> str:
    """A file's bytes as text (a byte-order mark dropped), or a CourseError naming the line of the first bad byte."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise CourseError(f"{source}, line {line}: not UTF-8 (byte 0x{raw[e.start]:02x})") from None


def json_lines(lines: Iterable[str | bytes], source: str, skip_bad_bytes: bool = False) -> Iterator[tuple[int, object]]:
    """(line number, parsed value) for each non-blank line of JSON Lines; a malformed line is named.

    Lines may be bytes (a file opened in binary, read as it streams). A line that is
    not UTF-8 is an error, or with `skip_bad_bytes` comes out as (n, None) for the
    caller to skip and count: one damaged document in a web crawl should not stop it.
    """
    for n, line in enumerate(lines, 1):
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError:
                if skip_bad_bytes:
                    yield n, None
                    continue
                raise CourseError(f"{source}, line {n}: not UTF-8") from None
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except json.JSONDecodeError as e:
            raise CourseError(f"{source}, line {n}: not valid JSON ({e.msg} at column {e.colno})") from None


def pyarrow_parquet():
    """pyarrow's parquet module, or a one-line error that says how to install it."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise CourseError("reading .parquet files needs pyarrow: pip install pyarrow") from None
    return pq


def parquet_rows(file: str | BinaryIO, columns: list[str], source: str, start: int = 0, hint: str = "",
                 batch_rows: int = 4096) -> Iterator[tuple]:
    """The values of `columns`, one tuple per row from row `start` on, read a few thousand rows at a time.

    A file that is not Parquet, or lacks a column, is a CourseError naming the columns it has
    (`hint` is added to that line: how to name another column).
    """
    pq = pyarrow_parquet()
    try:
        table = pq.ParquetFile(file)
    except Exception as e:  # pyarrow raises several error types for an unreadable file
        raise CourseError(f"cannot read {source} as Parquet: {e}") from None
    names = table.schema_arrow.names
    missing = [c for c in columns if c not in names]
    if missing:
        raise CourseError(f"{source} has no column {missing[0]!r} (its columns: {', '.join(names)})"
                          + (f"; {hint}" if hint else ""))
    row = 0
    for batch in table.iter_batches(batch_size=batch_rows, columns=columns):
        if row + batch.num_rows <= start:
            row += batch.num_rows
            continue
        values = [batch.column(c).to_pylist()[max(0, start - row):] for c in columns]
        yield from zip(*values)
        row += batch.num_rows
