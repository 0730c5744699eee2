"""Chapter 3 exercises, solved (for instructors).

Check them with `python -m ch03_gpt.exercises --solutions`. They are written
out in full, as a model answer to discuss in class, rather than calling the
chapter's own code in model.py, generate.py and train.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ch03_gpt.model import GPTConfig

# Exercise 1 ------------------------------------------------------------------

def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    if k >= logits.shape[-1]:
        return logits.clone()
    kth = torch.topk(logits, k, dim=-1).values[:, -1:]  # (B, 1): each row's k-th largest
    return logits.masked_fill(logits < kth, float("-inf"))  # (B, V)


# Exercise 2 ------------------------------------------------------------------

def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    if p >= 1.0:
        # Rounding in the running sum could otherwise drop a tail token whose mass is ~0.
        return logits.clone()
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V) each
    probs = F.softmax(sorted_logits, dim=-1)                             # (B, V), largest first
    mass_above = probs.cumsum(dim=-1) - probs  # what the better-ranked tokens already cover
    drop_sorted = mass_above >= p              # p was reached without this token
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


# Exercise 3 ------------------------------------------------------------------

def block_forward(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = x + block.attn(block.ln_1(x))  # (B, T, C): tokens gather from each other
    x = x + block.mlp(block.ln_2(x))   # (B, T, C): each token computes on what it gathered
    return x


# Exercise 4 ------------------------------------------------------------------

def cosine_lr(step: int, max_lr: float, min_lr: float, warmup: int, total: int) -> float:
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    progress = (step - warmup) / (total - warmup)  # 0 at the end of warm-up, 1 at `total`
    return min_lr + (max_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


# Exercise 5 ------------------------------------------------------------------

class KVCache:
    def __init__(self, n_layer: int):
        self.keys: list[torch.Tensor | None] = [None] * n_layer
        self.values: list[torch.Tensor | None] = [None] * n_layer

    @property
    def length(self) -> int:
        return 0 if self.keys[0] is None else self.keys[0].shape[2]

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.keys[layer] is not None:
            k = torch.cat((self.keys[layer], k), dim=2)    # (B, nh, T_past + T_new, hs)
            v = torch.cat((self.values[layer], v), dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v


# Exercise 6 ------------------------------------------------------------------

def cached_attention(attn: nn.Module, x_new: torch.Tensor, cache, layer: int = 0) -> torch.Tensor:
    q, k, v = attn.split_heads(x_new)         # each (B, nh, T_new, hs)
    k, v = cache.append(layer, k, v)          # (B, nh, T_all, hs)
    T_new, T_all = q.shape[2], k.shape[2]
    T_past = T_all - T_new                    # tokens cached before this step
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, nh, T_new, T_all)
    # New token i is at position T_past + i: it sees keys 0 .. T_past + i.
    allowed = torch.ones(T_new, T_all, dtype=torch.bool, device=q.device).tril(diagonal=T_past)
    weights = F.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
    return attn.merge_heads(weights @ v)      # (B, nh, T_new, hs) -> (B, T_new, C)


# Exercise 7 ------------------------------------------------------------------

def num_params(cfg: GPTConfig, position_embeddings: bool = True) -> int:
    C, b = cfg.n_embd, int(cfg.bias)

    def linear(n_in: int, n_out: int) -> int:
        return n_in * n_out + b * n_out

    layer_norm = C + b * C
    block = (2 * layer_norm
             + linear(C, 3 * C) + linear(C, C)        # attention: q, k, v together, then the projection
             + linear(C, 4 * C) + linear(4 * C, C))   # feed-forward
    n = cfg.vocab_size * C                            # wte, which is also lm_head
    n += cfg.n_layer * block + layer_norm             # the blocks and ln_f
    if position_embeddings:
        n += cfg.block_size * C                       # wpe
    return n
