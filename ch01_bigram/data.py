"""Where text comes from: the built-in corpus, real corpora by name, or a file by path.

Real corpora are downloaded once into a per-user cache, checked against a
pinned sha256, and reused. On a machine without network, point the course at
a directory that already holds the file, with `--data-dir DIR` or the
environment variable `COURSE_DATA_DIR`.

`download` fetches through the course's one downloader, `coursekit.download.fetch`
(later chapters use it too): it streams to a `.part` file, resumes an interrupted
download with an HTTP Range request, verifies the checksum, and only then
renames the file into place, so a half-written file is never mistaken for a
good one.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from coursekit import BUILTIN, CourseError
from coursekit.download import fetch

from .corpus import DEFAULT_SEED, generate_corpus

DATA_DIR_ENV = "COURSE_DATA_DIR"


@dataclass(frozen=True)
class RemoteFile:
    """A file the course can download: where from, what it must hash to, and its local names."""

    url: str
    sha256: str
    filename: str
    aliases: tuple[str, ...] = ()  # other names a user's copy may have (e.g. "input.txt")


TINYSHAKESPEARE = RemoteFile(
    url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
    sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    filename="tinyshakespeare.txt",
    aliases=("input.txt",),
)

CORPORA = {"tinyshakespeare": TINYSHAKESPEARE}


def cache_dir() -> Path:
    """The per-user cache (`$XDG_CACHE_HOME/gpt-course`, else `~/.cache/gpt-course`)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gpt-course"


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: Path, sha256: str, timeout: float = 30.0, progress: bool = True) -> Path:
    """Download `url` to `dest`, resuming a partial download, and verify its sha256.

    Raises `CourseError` when the network cannot be reached or the bytes do not
    match. `dest` appears only once it is complete and verified. (The work is
    done by `coursekit.download.fetch`, which later chapters use too.)
    """
    return fetch(url, dest, sha256=sha256, timeout=timeout, progress=progress)


def find_local(remote: RemoteFile, data_dir: str | Path | None = None) -> Path | None:
    """A verified local copy of `remote` in `data_dir`, `$COURSE_DATA_DIR` or the cache; None if there is none.

    A copy under the expected name whose checksum differs is an error, not a miss:
    it is probably a different file, and silently downloading another would hide that.
    """
    dirs = [Path(d) for d in (data_dir, os.environ.get(DATA_DIR_ENV)) if d]
    for d in dirs:
        for name in (remote.filename, *remote.aliases):
            candidate = d / name
            if candidate.is_file():
                actual = sha256_of(candidate)
                if actual != remote.sha256:
                    raise CourseError(f"{candidate} has sha256 {actual}, expected {remote.sha256} (a different file?)")
                return candidate
    if data_dir is not None:
        raise CourseError(f"{remote.filename} not found in --data-dir {data_dir}")
    cached = cache_dir() / remote.filename
    if cached.is_file() and sha256_of(cached) == remote.sha256:
        return cached
    return None


def find_or_download(remote: RemoteFile, data_dir: str | Path | None = None, progress: bool = True) -> Path:
    """A verified local copy of `remote`: from `data_dir`, `$COURSE_DATA_DIR`, the cache, or the network."""
    return find_local(remote, data_dir) or download(remote.url, cache_dir() / remote.filename, remote.sha256,
                                                     progress=progress)


def read_text_file(path: str | Path) -> str:
    """Read a UTF-8 text file, with a one-line `CourseError` for each way it can be unusable."""
    path = Path(path)
    if not path.exists():
        raise CourseError(f"corpus file not found: {path}")
    if path.is_dir():
        raise CourseError(f"corpus path is a directory, not a text file: {path}")
    from coursekit.hardware import check_memory  # imported here: it imports torch, which --help does not need

    # A corpus lives in memory three times over: its bytes, its text, and its ids as 8-byte integers.
    size = path.stat().st_size
    check_memory(10 * size, f"the corpus {path} ({size:,} bytes, then its text and its token ids)",
                 advice="use a part of it")
    raw = path.read_bytes()
    try:
        # utf-8-sig drops a byte-order mark, which some editors put first and which is not text.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise CourseError(f"{path} is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})") from None
    if not text:
        raise CourseError(f"corpus file is empty: {path}")
    return text


def load_text(corpus: str = BUILTIN, data_dir: str | Path | None = None, seed: int = DEFAULT_SEED,
              progress: bool = True) -> str:
    """The text of a corpus: `builtin` (generated from `seed`), a name from `CORPORA`, or a path."""
    if corpus == BUILTIN:
        return generate_corpus(seed)
    if corpus in CORPORA:
        return read_text_file(find_or_download(CORPORA[corpus], data_dir, progress=progress))
    return read_text_file(corpus)
