"""Chapter 1's command line: every bad input gives ONE line naming the problem and exit status 2.

Each case runs in-process through `run_cli(main, argv)`, exactly what
`python -m ch01_bigram` does. A subset also runs as a learner runs it,
`python -m ch01_bigram ...` in a subprocess, to show there is no traceback
end to end; starting Python and importing torch costs a second or two each, so
the module fixture starts those commands at once and the tests read their results.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ch01_bigram.cli import main
from coursekit import run_cli

ROOT = Path(__file__).resolve().parents[1]
# A short run; a case's own arguments come after these and override them (argparse keeps the last value).
FAST = ["--steps", "20", "--eval-interval", "10", "--eval-iters", "2", "--no-progress"]

# name -> (extra arguments, a fragment the error line must contain); "{tmp}" is the case folder.
ERROR_CASES = {
    "missing file": (["--corpus", "{tmp}/nope.txt"], "corpus file not found: {tmp}/nope.txt"),
    "directory": (["--corpus", "{tmp}"], "corpus path is a directory"),
    "empty file": (["--corpus", "{tmp}/empty.txt"], "corpus file is empty: {tmp}/empty.txt"),
    "short file": (["--corpus", "{tmp}/short.txt"], "the corpus has 5 characters, fewer than block size + 1 = 9"),
    "short val split": (["--corpus", "{tmp}/twenty.txt"], "the validation split has 2 tokens"),
    "not utf-8": (["--corpus", "{tmp}/latin1.txt"], "is not UTF-8 text (byte 0xe9 at offset 3)"),
    "block size 0": (["--block-size", "0"], "argument --block-size: must be positive (a whole number >= 1), got '0'"),
    "block size negative": (["--block-size", "-4"], "argument --block-size: must be positive"),
    "batch size 0": (["--batch-size", "0"], "argument --batch-size: must be positive (a whole number >= 1), got '0'"),
    "batch size negative": (["--batch-size", "-1"], "argument --batch-size: must be positive"),
    "steps 0": (["--steps", "0"], "argument --steps: must be positive (a whole number >= 1), got '0'"),
    "steps not whole": (["--steps", "1e3"], "argument --steps: must be positive (a whole number >= 1), got '1e3'"),
    "lr 0": (["--lr", "0"], "argument --lr: must be a finite number > 0 and <= 1, got '0'"),
    "lr nan": (["--lr", "nan"], "argument --lr: must be a finite number > 0 and <= 1, got 'nan'"),
    "lr inf": (["--lr", "inf"], "argument --lr: must be a finite number > 0 and <= 1, got 'inf'"),
    "lr huge": (["--lr", "1e30"], "argument --lr: must be a finite number > 0 and <= 1, got '1e30'"),
    "seed negative": (["--seed", "-1"], "argument --seed: must be a whole number >= 0 and <= 4,294,967,295"),
    "unknown prompt character": (["--prompt", "Zoé"], "--prompt 'Zoé': character 'é' is not in the tokenizer's"),
    "empty prompt": (["--prompt", ""], "the prompt is empty"),
    "temperature nan": (["--temperature", "nan"], "argument --temperature: must be a finite number >= 0, got 'nan'"),
    "negative temperature": (["--temperature", "-1"], "argument --temperature: must be a finite number >= 0"),
    "negative sample length": (["--sample-length", "-5"],
                               "argument --sample-length: must be a whole number >= 0, got '-5'"),
    "unknown device": (["--device", "tpu"], "argument --device: must be auto, cpu, cuda, cuda:N or mps, got 'tpu'"),
    "corpus not in data dir": (["--corpus", "tinyshakespeare", "--data-dir", "{tmp}"],
                               "tinyshakespeare.txt not found in --data-dir {tmp}"),
}
# Run also as subprocesses: one of each kind of failure, and the successful commands.
SUBPROCESS_ERRORS = ["not utf-8", "block size 0", "unknown prompt character"]
OK_CASES = {
    "builtin": ["--sample-length", "60", "--seed", "3"],
    "file corpus": ["--corpus", "{tmp}/poem.txt", "--block-size", "4", "--batch-size", "8", "--prompt", "ro"],
    "help": ["--help"],
}


def _write_inputs(tmp: Path) -> None:
    (tmp / "empty.txt").write_bytes(b"")
    (tmp / "short.txt").write_text("hello")
    (tmp / "twenty.txt").write_text("abcdefghij" * 2)  # 18 train tokens, 2 val: too few for block 8
    (tmp / "latin1.txt").write_bytes("Caf\u00e9 au lait".encode("latin-1") * 5)
    (tmp / "poem.txt").write_text("roses are red\nviolets are blue\n" * 20)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Start the subprocess commands at once; return name -> (status, stdout, stderr, case folder)."""
    env = {k: v for k, v in os.environ.items() if k != "COURSE_DATA_DIR"}  # no shared copy to fall back on
    env["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))       # never the user's real cache
    env["OMP_NUM_THREADS"] = "1"                                          # tiny model, shared cores
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    cases = {**{n: ERROR_CASES[n][0] for n in SUBPROCESS_ERRORS}, **OK_CASES}
    procs = {}
    for name, args in cases.items():
        tmp = tmp_path_factory.mktemp("case")
        _write_inputs(tmp)
        argv = [a.replace("{tmp}", str(tmp)) for a in args]
        cmd = [sys.executable, "-m", "ch01_bigram", *FAST, *argv]
        procs[name] = (subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True), tmp)
    results = {}
    for name, (proc, tmp) in procs.items():
        out, err = proc.communicate(timeout=300)
        results[name] = (proc.returncode, out, err, tmp)
    return results


