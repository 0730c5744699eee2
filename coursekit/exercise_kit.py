"""The course's small exercise checker, shared by every chapter (no torch needed here).

A chapter lists its checks in an `ExerciseChecks` (one per exercise: a name, a
function that takes the module holding the implementations and raises
`AssertionError` when something is wrong, and hints in steps, from a nudge to
near the answer), then its exercises module ends with

    if __name__ == "__main__":
        raise SystemExit(main(sys.argv[1:], CHECKS, "chNN_name.exercises", "chNN_name.solutions.exercises"))

so that `python -m chNN_name.exercises --check` checks the student's work and
`--solutions` checks the instructor's. A passing exercise prints one line; a
failing one says what went wrong (the input, what was expected and what came
out, or the property that broke) and gives the first step of its hints:

    PASS get_batch
    FAIL sample_tokens: at temperature 0.5 the tokens came [0.7, 0.2, 0.1] of the time, expected ...
         hint 1 of 3: ... (more: --hint sample_tokens)

The exit status is 0 when every exercise passes, 1 otherwise. A FAIL line
never shows code: the answer is the student's to write. `--hint NAME` shows
the next step of that exercise's hints each time it is asked; which step a
student has reached is kept in a small file in the per-user cache
(`~/.cache/gpt-course/hint_steps.json`, one entry per copy of the course and
exercise; delete it to start the hints over).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TextIO

from .errors import CourseError, CourseParser

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same reader, before it joined the standard library
    import tomli as tomllib

NOT_IMPLEMENTED = "not implemented yet"
HINT_STATE = "hint_steps.json"  # in the per-user cache: how far each exercise's hints have been shown


@dataclass(frozen=True)
class Check:
    """One exercise: `run(module)` raises (usually AssertionError) if the module's version is wrong."""

    name: str
    run: Callable[[ModuleType], None]
    hints: tuple[str, ...]  # steps, from a nudge to near the answer; never the code itself


@dataclass(frozen=True)
class Result:
    name: str
    passed: bool
    problem: str = ""  # one line: what went wrong (empty when passed)
    hints: tuple[str, ...] = ()

    def line(self, steps: int = 1, more: str = "") -> str:
        """PASS, or FAIL with the problem and the first `steps` hint steps (`more`: how to ask for the next)."""
        if self.passed:
            return f"PASS {self.name}"
        lines = [f"FAIL {self.name}: {self.problem}"]
        shown = self.hints[:max(0, steps)]
        for number, step in enumerate(shown, 1):
            tail = f" (more: {more})" if more and number == len(shown) < len(self.hints) else ""
            lines.append(f"     hint {number} of {len(self.hints)}: {step}{tail}")
        return "\n".join(lines)


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


def expect_error(error: type[BaseException], run: Callable[[], object], problem: str) -> None:
    """A check that the student's code refuses bad input: `run()` must raise `error`, else `problem` is the FAIL."""
    try:
        run()
    except error:
        return
    raise AssertionError(problem)


def _read_hints(path: Path) -> dict[str, tuple[str, ...]]:
    """exercise name -> its hint steps, from a chapter's hints.toml; a file of another shape is a ValueError."""
    with open(path, "rb") as f:
        tables = tomllib.load(f)
    steps = {}
    for name, table in tables.items():
        hints = table.get("hints") if isinstance(table, dict) else None
        if not (isinstance(hints, list) and hints and all(isinstance(h, str) and h for h in hints)):
            raise ValueError(f"{path}: [{name}] needs hints = a list of steps, each a non-empty string")
        steps[name] = tuple(hints)
    return steps


class ExerciseChecks(list):
    """A chapter's checks, in the order the exercises are meant to be done.

    Use `exercise` as a decorator on each check function. The hints are prose, kept apart from the code in
    the chapter's hints.toml (one table per exercise: `[get_batch]` then `hints = ["a nudge", ..., "near the
    answer"]`), or given in code:

        CHECKS = ExerciseChecks(hints=Path(__file__).with_name("hints.toml"))

        @CHECKS.exercise("get_batch")
        def check_get_batch(ex):
            x, y = ex.get_batch(...)
            assert ..., "what went wrong: the input, expected against observed"
    """

    def __init__(self, hints: Path | None = None):
        super().__init__()
        self.hints_file = hints
        self.hint_steps = _read_hints(hints) if hints is not None else {}

    def exercise(self, name: str, hints: Sequence[str] | None = None
                 ) -> Callable[[Callable[[ModuleType], None]], Callable[[ModuleType], None]]:
        if any(c.name == name for c in self):
            raise ValueError(f"two exercises are named {name!r}")
        if hints is None:
            if name not in self.hint_steps:
                raise ValueError(f"{name}: no hints for it in {self.hints_file}")
            hints = self.hint_steps[name]
        if isinstance(hints, str) or not hints:
            raise ValueError(f"{name}: give the hints as a list of steps, not one string")

        def register(run: Callable[[ModuleType], None]) -> Callable[[ModuleType], None]:
            self.append(Check(name, run, tuple(hints)))
            return run
        return register

    @property
    def names(self) -> list[str]:
        return [c.name for c in self]


