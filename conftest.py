"""Shared test setup.

The reference copies of real data sit beside the project at ../shared/data on
the course's own machines (see that folder's README). Where they exist, the
tests and the notebooks that nbval runs read Tiny Shakespeare from there
through COURSE_DATA_DIR; elsewhere the tests that need it skip with a reason.
"""

import os
from pathlib import Path

# The course's test models are tiny: one thread per process is faster than torch's default of
# one per core, and much faster when the machine is busy. Set before torch is imported, so
# that notebook kernels started by nbval inherit it too.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

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


# Notebooks whose saved outputs were made with Tiny Shakespeare (the lecture's figures). Without a local
# copy they would run on the built-in corpus and differ everywhere, so they are skipped with a reason.
NEEDS_TINYSHAKESPEARE = {"ch03_gpt/gpt.ipynb"}


def pytest_collection_modifyitems(config, items):
    from ch01_bigram.data import TINYSHAKESPEARE, find_local
    from coursekit import CourseError

    try:
        if find_local(TINYSHAKESPEARE) is not None:
            return
        why = "Tiny Shakespeare is not on this machine"
    except CourseError as e:  # e.g. COURSE_DATA_DIR holds a different file under its name
        why = str(e)
    skip = pytest.mark.skip(reason=f"{why}, and this notebook's saved outputs come from it: run "
                                   "`python -m ch01_bigram --corpus tinyshakespeare` once to download it, or set "
                                   "COURSE_DATA_DIR to a folder that holds it")
    for item in items:
        path = Path(item.fspath).resolve()
        notebook = getattr(item, "callspec", None) and item.callspec.params.get("notebook")  # the perturbed rerun
        if (path.is_relative_to(ROOT) and path.relative_to(ROOT).as_posix() in NEEDS_TINYSHAKESPEARE
                or notebook in NEEDS_TINYSHAKESPEARE):
            item.add_marker(skip)
