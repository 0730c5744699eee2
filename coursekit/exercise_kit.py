"""The course's small exercise checker, shared by every chapter (no torch needed here).

A chapter lists its checks in an `ExerciseChecks` (one per exercise: a name, a
function that takes the module holding the implementations and raises
`AssertionError` when something is wrong, and a hint for the student), then its
exercises module ends with

    if __name__ == "__main__":
        raise SystemExit(main(sys.argv[1:], CHECKS, "chNN_name.exercises", "chNN_name.solutions.exercises"))

so that `python -m chNN_name.exercises --check` checks the student's work and
`--solutions` checks the instructor's. Each exercise prints one line:

    PASS get_batch
    FAIL generate: divide the logits by the temperature (not implemented yet)

and the exit status is 0 when every exercise passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import TextIO

from .errors import CourseParser

NOT_IMPLEMENTED = "not implemented yet"


@dataclass(frozen=True)
class Check:
    """One exercise: `run(module)` raises (usually AssertionError) if the module's version is wrong."""

    name: str
    run: Callable[[ModuleType], None]
    hint: str


@dataclass(frozen=True)
class Result:
    name: str
    passed: bool
    problem: str = ""  # one line: what went wrong (empty when passed)
    hint: str = ""

    def line(self) -> str:
        return f"PASS {self.name}" if self.passed else f"FAIL {self.name}: {self.hint} ({self.problem})"


@dataclass
class Summary:
    results: list[Result] = field(default_factory=list)

    @property
    def passed(self) -> list[str]:
        return [r.name for r in self.results if r.passed]

    @property
    def failed(self) -> list[str]:
        return [r.name for r in self.results if not r.passed]

    @property
    def all_passed(self) -> bool:
        return bool(self.results) and not self.failed

    def line(self) -> str:
        return f"{len(self.passed)}/{len(self.results)} exercises pass"


class ExerciseChecks(list):
    """A chapter's checks, in the order the exercises are meant to be done.

    Use `exercise` as a decorator on each check function:

        CHECKS = ExerciseChecks()

        @CHECKS.exercise("get_batch", hint="targets are the inputs shifted by one")
        def check_get_batch(ex):
            x, y = ex.get_batch(...)
            assert ..., "what went wrong"
    """

    def exercise(self, name: str, hint: str) -> Callable[[Callable[[ModuleType], None]], Callable[[ModuleType], None]]:
        if any(c.name == name for c in self):
            raise ValueError(f"two exercises are named {name!r}")

        def register(run: Callable[[ModuleType], None]) -> Callable[[ModuleType], None]:
            self.append(Check(name, run, hint))
            return run
        return register

    @property
    def names(self) -> list[str]:
        return [c.name for c in self]


def _one_line(error: BaseException) -> str:
    """What went wrong, on one line: the assertion's message, or the exception's type and message."""
    if isinstance(error, NotImplementedError):
        return NOT_IMPLEMENTED
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    if isinstance(error, AssertionError):
        return first or "an assertion failed"
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def run_check(check: Check, module: ModuleType) -> Result:
    try:
        check.run(module)
    except Exception as error:  # a student's bug may raise anything; report it and go on to the next
        return Result(check.name, False, _one_line(error), check.hint)
    return Result(check.name, True)


def run_checks(checks: Sequence[Check], module: ModuleType, names: Sequence[str] = (),
               out: TextIO | None = sys.stdout) -> Summary:
    """Run `checks` (only those in `names`, if given) against `module`, printing one line each to `out`."""
    unknown = sorted(set(names) - {c.name for c in checks})
    if unknown:
        raise ValueError(f"no exercise named {', '.join(unknown)}; the exercises are "
                         f"{', '.join(c.name for c in checks)}")
    summary = Summary()
    for check in checks:
        if names and check.name not in names:
            continue
        result = run_check(check, module)
        summary.results.append(result)
        if out is not None:
            print(result.line(), file=out, flush=True)
    if out is not None:
        print(summary.line(), file=out)
    return summary


def build_parser(checks: Sequence[Check], student_module: str, solutions_module: str,
                 prog: str | None = None) -> argparse.ArgumentParser:
    """The exercises' command line: `--check` (the default) or `--solutions`, and optional exercise names."""
    parser = CourseParser(
        prog=prog or f"python -m {student_module}",
        description="Check your exercise solutions: one PASS or FAIL line per exercise, with a hint for each FAIL.")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--check", action="store_true",
                       help=f"check your implementations in {student_module} (the default)")
    which.add_argument("--solutions", action="store_true",
                       help=f"check the instructor's solutions in {solutions_module} instead")
    parser.add_argument("names", nargs="*", metavar="EXERCISE",
                        help=f"check only these exercises (of: {', '.join(c.name for c in checks)})")
    parser.set_defaults(run=lambda args: run_exercises(args, parser, checks, student_module, solutions_module))
    return parser


def main(argv: Sequence[str] | None, checks: Sequence[Check], student_module: str, solutions_module: str,
         prog: str | None = None) -> int:
    """Command line for a chapter's exercises: `--check` (the default) or `--solutions`. Returns the exit status."""
    args = build_parser(checks, student_module, solutions_module, prog).parse_args(argv)
    return args.run(args)


def run_exercises(args: argparse.Namespace, parser: argparse.ArgumentParser, checks: Sequence[Check],
                  student_module: str, solutions_module: str) -> int:
    """Check the exercises `args` names (all by default); 0 if all passed, else 1."""
    unknown = sorted(set(args.names) - {c.name for c in checks})
    if unknown:
        parser.error(f"no exercise named {', '.join(unknown)}; choose from {', '.join(c.name for c in checks)}")
    module = importlib.import_module(solutions_module if args.solutions else student_module)
    try:
        summary = run_checks(checks, module, args.names, out=sys.stdout)
    except BrokenPipeError:  # `... --check | head`: the reader left; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0 if summary.all_passed else 1
