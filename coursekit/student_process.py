"""One student's code, run and watched: the parent's side of `coursekit.grading_child`.

`grade_student(items, files, scratch, base, limits)` starts the child on the
student's exercises and reads its events. Each exercise (and each import of an
exercises.py) gets `limits.time_s` of wall clock from its `start`; past that, the
child's whole process group is killed and the exercise is a TIMEOUT. A child that
dies (a crash, a kill for memory, an exit no Python code saw) makes the exercise
in hand an ERROR. Either way a new child goes on with the exercises left, so every
exercise gets a grade and the run always ends: each new child grades at least one.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import CourseError

GRADES = ("PASS", "FAIL", "ERROR", "TIMEOUT")
STARTUP_SECONDS = 300      # the child's own imports (torch, the checks) before any student code: not the student's
EXTRA_PROCESSES = 64        # processes a student's code may start, beyond those the user already runs
PIDS_CGROUP = Path("/sys/fs/cgroup/pids")  # cgroup v1's pids controller, where a root grader confines a child
GROUP_TASKS = 2 * EXTRA_PROCESSES          # a confined child's processes and threads (torch starts a few threads)

Item = tuple[str, str]        # (chapter package, exercise name)
Outcome = tuple[str, str]     # (grade, one line: what went wrong)


@dataclass(frozen=True)
class Limits:
    time_s: float = 60.0            # per exercise, and for importing one exercises.py: wall clock
    memory_mb: int = 4096           # address space; importing torch alone takes about 3.5 GB of it
    output_bytes: int = 1 << 20     # what an exercise may print (on disk; beyond it a write fails)


_LIVE: set[_Child] = set()  # children running now, so that an interrupted run can end them all
_LIVE_LOCK = threading.Lock()
_STOPPING = threading.Event()  # set when the run is interrupted: start no more children


def new_run() -> None:
    _STOPPING.clear()


def stop_every_student() -> None:
    """End every student's process now, and start no more (the run was interrupted)."""
    _STOPPING.set()
    with _LIVE_LOCK:
        for child in list(_LIVE):
            child.kill()


class _Child:
    """One run of the child process over a list of exercises, read event by event."""

    def __init__(self, items: list[Item], files: dict[str, Path], scratch: Path, base: Path, limits: Limits):
        spec_path = scratch / "spec.json"
        spec = {"items": items, "files": {c: str(p) for c, p in files.items()}, "processes": _process_cap(),
                "limits": {"memory_mb": limits.memory_mb, "output_bytes": limits.output_bytes}}
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        read_end, write_end = os.pipe()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(scratch), "TMPDIR": str(scratch),
               "PYTHONPATH": str(base), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0",
               "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
        try:
            with open(scratch / "output.txt", "ab") as output:  # appending: the child empties it between exercises
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "coursekit.grading_child", str(spec_path), str(write_end)],
                    cwd=scratch, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                    pass_fds=(write_end,), start_new_session=True)  # its own process group, to kill whole
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        self.pipe, self.buffer, self.ended = read_end, b"", False
        # Moved in before it runs student code (its first seconds import torch), so all it starts is counted.
        self.group = _PidsGroup.make() if spec["processes"] is None else None
        if self.group is not None:
            self.group.add(self.process.pid)
        with _LIVE_LOCK:
            _LIVE.add(self)

    def next_event(self, deadline: float) -> dict | None:
        """The next event; None at the deadline, or once the child has ended (then `ended` is True)."""
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if not select.select([self.pipe], [], [], min(left, 0.2))[0]:
                # Nothing to read. A process the student started may hold the pipe open after the child
                # died, so the child's own end is watched too (all it wrote is already in the pipe).
                if self.process.poll() is not None:
                    self.ended = True
                    return None
                continue
            chunk = os.read(self.pipe, 65536)
            if not chunk:
                self.ended = True
                return None
            self.buffer = (self.buffer + chunk)[-(1 << 20):]  # a flood of junk on the pipe stays bounded
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            event = json.loads(line)
        except ValueError:
            return {}  # not ours (a student wrote on the pipe): ignore it
        return event if isinstance(event, dict) else {}

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.group is not None:
            self.group.kill_all()

    def stop(self) -> int:
        """Kill the child's whole process group (what it started too) and return its exit status."""
        with _LIVE_LOCK:
            _LIVE.discard(self)
        for _ in range(100):  # a process that forks as fast as it is killed needs a few rounds
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                break
            except PermissionError:
                break  # a member changed user rights: nothing more this process can do
            time.sleep(0.01)
            if self.process.poll() is not None:
                try:
                    os.killpg(self.process.pid, 0)
                except ProcessLookupError:
                    break
        status = self.process.wait()
        if self.group is not None:  # what left the process group is still in the cgroup
            self.group.kill_all()
            self.group.remove()
        os.close(self.pipe)
        return status


