"""Labelled text for classification: the built-in reviews, real datasets by name, local files and folders.

Every reader returns `LabelledData` (texts, integer labels, label names) or
raises `CourseError` naming the bad row: "line 7: unknown label 'hma'
(expected ham, spam)". Real files are taken as they come:

* TSV: `label<TAB>text` per line (the UCI SMS Spam Collection, whose file
  `SMSSpamCollection` has no extension);
* fastText / flair: `__label__X text` per line;
* CSV: a header with a text column (text, review, sentence, message...) and a
  label column (label, sentiment, class...);
* JSONL: one object per line with "text" and "label";
* Parquet: text and label columns (Hugging Face datasets);
* a .zip holding one of those;
* a folder holding train / dev (or valid, val, validation) / test files in any
  of those formats: the given splits are kept.

The format comes from the extension where it is one of .tsv, .csv, .jsonl,
.parquet and .zip; otherwise (no extension, .txt, ...) it is read from the
content (`sniff_format`), and `fmt` / `--format` overrides both.

Every file is untrusted and read whole, so each is bounded before it is read:
a file or zip member of at most coursekit.readers.MAX_FILE_BYTES (checked on
its size, then read through a cap), at most MAX_ROWS rows, and at most
MAX_FILE_BYTES of text however well a Parquet file compressed it.

Real datasets are fetched with the course's downloader (coursekit.download),
which checks a sha256: of the file, or for the SMS Spam Collection of the
`SMSSpamCollection` member inside the zip. A hash the course has not verified
itself is never made up: an entry without one refuses to download until the
user gives `--sha256`, or `--trust-unverified` to use a copy already on disk
(see the chapter README).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from coursekit import BUILTIN, CourseError, readers  # readers.MAX_FILE_BYTES is read when used: tests lower it
from coursekit.download import (
    RemoteFile,
    cache_dir,
    data_dirs,
    fetch,
    find_or_download,
    sha256_bytes,
    sha256_of,
    write_verified,
)
from coursekit.files import check_writable_file, write_bytes_atomically
from coursekit.readers import (
    decode_utf8,
    json_lines,
    message_of,
    open_zip,
    parquet_file,
    parquet_rows,
    read_bytes,
    read_zip_member,
    shown,
    size_text,
    text_lines,
    too_large,
    zip_files,
)
from coursekit.settings import DEFAULT_SEED

from .builtin import REVIEW_LABELS, generate_reviews

# The most rows a labelled file may have: each row costs about a hundred bytes besides its text, so a
# file of many tiny rows would cost far more than its size. Forty times the IMDb reviews (50,000); a file
# at the size limit has this many rows if they average 50 bytes.
MAX_ROWS = 2_000_000

# A CSV field may be as long as the file: csv's own limit (131,072 characters) refuses a long review.
# The limit is the csv module's, for the whole process; it is only ever raised, never lowered, here.
csv.field_size_limit(max(csv.field_size_limit(), readers.MAX_FILE_BYTES))


def too_many_rows(what: str) -> CourseError:
    """The error for a file (or folder) of more than MAX_ROWS rows; `what` says which."""
    return CourseError(f"{what}: more than the {MAX_ROWS:,} rows the course reads")


@dataclass
class LabelledData:
    texts: list[str]
    labels: list[int]
    label_names: list[str]
    # The splits the data came with (a folder of train/dev/test files): split name -> row indices.
    given: dict[str, list[int]] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index: list[int]) -> LabelledData:
        return LabelledData([self.texts[i] for i in index], [self.labels[i] for i in index], self.label_names)

    def counts(self) -> list[int]:
        return [self.labels.count(k) for k in range(len(self.label_names))]


def builtin_reviews(n: int = 3000, seed: int = DEFAULT_SEED) -> LabelledData:
    reviews = generate_reviews(n, seed)
    return LabelledData([r.text for r in reviews], [r.label for r in reviews], list(REVIEW_LABELS))


# --------------------------------------------------------------------------- #
# Rows -> LabelledData
# --------------------------------------------------------------------------- #

def from_rows(rows: Iterable[tuple[str, object, object]], source: str, labels: list[str] | None = None) -> LabelledData:
    """(where, label, text) rows -> LabelledData; `where` names the row in messages ("line 7").

    Rows are taken one at a time, and refused past MAX_ROWS rows or MAX_FILE_BYTES characters of text.
    """
    texts, row_labels, seen, chars = [], [], {}, 0
    for where, label, text in rows:
        if len(texts) == MAX_ROWS:
            raise too_many_rows(source)
        if label is None or (isinstance(label, str) and not label.strip()):
            raise CourseError(f"{source}, {where}: missing label")
        if text is None or not str(text).strip():
            raise CourseError(f"{source}, {where}: empty text")
        label = str(label).strip()
        label = seen.setdefault(label, label)  # one string per class kept, not one per row
        if labels is not None and label not in labels:
            raise CourseError(f"{source}, {where}: unknown label {shown(label, 40, quote=True)} "
                              f"(expected {', '.join(labels)})")
        text = str(text)
        chars += len(text)
        if chars > readers.MAX_FILE_BYTES:
            raise too_large(f"{source}: its texts up to {where}")
        texts.append(text)
        row_labels.append(label)
    if not texts:
        raise CourseError(f"{source} has no rows")
    present = sorted(seen)
    if len(present) < 2:
        raise CourseError(f"{source}: the label column has one class only ({shown(present[0], 40)}); "
                          f"a classifier needs examples of at least two")
    names = labels if labels is not None else present
    index = {name: k for k, name in enumerate(names)}
    return LabelledData(texts, [index[label] for label in row_labels], list(names))


def parse_tsv(text: str, source: str, labels=None) -> LabelledData:
    first = [c.strip().lower() for c in next(text_lines(text), "").split("\t")]
    if any(c in TEXT_COLUMNS for c in first) and any(c in LABEL_COLUMNS for c in first):
        return parse_csv(text, source, labels, delimiter="\t")  # a header names the columns
    return from_rows(_tsv_rows(text, source), source, labels)


def _tsv_rows(text: str, source: str):
    for n, line in enumerate(text_lines(text), 1):
        if not line.strip():
            continue
        label, sep, body = line.partition("\t")
        if not sep:
            raise CourseError(f"{source}, line {n}: no tab; expected label<TAB>text")
        yield f"line {n}", label, body


# The names real files give their two columns (IMDb's Kaggle CSV: review, sentiment).
TEXT_COLUMNS = ("text", "review", "sentence", "message", "sms", "content", "document")
LABEL_COLUMNS = ("label", "sentiment", "class", "category", "target", "polarity")


def pick_columns(names: list[str], source: str) -> tuple[str, str]:
    """The text and label columns among a header's `names` (case does not matter)."""
    lower = {n.strip().lower(): n for n in names}
    found = {}
    for kind, choices in (("text", TEXT_COLUMNS), ("label", LABEL_COLUMNS)):
        found[kind] = next((lower[c] for c in choices if c in lower), None)
    missing = [k for k, v in found.items() if v is None]
    if missing:
        raise CourseError(f"{source}: no {' or '.join(missing)} column in the header "
                          f"(found: {listed(names) or 'nothing'}; a text column is one of "
                          f"{', '.join(TEXT_COLUMNS)}, a label column one of {', '.join(LABEL_COLUMNS)})")
    return found["text"], found["label"]


