"""What the machine can do: its peak memory, beside the course's number-format policy and matrix-product peak.

MFU (model FLOPs utilisation) = the FLOPs a training step must do (6 per
parameter per token, plus attention) per second, divided by the machine's peak.
Vendors publish peaks for GPUs; a CPU's depends on its cores, clock and
instruction set, so we measure it: the speed of a large square matrix product,
the best case for the hardware, in the format the training uses.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import torch

# The number-format policy and the matrix-product peak are the course's, in its floor package;
# this chapter adds what it teaches about memory.
from coursekit.hardware import (BF16_MIN_WIDTH_CPU, DTYPE_NAMES, cpu_has_fast_bf16,  # noqa: F401
                                matmul_peak_flops, resolve_dtype)


# --------------------------------------------------------------------------- peak memory

def reset_peak_memory(device: str) -> None:
    """Start a new peak: CUDA's allocator counter, or on Linux the process's peak resident size (VmHWM)."""
    if str(device).startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    else:
        try:
            Path("/proc/self/clear_refs").write_text("5")  # "5" resets VmHWM to the current RSS
        except OSError:
            pass  # elsewhere the peak counts from the start of the process


def _proc_status_bytes(field: str) -> int | None:
    """A memory field of Linux's /proc/self/status (VmHWM: peak, VmRSS: now) in bytes; None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_memory_bytes(device: str) -> int:
    """CUDA: the most memory tensors held at once. CPU: the process's peak resident set size."""
    if str(device).startswith("cuda"):
        return torch.cuda.max_memory_allocated(device)
    peak = _proc_status_bytes("VmHWM")
    if peak is not None:
        return peak
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # bytes on macOS, KiB on Linux


def current_memory_bytes(device: str) -> int:
    if str(device).startswith("cuda"):
        return torch.cuda.memory_allocated(device)
    return _proc_status_bytes("VmRSS") or 0
