"""Grading a class: every exercise of every student, each student's code in its own limited process.

`grade_class(submissions, out, feedback, limits)` reads a folder that holds one
folder per student. A student's folder holds their `chNN_name/exercises.py` files
at any depth (so a whole copy of the handout works too). It writes

- `out` (a CSV): one row per student, one column per exercise (PASS, FAIL, ERROR or
  TIMEOUT) and the number passed, `total`;
- `feedback/<student>.txt`: the lines `--check` prints, with the first `hints` steps
  of each exercise's hints.

What the grades mean:

- PASS: the check passed; FAIL: the check found a wrong answer, a missing one, or
  an exception the answer raised (what `--check` calls FAIL); a chapter whose file is
  not in the folder fails as "not submitted";
- ERROR: the code could not be run: it does not compile, an import fails, it calls
  exit(), runs out of memory, prints past the output limit, or its process dies;
- TIMEOUT: the exercise (or importing the file) ran longer than the time limit.

Safety: the student's code runs in `coursekit.grading_child`, in a scratch folder,
with a copy of the handout (no solutions) as its course, the instructor's installed
course hidden, limits on memory, output and core dumps, its own process group
(killed whole when it runs past its time or ends, so a child it started goes too),
and a small environment (no instructor's variables). Up to two students are graded
at once (threads here only wait on those processes). These limits stop accidents
(a loop, a crash, a flood of output, a fork bomb where the system caps processes),
not a student set on cheating: their code runs with the instructor's user rights.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import io
import json
import os
import re
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from .errors import CourseError
from .exercise_kit import Result
from .files import check_writable_dir, check_writable_file, write_bytes_atomically
from .handout import course_root, write_handout
from .progress import progress_bar

GRADES = ("PASS", "FAIL", "ERROR", "TIMEOUT")
NOT_SUBMITTED = "not submitted"
STARTUP_SECONDS = 300      # the child's own imports (torch, the checks) before any student code: not the student's
MAX_SOURCE_BYTES = 1 << 20  # a submitted exercises.py larger than this is refused unread
EXTRA_PROCESSES = 64        # processes a student's code may start, beyond those the user already runs


@dataclass(frozen=True)
class Limits:
    time_s: float = 60.0            # per exercise, and for importing one exercises.py: wall clock
    memory_mb: int = 4096           # address space; importing torch alone takes about 3.5 GB of it
    output_bytes: int = 1 << 20     # what an exercise may print (on disk; beyond it a write fails)


@dataclass(frozen=True)
class Chapter:
    package: str             # ch01_bigram
    checks: tuple            # its Check objects, in order

    @property
    def short(self) -> str:  # ch01: the column prefix
        return self.package.split("_")[0]


Item = tuple[str, str]        # (chapter package, exercise name)
Outcome = tuple[str, str]     # (grade, one line: what went wrong)


# --------------------------------------------------------------------------- what is graded

def find_chapters(course: Path) -> list[Chapter]:
    """Every chapter of the course with exercises (a folder with exercises.py and exercise_checks.py)."""
    packages = sorted(p.name for p in course.iterdir()
                      if (p / "exercises.py").is_file() and (p / "exercise_checks.py").is_file())
    return [Chapter(p, tuple(importlib.import_module(f"{p}.exercise_checks").CHECKS)) for p in packages]


def find_students(submissions: Path) -> list[Path]:
    """The student folders of `submissions` (every folder in it but hidden ones), sorted by name."""
    if not submissions.is_dir():
        raise CourseError(f"{submissions} is not a folder of submissions (one folder per student)")
    students = sorted(p for p in submissions.iterdir()
                      if p.is_dir() and not p.is_symlink() and not p.name.startswith("."))
    if not students:
        raise CourseError(f"{submissions} holds no student folders (one folder per student, each with "
                          "chNN_name/exercises.py files)")
    return students


def find_exercise_files(student: Path, chapters: list[Chapter]) -> dict[str, Path]:
    """chapter package -> the student's exercises.py for it (the shallowest, if several), regular files only."""
    found: dict[str, Path] = {}
    packages = {c.package for c in chapters}
    for folder, subfolders, files in os.walk(student):  # os.walk does not follow links to folders
        subfolders.sort()
        name = os.path.basename(folder)
        path = Path(folder) / "exercises.py"
        if name in packages and name not in found and "exercises.py" in files and path.is_file() \
                and not path.is_symlink():
            found[name] = path
    return found


# --------------------------------------------------------------------------- one student

_LIVE: set[_Child] = set()  # children running now, so that an interrupted run can end them all
_LIVE_LOCK = threading.Lock()
_STOPPING = threading.Event()  # set when the run is interrupted: start no more children


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
        with open(scratch / "output.txt", "ab") as output:  # appending, so the child can empty it between exercises
            self.process = subprocess.Popen(
                [sys.executable, "-m", "coursekit.grading_child", str(spec_path), str(write_end)],
                cwd=scratch, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                pass_fds=(write_end,), start_new_session=True)  # its own process group, to kill whole
        os.close(write_end)
        self.pipe, self.buffer, self.ended = read_end, b"", False
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
        os.close(self.pipe)
        return status


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


# --------------------------------------------------------------------------- the class

