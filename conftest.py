"""Shared test setup.

The reference copies of real data sit beside the project at ../shared/data on
the course's own machines (see that folder's README). Where they exist, the
tests read Tiny Shakespeare from there through COURSE_DATA_DIR; elsewhere the
tests that need it skip with a reason. No notebook needs it: they all train on
the course's built-in stories, so nbval checks every one of them everywhere.
"""

import os
from pathlib import Path

# The course's test models are tiny: one thread per process is faster than torch's default of
# one per core, and much faster when the machine is busy. Set before torch is imported, so
# that notebook kernels started by nbval inherit it too.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

import coursekit.claims

# A seed sweep (python -m coursekit.sweep) runs the trained-figure tests with every seed shifted.
coursekit.claims.perturb_from_environment()

ROOT = Path(__file__).resolve().parent
SHARED_DATA = ROOT.parent / "shared" / "data"

if (SHARED_DATA / "tinyshakespeare.txt").is_file():
    # Set before any notebook kernel starts, so the kernels inherit it.
    os.environ.setdefault("COURSE_DATA_DIR", str(SHARED_DATA))


@pytest.fixture
def shakespeare_dir() -> Path:
    if not (SHARED_DATA / "tinyshakespeare.txt").is_file():
        pytest.skip(f"Tiny Shakespeare reference copy not found at {SHARED_DATA} (users download it instead)")
    return SHARED_DATA


@pytest.fixture
def gpt2_ranks() -> Path:
    path = SHARED_DATA / "gpt2.tiktoken"
    if not path.is_file():
        pytest.skip(f"GPT-2 rank file not found at {path}")
    return path
