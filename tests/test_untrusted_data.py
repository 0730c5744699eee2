"""Every file the course reads is untrusted: each data reader, fed damaged and hostile files, reads them or
refuses them with a one-line CourseError, never another exception, and never takes more than its limit into
memory (coursekit.readers.MAX_FILE_BYTES, lowered here so that no test writes a large file).

The property tests draw the damage (random bytes, a valid file cut short or with bytes changed, wrong JSON
types, missing and extra columns, huge numbers, invalid UTF-8, lines over a small limit); the tests after
them pin each limit and each fix one by one.
"""

import codecs
import contextlib
import csv
import io
import json
import lzma
import struct
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ch01_bigram.data import read_text_file
from ch04_pretrain.data_pipeline.bpe import gpt2_encoding
from ch04_pretrain.data_pipeline.loader import split_tokens
from ch04_pretrain.data_pipeline.prepare import prepare
from ch04_pretrain.data_pipeline.sources import SourceOptions, iter_documents
from ch05_finetune import labelled
from ch05_finetune.instruct import read_alpaca
from ch05_finetune.labelled import FORMAT_CHOICES, read_labelled
from coursekit import CourseError, readers

# Modest: each example writes and reads a small file; the whole module runs in a few seconds.
EXAMPLES = settings(max_examples=40, deadline=None, database=None)


# --------------------------------------------------------------------------- helpers

@contextlib.contextmanager
def scratch():
    """A fresh folder for one example (hypothesis runs a test's body many times; tmp_path is made once)."""
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


@contextlib.contextmanager
def limits(file_bytes: int | None = None, rows: int | None = None):
    """The readers' limits lowered for the block, so that a file over them stays small."""
    with pytest.MonkeyPatch.context() as mp:
        if file_bytes is not None:
            mp.setattr(readers, "MAX_FILE_BYTES", file_bytes)
        if rows is not None:
            mp.setattr(labelled, "MAX_ROWS", rows)
        yield


def read_or_refuse(read, *args, **kwargs):
    """What `read` returns, or the CourseError it raises, whose message must be one line. Any other exception
    propagates and fails the test."""
    try:
        return read(*args, **kwargs)
    except CourseError as e:
        message = str(e)
        assert message.strip() and "\n" not in message and "\r" not in message, repr(message)
        return e


def refused(read, *args, **kwargs) -> str:
    """The one-line message of the CourseError `read` must raise."""
    outcome = read_or_refuse(read, *args, **kwargs)
    assert isinstance(outcome, CourseError), f"read, not refused: {outcome!r}"
    return str(outcome)


def documents(path: Path, **options) -> list:
    """Every document Chapter 4 reads from `path`."""
    return list(iter_documents(str(path), SourceOptions(**options)))


def parquet_bytes(table: pa.Table, **options) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **options)
    return sink.getvalue().to_pybytes()


def zip_bytes(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def tar_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def set_zip_field(raw: bytes, signature: bytes, offset: int, value: int, size: str = "<I") -> bytes:
    """`raw` with one field of every zip record that starts with `signature` set to `value`: local headers
    (PK\\3\\4: flags at 6, uncompressed size at 22) or directory entries (PK\\1\\2: flags at 8, size at 24)."""
    out = bytearray(raw)
    at = out.find(signature)
    while at >= 0:
        struct.pack_into(size, out, at + offset, value)
        at = out.find(signature, at + 4)
    return bytes(out)


# --------------------------------------------------------------------------- strategies

LABELS = st.sampled_from(["ham", "spam", "pos", " ", "", "__label__x", "a\tb", '"q"'])
TEXTS = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)  # Cs: surrogates, which UTF-8 cannot hold
ROWS = st.lists(st.tuples(LABELS, TEXTS), max_size=8)
# Bytes that break a format or its encoding: bad UTF-8, NUL, lone CR, U+2028, a byte-order mark, quotes, tabs.
NASTY = st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\r", b"\xe2\x80\xa8", codecs.BOM_UTF8,
                         b'"', b"\t", b"\n", b"{", b"[" * 3000, b"9" * 5000, b"PK\x03\x04", b"PAR1"])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXTS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXTS, inner, max_size=3), max_leaves=6)


