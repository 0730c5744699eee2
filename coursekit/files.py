"""Files that are either whole or absent, and JSON read and written through them.

A file is written under a temporary name beside its destination, flushed to
disk, and renamed over the destination; the rename is atomic, so a crash at
any moment leaves the old file or the new one, never half of one. Syncing the
folder afterwards makes the rename itself survive a power cut. Chapter 3's
checkpoints, Chapter 4's shards, manifests and training state, and the main
job's records all go through here. (No torch: Chapter 4's light tools import this.)

A folder that a command writes into is held by `own_folder`: a second command
on the same folder refuses at once instead of mixing its files with the first's.

`sha256_of` is the course's one file hash: downloads, prepared shards and their
tokenizer are checked with it.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from .errors import CourseError
from .readers import decode_utf8, parse_json, read_bytes


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


def sha256_of(path: str | Path, progress: Callable[[int], object] | None = None) -> str:
    """The sha256 of a file, read in 1 MB blocks (memory stays flat however large the file);
    `progress(n)` is called with the size of each block read (a progress bar's `update`)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
            if progress is not None:
                progress(len(block))
    return h.hexdigest()


def write_bytes_atomically(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: str | Path, obj) -> None:
    """`obj` as indented JSON, written atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


def load_json(path: str | Path):
    """The JSON value in the file `path`, read as untrusted: through the readers' size limit, and with a
    one-line CourseError for anything that is not UTF-8 JSON. A missing file is a FileNotFoundError."""
    if not Path(path).exists():
        raise FileNotFoundError(path)
    return parse_json(decode_utf8(read_bytes(path), str(path)), str(path))


def read_json(path: str | Path) -> dict:
    """A JSON file's object, or a one-line CourseError naming the file and what is wrong with it.

    The file is untrusted: what it holds is only known to be a dict; its caller checks the fields it reads.
    """
    try:
        content = load_json(path)
    except FileNotFoundError:
        raise CourseError(f"{path} not found") from None
    if not isinstance(content, dict):
        raise CourseError(f"{path} holds a JSON {type(content).__name__}, not the object (key: value) expected")
    return content


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


# --------------------------------------------------------------------------- a folder one command at a time

LOCK = ".lock"
_HELD: dict[str, int] = {}  # folder -> depth: this process may enter a folder it holds again


@contextmanager
def own_folder(folder: str | Path, what: str = "the folder"):
    """Hold `folder` for this process while the block runs: a second command on it refuses at once.

    The lock is the operating system's (`flock` on the file `folder/.lock`), so it
    dies with its process: a run killed by SIGKILL or a power cut leaves no lock
    to clear by hand, and the next command takes the folder over, saying whose it
    was. The file names its holder (process id, host, command line, start time)
    so that the refusal can name it too, and is removed when the block ends.
    Nested holds by one process are allowed. Where the platform has no `flock`
    (Windows), the folder is not locked. `what` names the folder in messages.
    """
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    key = str(folder.resolve())
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield folder
        finally:
            _HELD[key] -= 1
        return
    try:
        import fcntl
    except ImportError:  # Windows
        yield folder
        return
    lock_file = _lock(folder / LOCK, what, fcntl)
    try:
        left = _read_holder(lock_file)
        if left is not None:  # a holder that ended without removing the file: killed, or the machine stopped
            print(f"note: taking over {folder} from {_describe(left)}, which ended without releasing it",
                  file=sys.stderr)
        lock_file.seek(0)
        lock_file.truncate()
        lock_file.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                    "command": _command_line()[:300],
                                    "since": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n")
        lock_file.flush()
        _HELD[key] = 1
        yield folder
    finally:
        _HELD.pop(key, None)
        (folder / LOCK).unlink(missing_ok=True)  # before the lock goes: a newcomer then finds no file, or its own
        lock_file.close()  # closing the file releases the lock
        if created and not any(folder.iterdir()):  # refused before writing anything: leave no trace
            folder.rmdir()


def _lock(path: Path, what: str, fcntl):
    """The file `path`, opened and locked by this process; a CourseError naming the holder if another has it."""
    while True:
        lock_file = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held open as long as the lock)
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_holder(lock_file)
            lock_file.close()
            raise CourseError(f"{what} is in use by another command ({_describe(holder)}); wait for it to end, "
                              f"or choose another folder") from None
        try:
            if os.stat(path).st_ino == os.fstat(lock_file.fileno()).st_ino:
                return lock_file
        except FileNotFoundError:
            pass
        lock_file.close()  # the holder removed this file as we locked it: lock the one there now


def _command_line() -> str:
    """This process's command as it was typed: 'python -m ch04_pretrain train ...' rather than a __main__.py path."""
    argv = list(sys.argv) or [""]
    first = Path(argv[0])
    if first.name == "__main__.py":
        argv[0] = f"python -m {first.parent.name}"
    return " ".join(argv)


def _read_holder(lock_file) -> dict | None:
    """What a lock file says of its holder, or None when it is empty or unreadable (it is untrusted too)."""
    try:
        lock_file.seek(0)
        holder = json.loads(lock_file.read(4096))
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _describe(holder: dict | None) -> str:
    """'pid 4242 on host-a: python -m ch04_pretrain train ..., since 2026-12-07 10:00:00'."""
    if holder is None:
        return "a process that did not say which"
    return (f"pid {str(holder.get('pid'))[:12]} on {str(holder.get('host'))[:64]}: "
            f"{str(holder.get('command'))[:300]}, since {str(holder.get('since'))[:32]}")
