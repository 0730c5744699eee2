"""Chapter 4 exercises: write the pretraining machinery yourself.

Replace each `raise NotImplementedError` with your code, then check your work:

    python -m ch04_pretrain.exercises --check                # every exercise
    python -m ch04_pretrain.exercises --check bpe_merge      # just one

Each exercise prints PASS, or FAIL with a hint and what went wrong. Do them in
order: 1 bpe_merge, 2 split_rule, 3 get_batch, 4 weight_decay_groups,
5 grad_accum, 6 memory_estimate. Only the standard library, numpy and torch
are needed; the chapter's notebook (pretrain.ipynb) explains every idea. Try
not to peek at bpe.py, prepare.py, loader.py, trainer.py and memory.py.
"""

from __future__ import annotations

import hashlib  # noqa: F401  (exercise 2 needs it)
import sys

import numpy as np
import torch
import torch.nn as nn

from ch03_gpt import GPTConfig

# --------------------------------------------------------------------------- #
# Exercise 1: bpe_merge (one step of byte-pair encoding)
# --------------------------------------------------------------------------- #

def most_frequent_pair(ids: list[int]) -> tuple[int, int]:
    """The adjacent pair of ids that occurs most often in `ids`.

    Count every adjacent pair (ids[i], ids[i + 1]); overlapping pairs count
    too, so [7, 7, 7] holds the pair (7, 7) twice. On a tie, return the
    SMALLEST pair (tuples compare element by element), so the answer never
    depends on the order a dict happens to keep. Fewer than two ids: raise
    `ValueError` (there is no pair to merge).
    """
    raise NotImplementedError


def merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of `pair` in `ids` by the single id `new_id`; return a new list.

    Scan left to right; after a match, continue AFTER the matched pair, so the
    matches never overlap: merging (7, 7) in [7, 7, 7] gives [new_id, 7].
    `ids` itself is left unchanged.
    """
    raise NotImplementedError


# --------------------------------------------------------------------------- #
# Exercise 2: split_rule (which documents go to validation)
# --------------------------------------------------------------------------- #

def is_val(index: int, seed: int = 2357, block: int = 2000, small_block: int = 10,
           min_val_docs: int = 100) -> bool:
    """Does document number `index` (0, 1, 2, ... in corpus order) belong to the validation split?

    The documents are grouped in consecutive blocks, numbered 0, 1, 2, ...:
    the first `min_val_docs` blocks hold `small_block` documents each (so a
    small corpus still gets about 10% validation), every later block holds
    `block` documents. Exactly one document per block is validation: the one
    at offset `h % size` inside the block, where `size` is that block's size and

        h = int.from_bytes(hashlib.blake2b(f"{seed}/{number}".encode(), digest_size=8).digest(), "little")

    with `number` the block's number. The decision depends only on the index,
    never on what was read before, so a run can resume in the middle of the
    corpus and still split it the same way.
    """
    raise NotImplementedError


# --------------------------------------------------------------------------- #
# Exercise 3: get_batch from a uint16 token array
# --------------------------------------------------------------------------- #

def get_batch(tokens: np.ndarray, batch_size: int, block_size: int,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Random training windows from a 1-D numpy array of token ids stored as uint16 (as in a shard).

    Returns `(x, y)`, both torch tensors of shape (batch_size, block_size)
    and dtype int64: row b of x is `tokens[i:i + block_size]` for a random
    start i, row b of y is `tokens[i + 1:i + block_size + 1]` (the one-step shift).

    * Draw the starts with `torch.randint(N - block_size, (batch_size,), generator=generator)`
      (N = len(tokens)): every start from 0 to N - block_size - 1 is possible.
    * Convert to int64 (`.astype(np.int64)`) BEFORE making tensors: GPT-2's ids
      go up to 50,256, which a signed 16-bit type cannot hold, and embedding
      lookups and cross-entropy want int64.
    * If N <= block_size no window fits: raise `ValueError`.
    """
    raise NotImplementedError


# --------------------------------------------------------------------------- #
# Exercise 4: weight_decay_groups
# --------------------------------------------------------------------------- #

def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW's two parameter groups: `[{"params": [...], "weight_decay": weight_decay},
    {"params": [...], "weight_decay": 0.0}]`.

    The first group holds every parameter with 2 or more dimensions (weight
    matrices, embeddings); the second every parameter with fewer (biases,
    LayerNorm gains and offsets), which are not decayed. Parameters with
    `requires_grad=False` (frozen) go in neither group. Keep the order of
    `model.parameters()` inside each group. The result can be passed to
    `torch.optim.AdamW(groups, lr=...)`.
    """
    raise NotImplementedError


# --------------------------------------------------------------------------- #
# Exercise 5: grad_accum (gradient accumulation)
# --------------------------------------------------------------------------- #

def accumulate_gradients(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Run forward and backward on each micro-batch so the parameters' `.grad` end up equal to
    those of ONE batch made of all the micro-batches together.

    `batches` is a list of k pairs (x, y), each of shape (B, T); `model(x, y)`
    returns `(logits, loss)` with `loss` the MEAN over the micro-batch's tokens.
    Backward adds into `.grad`, so k plain backwards would give k times the big
    batch's gradient: divide each loss by k before its backward. Do not zero
    the gradients (the caller does, after the optimizer step).

    Returns the mean loss over all k micro-batches as a 0-d tensor without
    gradient (`.detach()`), the same number the one big batch would give.
    An empty list raises `ValueError`.
    """
    raise NotImplementedError


# --------------------------------------------------------------------------- #
# Exercise 6: memory_estimate
# --------------------------------------------------------------------------- #

def training_state_bytes(cfg: GPTConfig) -> dict[str, int]:
    """Bytes that the parameters, their gradients and AdamW's state take while the GPT of `cfg` trains.

    Count the parameters N from the config alone (do not build the model):
    Chapter 3's GPT with biases (cfg.bias is True) has
      * the token embedding wte (vocab_size x n_embd), shared with the output head (weight tying),
      * the position embedding wpe (block_size x n_embd),
      * per layer: two LayerNorms (gain and offset each), the attention's qkv
        projection (n_embd -> 3 n_embd, with bias) and output projection
        (n_embd -> n_embd, with bias), the feed-forward's two Linear layers
        (n_embd -> 4 n_embd -> n_embd, with biases),
      * the final LayerNorm.
    Everything is float32 (4 bytes): the parameters, the gradients (one per
    parameter) and AdamW's two running averages (two per parameter).

    Returns {"parameters": 4N, "gradients": 4N, "optimizer": 8N, "total": 16N}, ints.
    """
    raise NotImplementedError


if __name__ == "__main__":
    from ch04_pretrain.exercise_checks import CHECKS
    from coursekit.exercise_kit import main
    raise SystemExit(main(sys.argv[1:], CHECKS, "ch04_pretrain.exercises", "ch04_pretrain.solutions.exercises"))