@st.composite
def damaged(draw, valid: bytes) -> bytes:
    """`valid` as it is, cut short, with bytes changed or inserted, repeated, or replaced by random bytes."""
    how = draw(st.sampled_from(["as is", "cut", "changed", "inserted", "repeated", "random"]))
    if how == "as is" or (not valid and how != "random"):
        return valid
    if how == "cut":
        return valid[:draw(st.integers(0, len(valid) - 1))]
    if how == "changed":
        out = bytearray(valid)
        for _ in range(draw(st.integers(1, 6))):
            out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
        return bytes(out)
    if how == "inserted":
        at = draw(st.integers(0, len(valid)))
        return valid[:at] + draw(NASTY | st.binary(min_size=1, max_size=8)) + valid[at:]
    if how == "repeated":
        a = draw(st.integers(0, len(valid) - 1))
        return valid[:a] + valid[a:] * draw(st.integers(2, 4))
    return draw(st.binary(max_size=300))


def format_of(name: str) -> str:
    """The format a file named `name` is written in here: its extension's, else TSV."""
    return {"jsonl": "jsonl", "csv": "csv", "parquet": "parquet", "zip": "zip"}.get(name.rsplit(".", 1)[-1], "tsv")


def labelled_file(fmt: str, rows: list[tuple[str, str]]) -> bytes:
    """A valid file of `rows` (label, text) in one of Chapter 5's formats."""
    if fmt == "tsv":
        return "".join(f"{label}\t{text}\n" for label, text in rows).encode()
    if fmt == "fasttext":
        return "".join(f"__label__{label} {text}\n" for label, text in rows).encode()
    if fmt == "csv":
        out = io.StringIO()
        csv.writer(out).writerows([("text", "label"), *((t, lab) for lab, t in rows)])
        return out.getvalue().encode()
    if fmt == "jsonl":
        return "".join(json.dumps({"text": t, "label": lab}) + "\n" for lab, t in rows).encode()
    if fmt == "parquet":
        return parquet_bytes(pa.table({"text": [t for _, t in rows], "label": [lab for lab, _ in rows]},
                                      schema=pa.schema([("text", pa.string()), ("label", pa.string())])))
    return zip_bytes({"data.tsv": labelled_file("tsv", rows)})


# --------------------------------------------------------------------------- properties: Chapter 5

@EXAMPLES
@given(fmt=st.sampled_from(FORMAT_CHOICES), rows=ROWS, data=st.data())
def test_labelled_reader_reads_or_refuses_any_damage_in_one_line(fmt, rows, data):
    raw = data.draw(damaged(labelled_file(fmt, rows)))
    # The extension says the format, or the content does (sniffed), or --format does.
    suffix, given_fmt = data.draw(st.sampled_from([(f".{fmt}", None), (".txt", None), (".dat", fmt)]))
    limit = data.draw(st.sampled_from([None, 40, 400]))
    with scratch() as folder, limits(file_bytes=limit):
        (folder / f"data{suffix}").write_bytes(raw)
        outcome = read_or_refuse(read_labelled, folder / f"data{suffix}", fmt=given_fmt)
        if not isinstance(outcome, CourseError):
            assert len(outcome.texts) == len(outcome.labels) > 0
            assert all(0 <= y < len(outcome.label_names) for y in outcome.labels)
            assert limit is None or len(raw) <= limit  # nothing over the limit is ever read


@EXAMPLES
@given(lines=st.lists(st.one_of(
    JSON_VALUES.map(json.dumps),
    st.dictionaries(st.sampled_from(["text", "label", "Text", "extra"]), JSON_VALUES).map(json.dumps),
    st.builds(lambda n: '{"text": "t", "label": ' + "1" * n + "}", st.integers(4000, 6000)),  # huge numbers
    st.just('{"text": "t", "label": ' + "[" * 5000 + "]" * 5000 + "}"),  # deep nesting
), max_size=6))
def test_labelled_jsonl_with_wrong_types_missing_and_extra_keys(lines):
    with scratch() as folder:
        (folder / "d.jsonl").write_text("\n".join(lines), encoding="utf-8")
        read_or_refuse(read_labelled, folder / "d.jsonl")


