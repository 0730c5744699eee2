"""Every notebook's checks hold on a numeric path other than the one its outputs were saved on.

nbval re-runs each notebook and compares its saved outputs, which is only
fair for outputs that every CPU reproduces. What depends on a long
floating-point trajectory (a loss after training, an accuracy, a sample) is
shown without being compared, and a check cell beside it asserts the claim
the prose makes about it, within a band. Those bands must hold on any CPU;
a different CPU moves a trajectory about as much as a different seed does,
so this test runs each notebook again with every torch seed shifted and
fails if any cell raises, a check cell above all. It also takes the number
format a CPU without bfloat16 hardware would, so both kinds of CPU are covered.

The run happens in a copy of the course, so that nothing it caches or writes
(Chapter 5's small pretrained model, say) reaches the copy nbval checks.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("ch0*/*.ipynb"))
SHIFT = 7919  # added to every seed: a different trajectory through the same code

# Runs before the notebook's first cell. Every way the course seeds torch, NumPy and Python's global
# generator gets SHIFT added; data generators (random.Random(seed) instances) are left alone, so the
# built-in corpus and its counts stay the same. And the number-format policy answers as on a CPU
# without bfloat16 hardware, so a notebook saved where `auto` means bfloat16 is checked in float32 too.
PERTURB = f"""
import os as _os, sys as _sys
_sys.path.insert(0, _os.path.dirname(_os.getcwd()))  # the course's root, as the notebook's first cell does
import coursekit.hardware as _hardware
_hardware.cpu_has_fast_bf16 = lambda: False
import random as _random, numpy as _np, torch as _torch
_SHIFT = {SHIFT}
_manual_seed, _np_seed, _py_seed = _torch.manual_seed, _np.random.seed, _random.seed
_torch.manual_seed = lambda seed: _manual_seed(int(seed) + _SHIFT)
_np.random.seed = lambda seed=None: _np_seed(None if seed is None else int(seed) + _SHIFT)
_random.seed = lambda a=None, version=2: _py_seed(a + _SHIFT if isinstance(a, int) else a, version)
class _ShiftedGenerator(_torch.Generator):
    def manual_seed(self, seed):
        return super().manual_seed(int(seed) + _SHIFT)
_torch.Generator = _ShiftedGenerator
"""


def copy_course(dest: Path) -> Path:
    """The course's sources (no runs, data or caches) in `dest`; returns the copy's root."""
    ignore = shutil.ignore_patterns(".git", "runs", "data", "out", "__pycache__", ".ipynb_checkpoints", "*.safetensors")
    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_notebook_checks_hold_with_shifted_seeds(notebook, tmp_path):
    root = copy_course(tmp_path / "course")
    path = root / notebook
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(PERTURB))
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except CellExecutionError as e:
        pytest.fail(f"{notebook} with seeds shifted by {SHIFT}: a cell failed\n{e}", pytrace=False)
