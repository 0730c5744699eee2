"""Settings declared once (coursekit.settings) and packages that import lazily (coursekit.lazy), in Chapters 1-3.

A setting's default, range and help live on its dataclass field; the command lines make their options from
the fields. These tests read the fields and check that every option says what its field says, that a bad
value stops the command with one line, that a preset only changes the defaults it names, and that `--help`
and `import ch03_gpt` start without torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import ch01_bigram.cli as ch01
import ch02_attention.cli as ch02
import ch03_gpt.cli as ch03
from ch01_bigram.config import TrainConfig
from ch02_attention.config import TRAINING, ModelConfig
from ch03_gpt.config import ABLATION, RECIPES, GPTConfig, Recipe
from coursekit import CourseError, CourseParser, run_cli
from coursekit.lazy import lazy_exports
from coursekit.numbers import positive_int
from coursekit.settings import (
    DEFAULT_SEED,
    add_flags,
    add_run_flags,
    check_fields,
    flag_name,
    from_args,
    number_text,
    setting,
)

ROOT = Path(__file__).resolve().parents[1]


def one_line(text: str) -> str:
    """A help page with argparse's line wrapping undone."""
    return " ".join(text.split())


def subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


# (parser, settings class, the instance whose values the options show as defaults)
FIELD_FLAGS = {
    "ch01 training": (ch01.build_parser, TrainConfig, TrainConfig()),
    "ch02 training": (ch02.build_parser, TrainConfig, TRAINING),
    "ch02 model": (ch02.build_parser, ModelConfig, ModelConfig()),
    "ch03 train model": (lambda: subparser(ch03.build_parser(), "train"), GPTConfig, GPTConfig()),
    "ch03 train recipe": (lambda: subparser(ch03.build_parser(), "train"), Recipe, RECIPES[ch03.DEFAULT_RECIPE]),
}


@pytest.mark.parametrize("name", list(FIELD_FLAGS))
def test_every_option_is_made_from_its_field(name):
    """Each field meant for the command line is an option showing the field's help, range and default; a field
    kept off it (flag=False) is not an option."""
    build, cls, defaults = FIELD_FLAGS[name]
    parser = build()
    page = one_line(parser.format_help())
    options = {s for a in parser._actions for s in a.option_strings}
    for f in dataclasses.fields(cls):
        if f.name in ("seed", "dtype"):
            assert flag_name(f.name) in options  # a run flag, shared by every command (add_run_flags)
            continue
        meta, value = f.metadata, getattr(defaults, f.name)
        if not meta["flag"]:
            assert flag_name(f.name) not in options, f.name
        elif f.type in (bool, "bool"):
            switch = flag_name(f.name) if not value else "--no-" + f.name.replace("_", "-")
            assert switch in options and one_line(meta["help"]) in page, f.name
        else:
            assert flag_name(f.name) in options, f.name
            shown = "all" if value is None else value
            assert one_line(meta["help"]) in page, f.name
            assert f"(default: {shown})" in page, f.name
            if meta["rule"] is not None:
                assert meta["rule"].describe() in page, f.name


def test_a_preset_shows_its_own_values_and_the_classes_keep_their_defaults():
    page = one_line(subparser(ch03.build_parser(), "train").format_help())
    baseline = RECIPES["baseline"]
    assert (f"--lr LR peak learning rate, reached at the end of warm-up; a finite number > 0 and <= 1 "
            f"(default: {baseline.lr})") in page
    assert baseline.lr != Recipe().lr  # the preset changed it; the class did not
    # A preset is a named change of the defaults: the fields it does not name keep Recipe's.
    for name, recipe in RECIPES.items():
        changed = {f.name for f in dataclasses.fields(Recipe) if getattr(recipe, f.name) != getattr(Recipe(), f.name)}
        assert changed <= {"steps", "batch_size", "lr", "min_lr", "warmup", "optimizer", "eval_interval",
                           "eval_iters", "eval_at_start", "eval_train"}, name
    assert RECIPES["published"] == Recipe()
    assert dataclasses.replace(TrainConfig(), block_size=64, eval_iters=100) == TRAINING
    assert (ABLATION.steps, ABLATION.batch_size, ABLATION.lr) == (5000, 32, 1e-3)


def test_the_rules_of_the_model_are_on_its_fields():
    ruled = {f.name for f in dataclasses.fields(GPTConfig) if f.metadata["rule"]}
    assert ruled == {"vocab_size", "block_size", "n_layer", "n_head", "n_embd", "dropout"}


