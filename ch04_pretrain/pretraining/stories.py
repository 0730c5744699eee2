"""The course's own small GPT: pretrained on the stories, with a byte-pair encoder trained on them.

Chapter 4's notebook builds it step by step (section 2's encoder, `prepare`, `pretrain`) and leaves it in
`runs/ch04/story_gpt`; Chapter 5 fine-tunes it. Where Chapter 4's notebook has not been run,
`pretrain_story_gpt` makes the same model the same way (about half a minute on a CPU).

Why its own tokenizer: at 64 wide, an output layer over GPT-2's 50,257 tokens would be most of the
model's compute; the stories' encoder has 557 ids. And it is byte-level, so it can still read any
text (Chapter 5's reviews and questions), with rarer words cut into more pieces.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ch01_bigram import generate_corpus
from ch03_gpt import GPTConfig
from ch04_pretrain.data_pipeline.bpe import TinyBPE, train_bpe, write_ranks
from ch04_pretrain.data_pipeline.prepare import prepare
from coursekit import CourseError

from .settings import TrainSettings
from .trainer import pretrain

STORY_MERGES = 300            # 556 tokens + <|endoftext|>: about 3.1 bytes per token on the stories
STORY_BPE_CHARACTERS = 100_000  # the merges are learned on the corpus's first 100,000 characters
STORY_GPT_DIR = Path("runs/ch04/story_gpt")  # where the notebooks keep it, under the course's root

# 128 tokens (about 400 characters) hold a whole story, and the longest built-in instruction example (90
# tokens). 400 steps of 16 windows: enough for the model to keep a story's names (the notebook measures it).
STORY_GPT = TrainSettings(
    model=GPTConfig(vocab_size=256 + STORY_MERGES + 1, block_size=128, n_layer=3, n_head=4, n_embd=64),
    batch_size=16, max_steps=400, lr=5e-3, min_lr=5e-4, eval_interval=100, eval_iters=10,
    log_interval=50, dtype="float32")


def train_story_bpe() -> TinyBPE:
    """The stories' byte-pair encoder: STORY_MERGES merges learned on the start of Chapter 1's corpus."""
    return train_bpe(generate_corpus()[:STORY_BPE_CHARACTERS], STORY_MERGES)


def publish_run(run_dir: str | Path, destination: str | Path, replace: bool = True) -> Path:
    """Copy a finished run to `destination`, which appears in one rename, so a reader never sees half a run.

    With replace=False an existing destination is kept (another process made the same run first).
    """
    run_dir, destination = Path(run_dir), Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    if destination.exists() and not replace:
        return destination
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}-", dir=destination.parent))
    try:
        shutil.copytree(run_dir, staging / "run")
        if destination.exists():  # a rename cannot overwrite a folder: move the old one aside first
            os.replace(destination, staging / "old")
        try:
            os.replace(staging / "run", destination)
        except OSError as e:
            if not destination.exists():
                raise CourseError(f"cannot write the run to {destination}: {e.strerror}") from None
            # a concurrent process put its copy there first: keep it
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return destination


def pretrain_story_gpt(destination: str | Path, progress: bool = True, log=print) -> Path:
    """Chapter 4's story GPT, made the notebook's way: encoder, shards, 400 steps; returns its run folder."""
    with tempfile.TemporaryDirectory(prefix="story_gpt-") as work:
        work = Path(work)
        write_ranks(train_story_bpe().ranks(), work / "stories.tiktoken")
        prepare("builtin", work / "data", workers=0, progress=False, log=lambda *a: None,
                tokenizer=work / "stories.tiktoken")
        pretrain(STORY_GPT, work / "data", work / "run", device="cpu", progress=progress, log=log)
        return publish_run(work / "run", destination, replace=False)