def listed(names: list[str], most: int = 10) -> str:
    """Names read from a file, for a one-line message: the first `most` of them, each cut short."""
    more = f" and {len(names) - most:,} more" if len(names) > most else ""
    return ", ".join(shown(n, 40) for n in names[:most]) + more


def parse_csv(text: str, source: str, labels=None, delimiter: str = ",") -> LabelledData:
    # Lines keep their ends, so that a quoted field may span lines, as csv expects of a file opened with newline="".
    reader = csv.reader(text_lines(text, keep_ends=True), delimiter=delimiter)
    try:
        header = next(reader, [])
        text_col, label_col = (header.index(c) for c in pick_columns(header, source))
        # The header is line 1, so reader.line_num is the file's line number (of a row's last line).
        rows = ((f"line {reader.line_num}", _field(row, label_col), _field(row, text_col)) for row in reader if row)
        return from_rows(rows, source, labels)
    except csv.Error as e:
        raise CourseError(f"{source}, line {reader.line_num}: {message_of(e)}") from None


def _field(row: list[str], column: int) -> str | None:
    """A row's value in `column`, or None for a row too short to have one."""
    return row[column] if column < len(row) else None


FASTTEXT_LABEL = "__label__"


def parse_fasttext(text: str, source: str, labels=None) -> LabelledData:
    """fastText / flair lines: `__label__X the text` (the label's prefix, then a space or a tab, then the text)."""
    return from_rows(_fasttext_rows(text, source), source, labels)


