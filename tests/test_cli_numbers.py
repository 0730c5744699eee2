"""Every numeric option of every command refuses nonsense at once, with one line.

The test walks each command line's parser (`build_parser()` of every chapter's
cli, the main job, the benchmarks and tools), finds every option that takes a
number by its `type` (a `coursekit.numbers.Number`, which carries its range),
and feeds it nan, inf, -1, 0 and a huge value (1e30, or 10**30 for whole
numbers). Each must either stop with exit status 2 and one `error:` line that
names the option, no traceback, or be a value inside the option's stated range
(`--sample-length 0`, "0: none", is allowed). It only parses: nothing trains.

At the time of writing it tries 675 option/value pairs (135 numeric options x 5
values); `test_the_walk_finds_every_numeric_option` keeps that count honest.
"""

from __future__ import annotations

import argparse
import importlib

import pytest

from coursekit import CourseParser
from coursekit.numbers import Number, NumberList

# module -> how to get its parser (all through a module's own `build_parser`)
CLIS = ["ch01_bigram.cli", "ch02_attention.cli", "ch03_gpt.cli", "ch04_pretrain.cli", "ch05_finetune.cli", "course",
        "ch02_attention.bench_attention", "ch03_gpt.bench_gpt", "ch04_pretrain.data_pipeline.bench_prepare",
        "ch04_pretrain.pretraining.bench_train", "ch04_pretrain.pretraining.ddp_check"]
VALUES = ["nan", "inf", "-1", "0", "huge"]
EXPECTED_PAIRS = 675


def _exercise_parser():
    from ch01_bigram.exercise_checks import CHECKS
    from coursekit.exercise_kit import build_parser

    return build_parser(CHECKS, "ch01_bigram.exercises", "ch01_bigram.solutions.exercises")


def parsers():
    """(name, parser) of every command line."""
    for module in CLIS:
        yield module, importlib.import_module(module).build_parser()
    yield "coursekit.exercise_kit", _exercise_parser()


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(subcommand path, parser) of the parser and every subcommand under it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, path + (name,))


def is_leaf(parser: argparse.ArgumentParser) -> bool:
    return not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)


def takes_a_number(action: argparse.Action) -> bool:
    return isinstance(action.type, (Number, NumberList)) or action.type in (int, float)


def required_arguments(parser: argparse.ArgumentParser) -> list[str]:
    """Placeholder values for what a subcommand requires, so that only the option under test can fail."""
    argv = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        if not action.option_strings and action.nargs not in ("*", "?"):
            argv.append("x")
        elif action.option_strings and action.required:
            argv += [action.option_strings[0], "x"]
    return argv


def numeric_options():
    """(cli name, subcommand path, option string) of every option that takes a number."""
    found = []
    for name, parser in parsers():
        for path, sub in walk(parser):
            for action in sub._actions:
                if action.option_strings and takes_a_number(action):
                    found.append((name, path, action.option_strings[-1]))
    return found


OPTIONS = numeric_options()


def _parser_for(name: str):
    return dict(parsers())[name]


def _sub(parser, path):
    return dict(walk(parser))[path]


def test_the_walk_finds_every_numeric_option():
    assert len(OPTIONS) * len(VALUES) == EXPECTED_PAIRS, (
        f"{len(OPTIONS) * len(VALUES)} pairs now: update EXPECTED_PAIRS and the count in the docstring")
    clis = {name for name, _, _ in OPTIONS}
    assert clis == set(CLIS), set(CLIS) - clis  # every command line has numeric options; the walk reached them


@pytest.mark.parametrize("name, path, option", OPTIONS, ids=[f"{n}:{' '.join(p)}:{o}" for n, p, o in OPTIONS])
def test_nonsense_numbers_stop_at_once_with_one_line(name, path, option, capsys):
    parser = _parser_for(name)
    sub = _sub(parser, path)
    action = next(a for a in sub._actions if option in a.option_strings)
    assert isinstance(action.type, (Number, NumberList)), \
        f"{option} takes a bare {action.type.__name__}: give it a range from coursekit.numbers"
    rule = action.type
    whole = (rule.item if isinstance(rule, NumberList) else rule).kind is int
    for value in VALUES:
        text = ("1" + "0" * 30 if whole else "1e30") if value == "huge" else value
        argv = [*path, *required_arguments(sub), f"{option}={text}"]
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:
            out, err = capsys.readouterr()
            assert e.code == 2, (argv, err)
            assert "Traceback" not in err and out == ""
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith(f"error: argument {option}"), err
            assert rule.describe() in lines[0], err  # the line says what is allowed
        else:
            parsed = getattr(args, action.dest)
            assert rule.contains(parsed), f"{option}={text} was accepted as {parsed!r}, outside {rule.describe()}"
            assert value not in ("nan", "inf"), f"{option} accepted {value}"


def test_every_command_line_has_one_shape():
    """A `CourseParser`; subcommands required (unless the command runs something without one, as the main job
    does); every command the parser reaches has a `run` function to call."""
    for name, parser in parsers():
        for path, sub in walk(parser):
            assert isinstance(sub, CourseParser), (name, path)
            for action in sub._actions:
                if isinstance(action, argparse._SubParsersAction):
                    assert action.required or callable(sub.get_default("run")), (name, path)
            if is_leaf(sub):
                assert callable(sub.get_default("run")), (name, path)
