"""Val loss and perplexity of any pretrained model, ours or OpenAI's, on prepared shards.

Perplexity = exp(loss): the number of equally likely tokens the model is, on
average, choosing between. Published on OpenWebText's validation text: OpenAI's
GPT-2 124M about 3.12 (it was trained on WebText, a similar but different
corpus); a 124M model trained on OpenWebText itself about 2.85.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ch01_bigram import pick_device
from ch04_pretrain.data_pipeline.loader import ShardDataset
from coursekit import CourseError, check_positive
from coursekit.hardware import resolve_dtype

from .gpt2_weights import load_pretrained
from .trainer import estimate_val_loss


def evaluate(source: str, data_dir: str | Path, split: str = "val", batch_size: int = 8,
             block_size: int | None = None, iters: int = 50, device: str | None = None, dtype: str = "auto",
             seed: int = 0) -> dict:
    """Mean loss of the model `source` (see load_pretrained) over `iters` batches of `split`, and its perplexity."""
    check_positive("iters", iters)
    device = pick_device(device)
    model, encoding, meta = load_pretrained(source, device)
    if encoding is None:
        raise CourseError(f"{source} does not use GPT-2's tokenizer ({meta.get('tokenizer')}); the shards do")
    block_size = block_size or model.config.block_size
    if block_size > model.config.block_size:
        raise CourseError(f"block size {block_size} exceeds the model's {model.config.block_size}")
    dtype = resolve_dtype(dtype, device, model.config.n_embd)
    data = ShardDataset(data_dir, split)
    with torch.no_grad():
        loss = estimate_val_loss(model, data, batch_size, block_size, iters, device, dtype, seed)
    return {"source": meta.get("source", str(source)), "split": split, "loss": loss, "perplexity": math.exp(loss),
            "tokens": batch_size * block_size * iters, "block_size": block_size, "dtype": dtype,
            "parameters": model.num_params()}