def _fasttext_rows(text: str, source: str):
    for n, line in enumerate(text_lines(text), 1):
        if not line.strip():
            continue
        if not line.startswith(FASTTEXT_LABEL):
            raise CourseError(f"{source}, line {n}: does not start with {FASTTEXT_LABEL}; expected "
                              f"{FASTTEXT_LABEL}X text")
        label, _, body = line[len(FASTTEXT_LABEL):].replace("\t", " ", 1).partition(" ")
        if body.lstrip().startswith(FASTTEXT_LABEL):
            raise CourseError(f"{source}, line {n}: more than one label; a classifier here takes one per text")
        yield f"line {n}", label, body.strip()


def parse_jsonl(text: str, source: str, labels=None) -> LabelledData:
    return from_rows(_jsonl_rows(text, source), source, labels)


def _jsonl_rows(text: str, source: str):
    for n, obj in json_lines(text_lines(text), source):
        if not isinstance(obj, dict):
            raise CourseError(f"{source}, line {n}: expected an object with text and label")
        yield f"line {n}", obj.get("label"), obj.get("text")


def parse_parquet(raw: bytes, source: str, labels=None) -> LabelledData:
    table = parquet_file(io.BytesIO(raw), [], source)
    columns = list(pick_columns(table.schema_arrow.names, source))
    check_parquet_size(table.metadata, source)
    rows = parquet_rows(io.BytesIO(raw), columns, source)
    return from_rows(((f"row {i}", lab, t) for i, (t, lab) in enumerate(rows)), source, labels)


def check_parquet_size(metadata, source: str) -> None:
    """Refuse, before reading any row, a Parquet file whose footer declares more than MAX_ROWS rows or more
    than MAX_FILE_BYTES once decompressed (a small file can hold much more). The size counts every column:
    pyarrow's metadata of one column can abort the whole process on a damaged footer; a row group's cannot."""
    if metadata.num_rows > MAX_ROWS:
        raise too_many_rows(source)
    size = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    if size > readers.MAX_FILE_BYTES:
        raise too_large(f"{source} is {size_text(size)} uncompressed")


# Extensions that say the format; any other (none, .txt, .ft...) is read from the content.
FORMATS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet", ".zip": "zip"}
FORMAT_CHOICES = ("tsv", "fasttext", "csv", "jsonl", "parquet", "zip")


def sniff_format(raw: bytes, source: str) -> str:
    """The format of a labelled file, read from its first bytes and lines.

    Parquet and zip files start with their magic bytes (PAR1, PK); a text file is
    fastText if its lines start with __label__, JSONL if they are {objects}, TSV if
    each has a tab, CSV if its first line is a header naming a text and a label column.
    """
    if raw[:4] == b"PAR1":
        return "parquet"
    if raw[:4] == b"PK\x03\x04":
        return "zip"
    head = raw[:65536].decode("utf-8-sig", errors="replace")
    lines = [line for line in itertools.islice(text_lines(head), 50) if line.strip()]
    if len(head) == 65536 and len(lines) > 1:
        lines = lines[:-1]  # the last line read may be cut short
    if not lines:
        raise CourseError(f"{source} is empty")
    if all(line.startswith(FASTTEXT_LABEL) for line in lines):
        return "fasttext"
    if all(line.lstrip().startswith("{") for line in lines):
        return "jsonl"
    if all("\t" in line for line in lines):
        first = [c.strip().lower() for c in lines[0].split("\t")]
        if any(c in TEXT_COLUMNS for c in first) and any(c in LABEL_COLUMNS for c in first):
            return "tsv-header"
        return "tsv"
    first = [c.strip().lower() for c in next(csv.reader([lines[0]]))]
    if any(c in TEXT_COLUMNS for c in first) and any(c in LABEL_COLUMNS for c in first):
        return "csv"
    shown = lines[0] if len(lines[0]) <= 60 else lines[0][:60] + "..."
    raise CourseError(f"{source}: cannot tell its format from the content (first line: {shown!r}); "
                      f"pass --format ({', '.join(FORMAT_CHOICES)})")


