"""Chapter 4's and 5's command lines and the main job's: options made from the settings' fields, the shared run
options checked when the command line is parsed, and start-up without torch where nothing needs it."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

import course
from ch03_gpt.config import GPTConfig
from ch04_pretrain import cli as ch04
from ch04_pretrain.pretraining.settings import PRESETS, TrainSettings
from ch05_finetune import cli as ch05
from ch05_finetune.config import CLASSIFY_FIT, INSTRUCT_FIT, FitConfig
from coursekit.settings import DEFAULT_SEED, flag_name

ROOT = Path(__file__).resolve().parents[1]


def _help(main, argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert e.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines: compare words


def _refused(main, argv: list[str], capsys) -> str:
    """The one line an option refused at parse time prints (exit status 2, no traceback)."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error:" in err[0] and "Traceback" not in err[0], err
    return err[0]


def _options(parser, command: str) -> list[str]:
    """Every option string of a subcommand, as often as it is declared."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return [o for a in sub._actions for o in a.option_strings]


def _help_of(cls, name: str) -> str:
    return next(f.metadata["help"] for f in fields(cls) if f.name == name)


def test_ch04_train_options_are_the_fields_with_their_help_and_the_default_presets_values(capsys):
    text = _help(ch04.main, ["train"], capsys)
    tiny = PRESETS[ch04.DEFAULT_PRESET]
    for cls, shown, name in [(TrainSettings, tiny, "max_steps"), (TrainSettings, tiny, "lr"),
                             (GPTConfig, tiny.model, "n_embd"), (GPTConfig, tiny.model, "n_head")]:
        assert re.search(rf"{flag_name(name)} \S+ {re.escape(_help_of(cls, name))}; .*?\(default: "
                         rf"{re.escape(str(getattr(shown, name)))}\)", text), name
    # the run options, once each; the settings they set are not options of their own
    options = _options(ch04.build_parser(), "train")
    assert options.count("--seed") == 1 and options.count("--dtype") == 1
    assert "--vocab-size" not in options and "--no-bias" not in options


def test_ch04_train_settings_are_the_preset_with_what_was_given():
    args = ch04.build_parser().parse_args(["train", "--data", "d", "--preset", "small", "--n-layer", "2",
                                           "--lr", "5e-4", "--seed", "7", "--dtype", "float32"])
    settings = ch04.train_settings(args)
    small = PRESETS["small"]
    assert settings.model.n_layer == 2 and settings.model.n_embd == small.model.n_embd
    assert (settings.lr, settings.seed, settings.dtype) == (5e-4, 7, "float32")
    assert settings.max_steps == small.max_steps and settings.min_lr == small.min_lr
    plain = ch04.train_settings(ch04.build_parser().parse_args(["train", "--data", "d"]))
    assert plain == PRESETS[ch04.DEFAULT_PRESET] and plain.seed == DEFAULT_SEED


@pytest.mark.parametrize("argv", [
    ["train", "--data", "d", "--dtype", "float8"],   # refused by argparse, not in the trainer
    ["evaluate", "gpt2", "--data", "d", "--dtype", "half"],
    ["train", "--data", "d", "--max-steps", "0"],
    ["train", "--data", "d", "--dropout", "1"],
    ["sample", "gpt2", "--device", "gpu"],
    ["prepare", "--source", "builtin", "--out", "o", "--seed", "-1"],
])
def test_ch04_bad_values_stop_at_parse_time_with_one_line(argv, capsys):
    line = _refused(ch04.main, argv, capsys)
    assert argv[-2] in line


def test_ch05_options_show_each_commands_recipe(capsys):
    for command, recipe in (("classify", CLASSIFY_FIT), ("instruct", INSTRUCT_FIT)):
        text = _help(ch05.main, [command], capsys)
        for name in ("epochs", "batch_size", "lr"):
            assert re.search(rf"{flag_name(name)} \S+ {re.escape(_help_of(FitConfig, name))}; .*?\(default: "
                             rf"{re.escape(str(getattr(recipe, name)))}\)", text), (command, name)
        options = _options(ch05.build_parser(), command)
        assert "--weight-decay" not in options and options.count("--seed") == 1


def test_ch05_fit_config_is_the_commands_recipe_with_what_was_given():
    args = ch05.build_parser().parse_args(["instruct", "--epochs", "3", "--seed", "5", "--dtype", "bfloat16"])
    cfg = ch05._fit_config(args)
    assert (cfg.epochs, cfg.seed, cfg.dtype) == (3, 5, "bfloat16")
    assert (cfg.lr, cfg.batch_size) == (INSTRUCT_FIT.lr, INSTRUCT_FIT.batch_size)
    assert ch05._fit_config(ch05.build_parser().parse_args(["classify"])) == CLASSIFY_FIT


@pytest.mark.parametrize("argv", [
    ["classify", "--epochs", "0"],
    ["instruct", "--lr", "nan"],
    ["classify", "--dtype", "float8"],
    ["chat", "--checkpoint", "c", "--device", "tpu"],
])
def test_ch05_bad_values_stop_at_parse_time_with_one_line(argv, capsys):
    line = _refused(ch05.main, argv, capsys)
    assert argv[-2] in line


def test_the_main_jobs_plan_keeps_the_chapters_recipes():
    plan = course.Plan()
    assert plan.seed == DEFAULT_SEED and plan.bigram.steps == 3000 and plan.bigram.eval_interval == 300
    assert plan.pretraining == PRESETS["tiny"]


# Run in a fresh interpreter: this one has imported torch long ago.
HELP_WITHOUT_TORCH = """
import contextlib, io, sys
from ch04_pretrain.cli import main as ch04
from ch05_finetune.cli import main as ch05
from course import main as course
for main, argv in [(ch04, []), *((ch04, [c]) for c in ("bpe", "prepare", "train", "evaluate", "plot", "sample")),
                   (ch05, []), *((ch05, [c]) for c in ("classify", "instruct", "chat", "evaluate")), (course, [])]:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main([*argv, "--help"])
print(sorted(m for m in ("torch", "ch04_pretrain.pretraining.trainer", "ch05_finetune.loop") if m in sys.modules))
"""


def _python(code: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=_env())


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def test_every_help_starts_without_torch():
    proc = _python(HELP_WITHOUT_TORCH)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_prepares_main_process_never_imports_torch(tmp_path):
    out = tmp_path / "shards"
    code = f"""
import sys
from coursekit import run_cli
from ch04_pretrain.cli import main
try:
    run_cli(main, ["prepare", "--source", "builtin", "--builtin-bytes", "20K", "--out", {str(out)!r},
                   "--workers", "1", "--no-progress"])
finally:
    print("torch" in sys.modules)
"""
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"
    assert (out / "manifest.json").is_file()
