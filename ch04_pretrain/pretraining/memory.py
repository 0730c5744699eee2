"""Where a training step's memory goes: estimates, a count of what autograd keeps, and the measured peak.

Four things occupy memory while a GPT trains:

  parameters        N numbers, float32 (4 bytes each) even under autocast: the master copy
  gradients         N numbers, float32
  optimizer state   AdamW keeps two running averages per parameter: 2N float32
  activations       what the forward pass keeps for the backward pass; it grows with
                    batch x block (the tokens in a micro-batch), with depth and width,
                    and with the vocabulary (the logits)

The first three are 16 bytes per parameter whatever the batch. Activations are
the part that batch size, bfloat16 and activation checkpointing move, and
gradient accumulation keeps it at one micro-batch's worth.

Per token and per layer, a block keeps about 16 x n_embd numbers (LayerNorm
inputs and outputs, q, k, v, the attention output, the 4x-wide feed-forward's
GELU input and output). The head keeps the log-softmax of the logits,
vocab_size float32 numbers per token: with GPT-2's 50,257 tokens and a small
width, that is the largest item, and the backward pass briefly adds as much
again for the logits' gradient.
"""

from __future__ import annotations

import ctypes
import gc
from dataclasses import replace

import torch

from ch03_gpt import GPT, GPTConfig, configure_optimizer
from coursekit.hardware import MixedPrecision

from .peak_memory import current_memory_bytes, peak_memory_bytes, reset_peak_memory
from .trainer import enable_activation_checkpointing, forward_backward, optimizer_step

MB = 2**20
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def return_freed_memory_at_once(threshold: int = 64 * 1024) -> bool:
    """Ask glibc to give every freed block of `threshold` bytes or more straight back to the operating system.

    On a CPU, `measure_peak` reads the process's resident size. By default glibc
    keeps large freed blocks for reuse (the size above which a block gets a
    mapping of its own grows as such blocks are freed), so a measurement made
    after a larger one can reuse that memory and read near 0, and the resident
    size lags behind the tensors. With a fixed threshold, each tensor of that
    size or more has its own mapping, returned when it is freed: the resident
    size follows the tensors. It affects the whole process (a little slower:
    more page faults). Returns False, changing nothing, where the C library is
    not glibc (macOS, Windows, musl).
    """
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return False
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold)) and bool(libc.mallopt(M_TRIM_THRESHOLD, threshold))


def estimate_memory(cfg: GPTConfig, batch_size: int, dtype: str = "float32",
                    activation_checkpointing: bool = False) -> dict[str, int]:
    """Bytes of each item for one micro-batch of `batch_size` x block_size tokens, and their total."""
    C, L, V, T = cfg.n_embd, cfg.n_layer, cfg.vocab_size, cfg.block_size
    params = cfg.num_params()  # wte (the tied head), wpe, the blocks, the final LayerNorm
    tokens = batch_size * T
    low = 2 if dtype in ("bfloat16", "float16") else 4  # bytes of a matrix product's input/output under autocast
    # Per token and layer: the two LayerNorm inputs (the residual stream, float32 even under autocast), then
    # the inputs of the four products (LayerNorm outputs, attention output, GELU output: 1 + 1 + 1 + 4 C),
    # q, k, v (3 C) and the GELU's input (4 C) at the products' precision.
    per_layer = 2 * C * 4 + 14 * C * low
    if activation_checkpointing:
        blocks = tokens * L * C * 4  # only each block's input; the backward recomputes one block at a time
    else:
        blocks = tokens * L * per_layer
    # The head keeps its input, the final LayerNorm's input, and the float32 log-softmax of the logits
    # (cross-entropy's backward needs only that, not the logits themselves).
    head = tokens * (C * 4 + C * low + V * 4)
    # Autocast's low-precision copies of the weight matrices (with checkpointing, only the head's survives).
    weights_copy = 0 if low == 4 else (V * C * 2 if activation_checkpointing else params * 2)
    activations = blocks + head + weights_copy
    items = {"parameters": 4 * params, "gradients": 4 * params, "optimizer": 8 * params, "activations": activations}
    items["total"] = sum(items.values())
    # The backward pass briefly holds two more (tokens, vocab) float32 tensors: the gradients of the
    # log-probabilities and of the logits. With a large vocabulary they set the peak.
    items["peak"] = items["total"] + 2 * tokens * V * 4
    return items


def saved_activation_bytes(model: GPT, x: torch.Tensor, y: torch.Tensor, dtype: str = "float32") -> int:
    """Bytes that autograd keeps for the backward pass of one forward, counted exactly (parameters left out).

    A saved-tensor hook sees every tensor the graph stores; tensors sharing
    memory are counted once.
    """
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params and ptr != 0:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), MixedPrecision(str(x.device), dtype).autocast():
        _, loss = model(x, y)
    total = sum(seen.values())
    del loss
    return total