SPLIT_NAMES = {"train": ("train",), "val": ("dev", "valid", "val", "validation"), "test": ("test",)}


def split_of(path: Path) -> str | None:
    """'train', 'val' or 'test' for a file named like train.tsv, dev.txt, valid.csv, test-00000-of-00001.parquet."""
    stem = path.name.lower().split(".")[0]
    for split, names in SPLIT_NAMES.items():
        for name in names:
            if stem == name or re.match(rf"{name}[-_]", stem):
                return split
    return None


def read_folder(path: Path, labels: list[str] | None = None, fmt: str | None = None) -> LabelledData:
    """A folder of train / dev / test files, read into one LabelledData whose `given` keeps the splits."""
    files: dict[str, list[Path]] = {}
    for f in sorted(path.iterdir()):
        split = split_of(f) if f.is_file() and not f.name.startswith(".") else None
        if split is not None:
            files.setdefault(split, []).append(f)
    if "train" not in files:
        held = listed(sorted(f.name for f in path.iterdir())) or "nothing"
        raise CourseError(f"{path} is a folder without a train file (it holds: {held}); a folder of splits holds "
                          f"train.*, and optionally dev.* / valid.* / val.* and test.*")
    parts: dict[str, list[LabelledData]] = {}
    rows = chars = 0
    for split, fs in files.items():
        for f in fs:
            part = read_labelled(f, labels, fmt=fmt)
            parts.setdefault(split, []).append(part)
            # Each file is bounded by itself; a folder of many is bounded as one file would be.
            rows, chars = rows + len(part), chars + sum(map(len, part.texts))
            if rows > MAX_ROWS:
                raise too_many_rows(f"{path}: its split files up to {shown(f.name)}")
            if chars > readers.MAX_FILE_BYTES:
                raise too_large(f"{path}: the texts of its split files up to {shown(f.name)}")
    names = labels or sorted({name for ps in parts.values() for p in ps for name in p.label_names})
    index = {name: k for k, name in enumerate(names)}
    texts, ys, given = [], [], {}
    for split in ("train", "val", "test"):
        for part in parts.get(split, []):
            start = len(texts)
            texts += part.texts
            ys += [index[part.label_names[y]] for y in part.labels]
            given.setdefault(split, []).extend(range(start, len(texts)))
    return LabelledData(texts, ys, list(names), given)


def read_labelled(path: str | Path, labels: list[str] | None = None, member: str | None = None,
                  fmt: str | None = None) -> LabelledData:
    """Read a local labelled file or folder of splits; the format comes from `fmt`, else the extension,
    else the content."""
    path = Path(path)
    if fmt is not None and fmt not in FORMAT_CHOICES:
        raise CourseError(f"unknown format {fmt!r}; choose one of {', '.join(FORMAT_CHOICES)}")
    if path.is_dir():
        return read_folder(path, labels, fmt)
    if not path.is_file():
        raise CourseError(f"labelled data file not found: {path}")
    source = str(path)
    raw = read_bytes(path, source)
    fmt = fmt or FORMATS.get(path.suffix.lower()) or sniff_format(raw, source)
    if fmt == "zip":
        member, raw = zip_member(path, member)
        source = f"{path}:{shown(member)}"
        fmt = FORMATS.get(Path(member).suffix.lower()) or sniff_format(raw, source)
    if fmt == "parquet":
        return parse_parquet(raw, source, labels)
    if fmt == "zip":
        raise CourseError(f"{source}: a zip inside a zip; extract it first")
    text = decode_utf8(raw, source)
    del raw  # the text is all that is needed now: the bytes need not stay beside it while it is parsed
    if fmt == "tsv-header":
        return parse_csv(text, source, labels, delimiter="\t")
    return {"tsv": parse_tsv, "fasttext": parse_fasttext, "csv": parse_csv, "jsonl": parse_jsonl}[fmt](
        text, source, labels)


