"""Chapter 2 exercises, solved (for instructors).

Check them with `python -m ch02_attention.exercises --solutions`. They are
written out in full, as a model answer to discuss in class, rather than calling
the chapter's own functions in attention.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# Exercise 1 ------------------------------------------------------------------

def average_past(x: torch.Tensor) -> torch.Tensor:
    T = x.shape[1]
    weights = torch.tril(torch.ones(T, T, dtype=x.dtype, device=x.device))  # (T, T), 1 on and below the diagonal
    weights = weights / weights.sum(dim=1, keepdim=True)  # row t: 1/(t+1) on its first t+1 columns
    return weights @ x  # (T, T) @ (B, T, C) -> (B, T, C)


# Exercise 2 ------------------------------------------------------------------

def attention_weights(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    T, hs = q.shape[-2], q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(hs)  # (B, T, hs) @ (B, hs, T) -> (B, T, T)
    future = torch.triu(torch.ones(T, T, dtype=torch.bool, device=q.device), diagonal=1)
    # -inf becomes exactly 0 after the softmax, so no weight reaches a later position.
    return F.softmax(scores.masked_fill(future, float("-inf")), dim=-1)


# Exercise 3 ------------------------------------------------------------------

class Head(nn.Module):
    def __init__(self, n_embd: int, head_size: int):
        super().__init__()
        self.key = nn.Linear(n_embd, head_size, bias=False)
        self.query = nn.Linear(n_embd, head_size, bias=False)
        self.value = nn.Linear(n_embd, head_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.query(x), self.key(x), self.value(x)  # each (B, T, hs)
        weights = attention_weights(q, k)                     # (B, T, T)
        return weights @ v                                    # (B, T, hs)


# Exercise 4 ------------------------------------------------------------------

def split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    B, T, C = x.shape
    if C % n_head != 0:
        raise ValueError(f"{C} channels do not split into {n_head} heads")
    # Cut each position's channels into heads first, then bring the head dimension forward.
    return x.view(B, T, n_head, C // n_head).transpose(1, 2)  # (B, nh, T, hs)


def merge_heads(y: torch.Tensor) -> torch.Tensor:
    B, nh, T, hs = y.shape
    # After the transpose the memory is no longer in (B, T, C) order, so view needs a copy first.
    return y.transpose(1, 2).contiguous().view(B, T, nh * hs)  # (B, T, C)


# Exercise 5 ------------------------------------------------------------------

def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    T_q, T_k, hs = q.shape[-2], k.shape[-2], q.shape[-1]
    if T_q > T_k:
        raise ValueError(f"{T_q} queries but only {T_k} keys: some query would have nothing to look at")
    scores = q @ k.transpose(-2, -1) / math.sqrt(hs)  # (B, nh, T_q, T_k)
    # The queries are the last T_q positions: query i may see keys up to T_k - T_q + i.
    allowed = torch.tril(torch.ones(T_q, T_k, dtype=torch.bool, device=q.device), diagonal=T_k - T_q)
    weights = F.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
    return weights @ v  # (B, nh, T_q, T_k) @ (B, nh, T_k, hs) -> (B, nh, T_q, hs)