COLUMN_NAMES = st.sampled_from(["text", "label", "Review", "sentiment", "id", "", "text", "a\nb"])


@EXAMPLES
@given(header=st.lists(COLUMN_NAMES, max_size=4), rows=st.lists(st.lists(TEXTS | LABELS, max_size=5), max_size=6),
       delimiter=st.sampled_from([",", "\t"]))
def test_labelled_csv_with_missing_and_extra_columns(header, rows, delimiter):
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter).writerows([header, *rows])
    with scratch() as folder:
        (folder / "d.csv").write_text(out.getvalue(), encoding="utf-8")
        read_or_refuse(read_labelled, folder / "d.csv", fmt="csv" if delimiter == "," else None)


PARQUET_COLUMNS = st.sampled_from([
    pa.array(["a", "b", "c"]), pa.array(["x", None, "y"]), pa.array([1, 2, 10**18]),
    pa.array([0.5, float("nan"), 1e308]),
    pa.array([True, False, True]), pa.array([None, None, None], pa.null()), pa.array([b"\xff", b"a", b""]),
    pa.array([[1], [], [2, 3]]), pa.array([{"k": 1}, {"k": 2}, None]), pa.array(["a", "b", "a"]).dictionary_encode(),
    pa.array(["t", "u", "v"], pa.large_string()),
])


@EXAMPLES
@given(names=st.lists(st.sampled_from(["text", "label", "review", "extra", "text"]), max_size=4), data=st.data())
def test_labelled_parquet_with_wrong_types_missing_extra_and_doubled_columns(names, data):
    table = pa.Table.from_arrays([data.draw(PARQUET_COLUMNS) for _ in names], names=names)
    raw = data.draw(damaged(parquet_bytes(table)))
    with scratch() as folder:
        (folder / "d.parquet").write_bytes(raw)
        read_or_refuse(read_labelled, folder / "d.parquet")


MEMBER_NAMES = st.sampled_from(["data.tsv", "sub/train.csv", "../up.tsv", "/abs.tsv", "C:\\x.tsv", "a/../../b.tsv",
                                "__MACOSX/._data.tsv", "folder/", "line\nbreak.tsv", "inner.zip", "d.parquet"])


@EXAMPLES
@given(members=st.dictionaries(MEMBER_NAMES, ROWS, max_size=3), data=st.data())
def test_zip_archives_with_odd_names_flags_and_damage(members, data):
    contents = {}
    for name, rows in members.items():
        contents[name] = b"" if name.endswith("/") else labelled_file(format_of(name), rows)
    raw = zip_bytes(contents)
    if data.draw(st.booleans()):
        raw = set_zip_field(raw, b"PK\x01\x02", 8, 1, "<H")  # every member marked encrypted
    raw = data.draw(damaged(raw))
    member = data.draw(st.none() | MEMBER_NAMES)
    with scratch() as folder:
        (folder / "inside").mkdir()
        (folder / "inside" / "d.zip").write_bytes(raw)
        with limits(file_bytes=data.draw(st.sampled_from([None, 100]))):
            read_or_refuse(read_labelled, folder / "inside" / "d.zip", member=member)
        assert sorted(p.name for p in folder.rglob("*")) == ["d.zip", "inside"]  # nothing extracted anywhere


@EXAMPLES
@given(files=st.dictionaries(st.sampled_from(["train.tsv", "dev.csv", "test.jsonl", "valid.parquet", "train-1.tsv",
                                              "notes.txt", "test.zip"]), ROWS, max_size=4), data=st.data())
def test_folders_of_split_files(files, data):
    with scratch() as folder, limits(rows=data.draw(st.sampled_from([None, 5]))):
        for name, rows in files.items():
            (folder / name).write_bytes(data.draw(damaged(labelled_file(format_of(name), rows))))
        read_or_refuse(read_labelled, folder)


