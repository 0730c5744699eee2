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
import os
import random
import re
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from ch01_bigram import RemoteFile, find_or_download
from ch01_bigram.data import DATA_DIR_ENV, cache_dir, sha256_of
from coursekit import BUILTIN, CourseError
from coursekit.download import fetch, write_verified
from coursekit.readers import decode_utf8, json_lines, parquet_rows, pyarrow_parquet

from .builtin import REVIEW_LABELS, generate_reviews


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


def builtin_reviews(n: int = 3000, seed: int = 1337) -> LabelledData:
    reviews = generate_reviews(n, seed)
    return LabelledData([r.text for r in reviews], [r.label for r in reviews], list(REVIEW_LABELS))


# --------------------------------------------------------------------------- #
# Rows -> LabelledData
# --------------------------------------------------------------------------- #

def from_rows(rows: list[tuple[str, object, object]], source: str, labels: list[str] | None = None) -> LabelledData:
    """(where, label, text) rows -> LabelledData; `where` names the row in messages ("line 7")."""
    clean = []
    for where, label, text in rows:
        if label is None or (isinstance(label, str) and not label.strip()):
            raise CourseError(f"{source}, {where}: missing label")
        if text is None or not str(text).strip():
            raise CourseError(f"{source}, {where}: empty text")
        label = str(label).strip()
        if labels is not None and label not in labels:
            raise CourseError(f"{source}, {where}: unknown label {label!r} (expected {', '.join(labels)})")
        clean.append((label, str(text)))
    if not clean:
        raise CourseError(f"{source} has no rows")
    names = labels if labels is not None else sorted({label for label, _ in clean})
    present = sorted({label for label, _ in clean})
    if len(present) < 2:
        raise CourseError(f"{source}: the label column has one class only ({present[0]}); "
                          f"a classifier needs examples of at least two")
    index = {name: k for k, name in enumerate(names)}
    return LabelledData([t for _, t in clean], [index[label] for label, _ in clean], list(names))


def parse_tsv(text: str, source: str, labels=None) -> LabelledData:
    first = [c.strip().lower() for c in text.split("\n", 1)[0].split("\t")]
    if any(c in TEXT_COLUMNS for c in first) and any(c in LABEL_COLUMNS for c in first):
        return parse_csv(text, source, labels, delimiter="\t")  # a header names the columns
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        label, sep, body = line.partition("\t")
        if not sep:
            raise CourseError(f"{source}, line {n}: no tab; expected label<TAB>text")
        rows.append((f"line {n}", label, body))
    return from_rows(rows, source, labels)


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
                          f"(found: {', '.join(names) or 'nothing'}; a text column is one of "
                          f"{', '.join(TEXT_COLUMNS)}, a label column one of {', '.join(LABEL_COLUMNS)})")
    return found["text"], found["label"]


def parse_csv(text: str, source: str, labels=None, delimiter: str = ",") -> LabelledData:
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    text_col, label_col = pick_columns(list(reader.fieldnames or []), source)
    # DictReader counts the header as line 1, so reader.line_num is the file's line number.
    rows = [(f"line {reader.line_num}", row[label_col], row[text_col]) for row in reader]
    return from_rows(rows, source, labels)


FASTTEXT_LABEL = "__label__"


def parse_fasttext(text: str, source: str, labels=None) -> LabelledData:
    """fastText / flair lines: `__label__X the text` (the label's prefix, then a space or a tab, then the text)."""
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if not line.startswith(FASTTEXT_LABEL):
            raise CourseError(f"{source}, line {n}: does not start with {FASTTEXT_LABEL}; expected "
                              f"{FASTTEXT_LABEL}X text")
        label, _, body = line[len(FASTTEXT_LABEL):].replace("\t", " ", 1).partition(" ")
        if body.lstrip().startswith(FASTTEXT_LABEL):
            raise CourseError(f"{source}, line {n}: more than one label; a classifier here takes one per text")
        rows.append((f"line {n}", label, body.strip()))
    return from_rows(rows, source, labels)


def parse_jsonl(text: str, source: str, labels=None) -> LabelledData:
    rows = []
    for n, obj in json_lines(text.splitlines(), source):
        if not isinstance(obj, dict):
            raise CourseError(f"{source}, line {n}: expected an object with text and label")
        rows.append((f"line {n}", obj.get("label"), obj.get("text")))
    return from_rows(rows, source, labels)


