"""The instructor's two commands, added to the main job's command line (`python -m course`):

    python -m course handout DIR                         # a student's copy of the course, without the solutions
    python -m course grade SUBMISSIONS --out grades.csv  # mark a folder of students' work

The work is in `coursekit.handout` and `coursekit.grading`; this file is only their options.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from .numbers import Number, float_in, int_in

seconds_limit = float_in(0, 3600, lo_open=True)          # per exercise; more than an hour is a mistake
memory_limit_mb = int_in(1024, 1 << 20)                  # below 1 GB not even Python with torch starts
hint_steps = int_in(0, 10)                               # 0: the feedback says what went wrong, no hints
worker_count = Number(int, 1, 64, called="from 1 to 64")


def add_classroom_commands(commands) -> None:
    """Add `handout` and `grade` to a command's subcommands (`commands`: what `add_subparsers` returned)."""
    from .grading import Limits

    defaults = Limits()
    handout = commands.add_parser(
        "handout", help="write a student's copy of the course, without the worked solutions",
        description="Write a student's copy of the course into DIR: the notebooks, the chapters' code, the exercise "
                    "stubs with their checks and hints, and the tests, without the solutions/ folders and the tests "
                    "that run them. A plain folder, not a git clone: no history holds the solutions either.")
    handout.add_argument("dir", type=Path, metavar="DIR", help="a new (or empty) folder for the copy")
    handout.set_defaults(run=run_handout)

    grade = commands.add_parser(
        "grade", help="mark every student's exercises: grades.csv and one feedback file per student",
        description="Run every exercise of every student in SUBMISSIONS (one folder per student, holding their "
                    "chNN_name/exercises.py files, or a whole copy of the handout). Each student's code runs in its "
                    "own process with a time, memory and output limit; a loop, a crash or an exit() marks that "
                    "exercise and the marking goes on. Grades: PASS, FAIL (wrong or missing answer), ERROR (the "
                    "code could not run: syntax, import, exit(), memory, output, crash), TIMEOUT.")
    grade.add_argument("submissions", type=Path, metavar="SUBMISSIONS", help="the folder of student folders")
    grade.add_argument("--out", dest="grades", type=Path, default=Path("grades.csv"), metavar="FILE",
                       help="the grades: one row per student, one column per exercise, and the total passed "
                            "(default: %(default)s)")
    grade.add_argument("--feedback", type=Path, metavar="DIR",
                       help="where each student's feedback file goes (default: a folder 'feedback' beside --out)")
    grade.add_argument("--hints", type=hint_steps, default=1, metavar="N",
                       help="how many steps of each exercise's hints the feedback shows, from the gentlest "
                            "(default: %(default)s; 0: none)")
    grade.add_argument("--time-limit", type=seconds_limit, default=defaults.time_s, metavar="SECONDS",
                       help="wall-clock time each exercise, and the import of each exercises.py, may take "
                            "(default: %(default)g)")
    grade.add_argument("--memory-limit", type=memory_limit_mb, default=defaults.memory_mb, metavar="MB",
                       help="address space for a student's process; torch itself takes about 3,500 MB of it "
                            "(default: %(default)s)")
    grade.add_argument("--workers", type=worker_count, metavar="N",
                       help="students graded at once (default: 2, or 1 on a 1-core machine)")
    grade.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    grade.set_defaults(run=run_grade)


def run_handout(args: argparse.Namespace) -> None:
    from .handout import write_handout

    files = write_handout(args.dir)
    print(f"wrote a student's copy of the course to {args.dir} ({len(files)} files, no solutions)")
    print(f"students: cd {args.dir} && pip install -r requirements.txt, then python -m ch01_bigram.exercises --check")


def run_grade(args: argparse.Namespace) -> None:
    from .grading import Limits, grade_class

    feedback = args.feedback or args.grades.parent / "feedback"
    start = time.perf_counter()
    grades = grade_class(args.submissions, args.grades, feedback,
                         Limits(time_s=args.time_limit, memory_mb=args.memory_limit),
                         hints=args.hints, workers=args.workers, progress=not args.no_progress)
    total = len(next(iter(grades.values()))) if grades else 0
    width = max(len(name) for name in grades)
    for name, outcomes in grades.items():
        counts = {g: sum(1 for grade, _ in outcomes.values() if grade == g) for g in ("PASS", "FAIL", "ERROR",
                                                                                      "TIMEOUT")}
        print(f"{name:<{width}}  {counts['PASS']:>2}/{total} pass" +
              "".join(f", {n} {g}" for g, n in counts.items() if n and g != "PASS"))
    print(f"graded {len(grades)} students in {time.perf_counter() - start:.0f} s "
          f"({args.workers or min(2, os.cpu_count() or 1)} at a time); grades in {args.grades}, feedback in {feedback}")