def _check_error_line(rc, out, err, expected):
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert rc == 2


@pytest.fixture
def offline_env(monkeypatch, tmp_path):
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)  # no shared copy to fall back on
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # never the user's real cache
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("name", list(ERROR_CASES))
def test_bad_input_gives_one_line_and_status_2(name, tmp_path, capsys, offline_env):
    _write_inputs(tmp_path)
    args, expected = ERROR_CASES[name]
    argv = FAST + [a.replace("{tmp}", str(tmp_path)) for a in args]
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, argv)
    out, err = capsys.readouterr()
    _check_error_line(exit_info.value.code, out, err, expected.replace("{tmp}", str(tmp_path)))
    if name != "short val split":  # the split is only known after the corpus line is printed
        assert out == "", "the CLI should refuse this before it starts working"


@pytest.mark.parametrize("name", SUBPROCESS_ERRORS)
def test_bad_input_in_a_subprocess_gives_one_line_and_status_2(runs, name):
    rc, out, err, tmp = runs[name]
    _check_error_line(rc, out, err, ERROR_CASES[name][1].replace("{tmp}", str(tmp)))
    assert out == ""


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA, so --device cuda is not an error")
def test_cuda_requested_without_cuda(tmp_path, capsys, offline_env):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, FAST + ["--device", "cuda"])
    out, err = capsys.readouterr()
    _check_error_line(exit_info.value.code, out, err, "device 'cuda' requested but CUDA is not available")


def test_temperature_0_is_accepted_as_greedy(tmp_path, capsys, offline_env):
    """Temperature 0 always takes the most likely character, as in every later chapter."""
    run_cli(main, FAST + ["--temperature", "0", "--sample-length", "30"])
    sample = capsys.readouterr().out.split("--- sample ---\n", 1)[1]
    assert len(sample) == 1 + 30 + 1  # the prompt, 30 new characters, print's newline


def test_a_text_without_newline_samples_from_its_first_character(tmp_path, capsys, offline_env):
    (tmp_path / "line.txt").write_text("abcabcabc" * 20)
    run_cli(main, FAST + ["--corpus", str(tmp_path / "line.txt"), "--block-size", "4", "--sample-length", "10"])
    out = capsys.readouterr().out
    assert out.split("--- sample ---\n", 1)[1].startswith("a")


def test_run_on_builtin_corpus_prints_losses_and_a_sample(runs):
    rc, out, err, _ = runs["builtin"]
    assert rc == 0, err
    assert err == ""  # --no-progress: no bar on stderr
    lines = out.splitlines()
    assert lines[0].startswith("corpus: builtin (1,000,358 characters, vocabulary of 51); device: ")
    assert [line.split(":")[0] for line in lines[1:4]] == ["step     0", "step    10", "step    20"]
    assert lines[4].startswith("trained 20 steps in ") and "final val loss" in lines[4]
    assert lines[5] == "--- sample ---"
    sample = out.split("--- sample ---\n", 1)[1]
    assert sample.startswith("\n") and len(sample) == 1 + 60 + 1  # the prompt, 60 new characters, print's newline


def test_run_on_a_text_file(runs):
    rc, out, err, _ = runs["file corpus"]
    assert rc == 0, err
    assert out.startswith("corpus: ") and "(620 characters, vocabulary of 14)" in out
    assert out.split("--- sample ---\n")[1].startswith("ro")


def test_help_lists_every_knob(runs):
    rc, out, err, _ = runs["help"]
    assert rc == 0 and err == ""
    for option in ["--corpus", "--data-dir", "--steps", "--batch-size", "--block-size", "--lr", "--device",
                   "--seed", "--sample-length", "--prompt", "--temperature", "--no-progress"]:
        assert option in out, option
    for word in ["tinyshakespeare", "COURSE_DATA_DIR", "learning rate", "cpu", "cuda"]:
        assert word in out, word