def describe_error(error: BaseException) -> str:
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
        return Result(check.name, False, describe_error(error), check.hints)
    return Result(check.name, True)


def run_checks(checks: Sequence[Check], module: ModuleType, names: Sequence[str] = (),
               out: TextIO | None = sys.stdout, more: str = "") -> Summary:
    """Run `checks` (only those in `names`, if given) against `module`, printing each result to `out`
    (a FAIL with its first hint step; `more` says how to ask for the next, with {name} for the exercise)."""
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
            print(result.line(more=more.format(name=check.name)), file=out, flush=True)
    if out is not None:
        print(summary.line(), file=out)
    return summary


def build_parser(checks: Sequence[Check], student_module: str, solutions_module: str,
                 prog: str | None = None) -> argparse.ArgumentParser:
    """The exercises' command line: `--check` (the default) or `--solutions`, and optional exercise names."""
    parser = CourseParser(
        prog=prog or f"python -m {student_module}",
        description="Check your exercise solutions: PASS, or FAIL with what went wrong and a first hint. "
                    "Ask for more help on one exercise with --hint NAME, a step at a time.")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--check", action="store_true",
                       help=f"check your implementations in {student_module} (the default)")
    which.add_argument("--solutions", action="store_true",
                       help=f"check the instructor's solutions in {solutions_module} instead")
    which.add_argument("--hint", metavar="EXERCISE",
                       help="show the next step of this exercise's hints (each time you ask, one step further; "
                            f"the steps reached are kept in {HINT_STATE} in your cache folder)")
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
    unknown = sorted(set(args.names + ([args.hint] if args.hint else [])) - {c.name for c in checks})
    if unknown:
        parser.error(f"no exercise named {', '.join(unknown)}; choose from {', '.join(c.name for c in checks)}")
    if args.hint:
        print(next_hint(next(c for c in checks if c.name == args.hint), student_module))
        return 0
    if args.solutions and not _exists(solutions_module):
        parser.error(f"this copy of the course has no solutions ({solutions_module}): it is a student's handout")
    module = importlib.import_module(solutions_module if args.solutions else student_module)
    try:
        summary = run_checks(checks, module, args.names, out=sys.stdout,
                             more=f"python -m {student_module} --hint {{name}}")
    except BrokenPipeError:  # `... --check | head`: the reader left; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0 if summary.all_passed else 1


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its package is missing too
        return False


# --------------------------------------------------------------------------- hints, one step at a time

def _hint_key(student_module: str, name: str) -> str:
    """One entry per copy of the course and exercise: two copies on one machine keep their own steps."""
    spec = importlib.util.find_spec(student_module)
    where = os.path.abspath(spec.origin) if spec is not None and spec.origin else student_module
    return f"{where}::{name}"


def next_hint(check: Check, student_module: str) -> str:
    """The next step of `check`'s hints (step 2 the first time: a FAIL line already showed step 1), remembered."""
    from .download import cache_dir  # here, not at the top: the checker itself stays free of network code
    from .files import load_json, write_json

    state_file = cache_dir() / HINT_STATE
    try:
        state = load_json(state_file)
    except (FileNotFoundError, CourseError):
        state = {}  # none yet, or damaged by hand: start the steps over rather than fail
    state = state if isinstance(state, dict) else {}
    key = _hint_key(student_module, check.name)
    seen = state.get(key, 1)
    step = min(len(check.hints), (seen if isinstance(seen, int) else 1) + 1)
    state[key] = step
    with contextlib.suppress(OSError):  # a read-only home still gets the hint, only not remembered
        write_json(state_file, state)
    last = " (the last step)" if step == len(check.hints) else " (ask again for the next)"
    return f"{check.name}, hint {step} of {len(check.hints)}: {check.hints[step - 1]}{last}"
