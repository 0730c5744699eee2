"""Every band on a trained figure is backed by a seed sweep, and the sweep is of the code as it is.

A notebook or a test that checks a figure out of training or sampling does it with
`coursekit.claims.claim(name, value, low=..., high=...)`. `python -m coursekit.sweep CHAPTER` reran
that code at 8 or more seed shifts, on two numeric paths, and saved every value in the chapter's
`sweep.json`. Here, without training anything, each band is held to its sweep: it contains every
value seen, and its edge lies at least 4 standard deviations from their mean. A claim that is a coin
toss (right at one seed, wrong at another) fails here, on any machine, even where the saved seed
happened to land on the good side.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from coursekit import claims as claims_module
from coursekit.claims import claim
from coursekit.sweep import ROOT, band_problems, claims_in_code, margin_in_sds

CHAPTERS = sorted(p.name for p in ROOT.glob("ch0*_*") if p.is_dir())


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_claim_is_backed_by_a_sweep_of_the_code_as_it_is(chapter):
    in_code, hashes = claims_in_code(chapter)
    if not in_code:
        pytest.skip(f"{chapter} makes no claim on a trained figure")
    path = ROOT / chapter / "sweep.json"
    assert path.is_file(), f"no sweep backs {chapter}'s claims: run python -m coursekit.sweep {chapter}"
    sweep = json.loads(path.read_text(encoding="utf-8"))
    rerun = f"run python -m coursekit.sweep {chapter}"
    changed = sorted(k for k in {*sweep["code"], *hashes} if sweep["code"].get(k) != hashes.get(k))
    assert not changed, f"{chapter}: the code behind its claims changed since the sweep ({', '.join(changed)}); {rerun}"
    assert sweep["failures"] == [], f"{chapter}: runs of the sweep failed; {rerun} and read what failed"
    recorded = sweep["claims"]
    assert sorted(recorded) == sorted(c["name"] for c in in_code), \
        f"{chapter}: the claims differ from the sweep's; {rerun}"
    problems = []
    for c in in_code:
        r = recorded[c["name"]]
        if (r["where"], r["low_src"], r["high_src"]) != (c["where"], c["low_src"], c["high_src"]):
            problems.append(f"{c['name']}: its band in the code is not the one swept; {rerun}")
        problems += [f"{c['name']}: {p}" for p in band_problems(r)]
    assert not problems, "\n".join(problems)


def test_a_sweep_record_that_is_a_coin_toss_is_refused():
    # The example: four shifts of full fine-tuning against a 90% claim.
    record = {"values": [0.998, 1.0, 0.5, 0.867, 0.99, 0.97, 1.0, 0.95], "low": 0.9, "high": math.inf}
    assert any("outside the band" in p for p in band_problems(record))
    # Every value inside, but the edge only 1.5 sd away: a reader's run would fail one time in fifteen.
    close = {"values": [0.95, 0.96, 0.97, 0.94, 0.96, 0.95, 0.97, 0.96], "low": 0.94, "high": math.inf}
    assert margin_in_sds(close["values"], 0.94, math.inf) < 4
    assert any("sd from the mean" in p for p in band_problems(close))
    backed = {"values": [0.95, 0.96, 0.97, 0.94, 0.96, 0.95, 0.97, 0.96], "low": 0.85, "high": math.inf}
    assert band_problems(backed) == []
    assert any("fewer than" in p for p in band_problems({**backed, "values": backed["values"][:5]}))


def test_claim_asserts_its_band_and_records_during_a_sweep(tmp_path, monkeypatch):
    claim("a figure", 0.5, low=0.4, high=0.6)
    with pytest.raises(AssertionError, match=r"a figure: 0.7, outside its band \[0.4, 0.6\]"):
        claim("a figure", 0.7, low=0.4, high=0.6)
    with pytest.raises(AssertionError):
        claim("not a number", float("nan"), low=0)
    log = tmp_path / "claims.jsonl"
    monkeypatch.setenv(claims_module.LOG_VARIABLE, str(log))
    claim("a figure", 0.7, low=0.4, high=0.6)  # recorded, not asserted: the sweep wants every value
    assert json.loads(log.read_text()) == {"name": "a figure", "value": 0.7, "low": 0.4, "high": 0.6}


def test_perturb_shifts_every_seed_but_leaves_data_generators_alone():
    code = (
        "import random, torch, numpy as np\n"
        "import coursekit.claims as c\n"
        "def draw():\n"
        "    torch.manual_seed(5); a = torch.rand(1).item()\n"
        "    b = torch.rand(1, generator=torch.Generator().manual_seed(5)).item()\n"
        "    np.random.seed(5); c_ = np.random.rand()\n"
        "    random.seed(5); d = random.random()\n"
        "    return a, b, c_, d, random.Random(5).random()\n"
        "before = draw(); c.perturb(3); after = draw()\n"
        "assert all(x != y for x, y in zip(before[:4], after[:4])), (before, after)\n"
        "assert before[4] == after[4]\n"
        "import coursekit.hardware as h\n"
        "c.perturb(0, plain_floats=True); assert h.cpu_has_fast_bf16() is False\n"
    )
    env = dict(os.environ)
    env.pop(claims_module.SHIFT_VARIABLE, None)
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT)


def test_the_code_hash_follows_the_code_not_its_layout(tmp_path, monkeypatch):
    import coursekit.sweep as sweep

    test = tmp_path / "tests" / "test_toy.py"
    test.parent.mkdir()
    monkeypatch.setattr(sweep, "ROOT", tmp_path)
    monkeypatch.setattr(sweep, "notebook_of", lambda chapter: None)
    monkeypatch.setattr(sweep, "test_files_of", lambda chapter: [test])

    def digest(source: str) -> str:
        test.write_text(source)
        return sweep.claims_in_code("toy")[1]["tests/test_toy.py::test_toy"]

    plain = digest("def test_toy():\n    claim('toy: x', 1 + 2, low=0)\n")
    rewrapped = "def test_toy():\n    # a comment\n    claim('toy: x',\n          1 + 2, low=0)  # rewrapped\n"
    assert digest(rewrapped) == plain
    assert digest("def test_toy():\n    claim('toy: x', 1 + 3, low=0)\n") != plain
