"""Chapter 1 exercises: write the bigram's machinery yourself.

Replace each `raise NotImplementedError` with your code, then check your work:

    python -m ch01_bigram.exercises --check              # every exercise
    python -m ch01_bigram.exercises --check get_batch    # just one

Each exercise prints PASS, or FAIL with a hint and what went wrong. Do them in
order: 1 tokenizer, 2 get_batch, 3 bigram_forward, 4 estimate_loss, 5 sample_tokens.
Only torch and torch.nn.functional are needed; the chapter's notebook
(bigram.ipynb) explains every idea. Try not to peek at bigram.py.
"""

from __future__ import annotations

import sys

import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: F401  (you will need it)

# Exercise 4 draws its batches with the chapter's own get_batch, so that it works
# before your exercise 2 does.
from ch01_bigram.bigram import get_batch as course_get_batch  # noqa: F401

# --------------------------------------------------------------------------- #
# Exercise 1: tokenizer
# --------------------------------------------------------------------------- #

class CharTokenizer:
    """A character-level tokenizer: each distinct character of a text gets an integer id.

    `CharTokenizer(text)` builds the vocabulary from `text`: its distinct
    characters, SORTED (so "hello" gives ['e', 'h', 'l', 'o'] and 'e' has id 0).

    * `vocab_size` (a property): how many distinct characters there are.
    * `encode(text) -> list[int]`: the id of each character, in order.
      A character missing from the vocabulary raises `ValueError` (or its
      subclass `ch01_bigram.CourseError`).
    * `decode(ids) -> str`: the inverse; `ids` may be a list of ints or a 1-D
      tensor of ints (`int(i)` turns a 0-d tensor into an int).

    `decode(encode(s)) == s` for every string `s` made of the text's characters.
    """

    def __init__(self, text: str):
        raise NotImplementedError

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids) -> str:
        raise NotImplementedError


# --------------------------------------------------------------------------- #
# Exercise 2: get_batch
# --------------------------------------------------------------------------- #

def get_batch(data: torch.Tensor, batch_size: int, block_size: int,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw `batch_size` random windows of `block_size` tokens from `data`, and their targets.

    `data` is a 1-D tensor of token ids (dtype long), N tokens long.
    Returns `(x, y)`, both of shape (batch_size, block_size) and dtype long:

    * each row of `x` is `data[i : i + block_size]` for a random start `i`;
    * the same row of `y` is `data[i + 1 : i + block_size + 1]`, the token that
      follows each input token (the one-step shift).

    Every start that keeps the target inside the data must be possible, from 0
    up to and including N - block_size - 1, and none beyond it. Draw the
    starts with `torch.randint(..., generator=generator)`, so that the same
    seeded generator gives the same batch (with `generator=None`, torch's
    global generator is used).
    """
    raise NotImplementedError


# --------------------------------------------------------------------------- #
# Exercise 3: the bigram model's forward pass, with its loss
# --------------------------------------------------------------------------- #

class BigramLanguageModel(nn.Module):
    """Predicts the next token from the current one only.

    `__init__` is written for you: row i of `token_embedding_table`
    (a (V, V) table) holds the logits (scores) of the token that follows token i.
    """

    def __init__(self, vocab_size: int):
        super().__init__()
        self.token_embedding_table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """Return `(logits, loss)`.

        `idx` holds token ids, shape (B, T). `logits` has shape (B, T, V):
        position (b, t) holds the table's row for token idx[b, t].

        If `targets` (B, T) is given, `loss` is the mean cross-entropy between
        the logits at every position and the target there, a 0-d tensor
        (hint: `F.cross_entropy` wants (N, V) logits and (N,) targets, so
        flatten B and T together). If `targets` is None, `loss` is None.
        """
        raise NotImplementedError


# --------------------------------------------------------------------------- #
# Exercise 4: estimate_loss
# --------------------------------------------------------------------------- #

@torch.no_grad()
def estimate_loss(model: nn.Module, splits: dict[str, torch.Tensor], batch_size: int, block_size: int,
                  eval_iters: int = 200, generator: torch.Generator | None = None) -> dict[str, float]:
    """The model's mean loss over `eval_iters` random batches of each split.

    `splits` maps a name to its data, e.g. {"train": train_data, "val": val_data}.
    Returns a dict with the same keys whose values are Python floats: the mean
    of the `eval_iters` losses of that split.

    * Draw each batch with `course_get_batch(data, batch_size, block_size, generator)`,
      split after split in the order of `splits`, so that a seeded generator
      makes the estimate repeatable.
    * `model(x, y)` returns `(logits, loss)`.
    * Put the model in eval mode while estimating (`model.eval()`; it switches
      off dropout in later chapters) and give it back in the mode it was in
      (`model.training` tells you which; `model.train(flag)` sets it).
    * No gradients are needed: `@torch.no_grad()` above already switches them off.
    """
    raise NotImplementedError


# --------------------------------------------------------------------------- #
# Exercise 5: sampling with temperature
# --------------------------------------------------------------------------- #

@torch.no_grad()
def sample_tokens(model: nn.Module, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Extend each row of `idx` (B, T) by `max_new_tokens` sampled tokens; return (B, T + max_new_tokens).

    One token at a time:
    1. `logits, _ = model(idx)`, shape (B, T', V); keep only the last position's logits, (B, V);
    2. divide them by `temperature` (below 1 sharpens the distribution, above 1 flattens it);
    3. softmax into probabilities and draw one token per row with
       `torch.multinomial(probs, num_samples=1, generator=generator)`, (B, 1);
    4. append it to `idx` (`torch.cat` along dim 1).

    The first T tokens of the result are `idx` unchanged. Temperature 0 is the
    limit of sharpening: take the most likely token (`argmax`) instead of
    drawing one. A negative temperature raises `ValueError` (or
    `ch01_bigram.CourseError`).
    """
    raise NotImplementedError


if __name__ == "__main__":
    from ch01_bigram.exercise_checks import CHECKS
    from coursekit.exercise_kit import main
    raise SystemExit(main(sys.argv[1:], CHECKS, "ch01_bigram.exercises", "ch01_bigram.solutions.exercises"))