@pytest.mark.parametrize("main, argv, message", [
    (ch01.main, ["--eval-iters", "0"], "argument --eval-iters: must be positive (a whole number >= 1 or 'all'), "
                                       "got '0'"),
    (ch01.main, ["--lr", "2"], "argument --lr: must be a finite number > 0 and <= 1, got '2'"),
    (ch02.main, ["--n-embd", "0"], "argument --n-embd: must be positive (a whole number >= 1), got '0'"),
    (ch02.main, ["--dropout", "1"], "argument --dropout: must be a finite number >= 0 and < 1, got '1'"),
    (ch03.main, ["train", "--n-layer", "-1"], "argument --n-layer: must be positive (a whole number >= 1), got '-1'"),
    (ch03.main, ["train", "--optimizer", "sgd"], "argument --optimizer: invalid choice: 'sgd'"),
    (ch03.main, ["train", "--min-lr", "nan"], "argument --min-lr: must be a finite number >= 0 and <= 1, got 'nan'"),
    (ch03.main, ["train", "--device", "tpu"], "argument --device: must be auto, cpu, cuda, cuda:N or mps"),
    (ch03.main, ["train", "--dtype", "int8"], "argument --dtype: invalid choice: 'int8'"),
    (ch03.main, ["sample", "--seed", "-1"], "argument --seed: must be a whole number >= 0 and <= 4,294,967,295"),
    (ch03.main, ["ablation", "--steps", "0"], "argument --steps: must be positive (a whole number >= 1), got '0'"),
])
def test_a_bad_value_of_a_generated_option_is_one_line_and_status_2(main, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err


def test_options_given_change_only_their_fields():
    t = subparser(ch03.build_parser(), "train")
    args = t.parse_args(["--recipe", "fast", "--steps", "30", "--eval-iters", "all", "--no-bias", "--seed", "5"])
    recipe = from_args(args, RECIPES[args.recipe])
    assert recipe == dataclasses.replace(RECIPES["fast"], steps=30, eval_iters=None, seed=5)
    shape = from_args(args, GPTConfig())
    assert shape == GPTConfig(bias=False)
    plain = from_args(t.parse_args([]), RECIPES["baseline"])
    assert plain == RECIPES["baseline"] and plain.seed == DEFAULT_SEED and plain.dtype == "auto"
    args = ch01.build_parser().parse_args(["--steps", "7", "--seed", "9"])
    assert from_args(args, ch01.DEFAULTS) == TrainConfig(steps=7, seed=9)


def test_the_floor_declares_a_setting_once():
    @dataclasses.dataclass
    class Toy:
        width: int = setting(8, positive_int, "how wide, 100% of it")
        name: str = setting("a", help="which one", choices=("a", "b"))
        tied: bool = setting(False, help="tie them")
        hidden: float = setting(0.5, help="not an option", flag=False)

        def __post_init__(self):
            check_fields(self)

    parser = CourseParser(prog="toy")
    add_flags(parser, Toy, title="toy")
    add_run_flags(parser, threads=True)
    page = one_line(parser.format_help())
    assert "how wide, 100% of it; positive (a whole number >= 1) (default: 8)" in page  # a % is printed as is
    assert "--tied" in page and "--hidden" not in page and "--threads N" in page
    assert f"(default: {DEFAULT_SEED})" in page
    args = parser.parse_args(["--width", "3", "--tied"])
    assert from_args(args, Toy()) == Toy(width=3, tied=True)
    assert vars(parser.parse_args([]))["device"] == "auto"
    with pytest.raises(CourseError, match="width must be positive"):
        Toy(width=0)
    with pytest.raises(CourseError, match="name must be one of a, b, got 'c'"):
        Toy(name="c")
    with pytest.raises(CourseError, match="tied must be true or false, got 'yes'"):
        Toy(tied="yes")
    assert [number_text(x) for x in (1e-2, 1.5e-2, 2e-3, 0.5, 3000)] == ["1e-2", "1.5e-2", "2e-3", "0.5", "3000"]


# --------------------------------------------------------------------------- lazy packages, --help without torch

# Each command's help page and `import ch03_gpt` in one fresh interpreter; after each, whether torch came in.
PROBE = """
import io, json, runpy, sys
from contextlib import redirect_stdout
found = {}
for argv in json.loads(sys.argv[1]):
    sys.argv = ["x", *argv[1:]]
    with redirect_stdout(io.StringIO()):
        try:
            runpy.run_module(argv[0], run_name="__main__", alter_sys=True)
        except SystemExit:
            pass
    found[" ".join(argv)] = "torch" in sys.modules
import ch01_bigram, ch02_attention, ch03_gpt
from ch03_gpt import GPTConfig, RECIPES, Recipe
found["import the chapters and their settings"] = "torch" in sys.modules
print(json.dumps(found))
"""
HELP_COMMANDS = [
    ["ch01_bigram", "--help"], ["ch02_attention", "--help"], ["ch03_gpt", "--help"],
    ["ch03_gpt", "train", "--help"], ["ch03_gpt", "sample", "--help"], ["ch03_gpt", "ablation", "--help"],
]


def test_help_and_the_settings_import_no_torch():
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(HELP_COMMANDS)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert len(found) == len(HELP_COMMANDS) + 1
    assert not any(found.values()), found


def test_a_chapter_gives_its_names_on_first_use():
    import importlib

    import ch03_gpt
    from ch03_gpt import GPT, generate

    generate_module, model_module = (importlib.import_module(f"ch03_gpt.{m}") for m in ("generate", "model"))

    assert GPT is model_module.GPT
    assert generate is generate_module.generate  # the function, though a module has the same name
    assert ch03_gpt.generate is generate
    assert set(ch03_gpt.__all__) <= set(dir(ch03_gpt))
    assert "GPT" in dir(ch03_gpt) and "train_gpt" in dir(ch03_gpt)
    assert ch03_gpt.model is model_module  # a submodule, as `import ch03_gpt.model` gives
    with pytest.raises(AttributeError, match="module 'ch03_gpt' has no attribute 'nothing'"):
        ch03_gpt.nothing  # noqa: B018
    with pytest.raises(ImportError, match="cannot import name 'nothing'"):
        from ch03_gpt import nothing  # noqa: F401
    for package in ("ch01_bigram", "ch02_attention", "ch03_gpt"):
        module = sys.modules.get(package) or __import__(package)
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{package}.{name}"


def test_lazy_exports_refuses_a_name_without_a_module(monkeypatch):
    import types

    fake = types.ModuleType("fake_package")
    fake.__all__ = ["a", "b"]
    monkeypatch.setitem(sys.modules, "fake_package", fake)
    with pytest.raises(ImportError, match="fake_package.__all__ names b without a module to import them from"):
        lazy_exports("fake_package", {"one": ("a",)})
