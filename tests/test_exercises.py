"""The chapters' exercises: the untouched stubs fail every check, the hints come in steps, the kit works.

A chapter adds its exercises by adding one entry to CHAPTERS: (its checks' module, the students' stubs
module). That the instructor's solutions pass every check is in test_exercise_solutions.py, which the
student's handout leaves out (see coursekit.handout).
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

from coursekit.exercise_kit import NOT_IMPLEMENTED, ExerciseChecks, main, run_checks

CHAPTERS = {
    "ch01": ("ch01_bigram.exercise_checks", "ch01_bigram.exercises"),
    "ch02": ("ch02_attention.exercise_checks", "ch02_attention.exercises"),
    "ch03": ("ch03_gpt.exercise_checks", "ch03_gpt.exercises"),
    "ch04": ("ch04_pretrain.exercise_checks", "ch04_pretrain.exercises"),
    "ch05": ("ch05_finetune.exercise_checks", "ch05_finetune.exercises"),
}


def _checks(chapter):
    return importlib.import_module(CHAPTERS[chapter][0]).CHECKS


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_chapter_has_at_least_four_exercises(chapter):
    assert len(_checks(chapter)) >= 4


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


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_the_hints_file_holds_the_hints_of_the_chapters_exercises_and_no_others(chapter):
    checks = _checks(chapter)
    assert checks.hints_file is not None and sorted(checks.hint_steps) == sorted(checks.names)


def test_a_hints_file_of_another_shape_is_refused(tmp_path):
    bad = tmp_path / "hints.toml"
    bad.write_text('[get_batch]\nhints = "one string, not steps"\n')
    with pytest.raises(ValueError, match=r"\[get_batch\] needs hints = a list of steps"):
        ExerciseChecks(hints=bad)
    bad.write_text('[get_batch]\nhints = ["a step"]\n')
    with pytest.raises(ValueError, match="top_k: no hints for it in"):
        ExerciseChecks(hints=bad).exercise("top_k")
