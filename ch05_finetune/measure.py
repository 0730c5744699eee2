"""Cost of a fine-tuning run: time, trainable parameters, and memory.

Peak memory is Chapter 4's measurement (`ch04_pretrain.pretraining.peak_memory`):
on a CPU the growth of the process's peak resident set (Linux's VmHWM, reset
through /proc/self/clear_refs before the run), on CUDA torch's own peak
counter. Both include activations. The "training state" is counted exactly:
weights, plus gradients and AdamW's two moment buffers for each trainable
parameter.
"""

from __future__ import annotations

import time

import torch

from ch04_pretrain.pretraining.peak_memory import peak_memory_bytes, reset_peak_memory


def training_state_bytes(model: torch.nn.Module) -> int:
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return total + 3 * trainable  # weights; gradient + 2 AdamW moments per trainable number


def measure(fn, device: str = "cpu") -> tuple[object, dict]:
    """Run `fn()`; return its result and {seconds, peak_mb} (peak_mb None where it cannot be measured)."""
    measurable = reset_peak_memory(device)  # the peak is now what the process holds
    before = peak_memory_bytes(device)
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    peak = (peak_memory_bytes(device) - before) / 2**20 if measurable else None
    return result, {"seconds": seconds, "peak_mb": peak}
