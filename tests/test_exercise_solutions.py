"""The instructor's solutions pass every check, and a typical mistake fails its check.

This file runs the worked solutions in chNN_*/solutions/, so the student's handout leaves it out
(coursekit.handout.INSTRUCTOR_TESTS): its wrong versions of the exercises are near-answers too.
"""

from __future__ import annotations

import importlib
import io
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from coursekit.exercise_kit import run_checks
from coursekit.grading import find_chapters

# every chapter with exercises, found as the grader finds them: chNN -> its package and its checks
FOUND = find_chapters(Path(__file__).resolve().parent.parent)
CHECKS = {c.short: c.checks for c in FOUND}
PACKAGES = {c.short: c.package for c in FOUND}


def _checks(chapter):
    return CHECKS[chapter]


@pytest.mark.parametrize("chapter", sorted(CHECKS))
def test_solutions_pass_every_check(chapter):
    out = io.StringIO()
    summary = run_checks(_checks(chapter), importlib.import_module(f"{PACKAGES[chapter]}.solutions.exercises"), out=out)
    assert summary.all_passed, out.getvalue()
    assert out.getvalue().count("PASS ") == len(_checks(chapter))


def test_solutions_from_the_command_line():
    solved = subprocess.run([sys.executable, "-m", "ch01_bigram.exercises", "--solutions"],
                            check=False, capture_output=True, text=True, timeout=60)
    assert solved.returncode == 0, solved.stdout + solved.stderr
    assert "5/5 exercises pass" in solved.stdout


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


