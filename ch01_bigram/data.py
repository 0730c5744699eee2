"""Where text comes from: the built-in corpus, real corpora by name, or a file by path.

Real corpora are downloaded once into a per-user cache, checked against a
pinned sha256, and reused. On a machine without network, point the course at
a directory that already holds the file, with `--data-dir DIR` or the
environment variable `COURSE_DATA_DIR`.

The downloading and the cache are the course's floor, `coursekit.download`
(Chapter 5's datasets use them too): `find_or_download` looks for a local copy
first, and `download` (`coursekit.download.fetch`) streams to a `.part` file,
resumes an interrupted download with an HTTP Range request, verifies the
checksum, and only then renames the file into place, so a half-written file is
never mistaken for a good one. This module holds what Chapter 1 reads: its
corpora (`CORPORA`) and how a text file becomes a string.
"""

from __future__ import annotations

from pathlib import Path

from coursekit import BUILTIN, CourseError
from coursekit.download import (  # noqa: F401  (re-exported: Chapter 1's names for the course's downloader)
    DATA_DIR_ENV,
    RemoteFile,
    cache_dir,
    find_local,
    find_or_download,
    sha256_of,
)
from coursekit.download import fetch as download  # noqa: F401  (re-exported)

from .corpus import DEFAULT_SEED, generate_corpus

TINYSHAKESPEARE = RemoteFile(
    url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
    sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    filename="tinyshakespeare.txt",
    aliases=("input.txt",),
)

CORPORA = {"tinyshakespeare": TINYSHAKESPEARE}


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