def grade_class(submissions: Path, out: Path, feedback: Path, limits: Limits = Limits(), hints: int = 1,
                workers: int | None = None, progress: bool = True) -> dict[str, dict[Item, Outcome]]:
    """Grade every student in `submissions`; write the grades CSV `out` and one feedback file each in `feedback`."""
    submissions = Path(submissions)
    students = find_students(submissions)
    for path, option in ((out, "--out"), (feedback, "--feedback")):
        if submissions.resolve() in Path(path).resolve().parents:
            raise CourseError(f"{option} {path} is inside the submissions folder; write it elsewhere")
    check_writable_file(out, "--out")
    check_writable_dir(feedback, "--feedback")
    course = course_root()
    chapters = find_chapters(course)
    workers = workers or min(2, os.cpu_count() or 1)
    _STOPPING.clear()

    grades: dict[str, dict[Item, Outcome]] = {}
    with tempfile.TemporaryDirectory(prefix="grading-") as tmp:
        base = Path(tmp) / "course"
        write_handout(base, course)
        _set_writable(base, False)  # one student's code must not change the checks another student is graded by

        try:
            with ThreadPoolExecutor(max_workers=workers) as pool, \
                    progress_bar(total=len(students), desc="grading", unit="student", disable=not progress) as bar:
                futures = [pool.submit(_grade_one, student, Path(tmp) / f"student-{i}", base, chapters, limits)
                           for i, student in enumerate(students)]
                for future in as_completed(futures):
                    name, outcomes = future.result()
                    grades[name] = outcomes
                    bar.update(1)
        except BaseException:  # Ctrl-C, or a bug here: end every student's process before leaving
            _STOPPING.set()
            with _LIVE_LOCK:
                for child in list(_LIVE):
                    child.kill()
            raise
        finally:
            _set_writable(base, True)  # so that the scratch folder can be removed

    write_bytes_atomically(out, grades_csv(grades, chapters).encode("utf-8"))
    used: set[str] = set()
    for name in sorted(grades):
        file_name = safe_name(name)
        while file_name in used:  # "a b" and "a_b" would otherwise share a file
            file_name += "_"
        used.add(file_name)
        text = feedback_text(name, grades[name], chapters, hints)
        write_bytes_atomically(Path(feedback) / f"{file_name}.txt", text.encode("utf-8"))
    return {name: grades[name] for name in sorted(grades)}


def _grade_one(student: Path, scratch: Path, base: Path, chapters: list[Chapter],
               limits: Limits) -> tuple[str, dict[Item, Outcome]]:
    """One student's grades: a chapter without a file fails as not submitted, a refused file is an ERROR."""
    scratch.mkdir()
    files = _copy_submission(student, chapters, scratch)
    outcomes: dict[Item, Outcome] = {}
    runnable = []
    for item in [(c.package, check.name) for c in chapters for check in c.checks]:
        found = files.get(item[0])
        if found is None:
            outcomes[item] = ("FAIL", f"{NOT_SUBMITTED}: no {item[0]}/exercises.py in {student.name}")
        elif isinstance(found, str):
            outcomes[item] = ("ERROR", found)
        else:
            runnable.append(item)
    if runnable:
        outcomes |= grade_student(runnable, {c: p for c, p in files.items() if isinstance(p, Path)},
                                  scratch, base, limits)
    shutil.rmtree(scratch, ignore_errors=True)
    return student.name, outcomes


def _copy_submission(student: Path, chapters: list[Chapter], scratch: Path) -> dict[str, Path | str]:
    """Copy the student's files into the scratch folder (the originals are never run or touched).
    chapter -> the copy, or a one-line reason the file is refused."""
    copies: dict[str, Path | str] = {}
    for chapter, path in find_exercise_files(student, chapters).items():
        if path.stat().st_size > MAX_SOURCE_BYTES:
            copies[chapter] = f"{chapter}/exercises.py is larger than {MAX_SOURCE_BYTES:,} bytes; not run"
            continue
        target = scratch / chapter / "exercises.py"
        target.parent.mkdir(parents=True)
        shutil.copyfile(path, target)
        copies[chapter] = target
    return copies


def _set_writable(folder: Path, writable: bool) -> None:
    for path in [folder, *folder.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def safe_name(name: str) -> str:
    """A student's folder name as a file name that is safe anywhere."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "student"


def column(item: Item) -> str:
    return f"{item[0].split('_')[0]}.{item[1]}"  # ch01.get_batch (Chapters 1 and 4 both have a get_batch)


def grades_csv(grades: dict[str, dict[Item, Outcome]], chapters: list[Chapter]) -> str:
    items = [(c.package, check.name) for c in chapters for check in c.checks]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["student", *map(column, items), "total"])
    for name in sorted(grades):
        row = [grades[name][item][0] for item in items]
        writer.writerow([name, *row, row.count("PASS")])
    return text.getvalue()


def feedback_text(name: str, outcomes: dict[Item, Outcome], chapters: list[Chapter], hints: int) -> str:
    """What `--check` would print for each chapter, with the first `hints` steps of each exercise's hints."""
    total = sum(len(c.checks) for c in chapters)
    passed = sum(1 for grade, _ in outcomes.values() if grade == "PASS")
    lines = [f"Feedback for {name}: {passed} of {total} exercises pass.", ""]
    for chapter in chapters:
        first = outcomes[(chapter.package, chapter.checks[0].name)][1]
        if first.startswith(NOT_SUBMITTED):
            lines += [f"{chapter.package}: {first}", ""]
            continue
        lines.append(f"{chapter.package} (python -m {chapter.package}.exercises --check)")
        for check in chapter.checks:
            grade, problem = outcomes[(chapter.package, check.name)]
            result = Result(check.name, grade == "PASS", problem, check.hints)
            line = result.line(steps=hints, more=f"python -m {chapter.package}.exercises --hint {check.name}")
            lines.append(grade + line[4:] if grade in ("ERROR", "TIMEOUT") else line)
        lines.append("")
    return "\n".join(lines)
