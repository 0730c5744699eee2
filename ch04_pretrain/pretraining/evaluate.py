"""Val loss and perplexity of any pretrained model, ours or OpenAI's, on prepared shards; and a sample of its text.

Perplexity = exp(loss): the number of equally likely tokens the model is, on
average, choosing between. Published on OpenWebText's validation text: OpenAI's
GPT-2 124M about 3.12 (it was trained on WebText, a similar but different
corpus); a 124M model trained on OpenWebText itself about 2.85.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ch03_gpt import generate
from ch04_pretrain.data_pipeline.bpe import tokenizer_sha256
from ch04_pretrain.data_pipeline.loader import ShardDataset
from ch04_pretrain.data_pipeline.prepare import prepared_tokenizer
from coursekit import CourseError, check_positive
from coursekit.hardware import resolve_dtype
from coursekit.runtime import pick_device

from .gpt2_weights import load_pretrained
from .settings import EVAL_BATCH_SIZE, EVAL_BATCHES
from .trainer import estimate_val_loss


def describe_tokenizer(tokenizer) -> str:
    """A checkpoint's tokenizer in a few words, never its whole vocabulary (which can be kilobytes long)."""
    if not isinstance(tokenizer, dict):
        return "none recorded"
    kind = tokenizer.get("type")
    if kind == "gpt2-subset":
        return f"'gpt2-subset', {len(tokenizer.get('ids') or []):,} of GPT-2's ids (Chapter 5's trimmed vocabulary)"
    if kind == "char":
        return f"'char', {len(tokenizer.get('chars') or ''):,} characters"
    if kind == "bpe":
        return f"'bpe', {tokenizer.get('name')!r}: a byte-pair encoding of our own (prepare --tokenizer FILE)"
    return repr(kind)


def evaluate(source: str, data_dir: str | Path, split: str = "val", batch_size: int = EVAL_BATCH_SIZE,
             block_size: int | None = None, iters: int = EVAL_BATCHES, device: str | None = None, dtype: str = "auto",
             seed: int = 0) -> dict:
    """Mean loss of the model `source` (see load_pretrained) over `iters` batches of `split`, and its perplexity."""
    check_positive("iters", iters)
    device = pick_device(device)
    data = ShardDataset(data_dir, split)  # the same checks of the shards as `pretrain` (every shard, both splits)
    data_tokenizer, _ = prepared_tokenizer(data_dir)
    model, encoding, meta = load_pretrained(source, device)
    if encoding is None or tokenizer_sha256(meta.get("tokenizer")) != data_tokenizer["ranks_sha256"]:
        raise CourseError(f"{source} does not use the shards' tokenizer, {data_tokenizer['name']} (its tokenizer: "
                          f"{describe_tokenizer(meta.get('tokenizer'))})")
    block_size = block_size or model.config.block_size
    if block_size > model.config.block_size:
        raise CourseError(f"block size {block_size} exceeds the model's {model.config.block_size}")
    data.check_block_size(block_size)
    dtype = resolve_dtype(dtype, device, model.config.n_embd)
    with torch.no_grad():
        loss = estimate_val_loss(model, data, batch_size, block_size, iters, device, dtype, seed)
    return {"source": meta.get("source", str(source)), "split": split, "loss": loss, "perplexity": math.exp(loss),
            "tokens": batch_size * block_size * iters, "block_size": block_size, "dtype": dtype,
            "parameters": model.num_params()}


def sample(source: str, prompt: str, max_new_tokens: int, temperature: float, top_k: int | None, seed: int,
           device: str | None = None) -> str:
    """`prompt` continued by the model `source` (see load_pretrained), decoded with its byte-pair tokenizer."""
    device = pick_device(device)
    model, encoding, meta = load_pretrained(source, device)
    if encoding is None:
        raise CourseError(f"{source} has no byte-pair tokenizer to sample with (its tokenizer: "
                          f"{describe_tokenizer(meta.get('tokenizer'))})")
    ids = encoding.encode(prompt, allowed_special={"<|endoftext|>"})
    if not ids:
        raise CourseError("the prompt is empty")
    generator = torch.Generator(device=device).manual_seed(seed)
    out = generate(model, torch.tensor([ids], device=device), max_new_tokens, temperature=temperature,
                   top_k=top_k, generator=generator)
    return encoding.decode(out[0].tolist())
