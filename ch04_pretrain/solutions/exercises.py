"""Chapter 4 exercises, solved (for instructors).

Check them with `python -m ch04_pretrain.exercises --solutions`. They are
written out in full, as a model answer to discuss in class, rather than calling
the chapter's own code in bpe.py, prepare.py, loader.py, trainer.py and memory.py.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from itertools import pairwise

import numpy as np
import torch
import torch.nn as nn

from ch03_gpt import GPTConfig

# Exercise 1 ------------------------------------------------------------------

def most_frequent_pair(ids: list[int]) -> tuple[int, int]:
    if len(ids) < 2:
        raise ValueError(f"need at least two ids to find a pair, got {len(ids)}")
    counts = Counter(pairwise(ids))
    # Highest count first; among equal counts the smallest pair, whatever order the Counter keeps.
    return min(counts, key=lambda pair: (-counts[pair], pair))


def merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2  # skip both halves, so matches never overlap
        else:
            out.append(ids[i])
            i += 1
    return out


# Exercise 2 ------------------------------------------------------------------

def is_val(index: int, seed: int = 2357, block: int = 2000, small_block: int = 10,
           min_val_docs: int = 100) -> bool:
    small_span = small_block * min_val_docs  # documents covered by the small blocks
    if index < small_span:
        number = index // small_block
        start, size = number * small_block, small_block
    else:
        j = (index - small_span) // block
        number = min_val_docs + j
        start, size = small_span + j * block, block
    digest = hashlib.blake2b(f"{seed}/{number}".encode(), digest_size=8).digest()
    return index - start == int.from_bytes(digest, "little") % size


# Exercise 3 ------------------------------------------------------------------

def get_batch(tokens: np.ndarray, batch_size: int, block_size: int,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    n = len(tokens)
    if n <= block_size:
        raise ValueError(f"{n} tokens cannot hold a window of {block_size} tokens plus its target")
    starts = torch.randint(n - block_size, (batch_size,), generator=generator).tolist()  # (B,)
    # One slice of T + 1 tokens per row gives both the inputs and the targets.
    windows = np.stack([tokens[i:i + block_size + 1] for i in starts]).astype(np.int64)  # (B, T + 1)
    x = torch.from_numpy(windows[:, :-1].copy())  # (B, T)
    y = torch.from_numpy(windows[:, 1:].copy())   # (B, T)
    return x, y


# Exercise 4 ------------------------------------------------------------------

def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    trainable = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in trainable if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in trainable if p.dim() < 2], "weight_decay": 0.0},
    ]


# Exercise 5 ------------------------------------------------------------------

def accumulate_gradients(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    k = len(batches)
    if k == 0:
        raise ValueError("need at least one micro-batch")
    total = torch.zeros(())
    for x, y in batches:
        _, loss = model(x, y)
        # mean over the big batch = sum over micro-batches of (micro-batch mean / k), when they are equal sizes
        (loss / k).backward()
        total += loss.detach() / k
    return total


# Exercise 6 ------------------------------------------------------------------

def training_state_bytes(cfg: GPTConfig) -> dict[str, int]:
    C, L = cfg.n_embd, cfg.n_layer
    embeddings = cfg.vocab_size * C + cfg.block_size * C  # wte (also the head) + wpe
    layer_norm = 2 * C
    attention = (C * 3 * C + 3 * C) + (C * C + C)
    feed_forward = (C * 4 * C + 4 * C) + (4 * C * C + C)
    per_layer = 2 * layer_norm + attention + feed_forward  # = 12 C^2 + 13 C
    n = embeddings + L * per_layer + layer_norm
    sizes = {"parameters": 4 * n, "gradients": 4 * n, "optimizer": 2 * 4 * n}
    sizes["total"] = sum(sizes.values())
    return sizes
