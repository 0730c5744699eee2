"""The chapters' exercises: the instructor solutions pass every check, the untouched stubs fail every one.

A chapter adds its exercises by adding one entry to CHAPTERS:
(its checks' module, the students' stubs module, the solutions module).
"""

from __future__ import annotations

import importlib
import io
import os
import re
import subprocess
import sys
import types

import pytest
import torch

from coursekit.exercise_kit import NOT_IMPLEMENTED, ExerciseChecks, main, run_checks

CHAPTERS = {
    "ch01": ("ch01_bigram.exercise_checks", "ch01_bigram.exercises", "ch01_bigram.solutions.exercises"),
    "ch02": ("ch02_attention.exercise_checks", "ch02_attention.exercises", "ch02_attention.solutions.exercises"),
    "ch03": ("ch03_gpt.exercise_checks", "ch03_gpt.exercises", "ch03_gpt.solutions.exercises"),
    "ch04": ("ch04_pretrain.exercise_checks", "ch04_pretrain.exercises", "ch04_pretrain.solutions.exercises"),
    "ch05": ("ch05_finetune.exercise_checks", "ch05_finetune.exercises", "ch05_finetune.solutions.exercises"),
}


def _checks(chapter):
    return importlib.import_module(CHAPTERS[chapter][0]).CHECKS


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_chapter_has_at_least_four_exercises(chapter):
    assert len(_checks(chapter)) >= 4


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_solutions_pass_every_check(chapter):
    out = io.StringIO()
    summary = run_checks(_checks(chapter), importlib.import_module(CHAPTERS[chapter][2]), out=out)
    assert summary.all_passed, out.getvalue()
    assert out.getvalue().count("PASS ") == len(_checks(chapter))


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_untouched_stubs_fail_every_check_as_not_implemented(chapter):
    out = io.StringIO()
    summary = run_checks(_checks(chapter), importlib.import_module(CHAPTERS[chapter][1]), out=out)
    assert summary.passed == [], out.getvalue()
    lines = [line for line in out.getvalue().splitlines()[:-1] if not line.startswith(" ")]  # not the hints
    assert len(lines) == len(_checks(chapter))
    assert all(line.startswith("FAIL ") and line.endswith(f": {NOT_IMPLEMENTED}") for line in lines), lines


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_stubs_module_names_every_exercise(chapter):
    doc = importlib.import_module(CHAPTERS[chapter][1]).__doc__ or ""
    assert "--check" in doc
    assert [name for name in _checks(chapter).names if name not in doc] == []


# --- the checks bite: a typical mistake in each Chapter 1 exercise fails it ---------------------

def _solutions_with(**overrides):
    solutions = importlib.import_module("ch01_bigram.solutions.exercises")
    module = types.ModuleType("mutant")
    module.__dict__.update({k: v for k, v in vars(solutions).items() if not k.startswith("__")})
    module.__dict__.update(overrides)
    return module


def _off_by_one_get_batch(data, batch_size, block_size, generator=None):
    starts = torch.randint(len(data) - block_size - 1, (batch_size,), generator=generator)  # misses the last start
    x = torch.stack([data[i:i + block_size] for i in starts])
    y = torch.stack([data[i + 1:i + block_size + 1] for i in starts])
    return x, y


def _unshifted_get_batch(data, batch_size, block_size, generator=None):
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    x = torch.stack([data[i:i + block_size] for i in starts])
    return x, x.clone()


def _first_position_generate(model, idx, max_new_tokens, temperature=1.0, generator=None):
    for _ in range(max_new_tokens):
        logits, _ = model(idx)
        probs = torch.softmax(logits[:, 0, :] / temperature, dim=-1)
        idx = torch.cat((idx, torch.multinomial(probs, 1, generator=generator)), dim=1)
    return idx


def _no_temperature_generate(model, idx, max_new_tokens, temperature=1.0, generator=None):
    for _ in range(max_new_tokens):
        logits, _ = model(idx)
        idx = torch.cat((idx, torch.multinomial(torch.softmax(logits[:, -1], -1), 1, generator=generator)), dim=1)
    return idx


