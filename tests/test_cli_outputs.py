"""Every command that writes checks its output paths first: one line, exit 2, before any training.

An output path that cannot be written (a file where a folder should be, a
read-only folder, a file under a file) used to be found out after the work:
after the first evaluation (Chapter 3's `train`), after all the training
(Chapter 5's `classify` and `instruct --responses`). Each case here runs the
command in-process, as `python -m ...` does, and must stop before it prints
anything; that it fails before the work is also why the whole file runs in
seconds.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

import ch02_attention.cli as ch02
import ch03_gpt.cli as ch03
import ch04_pretrain.cli as ch04
import ch05_finetune.cli as ch05
import course
from coursekit import CourseError, run_cli
from coursekit.files import check_writable_dir, check_writable_file


@pytest.fixture
def paths(tmp_path):
    """A plain file, a folder named like a picture, a read-only folder, a run folder with a log, and the
    config of a fine-tuned checkpoint."""
    (tmp_path / "file").write_text("a file, not a folder")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        readonly = Path("/sys")  # root writes through permission bits; /sys refuses even root
        if not readonly.is_dir():
            pytest.skip("running as root without /sys: no read-only folder to try")
    else:
        readonly = tmp_path / "readonly"
        readonly.mkdir()
        readonly.chmod(0o555)
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "log.jsonl").write_text('{"step": 0, "loss": 1.0}\n')
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps({"finetune": {"type": "instruct"}}))
    yield {"tmp": tmp_path, "file": tmp_path / "file", "ro": readonly}
    if readonly.parent == tmp_path:
        readonly.chmod(0o755)


# name -> (main, arguments, the option the error line must name, a fragment of the line)
CASES = {
    "ch02 --save-attention is a folder": (ch02.main, ["--save-attention", "{tmp}/folder.png"], "--save-attention",
                                          "is a folder"),
    "ch02 --save-losses in a read-only folder": (ch02.main, ["--compare-bigram", "--save-losses", "{ro}/l.png"],
                                                 "--save-losses", "cannot write"),
    "ch03 train --out is a file": (ch03.main, ["train", "--out", "{file}"], "--out", "is a file, not a folder"),
    "ch03 train --out in a read-only folder": (ch03.main, ["train", "--out", "{ro}/run"], "--out", "cannot"),
    "ch03 train --out under a file": (ch03.main, ["train", "--out", "{file}/run"], "--out", "is a file"),
    "ch03 ablation --plot under a file": (ch03.main, ["ablation", "--plot", "{file}/a.png"], "--plot", "is a file"),
    "ch04 train --out is a file": (ch04.main, ["train", "--data", "{tmp}/nodata", "--out", "{file}"], "--out",
                                   "is a file, not a folder"),
    "ch04 train --out in a read-only folder": (ch04.main, ["train", "--data", "{tmp}/nodata", "--out", "{ro}/run"],
                                               "--out", "cannot"),
    "ch04 bpe --out is a folder": (ch04.main, ["bpe", "--source", "builtin", "--out", "{tmp}/run"], "--out",
                                   "is a folder"),
    "ch04 bpe --out in a read-only folder": (ch04.main, ["bpe", "--source", "builtin", "--out", "{ro}/t.tiktoken"],
                                             "--out", "cannot"),
    "ch04 plot --out is a folder": (ch04.main, ["plot", "{tmp}/run", "--out", "{tmp}/run"], "--out", "is a folder"),
    "ch04 plot --out in a missing folder under a file": (ch04.main, ["plot", "{tmp}/run", "--out", "{file}/x/c.png"],
                                                         "--out", "is a file"),
    "ch04 plot into a read-only folder": (ch04.main, ["plot", "{tmp}/run", "--out", "{ro}/c.png"], "--out", "cannot"),
    "ch05 classify --out is a file": (ch05.main, ["classify", "--out", "{file}"], "--out", "is a file, not a folder"),
    "ch05 classify --plot under a file": (ch05.main, ["classify", "--out", "{tmp}/c", "--plot", "{file}/c.png"],
                                          "--plot", "is a file"),
    "ch05 instruct --responses under a file": (ch05.main, ["instruct", "--out", "{tmp}/i", "--responses",
                                                           "{file}/r.json"], "--responses", "is a file"),
    "ch05 instruct --out in a read-only folder": (ch05.main, ["instruct", "--out", "{ro}/i"], "--out", "cannot"),
    "ch05 evaluate --responses is a folder": (ch05.main, ["evaluate", "--checkpoint", "{tmp}/ckpt", "--device", "cpu",
                                                          "--responses", "{tmp}/run"], "--responses", "is a folder"),
    "course --out is a file": (course.main, ["--out", "{file}"], "--out", "is a file, not a folder"),
    "course --out in a read-only folder": (course.main, ["--out", "{ro}/course"], "--out", "cannot"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_unwritable_outputs_stop_before_the_work(name, paths, capsys, monkeypatch):
    main, argv, option, fragment = CASES[name]
    monkeypatch.chdir(paths["tmp"])  # defaults such as runs/... land in the test's folder
    argv = [a.format(**{k: str(v) for k, v in paths.items()}) for a in argv]
    start = time.perf_counter()
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, argv)
    seconds = time.perf_counter() - start
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2, err
    assert out == "", "nothing should start before the output paths are known to be writable"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {option}") and fragment in lines[0], err
    assert "Traceback" not in err
    assert seconds < 20, f"took {seconds:.1f} s: the check should come before the work"


def test_the_checks_make_missing_folders_and_leave_no_probe(tmp_path):
    out = check_writable_dir(tmp_path / "a" / "b", "--out")
    assert out.is_dir() and list(out.iterdir()) == []
    plot = check_writable_file(tmp_path / "new" / "plot.png", "--plot")
    assert plot.parent.is_dir() and not plot.exists() and list(plot.parent.iterdir()) == []
    (tmp_path / "keep.json").write_text("{}")
    check_writable_file(tmp_path / "keep.json", "--responses")  # an existing file may be replaced; it is untouched
    assert (tmp_path / "keep.json").read_text() == "{}"
    with pytest.raises(CourseError, match=r"^--out .* is a file, not a folder$"):
        check_writable_dir(tmp_path / "keep.json", "--out")


@pytest.mark.skipif(sys.platform == "win32", reason="permission bits")
def test_an_existing_read_only_file_is_refused(tmp_path):
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("root may write any file")
    target = tmp_path / "responses.json"
    target.write_text("{}")
    target.chmod(0o444)
    with pytest.raises(CourseError, match="--responses: cannot write the file"):
        check_writable_file(target, "--responses")
