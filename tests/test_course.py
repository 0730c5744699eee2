"""The main job (`python -m course`) in its reduced form: the same seven stages with tiny settings."""

import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import course

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["corpus", "bigram", "gpt", "shards", "pretrain", "instruct", "chat"]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """One quick run of the whole path, shared by the tests below (they copy it before changing it)."""
    out = tmp_path_factory.mktemp("course") / "runs"
    lines = []
    records = course.run_course(out, course.Plan.quick(), device="cpu", progress=False, log=lines.append)
    return out, records, "\n".join(lines)


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_every_stage_runs_in_order_and_learns(first_run):
    out, records, log = first_run
    assert [r.name for r in records] == NAMES
    assert [r.chapter for r in records] == [1, 1, 3, 4, 4, 5, 5]
    assert not any(r.reused for r in records)
    m = {r.name: r.metrics for r in records}
    corpus = (out / "corpus" / "corpus.txt").read_text()
    assert m["corpus"]["characters"] == len(corpus) >= course.Plan.quick().corpus_bytes
    assert m["bigram"]["val_loss"] < m["bigram"]["initial_loss"] - 0.5      # it learned something
    vocab = len(set(corpus))
    assert m["gpt"]["val_loss"] < math.log(vocab)
    assert 0 <= m["gpt"]["names_kept"] <= 1 and 0 <= m["gpt"]["pronouns_kept"] <= 1
    assert m["shards"]["documents"] == corpus.count("\n\n") + 1              # one document per story
    assert m["pretrain"]["val_loss"] < math.log(50257) and m["pretrain"]["steps"] == 20
    assert m["instruct"]["answer_loss"] < 10 and 0 <= m["instruct"]["exact_match"] <= 1
    assert m["chat"]["asked"] == 7 and 0 <= m["chat"]["right"] <= 7
    # each stage's files are where the table says
    for r in records:
        assert Path(r.files.rstrip("/")).exists(), r.files
    assert (out / "gpt" / "model.safetensors").is_file() and (out / "gpt" / "sample.txt").stat().st_size > 100
    assert (out / "pretrain" / "latest.json").is_file()
    answers = json.loads((out / "chat" / "answers.json").read_text())
    assert len(answers) == 7 and len({a["instruction"].split()[0] for a in answers}) > 3  # different tasks
    assert "[7/7] Chapter 5" in log and log.count("model:") == 7
    summary = json.loads((out / "summary.json").read_text())
    assert [s["name"] for s in summary["stages"]] == NAMES
    assert summary["total_seconds"] == pytest.approx(sum(r.seconds for r in records))


def test_summary_table_lists_every_stage(first_run):
    _out, records, _log = first_run
    table = course.summary_table(records).splitlines()
    assert table[0].split() == ["ch", "stage", "result", "time", "files"]
    assert [line.split()[1] for line in table[2:-1]] == NAMES
    assert table[-1].split()[0] == "total"
    assert "val loss" in table[3] and "exact match" in table[7] and "answers right" in table[8]


def test_a_second_run_reuses_everything(first_run, tmp_path):
    out = _copy(first_run[0], tmp_path / "runs")
    lines = []
    again = course.run_course(out, course.Plan.quick(), device="cpu", progress=False, log=lines.append)
    assert all(r.reused for r in again)
    assert [r.metrics for r in again] == [r.metrics for r in first_run[1]]
    assert sum("reused" in line for line in lines) == 7
    assert "(reused)" in course.summary_table(again)


def test_a_changed_stage_reruns_it_and_everything_after(first_run, tmp_path):
    out = _copy(first_run[0], tmp_path / "runs")
    plan = replace(course.Plan.quick(), instruct_fit=replace(course.Plan.quick().instruct_fit, epochs=1))
    again = course.run_course(out, plan, device="cpu", progress=False, log=lambda *a: None)
    assert [r.reused for r in again] == [True] * 5 + [False] * 2
    back = course.run_course(out, course.Plan.quick(), device="cpu", progress=False, log=lambda *a: None)
    assert [r.reused for r in back] == [True] * 5 + [False] * 2  # the last results are those of the last settings


def test_an_unfinished_or_damaged_stage_is_redone(first_run, tmp_path):
    out = _copy(first_run[0], tmp_path / "runs")
    (out / "pretrain" / "done.json").unlink()            # as if killed after the last checkpoint
    (out / "chat" / "done.json").write_text('{"settings": ')  # as if killed while writing
    again = course.run_course(out, course.Plan.quick(), device="cpu", progress=False, log=lambda *a: None)
    assert [r.reused for r in again] == [True] * 4 + [False] * 3
    # the pretraining resumed from its checkpoint at the last step instead of training again
    assert again[4].metrics["val_loss"] == pytest.approx(first_run[1][4].metrics["val_loss"])
    assert again[4].seconds < first_run[1][4].seconds


def test_fresh_starts_over_and_keeps_other_files(first_run, tmp_path):
    out = _copy(first_run[0], tmp_path / "runs")
    (out / "notes.txt").write_text("mine")
    again = course.run_course(out, course.Plan.quick(), device="cpu", fresh=True, progress=False,
                              log=lambda *a: None)
    assert not any(r.reused for r in again)
    assert (out / "notes.txt").read_text() == "mine"
    assert again[1].metrics == first_run[1][1].metrics  # seeded: the same bigram again


def _cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "course", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)


def test_command_line_prints_the_table_and_refuses_bad_options(tmp_path):
    proc = _cli("--quick", "--no-progress", "--out", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    assert "total" in proc.stdout and "answers right" in proc.stdout and "chat --checkpoint" in proc.stdout
    (tmp_path / "file").write_text("x")
    for bad in (["--out", str(tmp_path / "file")], ["--threads", "0"]):
        proc = _cli(*bad)
        assert proc.returncode == 2 and proc.stderr.startswith("error:") and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert "start over" in _cli("--help").stdout