@torch.no_grad()
def _training_mode_estimate_loss(model, splits, batch_size, block_size, eval_iters=200, generator=None):
    from ch01_bigram.bigram import get_batch
    return {name: sum(model(*get_batch(data, batch_size, block_size, generator))[1].item()
                      for _ in range(eval_iters)) / eval_iters for name, data in splits.items()}


@pytest.mark.parametrize("exercise, override", [
    ("get_batch", {"get_batch": _off_by_one_get_batch}),
    ("get_batch", {"get_batch": _unshifted_get_batch}),
    ("sample_tokens", {"sample_tokens": _first_position_generate}),
    ("sample_tokens", {"sample_tokens": _no_temperature_generate}),
    ("estimate_loss", {"estimate_loss": _training_mode_estimate_loss}),
])
def test_a_typical_mistake_fails_its_check(exercise, override):
    summary = run_checks(_checks("ch01"), _solutions_with(**override), out=None)
    assert summary.failed == [exercise]


# --- the kit itself -----------------------------------------------------------------------------

def test_kit_reports_one_line_per_exercise_and_exit_status(monkeypatch, capsys):
    checks = ExerciseChecks()

    @checks.exercise("good", hints=["unused"])
    def _good(module):
        assert module.value == 1

    @checks.exercise("wrong", hints=["look at value", "value should be 2"])
    def _wrong(module):
        assert module.value == 2, f"value is {module.value}"

    @checks.exercise("crash", hints=["look up the right key"])
    def _crash(module):
        {}["missing"]

    monkeypatch.setitem(sys.modules, "kit_demo", types.SimpleNamespace(value=1))
    assert main(["--check"], checks, "kit_demo", "kit_demo") == 1
    assert capsys.readouterr().out.splitlines() == [
        "PASS good",
        "FAIL wrong: value is 1",
        "     hint 1 of 2: look at value (more: python -m kit_demo --hint wrong)",
        "FAIL crash: KeyError: 'missing'",
        "     hint 1 of 1: look up the right key",
        "1/3 exercises pass",
    ]
    assert main(["good"], checks, "kit_demo", "kit_demo") == 0
    with pytest.raises(ValueError, match="two exercises are named"):
        checks.exercise("good", hints=["again"])
    with pytest.raises(ValueError, match="list of steps"):
        checks.exercise("one_string", hints="a hint")


def test_command_line_exit_statuses():
    def run(*args):
        return subprocess.run([sys.executable, "-m", "ch01_bigram.exercises", *args],
                              check=False, capture_output=True, text=True, timeout=60)

    solved = run("--solutions")
    assert solved.returncode == 0, solved.stdout + solved.stderr
    assert "5/5 exercises pass" in solved.stdout
    stubs = run("--check", "tokenizer")
    assert stubs.returncode == 1
    assert stubs.stdout.startswith(f"FAIL tokenizer: {NOT_IMPLEMENTED}\n     hint 1 of ")
    assert run("--check", "no_such_exercise").returncode == 2


def test_hints_come_one_step_further_each_time_and_never_as_code(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # the steps reached are kept in the cache
    def hint():
        out = subprocess.run([sys.executable, "-m", "ch02_attention.exercises", "--hint", "average_past"],
                             check=True, capture_output=True, text=True, timeout=60, env={**os.environ})
        return out.stdout.strip()
    steps = _checks("ch02").names and next(c for c in _checks("ch02") if c.name == "average_past").hints
    assert hint().startswith(f"average_past, hint 2 of {len(steps)}: {steps[1]}")  # a FAIL line showed step 1
    assert hint().startswith(f"average_past, hint 3 of {len(steps)}: {steps[2]}")
    assert hint().endswith("(the last step)")
    assert (tmp_path / "gpt-course" / "hint_steps.json").is_file()


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_every_exercise_has_hints_in_steps_that_show_no_code(chapter):
    for check in _checks(chapter):
        assert len(check.hints) >= 3, check.name
        for step in check.hints:
            # The telltales of code: a call with arguments, a slice, a method chain, a matrix product.
            assert not re.search(r"\w\(\w|\[[^\]]*:[^\]]*\]|\)\.\w|@", step), (check.name, step)
