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

Safety: the student's code runs in `coursekit.grading_child` (watched by
`coursekit.student_process`), in a scratch folder,
with a copy of the handout (no solutions) as its course, the instructor's installed
course hidden, limits on memory, output and core dumps, its own process group
(killed whole when it runs past its time or ends, so a child it started goes too), a cap
on its processes (RLIMIT_NPROC; for a root grader, whom that does not bind, a pids cgroup),
and a small environment (no instructor's variables). Up to two students are graded
at once (threads here only wait on those processes). These limits stop accidents
(a loop, a crash, a flood of output, a fork bomb where the system can cap processes),
not a student set on cheating: their code runs with the instructor's user rights.
"""

from __future__ import annotations

import csv
import importlib
import io
import os
import re
import shutil
import stat
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from .errors import CourseError
from .exercise_kit import Result
from .files import check_writable_dir, check_writable_file, write_bytes_atomically
from .handout import course_root, write_handout
from .progress import progress_bar
from .student_process import Item, Limits, Outcome, grade_student, new_run, stop_every_student

NOT_SUBMITTED = "not submitted"
MAX_SOURCE_BYTES = 1 << 20  # a submitted exercises.py larger than this is refused unread


@dataclass(frozen=True)
class Chapter:
    package: str             # ch01_bigram
    checks: tuple            # its Check objects, in order

    @property
    def short(self) -> str:  # ch01: the column prefix
        return self.package.split("_")[0]


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


# --------------------------------------------------------------------------- the class

def grade_class(submissions: Path, out: Path, feedback: Path, limits: Limits | None = None, hints: int = 1,
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
    limits = limits or Limits()
    new_run()

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
        except BaseException:  # Ctrl-C, a CourseError from a worker, a bug: end every student's process first
            stop_every_student()
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
