"""Labelled text for classification: the built-in reviews, real datasets by name, local files.

Every reader returns `LabelledData` (texts, integer labels, label names) or
raises `CourseError` naming the bad row: "line 7: unknown label 'hma'
(expected ham, spam)". Formats:

* TSV: `label<TAB>text` per line (the SMS Spam Collection's format);
* CSV: a header with `text` and `label` columns;
* JSONL: one object per line with "text" and "label";
* Parquet: `text` and `label` columns (Hugging Face datasets);
* a .zip holding one of those (the UCI download).

Real datasets are fetched with Chapter 1's downloader, which checks a sha256.
A hash the course has not verified itself is never made up: an entry without
one refuses to download until the user gives `--sha256`, or `--trust-unverified`
to use a copy already on disk (see the chapter README).
"""

from __future__ import annotations

import csv
import io
import os
import random
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

from ch01_bigram import RemoteFile, find_or_download
from ch01_bigram.data import DATA_DIR_ENV, cache_dir, sha256_of
from coursekit import BUILTIN, CourseError
from coursekit.readers import decode_utf8, json_lines, parquet_rows

from .builtin import REVIEW_LABELS, generate_reviews


@dataclass
class LabelledData:
    texts: list[str]
    labels: list[int]
    label_names: list[str]

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
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        label, sep, body = line.partition("\t")
        if not sep:
            raise CourseError(f"{source}, line {n}: no tab; expected label<TAB>text")
        rows.append((f"line {n}", label, body))
    return from_rows(rows, source, labels)


def parse_csv(text: str, source: str, labels=None) -> LabelledData:
    reader = csv.DictReader(io.StringIO(text))
    missing = {"text", "label"} - set(reader.fieldnames or [])
    if missing:
        raise CourseError(f"{source}: no {' or '.join(sorted(missing))} column in the header "
                          f"(found: {', '.join(reader.fieldnames or []) or 'nothing'})")
    # DictReader counts the header as line 1, so reader.line_num is the file's line number.
    rows = [(f"line {reader.line_num}", row["label"], row["text"]) for row in reader]
    return from_rows(rows, source, labels)


def parse_jsonl(text: str, source: str, labels=None) -> LabelledData:
    rows = []
    for n, obj in json_lines(text.splitlines(), source):
        if not isinstance(obj, dict):
            raise CourseError(f"{source}, line {n}: expected an object with text and label")
        rows.append((f"line {n}", obj.get("label"), obj.get("text")))
    return from_rows(rows, source, labels)


def parse_parquet(raw: bytes, source: str, labels=None) -> LabelledData:
    rows = parquet_rows(io.BytesIO(raw), ["text", "label"], source)
    return from_rows([(f"row {i}", lab, t) for i, (t, lab) in enumerate(rows)], source, labels)


FORMATS = {".tsv": "tsv", ".txt": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet", ".zip": "zip"}


def read_labelled(path: str | Path, labels: list[str] | None = None, member: str | None = None,
                  fmt: str | None = None) -> LabelledData:
    """Read a local labelled file; the format comes from the extension unless `fmt` names it."""
    path = Path(path)
    if not path.is_file():
        raise CourseError(f"labelled data file not found: {path}")
    fmt = fmt or FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise CourseError(f"{path}: unknown format {path.suffix!r}; use .tsv, .csv, .jsonl, .parquet or .zip")
    raw = path.read_bytes()
    source = str(path)
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
        fmt = FORMATS.get(Path(member).suffix.lower(), "tsv")
    if fmt == "parquet":
        return parse_parquet(raw, source, labels)
    text = decode_utf8(raw, source)
    return {"tsv": parse_tsv, "csv": parse_csv, "jsonl": parse_jsonl}[fmt](text, source, labels)


# --------------------------------------------------------------------------- #
# Real datasets by name
# --------------------------------------------------------------------------- #

UNPINNED = ""  # no sha256 verified by the course yet: see RealDataset and the README


@dataclass(frozen=True)
class RealDataset:
    """A labelled dataset the course can download. `remote.sha256` is the one place its hash is pinned."""

    remote: RemoteFile
    labels: tuple[str, ...]
    label_names: tuple[str, ...]
    member: str | None = None   # the file to read inside a zip
    about: str = ""


DATASETS = {
    "sms_spam": RealDataset(
        RemoteFile(url="https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip",
                   sha256=UNPINNED, filename="sms_spam_collection.zip"),
        labels=("ham", "spam"), label_names=("ham", "spam"), member="SMSSpamCollection",
        about="UCI SMS Spam Collection: 5,574 text messages, 747 of them spam (tab-separated label<TAB>text)"),
    "imdb": RealDataset(
        RemoteFile(url="https://huggingface.co/datasets/stanfordnlp/imdb/resolve/main/plain_text/"
                       "train-00000-of-00001.parquet",
                   sha256=UNPINNED, filename="imdb-train-00000-of-00001.parquet"),
        labels=("0", "1"), label_names=("negative", "positive"),
        about="IMDb movie reviews (stanfordnlp/imdb on the Hugging Face Hub): the 25,000 training reviews"),
}


def dataset_file(name: str, data_dir: str | Path | None = None, sha256: str | None = None,
                 trust_unverified: bool = False, progress: bool = True, log=print) -> Path:
    """A local copy of dataset `name`, verified against its pinned sha256 (or `sha256`)."""
    spec = DATASETS[name]
    expected = sha256 or spec.remote.sha256
    if expected:
        return find_or_download(replace(spec.remote, sha256=expected), data_dir, progress=progress)
    dirs = [Path(d) for d in (data_dir, os.environ.get(DATA_DIR_ENV), cache_dir()) if d]
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
                  progress: bool = True, log=print) -> LabelledData:
    """`builtin`, a dataset name from DATASETS, or a local file path."""
    if source == BUILTIN:
        return builtin_reviews(n_builtin, seed)
    if source in DATASETS:
        spec = DATASETS[source]
        path = dataset_file(source, data_dir, sha256, trust_unverified, progress, log)
        data = read_labelled(path, list(spec.labels), spec.member)
        data.label_names = list(spec.label_names)
        return data
    return read_labelled(source)


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
