"""Files that are either whole or absent, and JSON read and written through them.

A file is written under a temporary name beside its destination, flushed to
disk, and renamed over the destination; the rename is atomic, so a crash at
any moment leaves the old file or the new one, never half of one. Syncing the
folder afterwards makes the rename itself survive a power cut. Chapter 3's
checkpoints, Chapter 4's shards, manifests and training state, and the main
job's records all go through here. (No torch: Chapter 4's light tools import this.)
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import CourseError


def fsync_dir(folder: str | Path) -> None:
    """Flush a folder's entries (a rename) to disk; a no-op where the platform cannot (Windows)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse to sync a folder
    finally:
        os.close(fd)


def _umask() -> int:
    """The process's umask, read without changing it where Linux says it (/proc), else set and restored."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; when the block succeeds, fsync it and rename it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes the file private (0600), and some writers (safetensors) replace it with a 0600 file of
        # their own: give what was written the mode any new file gets here (0644 under umask 022).
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes_atomically(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: str | Path, obj) -> None:
    """`obj` as indented JSON, written atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


def read_json(path: str | Path) -> dict:
    """A JSON file's content, or a one-line CourseError naming the file and what is wrong with it."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CourseError(f"{path} not found") from None
    except UnicodeDecodeError:
        raise CourseError(f"{path} is not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise CourseError(f"{path} is not valid JSON (line {e.lineno}: {e.msg})") from None


def check_writable_dir(path: str | Path, option: str) -> Path:
    """Make sure a command can write into the folder `path` (given by `option`) before it starts its work.

    Creates the folder if needed, writes and removes a probe file in it, and
    raises a one-line `CourseError` naming the option if any of that fails.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CourseError(f"{option} {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CourseError(f"{option}: cannot create the folder {path} ({_reason(e, path)})") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise CourseError(f"{option}: cannot write in the folder {path} ({_reason(e, path)})") from None
    return path


def check_writable_file(path: str | Path, option: str) -> Path:
    """Make sure a command can write the file `path` (given by `option`) before it starts its work.

    The folder is created if needed and probed as in `check_writable_dir`; a
    folder in the file's place, or an existing file that cannot be replaced,
    is a one-line `CourseError` naming the option.
    """
    path = Path(path)
    if path.is_dir():
        raise CourseError(f"{option} {path} is a folder, not a file")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise CourseError(f"{option} {path}: {parent} is a file, not a folder")
    check_writable_dir(parent, option)
    if path.exists() and not os.access(path, os.W_OK):
        raise CourseError(f"{option}: cannot write the file {path} (permission denied)")
    return path


def _reason(error: OSError, path: Path) -> str:
    if isinstance(error, (NotADirectoryError, FileExistsError)):
        blocker = next((p for p in [path, *path.parents] if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            return f"{blocker} is a file"
    return error.strerror or str(error)