@EXAMPLES
@given(items=st.lists(st.dictionaries(st.sampled_from(["instruction", "input", "output", "task", "x"]), JSON_VALUES),
                      max_size=4), jsonl=st.booleans(), data=st.data())
def test_alpaca_instructions_with_wrong_types(items, jsonl, data):
    text = "\n".join(map(json.dumps, items)) if jsonl else json.dumps(items)
    with scratch() as folder:
        path = folder / ("d.jsonl" if jsonl else "d.json")
        path.write_bytes(data.draw(damaged(text.encode())))
        outcome = read_or_refuse(read_alpaca, path)
        if not isinstance(outcome, CourseError):
            assert all(isinstance(v, str) for e in outcome for v in e.to_dict().values())


# --------------------------------------------------------------------------- properties: Chapters 4 and 1

def corpus_file(kind: str, texts: list[str]) -> bytes:
    """A valid Chapter 4 source of `texts`: .txt (split at blank lines), .jsonl, .parquet, .tar or .xz."""
    if kind == "txt":
        return "\n\n".join(texts).encode()
    if kind == "jsonl":
        return "".join(json.dumps({"text": t}) + "\n" for t in texts).encode()
    if kind == "parquet":
        return parquet_bytes(pa.table({"text": pa.array(texts, pa.string())}))
    tar = tar_bytes({f"{i}.txt": t.encode() for i, t in enumerate(texts)})
    return tar if kind == "tar" else lzma.compress(tar)


@EXAMPLES
@given(kind=st.sampled_from(["txt", "jsonl", "parquet", "tar", "xz"]), texts=st.lists(TEXTS, max_size=5),
       separator=st.sampled_from([None, "\n\n"]), data=st.data())
def test_chapter_4_sources_read_or_refuse_any_damage_in_one_line(kind, texts, separator, data):
    raw = data.draw(damaged(corpus_file(kind, texts)))
    limit = data.draw(st.sampled_from([None, 30]))
    with scratch() as folder, limits(file_bytes=limit):
        (folder / f"d.{kind}").write_bytes(raw)
        outcome = read_or_refuse(documents, folder / f"d.{kind}", separator=separator)
        if not isinstance(outcome, CourseError):
            assert all(isinstance(d, (str, bytes, type(None))) for d in outcome)
            assert limit is None or all(len(d) <= limit for d in outcome if d is not None)


@EXAMPLES
@given(raw=st.binary(max_size=200) | NASTY)
def test_chapter_1_reads_or_refuses_any_bytes_in_one_line(raw):
    with scratch() as folder:
        (folder / "corpus.txt").write_bytes(raw)
        outcome = read_or_refuse(read_text_file, folder / "corpus.txt")
        if not isinstance(outcome, CourseError):
            assert outcome == raw.decode("utf-8-sig")


@EXAMPLES
@given(limit=st.integers(8, 300), extra=st.integers(1, 50))
def test_a_line_over_the_limit_is_refused_by_every_line_reader(limit, extra):
    long_text = "x" * (limit + extra)
    with scratch() as folder, limits(file_bytes=limit):
        for name, content in (("a.tsv", f"ham\t{long_text}\n"), ("a.csv", f"text,label\n{long_text},ham\n"),
                              ("a.jsonl", json.dumps({"text": long_text, "label": "ham"})),
                              ("a.txt", f"__label__ham {long_text}\n")):
            (folder / name).write_text(content)
            assert "the course reads into memory at once" in refused(read_labelled, folder / name)
        (folder / "c.jsonl").write_text(json.dumps({"text": long_text}) + "\n")
        (folder / "c.txt").write_text("short\n\n" + long_text)
        assert "line 1 is too long" in refused(documents, folder / "c.jsonl")
        assert "runs on" in refused(documents, folder / "c.txt", separator="\n\n")
        assert "without --separator" in refused(documents, folder / "c.txt")


# --------------------------------------------------------------------------- zip members: bounded reading