class _PidsGroup:
    """A pids cgroup holding one child and everything it starts: past `GROUP_TASKS` the kernel refuses fork
    (a fork bomb gets EAGAIN), and every member can be found and killed, even one that left the process group.
    For a grader run as root, whom RLIMIT_NPROC does not bind; other users get RLIMIT_NPROC instead."""

    _numbers = itertools.count(1)  # next() on it is atomic: two grading threads never get one name

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def make(cls) -> _PidsGroup | None:
        """A new group, or None where this machine offers none (no cgroup v1 pids controller we may write)."""
        path = PIDS_CGROUP / f"gpt-course-grader-{os.getpid()}-{next(cls._numbers)}"
        try:
            path.mkdir()
        except OSError:
            return None
        try:
            (path / "pids.max").write_text(str(GROUP_TASKS))
        except OSError:
            with contextlib.suppress(OSError):
                path.rmdir()  # ours, and still empty
            return None
        return cls(path)

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def kill_all(self) -> None:
        for _ in range(100):  # members may fork while they are killed: repeat until none is left
            try:
                pids = [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
            except OSError:
                return
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def remove(self) -> None:
        for _ in range(100):  # a killed process leaves the group when it has been reaped
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.02)


def process_limit() -> str | None:
    """What bounds the processes a student's code may start here: 'RLIMIT_NPROC', 'pids cgroup', or None
    (a root grader without a writable pids cgroup: only the kill of the process group at the time limit)."""
    if os.geteuid() != 0:
        return "RLIMIT_NPROC"
    group = _PidsGroup.make()
    if group is None:
        return None
    group.remove()
    return "pids cgroup"


def _process_cap() -> int | None:
    """RLIMIT_NPROC for the child: the user's processes now plus a few. None for root, whom it does not bind."""
    if os.geteuid() == 0:
        return None
    uid, count = os.getuid(), 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry}/task"))  # the limit counts threads
            except OSError:
                continue
    return count + EXTRA_PROCESSES


def _died(status: int) -> str:
    if status < 0:
        name = signal.Signals(-status).name if -status in signal.valid_signals() else str(-status)
        return f"its process was killed by {name}" + (" (the system may have run out of memory)"
                                                      if -status == signal.SIGKILL else "")
    return f"its process ended with status {status}"


def grade_student(items: list[Item], files: dict[str, Path], scratch: Path, base: Path,
                  limits: Limits) -> dict[Item, Outcome]:
    """Grade `items` of one student, starting a new child after each timeout or crash until all are graded."""
    outcomes: dict[Item, Outcome] = {}
    pending = list(items)
    while pending and not _STOPPING.is_set():
        child = _Child(pending, files, scratch, base, limits)
        current: tuple[str, str | None] | None = None  # (chapter, exercise or None for the import)
        ready, deadline = False, time.monotonic() + STARTUP_SECONDS
        while True:
            event = child.next_event(deadline)
            if event is None:
                break
            kind = event.get("event")
            if kind == "ready":
                ready = True
            elif kind == "start":
                current, deadline = (event.get("chapter"), event.get("name")), time.monotonic() + limits.time_s
            elif kind == "result" and current is not None:
                grade = event.get("grade") if event.get("grade") in GRADES else "ERROR"
                _record(outcomes, pending, current, (grade, str(event.get("problem", ""))[:500]))
                current, deadline = None, time.monotonic() + limits.time_s
            elif kind == "done":
                break
        timed_out = event is None and not child.ended
        status = child.stop()
        if current is not None:
            what = "importing exercises.py" if current[1] is None else "this exercise"
            outcome = (("TIMEOUT", f"{what} ran longer than {limits.time_s:g} s (the time limit)") if timed_out
                       else ("ERROR", f"{_died(status)} while {what} ran"))
            _record(outcomes, pending, current, outcome)
        elif pending and not ready:
            # No student code has run yet: the trouble is the grader's setting or machine, and it would be the same
            # for every student. Stop with the reason rather than give the whole class ERRORs.
            reason = (f"took longer than {STARTUP_SECONDS} s" if timed_out
                      else f"failed: {_last_line(scratch / 'output.txt')}")
            raise CourseError(f"starting a student's process {reason} ({_died(status)}), before any student code "
                              "ran; is --memory-limit too low for torch?")
        elif pending:  # ended between exercises (a thread of the student's): grade the next one, so we go on
            _record(outcomes, pending, pending[0], ("ERROR", f"{_died(status)} between exercises"))
    return outcomes


def _last_line(path: Path) -> str:
    """The last line a process wrote (its error, when it failed), read from the file's end only."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 2048))
            lines = f.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return "no output"
    return lines[-1][:300] if lines else "no output"


def _record(outcomes: dict[Item, Outcome], pending: list[Item], current, outcome: Outcome) -> None:
    """Grade an exercise, or for a failed import (name None) every exercise of that chapter still pending."""
    chapter, name = current
    for item in [i for i in pending if i[0] == chapter and (name is None or i[1] == name)]:
        outcomes[item] = outcome
        pending.remove(item)