def parse_parquet(raw: bytes, source: str, labels=None) -> LabelledData:
    try:
        names = pyarrow_parquet().ParquetFile(io.BytesIO(raw)).schema_arrow.names
    except CourseError:
        raise
    except Exception as e:  # noqa: BLE001 (pyarrow raises several error types for an unreadable file)
        raise CourseError(f"cannot read {source} as Parquet: {e}") from None
    columns = list(pick_columns(names, source))
    rows = parquet_rows(io.BytesIO(raw), columns, source)
    return from_rows([(f"row {i}", lab, t) for i, (t, lab) in enumerate(rows)], source, labels)


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
    lines = [line for line in head.splitlines()[:50] if line.strip()]
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
        shown = ", ".join(f.name for f in sorted(path.iterdir())[:10]) or "nothing"
        raise CourseError(f"{path} is a folder without a train file (it holds: {shown}); a folder of splits holds "
                          f"train.*, and optionally dev.* / valid.* / val.* and test.*")
    parts = {split: [read_labelled(f, labels, fmt=fmt) for f in fs] for split, fs in files.items()}
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
    raw = path.read_bytes()
    source = str(path)
    fmt = fmt or FORMATS.get(path.suffix.lower()) or sniff_format(raw, source)
    if fmt == "zip":
        try:
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if not n.endswith("/") and not n.startswith("__MACOSX")]
                member = member or (names[0] if len(names) == 1 else None)
                if member not in names:
                    raise CourseError(f"{path}: name the member to read ({', '.join(names)})")
                raw = z.read(member)
        except zipfile.BadZipFile:
            raise CourseError(f"{path} is not a zip file") from None
        source = f"{path}:{member}"
        fmt = FORMATS.get(Path(member).suffix.lower()) or sniff_format(raw, source)
    if fmt == "parquet":
        return parse_parquet(raw, source, labels)
    text = decode_utf8(raw, source)
    if fmt == "tsv-header":
        return parse_csv(text, source, labels, delimiter="\t")
    if fmt == "zip":
        raise CourseError(f"{source}: a zip inside a zip; extract it first")
    return {"tsv": parse_tsv, "fasttext": parse_fasttext, "csv": parse_csv, "jsonl": parse_jsonl}[fmt](
        text, source, labels)


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


def _data_dirs(data_dir) -> list[Path]:
    return [Path(d) for d in (data_dir, os.environ.get(DATA_DIR_ENV)) if d]


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
    dirs = _data_dirs(data_dir) + ([] if data_dir is not None else [cache_dir()])
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
                return write_verified(_read_member(d / name, member), cached, expected, f"{d / name}:{member}")
    if data_dir is not None:
        raise CourseError(f"neither {member} nor {spec.remote.filename} found in --data-dir {data_dir}")

    def check(part: Path) -> None:
        actual = sha256_bytes_of_member(part, member)
        if actual != expected:
            raise CourseError(f"its {member} has sha256 {actual}, expected {expected}")

    archive = fetch(spec.remote.url, cache_dir() / spec.remote.filename, check=check, progress=progress)
    return write_verified(_read_member(archive, member), cached, expected, f"{archive}:{member}")


def _read_member(archive: Path, member: str) -> bytes:
    try:
        with zipfile.ZipFile(archive) as z:
            names = z.namelist()
            if member not in names:
                raise CourseError(f"{archive} has no {member} (it holds: {', '.join(names[:10])})")
            return z.read(member)
    except zipfile.BadZipFile:
        raise CourseError(f"{archive} is not a zip file") from None


def sha256_bytes_of_member(archive: Path, member: str) -> str:
    from coursekit.download import sha256_bytes

    return sha256_bytes(_read_member(archive, member))


def dataset_file(name: str, data_dir: str | Path | None = None, sha256: str | None = None,
                 trust_unverified: bool = False, progress: bool = True, log=print) -> Path:
    """A local copy of dataset `name`, verified against its pinned sha256 (or `sha256`)."""
    spec = DATASETS[name]
    if spec.member_sha256 and not sha256:
        return zip_member_file(spec, data_dir, progress)
    expected = sha256 or spec.remote.sha256
    if expected:
        return find_or_download(replace(spec.remote, sha256=expected), data_dir, progress=progress)
    dirs = [*_data_dirs(data_dir), cache_dir()]
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
                  trust_unverified: bool = False, seed: int = 1337, n_builtin: int = 3000,
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


def split_balanced(data: LabelledData, seed: int = 1337, fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
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


SPLIT_CHOICES = ("auto", "given", "balanced", "stratified")


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


def make_splits(data: LabelledData, seed: int = 1337, how: str = "auto",
                fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)) -> tuple[LabelledData, LabelledData,
                                                                              LabelledData]:
    """Train/val/test splits of `data`.

    * "given": the splits the data came with (a folder of train/dev/test files); a missing test
      split is carved out of train (a fifth, class by class), then a missing dev split (an eighth
      of what is left), as in 70/10/20.
    * "balanced": `split_balanced` (each class cut to the smallest, then 70/10/20): the split of
      the published SMS Spam figure, where always guessing one class scores 1 / classes.
    * "stratified": 70/10/20 with each class in its own proportion, sizes as they are.
    * "auto": "given" when the data has splits of its own, else "balanced".
    """
    if how not in SPLIT_CHOICES:
        raise CourseError(f"unknown split {how!r}; choose one of {', '.join(SPLIT_CHOICES)}")
    if how == "auto":
        how = "given" if data.given else "balanced"
    if how != "given":
        return split_balanced(data, seed, fractions, balance=how == "balanced")
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