def test_a_member_declared_larger_than_the_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    (tmp_path / "big.zip").write_bytes(zip_bytes({"big.tsv": b"ham\thello\n" * 100}))  # 1,000 bytes
    monkeypatch.setattr(readers, "MAX_FILE_BYTES", 999)
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *a, **k: pytest.fail("the member was opened"))
    message = refused(read_labelled, tmp_path / "big.zip")
    assert "big.zip:big.tsv is 1,000 bytes uncompressed" in message and "more than the 999 bytes" in message


def test_a_member_at_the_limit_is_read_and_one_byte_more_is_refused(tmp_path, monkeypatch):
    rows = b"ham\thello\nspam\twin\n" * 50  # 950 bytes, which the zip holds in about 150
    (tmp_path / "a.zip").write_bytes(zip_bytes({"a.tsv": rows}))
    monkeypatch.setattr(readers, "MAX_FILE_BYTES", len(rows))
    assert read_labelled(tmp_path / "a.zip").texts == ["hello", "win"] * 50
    monkeypatch.setattr(readers, "MAX_FILE_BYTES", len(rows) - 1)
    message = refused(read_labelled, tmp_path / "a.zip")
    assert "a.zip:a.tsv is 950 bytes uncompressed: more than the 949 bytes" in message


def test_a_size_that_lies_is_caught(tmp_path, monkeypatch):
    """The directory says 4 bytes and the member holds 20: the reader stops at its cap and zipfile's check
    of the CRC refuses the member; a stream longer than it says is never read past the cap."""
    raw = zip_bytes({"a.tsv": b"ham\thello\nspam\twin\n"}, zipfile.ZIP_STORED)
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        raw = set_zip_field(raw, signature, offset, 4)
    (tmp_path / "lies.zip").write_bytes(raw)
    assert "lies.zip:a.tsv is damaged (Bad CRC-32" in refused(read_labelled, tmp_path / "lies.zip")

    class Endless(io.RawIOBase):
        served = 0

        def read(self, n=-1):
            assert n >= 0, "asked for everything"
            self.served += n
            return b"x" * n

    stream = Endless()
    monkeypatch.setattr(readers, "MAX_FILE_BYTES", 1000)
    assert refused(readers.read_capped, stream, "endless").startswith("endless holds more than the 1,000 bytes")
    assert stream.served == 1001


def test_encrypted_members_names_outside_the_folder_and_a_damaged_directory(tmp_path):
    plain = zip_bytes({"a.tsv": b"ham\thello\nspam\twin\n"})
    (tmp_path / "locked.zip").write_bytes(set_zip_field(plain, b"PK\x01\x02", 8, 1, "<H"))
    assert "locked.zip:a.tsv is encrypted" in refused(read_labelled, tmp_path / "locked.zip")
    for name in ("../up.tsv", "/etc/abs.tsv", "a/../../b.tsv", "C:\\x.tsv", "..\\x.tsv"):
        (tmp_path / "odd.zip").write_bytes(zip_bytes({name: b"ham\thello\nspam\twin\n"}))
        assert "named outside the archive's folder" in refused(read_labelled, tmp_path / "odd.zip")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["locked.zip", "odd.zip"]  # nothing extracted
    assert not (tmp_path.parent / "up.tsv").exists() and not (tmp_path.parent / "b.tsv").exists()
    (tmp_path / "cut.zip").write_bytes(plain[:-30])  # the end of the directory is gone
    assert "cut.zip is not a readable zip file" in refused(read_labelled, tmp_path / "cut.zip")
    (tmp_path / "bad.zip").write_bytes(plain.replace(b"PK\x01\x02", b"PK\x01\x09"))
    assert "bad.zip is not a readable zip file" in refused(read_labelled, tmp_path / "bad.zip")


def test_a_zip_of_many_members_names_ten_of_them(tmp_path):
    (tmp_path / "many.zip").write_bytes(zip_bytes({f"m{i}.tsv": b"ham\tx\n" for i in range(5000)}))
    message = refused(read_labelled, tmp_path / "many.zip")
    assert "name the member to read (m0.tsv, m1.tsv" in message and "and 4,990 more)" in message
    assert len(message) < 300