def zip_member(path: Path, member: str | None = None) -> tuple[str, bytes]:
    """(name, bytes) of a member of the zip at `path`: `member`, or the only file the zip holds."""
    with open_zip(path) as archive:
        files = {info.filename: info for info in zip_files(archive, str(path))}
        if not files:
            raise CourseError(f"{path} holds no files")
        if member is not None and member not in files:
            raise CourseError(f"{path} has no {shown(member)} (it holds: {listed(list(files))})")
        member = member or (next(iter(files)) if len(files) == 1 else None)
        if member is None:
            raise CourseError(f"{path}: name the member to read ({listed(list(files))})")
        return member, read_zip_member(archive, files[member], f"{path}:{shown(member)}")


# --------------------------------------------------------------------------- #
# Real datasets by name
# --------------------------------------------------------------------------- #

UNPINNED = ""  # no sha256 verified by the course yet: see RealDataset and the README


@dataclass(frozen=True)
class RealDataset:
    """A labelled dataset the course can download. Its hash is pinned in one place: `member_sha256` (the file
    read inside a zip, when the download is a zip) or `remote.sha256` (the downloaded file itself)."""

    remote: RemoteFile
    labels: tuple[str, ...]
    label_names: tuple[str, ...]
    member: str | None = None   # the file to read inside a zip
    about: str = ""
    member_sha256: str = ""     # sha256 of `member` once extracted


DATASETS = {
    "sms_spam": RealDataset(
        RemoteFile(url="https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip",
                   sha256=UNPINNED, filename="sms_spam_collection.zip", aliases=("sms+spam+collection.zip",)),
        labels=("ham", "spam"), label_names=("ham", "spam"), member="SMSSpamCollection",
        about="UCI SMS Spam Collection: 5,574 text messages, 747 of them spam (tab-separated label<TAB>text)",
        member_sha256="7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d"),
    "imdb": RealDataset(
        RemoteFile(url="https://huggingface.co/datasets/stanfordnlp/imdb/resolve/main/plain_text/"
                       "train-00000-of-00001.parquet",
                   sha256=UNPINNED, filename="imdb-train-00000-of-00001.parquet"),
        labels=("0", "1"), label_names=("negative", "positive"),
        about="IMDb movie reviews (stanfordnlp/imdb on the Hugging Face Hub): the 25,000 training reviews"),
}

# Instruction data sets by name (Alpaca-style records, read by instruct.py), downloaded at run time into the
# cache (never kept in the repository). Named here beside the labelled ones: the command line lists them both
# without loading the training code.
INSTRUCTION_DATASETS = {
    # 1,100 Alpaca-style records written for Raschka's "Build a Large Language Model (From Scratch)", chapter 7
    # (https://github.com/rasbt/LLMs-from-scratch): open answers of one to a few dozen words.
    "alpaca_sample": RemoteFile(
        url="https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch07/01_main-chapter-code/"
            "instruction-data.json",
        sha256="7e09a9af353722ca15c18bc580f093f9c39d3178335a75177319cb1e1d163944",
        filename="instruction-data.json"),
}


def zip_member_file(spec: RealDataset, data_dir: str | Path | None = None, progress: bool = True) -> Path:
    """The verified member of a zipped dataset: found as a file, taken out of a local zip, or downloaded.

    Looked for in `data_dir` (only there, when given), `$COURSE_DATA_DIR` and the cache, as the member itself
    (e.g. SMSSpamCollection) or as the zip; else the zip is downloaded into the cache
    and kept only if its member has the pinned sha256. The member is extracted into
    the cache, so later runs read it directly.
    """
    member, expected = spec.member, spec.member_sha256
    cached = cache_dir() / member
    zip_names = (spec.remote.filename, *spec.remote.aliases)
    dirs = data_dirs(data_dir) + ([] if data_dir is not None else [cache_dir()])
    for d in dirs:
        candidate = d / member
        if candidate.is_file():
            actual = sha256_of(candidate)
            if actual == expected:
                return candidate
            if d != cache_dir():  # a damaged copy in the cache is made again; one the user gave is an error
                raise CourseError(f"{candidate} has sha256 {actual}, expected {expected} (a different file?)")
        for name in zip_names:
            if (d / name).is_file():
                return write_verified(zip_member(d / name, member)[1], cached, expected, f"{d / name}:{member}")
    if data_dir is not None:
        raise CourseError(f"neither {member} nor {spec.remote.filename} found in --data-dir {data_dir}")

    def check(part: Path) -> None:
        actual = sha256_bytes_of_member(part, member)
        if actual != expected:
            raise CourseError(f"its {member} has sha256 {actual}, expected {expected}")

    archive = fetch(spec.remote.url, cache_dir() / spec.remote.filename, check=check, progress=progress)
    return write_verified(zip_member(archive, member)[1], cached, expected, f"{archive}:{member}")


