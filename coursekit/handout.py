"""A student's copy of the course: everything but the worked solutions.

`write_handout(course, dest)` copies the course's files (those git tracks, plus new
files git does not ignore; without git, every file but caches, runs and data) into
`dest`, which must be new or empty, leaving out

- every `solutions/` folder (the chapters' worked exercises), and
- the tests that need those solutions (`INSTRUCTOR_TESTS`): they import them (and the
  deliberately wrong versions of the exercises there are near-answers too), or build
  the grader's made-up class of students from them.

Everything a student needs stays: the notebooks, the chapters' code, the
exercise stubs, their checks with their hints, the tests that do not need the
solutions, and the READMEs. It is a plain folder, not a git clone, so no history
holds the solutions either. `tests/test_classroom.py` proves that no solution's
code is in it and that its own tests pass.

The copy is written beside `dest` under a temporary name and renamed into place
when whole, so an interrupted run leaves no half-made handout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .errors import CourseError
from .files import _umask

SOLUTIONS = "solutions"  # a chapter's folder of worked solutions
# Tests that need the solutions: they run them, or build made-up students from them (the grader's tests).
INSTRUCTOR_TESTS = ("tests/test_exercise_solutions.py", "tests/test_classroom.py")
# Never part of the course: caches, outputs and environments (as .gitignore says), for a copy made without git.
NOT_COURSE = {".git", "__pycache__", ".ipynb_checkpoints", ".pytest_cache", ".hypothesis", ".venv", "runs", "out",
              "data", ".ruff_cache"}


def course_root() -> Path:
    """The folder that holds the chapters and coursekit (this file's parent's parent)."""
    return Path(__file__).resolve().parent.parent


def left_out(relative: str) -> bool:
    """True for a course file that a student must not get: a solution, or a test that runs one."""
    parts = Path(relative).parts
    return SOLUTIONS in parts[:-1] or relative in INSTRUCTOR_TESTS


def course_files(course: Path) -> list[str]:
    """The course's files, relative to `course`, in sorted order.

    In a git checkout: what git tracks plus new files it does not ignore (never the instructor's
    runs, downloads or environments). Elsewhere: every file outside `NOT_COURSE` folders.
    """
    try:
        listed = subprocess.run(["git", "-C", str(course), "ls-files", "-z", "--cached", "--others",
                                 "--exclude-standard"], capture_output=True, check=True, timeout=60).stdout
        names = [n for n in listed.decode("utf-8", "surrogateescape").split("\0") if n]
        if names:
            return sorted({n for n in names if (course / n).is_file()})  # deleted but still tracked: skipped
    except (OSError, subprocess.SubprocessError):
        pass  # no git, or not a checkout: walk the folder instead
    found = []
    for folder, subfolders, files in os.walk(course):
        subfolders[:] = sorted(d for d in subfolders if d not in NOT_COURSE and not d.endswith(".egg-info"))
        found += [os.path.relpath(os.path.join(folder, f), course) for f in files if not f.endswith(".pyc")]
    return sorted(found)


def handout_files(course: Path) -> list[str]:
    """The files a student's copy holds, relative to `course`."""
    return [f for f in course_files(course) if not left_out(f)]


def check_new_folder(dest: Path, option: str) -> None:
    """A handout goes only into a new or empty folder: it must never overwrite a student's work."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise CourseError(f"{option} {dest} already exists and is not an empty folder; choose a new folder")


def write_handout(dest: Path, course: Path | None = None) -> list[str]:
    """Write the student's copy of `course` (this course by default) into `dest`; return the files copied."""
    course = (course or course_root()).resolve()
    dest = Path(dest)
    check_new_folder(dest, "the handout folder")
    if dest.resolve() == course or course in dest.resolve().parents:
        raise CourseError(f"the handout folder {dest} is inside the course; choose a folder outside {course}")
    files = handout_files(course)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for name in files:
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(course / name, target)
        staging.chmod(0o777 & ~_umask())  # a folder as any other (mkdtemp's is private to its owner)
        if dest.exists():
            dest.rmdir()  # empty, checked above
        os.replace(staging, dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return files
