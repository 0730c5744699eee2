"""Cost of a fine-tuning run: time, trainable parameters, and memory.

Peak memory on a CPU is measured as the growth of the process's peak
resident set (Linux's VmHWM, reset through /proc/self/clear_refs before the
run); on CUDA, torch's own peak counter. Both include activations. The
"training state" is counted exactly: weights, plus gradients and AdamW's two
moment buffers for each trainable parameter.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import torch


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def training_state_bytes(model: torch.nn.Module) -> int:
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return total + 3 * trainable  # weights; gradient + 2 AdamW moments per trainable number


def measure(fn, device: str = "cpu") -> tuple[object, dict]:
    """Run `fn()`; return its result and {seconds, peak_mb} (peak_mb None where it cannot be measured)."""
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current resident size
        before = _status_kb("VmHWM")
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    if device.startswith("cuda"):
        peak = (torch.cuda.max_memory_allocated() - before) / 2**20
    else:
        after = _status_kb("VmHWM")
        peak = None if before is None or after is None else (after - before) / 1024
    return result, {"seconds": seconds, "peak_mb": peak}