# --------------------------------------------------------------------------- Chapter 5: other limits

def test_a_csv_field_of_10_mb_is_read(tmp_path):
    review = "a long review " * 750_000  # 10.5 MB: csv's own limit is 131,072 characters
    (tmp_path / "long.csv").write_text(f'text,label\n"{review}",pos\nshort,neg\n')
    data = read_labelled(tmp_path / "long.csv")
    assert [len(t) for t in data.texts] == [len(review), 5] and data.label_names == ["neg", "pos"]


def test_a_csv_error_names_the_file_and_the_line(tmp_path):
    (tmp_path / "a.csv").write_text('text,label\nfine,pos\n"' + "x" * 50 + '",neg\n')
    old = csv.field_size_limit(20)  # the process-wide limit, lowered for this test only
    try:
        message = refused(read_labelled, tmp_path / "a.csv")
    finally:
        csv.field_size_limit(old)
    assert message.startswith(f"{tmp_path / 'a.csv'}, line 3: field larger than field limit (20)")


def test_a_file_over_the_limit_is_refused_by_its_size_before_it_is_read(tmp_path, monkeypatch):
    (tmp_path / "a.tsv").write_bytes(b"ham\thello\n" * 30)
    monkeypatch.setattr(readers, "MAX_FILE_BYTES", 299)
    monkeypatch.setattr(readers, "read_capped", lambda *a: pytest.fail("the file was read"))
    assert refused(read_labelled, tmp_path / "a.tsv") == (
        f"{tmp_path / 'a.tsv'} is 300 bytes: more than the 299 bytes the course reads into memory at once")


def test_rows_and_texts_past_their_limits_are_refused(tmp_path, monkeypatch):
    (tmp_path / "a.tsv").write_text("ham\thi\nspam\tho\n" * 3)
    monkeypatch.setattr(labelled, "MAX_ROWS", 5)
    assert refused(read_labelled, tmp_path / "a.tsv").endswith("a.tsv: more than the 5 rows the course reads")
    monkeypatch.setattr(labelled, "MAX_ROWS", 6)
    assert len(read_labelled(tmp_path / "a.tsv")) == 6
    (tmp_path / "split").mkdir()
    for name in ("train.tsv", "test.tsv"):
        (tmp_path / "split" / name).write_text("ham\thi\nspam\tho\n" * 2)
    assert "its split files up to train.tsv: more than the 6 rows" in refused(read_labelled, tmp_path / "split")


def test_parquet_that_repeats_one_text_is_refused_before_it_is_spelled_out(tmp_path, monkeypatch):
    """One 1,000-character text in 100,000 rows: a few kilobytes of Parquet, 100 MB of Python strings."""
    text = pa.DictionaryArray.from_arrays(pa.array(np.zeros(100_000, np.int32)), pa.array(["a" * 1000]))
    table = pa.table({"text": text, "label": pa.array(np.arange(100_000) % 2)})
    (tmp_path / "bomb.parquet").write_bytes(parquet_bytes(table, store_schema=False))  # read back as plain text
    assert (tmp_path / "bomb.parquet").stat().st_size < 20_000
    monkeypatch.setattr(readers, "MAX_FILE_BYTES", 50_000)
    pieces, cut = [], readers._pieces
    monkeypatch.setattr(readers, "_pieces", lambda batch, sizes: (pieces.append(p.num_rows) or p
                                                                   for p in cut(batch, sizes)))
    assert "bomb.parquet: its texts up to row 50: more than the 50,000 bytes" in \
        refused(read_labelled, tmp_path / "bomb.parquet")
    assert pieces == [50, 50]  # made into strings 50 rows (50,000 bytes) at a time, and only until refused
    monkeypatch.undo()
    monkeypatch.setattr(readers, "MAX_FILE_BYTES", 999)
    assert "row 0: its text is 1,000 bytes: more than the 999 bytes" in refused(documents, tmp_path / "bomb.parquet")


