"""Peak memory of a run: CUDA's allocator counter on a GPU, the process's peak resident size on a CPU.

The number-format policy and the matrix-product peak (for MFU) are the course's,
in `coursekit.hardware`; this module adds what Chapter 4 measures about memory.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import torch

# --------------------------------------------------------------------------- peak memory

def reset_peak_memory(device: str) -> bool:
    """Start a new peak: CUDA's allocator counter, or on Linux the process's peak resident size (VmHWM).

    Returns False where the peak could not be reset (elsewhere than Linux): it then counts from the start
    of the process, and a peak read later is not this run's alone.
    """
    if str(device).startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
        return True
    try:
        Path("/proc/self/clear_refs").write_text("5")  # "5" resets VmHWM to the current RSS
    except OSError:
        return False
    return True


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
