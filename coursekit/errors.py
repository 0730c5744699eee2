"""One kind of error for bad input, and the one place that turns it into exit status 2.

Every chapter raises `CourseError` for problems a user can fix (a missing file,
a bad option value). Its message is one line that names the problem. The
command-line entry points run through `run_cli`, which prints that line and
exits with status 2, the status argparse uses for bad arguments, with no
traceback. Programming errors are not caught: they should show a traceback.
Every command's parser is a `CourseParser`, so that argparse's own complaints
(an unknown option, a number out of range) read the same: one `error:` line.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence


class CourseError(ValueError):
    """A problem with the user's input, explained in one line."""


def check_positive(name: str, value: int) -> int:
    """Raise `CourseError` unless `value` > 0 (for sizes and counts from the user)."""
    if value <= 0:
        raise CourseError(f"{name} must be positive, got {value}")
    return value


class CourseParser(argparse.ArgumentParser):
    """An `argparse.ArgumentParser` whose errors are one line, as the course's own: `error: ...`, exit 2.

    argparse prints the whole usage before its message; on a command with thirty
    options that buries the one line that matters. The line says where the
    usage is instead. Subcommands' parsers are of this class too.
    """

    def __init__(self, *args, examples: Sequence[str] = (), **kwargs):
        if examples:  # command lines to copy, shown after the options, one a line as typed
            kwargs["epilog"] = "examples:\n" + "\n".join(f"  {line}" for line in examples)
            kwargs["formatter_class"] = argparse.RawDescriptionHelpFormatter
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def subcommand(commands, name: str, run: Callable[[argparse.Namespace], object], help: str,
               description: str | None = None, **kwargs) -> argparse.ArgumentParser:
    """The parser of subcommand `name` (`commands`: what `add_subparsers` returned), which runs `run(args)`:
    `help` is its line in the list of commands, `description` the top of its own --help (default: `help`)."""
    parser = commands.add_parser(name, help=help, description=description or help, **kwargs)
    parser.set_defaults(run=run)
    return parser


def command_line(build_parser: Callable[[], argparse.ArgumentParser]) -> Callable[[Sequence[str] | None], None]:
    """The `main(argv)` of a command: parse `argv` with the parser `build_parser()` makes, then run what it chose.

    Every parser of the course names its work with `set_defaults(run=...)`, on
    itself or on each subcommand, so every command's main is this one.
    """
    def main(argv: Sequence[str] | None = None) -> None:
        args = build_parser().parse_args(argv)
        args.run(args)
    return main


def run_cli(main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None) -> None:
    """Call `main(argv)`; report a `CourseError` as `error: ...` on stderr and exit 2."""
    try:
        main(argv)
    except CourseError as e:
        sys.stderr.write(f"error: {e}\n")  # one write, so lines from parallel processes do not run together
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        # The reader went away (`python -m ch01_bigram | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)


def _quiet_interrupt(kind, value, traceback) -> None:
    """Python's last word on an exception no one caught: for Ctrl-C, one line instead of a traceback."""
    if issubclass(kind, KeyboardInterrupt):
        sys.stderr.write("interrupted\n")  # Python then ends the process as killed by SIGINT: status 130
        return
    _previous_hook(kind, value, traceback)


# A Ctrl-C can come before `run_cli` is running: while a command still imports torch, say. Every chapter
# imports coursekit first, so from then on such an interrupt ends the command as quietly as one inside it.
# Only an exception nobody caught reaches this hook: notebooks and tests, which catch their own, see no change.
_previous_hook = sys.excepthook
if sys.excepthook is sys.__excepthook__:
    sys.excepthook = _quiet_interrupt
