"""Chapter 3 exercises: write the GPT's pieces yourself.

Replace each `raise NotImplementedError` with your code, then check your work:

    python -m ch03_gpt.exercises --check            # every exercise
    python -m ch03_gpt.exercises --check top_k      # just one

Each exercise prints PASS, or FAIL with a hint and what went wrong. The seven
exercises, in order: 1 top_k, 2 top_p (sampling filters), 3 block_forward (the
pre-LayerNorm residual block), 4 cosine_lr (the learning-rate schedule),
5 kv_cache (the cache itself), 6 cached_attention (one attention step with the
cache), 7 num_params (counting a config's parameters by hand). Only torch,
torch.nn.functional and math are needed; the chapter's notebook (gpt.ipynb)
explains every idea. Try not to peek at model.py, generate.py and train.py.
"""

from __future__ import annotations

import math  # noqa: F401  (you will need it)
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: F401  (you will need it)

from ch03_gpt.model import GPTConfig

# --------------------------------------------------------------------------- #
# Exercise 1: top-k filtering
# --------------------------------------------------------------------------- #

def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep each row's `k` largest logits; set every other logit to -inf. (B, V) -> (B, V).

    Each row of `logits` (shape (B, V)) is filtered on its own. A logit equal
    to the row's k-th largest is kept too (so ties may keep more than k).
    With `k >= V` nothing is removed. Do not change `logits` in place: return
    a new tensor. (`torch.topk(...).values` gives the largest values, sorted.)
    """
    raise NotImplementedError


# --------------------------------------------------------------------------- #
# Exercise 2: top-p (nucleus) filtering
# --------------------------------------------------------------------------- #

def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep each row's nucleus: the smallest set of most likely tokens whose probabilities add up to >= p.
    (B, V) -> (B, V), every logit outside the nucleus set to -inf.

    Rank the tokens of a row by probability (softmax of the logits), most
    likely first, and keep them until the kept probability first reaches `p`.
    A token is therefore kept exactly when the probability of the tokens
    ranked above it is still below `p`, so the most likely token is always
    kept. `p` is in (0, 1]; `p = 1` keeps every token. The kept logits keep
    their values (the softmax that follows renormalises them) and their
    places in the row. Do not change `logits` in place.
    (Hints: `torch.sort(..., descending=True)` returns the order too;
    `tensor.scatter(-1, order, values)` puts sorted values back in place.)
    """
    raise NotImplementedError


# --------------------------------------------------------------------------- #
# Exercise 3: the transformer block's forward pass
# --------------------------------------------------------------------------- #