def test_parquet_declaring_more_than_the_limit_uncompressed_is_refused_from_its_footer(tmp_path, monkeypatch):
    table = pa.table({"text": ["x" * 5000, "y" * 5000], "label": ["a", "b"]})  # 10,000 bytes of text
    (tmp_path / "a.parquet").write_bytes(parquet_bytes(table, use_dictionary=False, compression="zstd"))
    assert (tmp_path / "a.parquet").stat().st_size < 3000
    monkeypatch.setattr(readers, "MAX_FILE_BYTES", 3000)
    monkeypatch.setattr(labelled, "parquet_rows", lambda *a, **k: pytest.fail("rows were read"))
    assert "a.parquet is 10,0" in refused(read_labelled, tmp_path / "a.parquet")  # and a few bytes more


def test_a_line_break_inside_a_json_string_or_a_message_stays_in_its_row(tmp_path):
    """U+2028 and a form feed are text: JSON allows the first inside a string; only \\n, \\r\\n and \\r end a line."""
    rows = [{"text": "one\u2028two", "label": "a"}, {"text": "page\x0cbreak", "label": "b"}]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in rows))
    assert read_labelled(tmp_path / "a.jsonl").texts == ["one\u2028two", "page\x0cbreak"]
    (tmp_path / "a.tsv").write_text("a\tone\u2028two\rb\tpage\x0cbreak\r")
    assert read_labelled(tmp_path / "a.tsv").texts == ["one\u2028two", "page\x0cbreak"]


# --------------------------------------------------------------------------- Chapter 4: byte-order marks

TEXT = "Once upon a time, a fox met a hen by the river."


def test_prepare_drops_a_byte_order_mark_as_chapter_1_does(tmp_path):
    tokens = {}
    for name, mark in (("plain", b""), ("marked", codecs.BOM_UTF8)):
        source = tmp_path / name
        source.mkdir()
        for i in range(4):
            (source / f"{i}.txt").write_bytes(mark + f"{i}: {TEXT}".encode())
        prepare(str(source), tmp_path / f"out-{name}", workers=0, progress=False, log=lambda *a: None)
        tokens[name] = np.concatenate([split_tokens(tmp_path / f"out-{name}", s) for s in ("train", "val")])
        assert read_text_file(source / "0.txt") == f"0: {TEXT}"  # Chapter 1 reads either to the same text
    assert tokens["marked"].tolist() == tokens["plain"].tolist()
    first = gpt2_encoding().encode_ordinary(codecs.BOM_UTF8.decode("utf-8"))
    assert tokens["plain"][1:1 + len(first)].tolist() != first


@pytest.mark.parametrize("kind", ["txt", "jsonl", "parquet", "tar", "xz"])
def test_every_chapter_4_format_drops_a_leading_byte_order_mark(tmp_path, kind):
    texts = [TEXT, "\ufeff" + TEXT]  # the second document starts with a mark of its own
    (tmp_path / "plain").mkdir()
    (tmp_path / "marked").mkdir()
    (tmp_path / "plain" / f"d.{kind}").write_bytes(corpus_file(kind, [TEXT, TEXT]))
    raw = corpus_file(kind, texts)
    (tmp_path / "marked" / f"d.{kind}").write_bytes(codecs.BOM_UTF8 + raw if kind in ("txt", "jsonl") else raw)
    if kind in ("tar", "xz"):  # every member starts with a mark
        marked = tar_bytes({f"{i}.txt": codecs.BOM_UTF8 + TEXT.encode() for i in range(2)})
        (tmp_path / "marked" / f"d.{kind}").write_bytes(marked if kind == "tar" else lzma.compress(marked))
    separator = "\n\n" if kind == "txt" else None
    plain = [d.decode() if isinstance(d, bytes) else d for d in documents(tmp_path / "plain", separator=separator)]
    marked = [d.decode() if isinstance(d, bytes) else d for d in documents(tmp_path / "marked", separator=separator)]
    assert marked == plain == [TEXT, TEXT]
