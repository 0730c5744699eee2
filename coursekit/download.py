"""The course's one downloader and its cache: a file is found locally or fetched, and always verified.

`fetch` streams `url` to `dest.part`, resumes an interrupted download with an
HTTP Range request, checks the bytes (a pinned sha256 of the whole file, or a
`check` function for a file whose pinned hash is of something inside it, such
as one member of a zip), and only then renames the file into place, so a
half-written or wrong file is never mistaken for a good one. A `file://` URL
works too, which is how the tests serve a download without a network.

`find_or_download` looks for a `RemoteFile` first where the user put copies
(`--data-dir DIR`, else `$COURSE_DATA_DIR`), then in the per-user cache
(`cache_dir`), and fetches it into the cache only when neither holds it.
Chapter 1's corpora and Chapter 5's datasets go through here.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import CourseError
from .files import atomic_path, sha256_of
from .progress import progress_bar

DATA_DIR_ENV = "COURSE_DATA_DIR"  # a folder that holds downloads made elsewhere (offline machines)


@dataclass(frozen=True)
class RemoteFile:
    """A file the course can download: where from, what it must hash to, and its local names."""

    url: str
    sha256: str
    filename: str
    aliases: tuple[str, ...] = ()  # other names a user's copy may have (e.g. "input.txt")


def cache_dir() -> Path:
    """The per-user cache (`$XDG_CACHE_HOME/gpt-course`, else `~/.cache/gpt-course`)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gpt-course"


def data_dirs(data_dir: str | Path | None = None) -> list[Path]:
    """The folders that hold the user's own copies: `data_dir` (from --data-dir), then `$COURSE_DATA_DIR`."""
    return [Path(d) for d in (data_dir, os.environ.get(DATA_DIR_ENV)) if d]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(url: str, dest: str | Path, sha256: str | None = None, check: Callable[[Path], None] | None = None,
          timeout: float = 30.0, progress: bool = True) -> Path:
    """Download `url` to `dest`, resuming a partial download; verify it; return `dest`.

    `sha256`: the whole file's expected hash. `check(path)`: raises `CourseError` when the
    downloaded file is not the expected one. At least one of the two is required: the course
    never lands a file it has not verified. A failed check deletes the `.part` file, so the
    next try starts clean. Raises `CourseError` (one line) when the network cannot be reached.
    """
    if not sha256 and check is None:
        raise CourseError(f"refusing to download {url} without a sha256 or a check of its content")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = getattr(response, "status", None)
            if have and status != 206:  # the server ignored Range (or a file:// URL): start over
                have = 0
            total = response.headers.get("Content-Length")
            total = int(total) + have if total is not None else None
            with open(part, "ab" if have else "wb") as out, progress_bar(
                total=total, initial=have, unit="B", unit_scale=True,
                desc=f"downloading {dest.name}", disable=not progress,
            ) as bar:
                while block := response.read(1 << 16):
                    out.write(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # range not satisfiable: the .part file is already whole
            pass
        else:
            raise CourseError(f"could not download {url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise CourseError(
            f"could not download {url} ({reason}); if this machine is offline, put a copy of "
            f"{dest.name} in a directory and pass --data-dir DIR or set {DATA_DIR_ENV}=DIR"
        ) from None
    if sha256:
        actual = sha256_of(part)
        if actual != sha256:
            part.unlink()
            raise CourseError(f"downloaded {url} but its sha256 is {actual}, expected {sha256}; deleted it, try again")
    if check is not None:
        try:
            check(part)
        except CourseError as e:
            part.unlink()
            raise CourseError(f"downloaded {url} but {e}; deleted it, try again") from None
    os.replace(part, dest)
    return dest


def write_verified(data: bytes, dest: str | Path, sha256: str, source: str) -> Path:
    """Write `data` (e.g. a member read from a downloaded zip) to `dest` atomically, if it hashes to `sha256`."""
    actual = sha256_bytes(data)
    if actual != sha256:
        raise CourseError(f"{source} has sha256 {actual}, expected {sha256} (a different version of the file?)")
    with atomic_path(dest) as tmp:
        Path(tmp).write_bytes(data)
    return Path(dest)


def find_local(remote: RemoteFile, data_dir: str | Path | None = None) -> Path | None:
    """A verified local copy of `remote` in `data_dir`, `$COURSE_DATA_DIR` or the cache; None if there is none.

    A copy under the expected name whose checksum differs is an error, not a miss:
    it is probably a different file, and silently downloading another would hide that.
    """
    for d in data_dirs(data_dir):
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
    return find_local(remote, data_dir) or fetch(remote.url, cache_dir() / remote.filename, sha256=remote.sha256,
                                                 progress=progress)