def block_forward(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What `block(x)` computes, written with its submodules. (B, T, C) -> (B, T, C).

    `block` is a `ch03_gpt.Block`, with four submodules: `block.ln_1` and
    `block.ln_2` (LayerNorms), `block.attn` (causal self-attention, called as
    `block.attn(h)` on a (B, T, C) tensor) and `block.mlp` (the feed-forward
    layer). GPT-2's block is pre-LayerNorm: each sublayer reads a normalised
    copy of the residual stream and ADDS its output to the stream:

        first attention (with ln_1), then the feed-forward layer (with ln_2).

    The stream itself is never normalised inside the block.
    """
    raise NotImplementedError


# --------------------------------------------------------------------------- #
# Exercise 4: the learning-rate schedule
# --------------------------------------------------------------------------- #

def cosine_lr(step: int, max_lr: float, min_lr: float, warmup: int, total: int) -> float:
    """The learning rate at `step` (0-based): linear warm-up, then cosine decay. Returns a float.

    * Warm-up, steps 0 .. warmup-1: rise linearly so that step s gets
      max_lr * (s + 1) / warmup (step 0 is not 0, and step warmup-1 is max_lr).
      With `warmup = 0` there is no warm-up.
    * Decay, steps warmup .. total: with progress = (step - warmup) / (total - warmup)
      going from 0 to 1, the rate is min_lr + (max_lr - min_lr) * (1 + cos(pi * progress)) / 2:
      max_lr at step `warmup`, halfway between at mid-decay, min_lr at step `total`.
    * After `total`: min_lr.
    """
    raise NotImplementedError


# --------------------------------------------------------------------------- #
# Exercise 5: the KV cache
# --------------------------------------------------------------------------- #

class KVCache:
    """Keys and values of the tokens seen so far, one (B, n_head, T, head_size) pair per layer.

    * `KVCache(n_layer)`: an empty cache for a model with `n_layer` blocks.
    * `length` (a property): how many tokens are cached (T of layer 0; 0 when empty).
    * `append(layer, k, v)`: add the new tokens' keys and values `k`, `v`, each
      (B, n_head, T_new, head_size), after those already cached for `layer`
      (concatenate along the time dimension, dim 2), store the result, and
      return `(k_all, v_all)`, each (B, n_head, T_past + T_new, head_size).
      Each layer has its own keys and values.

    The chapter's GPT calls `cache.length` and `cache.append(i, k, v)` for each
    block i, so the check runs a real model on your cache.
    """

    def __init__(self, n_layer: int):
        raise NotImplementedError

    @property
    def length(self) -> int:
        raise NotImplementedError

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


# --------------------------------------------------------------------------- #
# Exercise 6: one attention step with the cache
# --------------------------------------------------------------------------- #

def cached_attention(attn: nn.Module, x_new: torch.Tensor, cache, layer: int = 0) -> torch.Tensor:
    """Causal self-attention of the new tokens over the cached ones and themselves. (B, T_new, C) -> (B, T_new, C).

    `attn` is Chapter 2's `CausalSelfAttention`: `attn.split_heads(x)` turns
    (B, T, C) into q, k, v, each (B, n_head, T, head_size), and
    `attn.merge_heads(y)` turns (B, n_head, T, head_size) back into (B, T, C)
    (with the output projection). `cache` is a KV cache (the chapter's, with
    the `append(layer, k, v)` and `length` of exercise 5), holding the keys and
    values of the T_past tokens before `x_new`.

    1. split `x_new` into q, k, v; append k and v to the cache for `layer`;
    2. scores = q @ k_all^T / sqrt(head_size), shape (B, n_head, T_new, T_past + T_new);
    3. mask the future: new token i sits at position T_past + i and may look at
       keys 0 .. T_past + i only (`torch.tril(..., diagonal=...)` helps);
    4. softmax over the keys, weight the values, merge the heads.

    The result must equal the rows T_past .. T_past + T_new - 1 of `attn`
    applied to the whole sequence at once, whether tokens come one at a time or
    several together.
    """
    raise NotImplementedError


# --------------------------------------------------------------------------- #
# Exercise 7: counting parameters
# --------------------------------------------------------------------------- #

def num_params(cfg: GPTConfig, position_embeddings: bool = True) -> int:
    """The number of parameters of `ch03_gpt.GPT(cfg)`, worked out from the config alone (no model built).

    With C = cfg.n_embd, V = cfg.vocab_size: the token embedding (V, C) is also
    the output head (weight tying), so count it once; the position embedding
    is (block_size, C), counted only if `position_embeddings` is True. Each of
    the `n_layer` blocks has two LayerNorms (a gain of C, plus a bias of C when
    `cfg.bias`), attention's c_attn (C -> 3C) and c_proj (C -> C), and the
    feed-forward c_fc (C -> 4C) and c_proj (4C -> C); every Linear has a bias
    only when `cfg.bias`. One more LayerNorm (ln_f) follows the last block.
    GPT-2 small (`gpt2_config("gpt2")`) has 124,439,808.
    """
    raise NotImplementedError


if __name__ == "__main__":
    from ch03_gpt.exercise_checks import CHECKS
    from coursekit.exercise_kit import main
    raise SystemExit(main(sys.argv[1:], CHECKS, "ch03_gpt.exercises", "ch03_gpt.solutions.exercises"))