def sha256_bytes_of_member(archive: Path, member: str) -> str:
    return sha256_bytes(zip_member(archive, member)[1])


def dataset_file(name: str, data_dir: str | Path | None = None, sha256: str | None = None,
                 trust_unverified: bool = False, progress: bool = True, log=print) -> Path:
    """A local copy of dataset `name`, verified against its pinned sha256 (or `sha256`)."""
    spec = DATASETS[name]
    if spec.member_sha256 and not sha256:
        return zip_member_file(spec, data_dir, progress)
    expected = sha256 or spec.remote.sha256
    if expected:
        return find_or_download(replace(spec.remote, sha256=expected), data_dir, progress=progress)
    dirs = [*data_dirs(data_dir), cache_dir()]
    local = next((d / spec.remote.filename for d in dirs if (d / spec.remote.filename).is_file()), None)
    if local is not None and trust_unverified:
        if log:
            log(f"warning: using {local} unverified (sha256 {sha256_of(local)}); pin this hash in "
                f"ch05_finetune/labelled.py once you have checked it")
        return local
    where = f"; a copy is at {local}, pass --trust-unverified to use it as it is" if local else ""
    raise CourseError(f"the course has no verified sha256 for {name} yet, so it will not trust a download of "
                      f"{spec.remote.url}; download it yourself, check it, and pass --sha256 HASH "
                      f"(or put {spec.remote.filename} in --data-dir and pass --trust-unverified){where}")


def load_labelled(source: str, data_dir: str | Path | None = None, sha256: str | None = None,
                  trust_unverified: bool = False, seed: int = DEFAULT_SEED, n_builtin: int = 3000,
                  progress: bool = True, log=print, fmt: str | None = None) -> LabelledData:
    """`builtin`, a dataset name from DATASETS, or a local file or folder (`fmt` overrides its format)."""
    if source == BUILTIN:
        return builtin_reviews(n_builtin, seed)
    if source in DATASETS:
        spec = DATASETS[source]
        path = dataset_file(source, data_dir, sha256, trust_unverified, progress, log)
        data = read_labelled(path, list(spec.labels), spec.member if path.suffix == ".zip" else None)
        data.label_names = list(spec.label_names)
        return data
    return read_labelled(source, fmt=fmt)


def split_balanced(data: LabelledData, seed: int = DEFAULT_SEED,
                   fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
                   balance: bool = True) -> tuple[LabelledData, LabelledData, LabelledData]:
    """Train/val/test splits with each class in the same proportion in each split.

    With `balance`, the larger classes are first cut down (at random) to the
    size of the smallest, so that every split has as many examples of each
    class and a majority-class guess scores 1 / classes.
    """
    rng = random.Random(seed)
    by_class = [[i for i, y in enumerate(data.labels) if y == k] for k in range(len(data.label_names))]
    by_class = [idx for idx in by_class if idx]
    if len(by_class) < 2:
        raise CourseError("the data has one class only; a classifier needs examples of at least two")
    for idx in by_class:
        rng.shuffle(idx)
    if balance:
        smallest = min(len(idx) for idx in by_class)
        by_class = [idx[:smallest] for idx in by_class]
    parts = [[], [], []]
    for idx in by_class:
        n_train, n_val = int(len(idx) * fractions[0]), int(len(idx) * fractions[1])
        cuts = [idx[:n_train], idx[n_train:n_train + n_val], idx[n_train + n_val:]]
        for part, cut in zip(parts, cuts):
            part.extend(cut)
    for name, part in zip(("train", "val", "test"), parts):
        if not part:
            raise CourseError(f"too few examples for a {name} split ({len(data)} in all)")
        rng.shuffle(part)
    return tuple(data.subset(part) for part in parts)