def measure_peak(cfg: GPTConfig, batch_size: int, grad_accum: int = 1, dtype: str = "float32",
                 activation_checkpointing: bool = False, device: str = "cpu", steps: int = 2, seed: int = 0) -> int:
    """The peak memory of `steps` training steps above what the process held before building the model.

    CUDA: the allocator's maximum (tensors only). CPU: the peak resident set
    size (tensors plus whatever the allocator has not handed back yet).
    """
    gc.collect()
    torch.manual_seed(seed)
    before = current_memory_bytes(device)
    reset_peak_memory(device)
    model = GPT(cfg).to(device)
    if activation_checkpointing:
        enable_activation_checkpointing(model)
    optimizer = configure_optimizer(model, 1e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batches = [(torch.randint(cfg.vocab_size, (batch_size, cfg.block_size), generator=g).to(device),
                    torch.randint(cfg.vocab_size, (batch_size, cfg.block_size), generator=g).to(device))
                   for _ in range(grad_accum)]
        forward_backward(model, batches, device, dtype)
        optimizer_step(model, optimizer, 1.0)
    peak = peak_memory_bytes(device) - before
    del model, optimizer, batches
    gc.collect()
    return peak


def memory_table(cfg: GPTConfig, experiments: list[dict], device: str = "cpu", measure: bool = True,
                 steps: int = 1) -> list[dict]:
    """One row per experiment (keys of `measure_peak`: batch_size, grad_accum, dtype, activation_checkpointing):
    the estimate of each item in MB, the activations autograd keeps (counted), and the measured peak."""
    if measure and torch.device(device).type == "cpu":
        return_freed_memory_at_once()  # else a row measured after a larger one can read near 0
    if measure:  # the first training step in a process also pays for one-time allocations: pay them here
        measure_peak(replace(cfg, n_layer=1), batch_size=1, device=device, steps=1)
    rows = []
    for exp in experiments:
        est = estimate_memory(cfg, exp["batch_size"], exp.get("dtype", "float32"),
                              exp.get("activation_checkpointing", False))
        torch.manual_seed(0)
        model = GPT(cfg).to(device)
        if exp.get("activation_checkpointing"):
            enable_activation_checkpointing(model)
        x = torch.randint(cfg.vocab_size, (exp["batch_size"], cfg.block_size), device=device)
        counted = saved_activation_bytes(model, x, x, exp.get("dtype", "float32"))
        del model
        row = {"batch_size": 1, "grad_accum": 1, "dtype": "float32", "activation_checkpointing": False, **exp}
        row.update({f"{k}_mb": v / MB for k, v in est.items()}, counted_activations_mb=counted / MB)
        if measure:
            row["measured_peak_mb"] = measure_peak(cfg, device=device, steps=steps, **exp) / MB
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    head = (f"{'batch':>5} {'accum':>5} {'dtype':>8} {'ckpt':>4} | {'params':>7} {'grads':>7} {'adam':>7} "
            f"{'act est':>8} {'act kept':>8} {'total est':>9} {'peak est':>8}")
    if "measured_peak_mb" in rows[0]:
        head += " | measured peak"
    lines = [head, "-" * len(head)]
    for r in rows:
        ckpt = "yes" if r["activation_checkpointing"] else "no"
        line = (f"{r['batch_size']:>5} {r['grad_accum']:>5} {r['dtype']:>8} {ckpt:>4} | "
                f"{r['parameters_mb']:>7.1f} {r['gradients_mb']:>7.1f} {r['optimizer_mb']:>7.1f} "
                f"{r['activations_mb']:>8.1f} {r['counted_activations_mb']:>8.1f} {r['total_mb']:>9.1f} "
                f"{r['peak_mb']:>8.1f}")
        if "measured_peak_mb" in r:
            line += f" | {r['measured_peak_mb']:>8.1f}"
        lines.append(line)
    notes = ("(MB; act est = activations estimated, act kept = counted from autograd's saved tensors,\n"
             " peak est = total est + the head's gradients during the backward pass)")
    return "\n".join(lines + [notes])


def sweep(cfg: GPTConfig, **base) -> list[dict]:
    """The notebook's experiments: batch size, accumulation, bfloat16 and activation checkpointing, one at a time."""
    b = {"batch_size": 8, **base}
    return [replace_dict(b, batch_size=2), replace_dict(b, batch_size=4), b, replace_dict(b, batch_size=16),
            replace_dict(b, batch_size=2, grad_accum=8), replace_dict(b, dtype="bfloat16"),
            replace_dict(b, activation_checkpointing=True)]


def replace_dict(d: dict, **changes) -> dict:
    return {**d, **changes}
