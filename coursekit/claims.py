"""Checks on figures that come out of training or sampling, and the seed sweeps that back them.

A trained loss or a sampled story differs from run to run, and from one CPU to another about as
much as from one seed to another. So the course never compares such a figure exactly. It makes a
claim about it, a band the figure must lie in:

    claim("the bigram's val loss after 3,000 steps", history.val[-1], low=2.05, high=2.15)

Every band is backed by a sweep. `python -m coursekit.sweep ch01_bigram` reruns the chapter's
notebook and its trained-figure tests at several seeds, on two numeric paths, records each claimed
figure, and writes min / median / max beside each band into the chapter's MEASUREMENTS.md and
`sweep.json`. `tests/test_claims.py` holds every band to its sweep: the band contains every value
the sweep saw, and its edge lies at least `SIGMAS` standard deviations from the sweep's mean, so a
reader's run falls outside it about once in ten thousand runs, not once in twenty.
"""

from __future__ import annotations

import json
import math
import os

SIGMAS = 4.0  # how far a band's edge must lie from the sweep's mean, in the sweep's standard deviations
MIN_SEEDS = 8  # a band is backed by at least this many runs

# Set by the sweep for each run it starts: where to record claims, and how to perturb the run.
LOG_VARIABLE = "COURSE_CLAIMS_LOG"  # a JSON-lines file; when set, claims are recorded, not asserted
SHIFT_VARIABLE = "COURSE_SEED_SHIFT"  # added to every seed the run sets
PLAIN_VARIABLE = "COURSE_PLAIN_FLOATS"  # "1": the number-format policy answers as on a CPU without bfloat16


def claim(name: str, value: float, *, low: float = -math.inf, high: float = math.inf) -> None:
    """Assert that `value` lies in [low, high], the band a seed sweep backs (see the chapter's MEASUREMENTS.md).

    `name` says what the figure is, in words; it is also the key of the band's sweep record, so it is a
    plain string, the same on every run. During a sweep the value is recorded instead of asserted.
    """
    value = float(value)
    log = os.environ.get(LOG_VARIABLE)
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps({"name": name, "value": value, "low": low, "high": high}) + "\n")
        return
    if not low <= value <= high:
        band = f"[{low:.4g}, {high:.4g}]"
        raise AssertionError(f"{name}: {value:.4g}, outside its band {band} "
                             "(the chapter's MEASUREMENTS.md has the sweep)")


def perturb(shift: int, plain_floats: bool = False) -> None:
    """Shift every seed this process sets by `shift`, for a different trajectory through the same code.

    Every way the course seeds torch, NumPy and Python's global generator gets `shift` added, including
    `torch.Generator().manual_seed`. Instances of `random.Random(seed)` are left alone: they make data
    (the built-in corpus, splits), which must stay the same. With `plain_floats` the number-format
    policy answers as on a CPU without bfloat16 hardware, so both kinds of CPU are swept.
    """
    import random

    import numpy as np
    import torch

    from . import hardware

    if plain_floats:
        hardware.cpu_has_fast_bf16 = lambda: False
    if shift == 0:
        return
    manual_seed, np_seed, py_seed = torch.manual_seed, np.random.seed, random.seed
    torch.manual_seed = lambda seed: manual_seed(int(seed) + shift)
    np.random.seed = lambda seed=None: np_seed(None if seed is None else int(seed) + shift)
    random.seed = lambda a=None, version=2: py_seed(a + shift if isinstance(a, int) else a, version)

    class ShiftedGenerator(torch.Generator):
        def manual_seed(self, seed):
            return super().manual_seed(int(seed) + shift)

    torch.Generator = ShiftedGenerator


def perturb_from_environment() -> None:
    """Apply the perturbation a sweep asked for through the environment (nothing when none was asked)."""
    shift = int(os.environ.get(SHIFT_VARIABLE, "0") or 0)
    plain = os.environ.get(PLAIN_VARIABLE) == "1"
    if shift or plain:
        perturb(shift, plain)
