"""Chapter 2 exercises: write self-attention yourself, one piece at a time.

Replace each `raise NotImplementedError` with your code, then check your work:

    python -m ch02_attention.exercises --check                    # every exercise
    python -m ch02_attention.exercises --check attention_weights  # just one

Each exercise prints PASS, or FAIL with a hint and what went wrong. Do them in
order: 1 average_past, 2 attention_weights, 3 head_forward, 4 split_merge_heads,
5 attend_with_cache. Only torch, torch.nn and torch.nn.functional are needed;
the chapter's notebook (attention.ipynb) explains every idea. Try not to peek
at attention.py.
"""

from __future__ import annotations

import math  # noqa: F401  (you will need it)
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: F401  (you will need it)

# --------------------------------------------------------------------------- #
# Exercise 1: the averaging trick
# --------------------------------------------------------------------------- #

def average_past(x: torch.Tensor) -> torch.Tensor:
    """Each position's mean of itself and every earlier position, with ONE matrix product.

    `x` has shape (B, T, C). Return `out` of the same shape and dtype where
    `out[b, t] = x[b, :t+1].mean(dim=0)`.

    No Python loops: build a (T, T) weight matrix whose row t holds 1/(t+1) in
    its first t+1 columns and 0 after them (`torch.tril` of a matrix of ones,
    each row divided by its sum), then `weights @ x` ((T, T) @ (B, T, C)
    broadcasts over the batch). Make the weights with x's dtype and device.
    """
    raise NotImplementedError


# --------------------------------------------------------------------------- #
# Exercise 2: causal attention weights
# --------------------------------------------------------------------------- #

def attention_weights(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The causal attention weights softmax(q k^T / sqrt(hs)), future positions masked.

    `q` and `k` have shape (B, T, hs): one query and one key per position.
    Return weights of shape (B, T, T) where row t says how much position t
    looks at each position:

    * scores = q @ k^T (transpose k's last two dimensions), divided by
      sqrt(hs), hs = q.shape[-1] (without it the softmax saturates as hs grows);
    * a position may not look at later ones: set the scores above the diagonal
      to -inf (`masked_fill` with a mask from `torch.triu(..., diagonal=1)`
      or the complement of `torch.tril`), so their weight is exactly 0;
    * softmax over the last dimension, so every row sums to 1.
    """
    raise NotImplementedError


# --------------------------------------------------------------------------- #
# Exercise 3: one attention head
# --------------------------------------------------------------------------- #

class Head(nn.Module):
    """One head of causal self-attention. `__init__` is written for you."""

    def __init__(self, n_embd: int, head_size: int):
        super().__init__()
        self.key = nn.Linear(n_embd, head_size, bias=False)
        self.query = nn.Linear(n_embd, head_size, bias=False)
        self.value = nn.Linear(n_embd, head_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, n_embd) -> (B, T, head_size).

        Compute each position's query, key and value with the three Linear
        layers, the (B, T, T) causal weights softmax(q k^T / sqrt(head_size))
        with the future masked (your exercise 2 does this), and return the
        weighted sum of the values: weights @ v.
        """
        raise NotImplementedError


# --------------------------------------------------------------------------- #
# Exercise 4: the multi-head reshape
# --------------------------------------------------------------------------- #

def split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    """(B, T, C) -> (B, n_head, T, head_size), head_size = C // n_head.

    Head h owns the channels h*head_size up to (h+1)*head_size of every
    position: `x[b, t, h*hs:(h+1)*hs]` must land at `out[b, h, t, :]`.
    Hint: view the last dimension as (n_head, head_size), then swap the T and
    n_head dimensions (`transpose(1, 2)`). Viewing x directly as
    (B, n_head, T, head_size) mixes positions up. A C that n_head does not
    divide raises ValueError.
    """
    raise NotImplementedError


def merge_heads(y: torch.Tensor) -> torch.Tensor:
    """(B, n_head, T, head_size) -> (B, T, n_head * head_size), the inverse of `split_heads`.

    `merge_heads(split_heads(x, n)) == x`. Hint: transpose back, then
    `.contiguous()` before `.view(...)` (or use `.reshape(...)`).
    """
    raise NotImplementedError


# --------------------------------------------------------------------------- #
# Exercise 5: attention when earlier keys come from a cache
# --------------------------------------------------------------------------- #

def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal scaled dot-product attention with fewer queries than keys.

    `q` has shape (B, nh, T_q, hs); `k` and `v` have shape (B, nh, T_k, hs),
    with T_q <= T_k. While generating, the keys and values of the earlier
    tokens are kept in a cache, so only the newest T_q tokens bring queries:
    the queries are the LAST T_q of the T_k positions. Query i sits at
    position T_k - T_q + i, so it may look at keys 0 .. T_k - T_q + i and no
    later one (hint: `torch.tril(..., diagonal=T_k - T_q)`).

    Return (B, nh, T_q, hs): softmax(q k^T / sqrt(hs)) with that mask, @ v.
    The result equals the last T_q rows of full attention over all T_k
    positions. T_q > T_k raises ValueError (a query would have no key).
    """
    raise NotImplementedError


if __name__ == "__main__":
    from ch02_attention.exercise_checks import CHECKS
    from coursekit.exercise_kit import main
    raise SystemExit(main(sys.argv[1:], CHECKS, "ch02_attention.exercises", "ch02_attention.solutions.exercises"))