SPLIT_CHOICES = ("auto", "given", "stratified", "balanced")
# train / val / test shares. A user's own file keeps all of its examples (stratified); the balanced split is the
# one behind the published SMS Spam figure (every class cut to the smallest, then 70/10/20).
STRATIFIED_FRACTIONS = (0.8, 0.1, 0.1)
BALANCED_FRACTIONS = (0.7, 0.1, 0.2)


def _carve(index: list[int], labels: list[int], share: float, rng: random.Random) -> tuple[list[int], list[int]]:
    """Take `share` of `index` out, class by class: (rest, taken)."""
    rest, taken = [], []
    for k in sorted({labels[i] for i in index}):
        idx = [i for i in index if labels[i] == k]
        rng.shuffle(idx)
        n = round(len(idx) * share)
        taken += idx[:n]
        rest += idx[n:]
    rng.shuffle(rest)
    rng.shuffle(taken)
    return rest, taken


def resolve_split(data: LabelledData, how: str = "auto") -> str:
    """The split `auto` means for `data`: its own when it has train/dev/test files, else stratified (all of it)."""
    if how not in SPLIT_CHOICES:
        raise CourseError(f"unknown split {how!r}; choose one of {', '.join(SPLIT_CHOICES)}")
    if how == "auto":
        return "given" if data.given else "stratified"
    return how


def make_splits(data: LabelledData, seed: int = DEFAULT_SEED, how: str = "auto",
                fractions: tuple[float, float, float] | None = None) -> tuple[LabelledData, LabelledData,
                                                                              LabelledData]:
    """Train/val/test splits of `data`.

    * "given": the splits the data came with (a folder of train/dev/test files); a missing test
      split is carved out of train (a tenth, class by class), then a missing dev split (a ninth of
      what is left), as in 80/10/10.
    * "stratified": 80/10/10 with each class in its own proportion: every labelled example is used.
    * "balanced": `split_balanced` (each class cut to the smallest, then 70/10/20): the split of
      the published SMS Spam figure, where always guessing one class scores 1 / classes.
    * "auto": "given" when the data has splits of its own, else "stratified".
    """
    how = resolve_split(data, how)
    if how == "balanced":
        return split_balanced(data, seed, fractions or BALANCED_FRACTIONS, balance=True)
    fractions = fractions or STRATIFIED_FRACTIONS
    if how == "stratified":
        return split_balanced(data, seed, fractions, balance=False)
    if not data.given:
        raise CourseError("the data came without splits of its own; --split given needs a folder of "
                          "train/dev/test files")
    rng = random.Random(seed)
    train = list(data.given["train"])
    test = data.given.get("test")
    if test is None:
        train, test = _carve(train, data.labels, fractions[2] / sum(fractions), rng)
    val = data.given.get("val")
    if val is None:
        train, val = _carve(train, data.labels, fractions[1] / (fractions[0] + fractions[1]), rng)
    parts = (train, val, test)
    for name, part in zip(("train", "val", "test"), parts):
        if not part:
            raise CourseError(f"the {name} split is empty ({len(data)} examples in all)")
    return tuple(data.subset(part) for part in parts)


def write_training_texts(args) -> None:
    """`python -m ch05_finetune texts`: the training split's texts of --data, one JSON line each, no labels.

    The split is classify's (the same --split and --seed), so a model pretrained on this file has read no
    validation or test text: the scores classify reports from it stay honest."""
    out = check_writable_file(args.out, "--out")
    data = load_labelled(args.data, args.data_dir, args.sha256, args.trust_unverified, seed=args.seed, fmt=args.format)
    how = resolve_split(data, args.split)
    train = make_splits(data, args.seed, how)[0]
    lines = "".join(json.dumps({"text": text}, ensure_ascii=False) + "\n" for text in train.texts)
    write_bytes_atomically(out, lines.encode("utf-8"))
    print(f"wrote {len(train):,} training texts of {len(data):,} ({how} split, seed {args.seed}; no validation or "
          f"test text, no label) to {out}")
    print(f"next: python -m ch04_pretrain prepare --source {out} --out runs/my_prep")
