"""The notebooks keep the form of a lesson (../notebook style: pace, pictures, claims then evidence, a frame).

These read the saved notebooks as text and run nothing:
- the prose (words in markdown cells) runs 2,500 to 4,000 words;
- at least six concept diagrams, each an image in the chapter's `figures/` folder that its `figures/draw.py`
  draws, shown from a markdown cell with alt text;
- at most three code cells hold nothing but a check;
- the notebook opens with a picture of what the reader builds and ends with a recap.

"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = {
    "ch01_bigram": "bigram.ipynb",
    "ch02_attention": "attention.ipynb",
    "ch03_gpt": "gpt.ipynb",
    "ch04_pretrain": "pretrain.ipynb",
    "ch05_finetune": "finetune.ipynb",
}
PROSE_WORDS = (2_500, 4_000)
MIN_DIAGRAMS = 6
MAX_CHECK_ONLY_CELLS = 3
IMAGE = re.compile(r"!\[([^\]]*)\]\(figures/([\w.-]+\.png)\)")


def cells(chapter: str) -> list[dict]:
    notebook = json.loads((ROOT / chapter / LESSONS[chapter]).read_text(encoding="utf-8"))
    return [{"type": c["cell_type"], "text": "".join(c["source"])} for c in notebook["cells"]]


def is_check_only(code: str) -> bool:
    """A cell that starts with `# check`, or whose statements are all asserts and claims."""
    if code.lstrip().startswith("# check"):
        return True
    statements = [line for line in code.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    starts = [line for line in statements if not line[0].isspace() and not line.startswith((")", "]"))]
    return bool(starts) and all(line.startswith(("assert", "claim(")) for line in starts)


@pytest.mark.parametrize("chapter", sorted(LESSONS))
def test_prose_is_a_lesson_not_an_essay(chapter):
    words = sum(len(c["text"].split()) for c in cells(chapter) if c["type"] == "markdown")
    low, high = PROSE_WORDS
    assert low <= words <= high, f"{chapter}: {words:,} words of prose, outside {low:,}-{high:,}"


@pytest.mark.parametrize("chapter", sorted(LESSONS))
def test_concept_diagrams_are_drawn_by_the_chapter_and_described(chapter):
    shown = [m for c in cells(chapter) if c["type"] == "markdown" for m in IMAGE.findall(c["text"])]
    names = {name for _, name in shown}
    assert len(names) >= MIN_DIAGRAMS, f"{chapter}: {len(names)} concept diagrams, fewer than {MIN_DIAGRAMS}"
    draw = (ROOT / chapter / "figures" / "draw.py").read_text(encoding="utf-8")
    for alt, name in shown:
        assert (ROOT / chapter / "figures" / name).is_file(), f"{chapter}: figures/{name} is shown but missing"
        assert name in draw, f"{chapter}: figures/{name} is not drawn by figures/draw.py"
        assert len(alt.split()) >= 4, f"{chapter}: figures/{name} has no alt text that describes it"


@pytest.mark.parametrize("chapter", sorted(LESSONS))
def test_checks_mostly_sit_beside_their_figures(chapter):
    only = [i for i, c in enumerate(cells(chapter)) if c["type"] == "code" and is_check_only(c["text"])]
    assert len(only) <= MAX_CHECK_ONLY_CELLS, f"{chapter}: cells {only} hold nothing but a check"


@pytest.mark.parametrize("chapter", sorted(LESSONS))
def test_the_lesson_has_a_frame(chapter):
    notebook = cells(chapter)
    opening = next(c["text"] for c in notebook if c["type"] == "markdown")
    assert IMAGE.search(opening), f"{chapter}: the first markdown cell shows no picture of what is built"
    closing = next(c["text"] for c in reversed(notebook) if c["type"] == "markdown")
    assert re.search(r"^#+ .*recap", closing, re.IGNORECASE | re.MULTILINE), f"{chapter}: no recap at the end"


def test_the_check_only_rule_reads_cells_as_a_learner_would():
    assert is_check_only("# check: the loss fell\nclaim('loss', loss, high=2.0)")
    assert is_check_only("assert x == 1\nclaim('loss', loss,\n      high=2.0)")
    assert not is_check_only("loss = train(model)\nclaim('loss', loss, high=2.0)")
    assert not is_check_only("print(loss)")
