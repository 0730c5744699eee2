"""What the machine can do: which number format is fastest, its matrix-multiply peak, its peak memory.

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

from ch01_bigram.errors import CourseError
from ch03_gpt.bench import matmul_peak_flops  # noqa: F401  (measured first in Chapter 3's speed benchmark)

DTYPE_NAMES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
BF16_MIN_WIDTH_CPU = 128  # below this bfloat16 is untested on CPU; from 128 wide it was faster here (1.29x, 1.87x at 384)


def cpu_has_fast_bf16() -> bool:
    """True when the CPU multiplies bfloat16 matrices in hardware (AVX512-BF16 or AMX), read from /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: ask torch (private helpers; absent in some releases, then assume not)
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(name: str, device: str, n_embd: int) -> str:
    """'auto' -> the format that trains fastest here; other names are checked and returned.

    CUDA: bfloat16 where the GPU supports it (Ampere and later), else float16
    with a gradient scaler. CPU: bfloat16 only with hardware bfloat16 products
    (AMX or AVX-512 BF16) and a model at least 128 wide; otherwise float32. MPS: float32.
    """
    if name not in ("auto", *DTYPE_NAMES):
        raise CourseError(f"unknown dtype {name!r}; choose auto, float32, bfloat16 or float16")
    cuda = str(device).startswith("cuda")
    if name == "float16" and not cuda:
        raise CourseError("float16 training needs a CUDA GPU (it relies on a gradient scaler); use bfloat16 on CPU")
    if name != "auto":
        return name
    if cuda:
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if str(device) == "cpu" and cpu_has_fast_bf16() and n_embd >= BF16_MIN_WIDTH_CPU:
        return "bfloat16"
    return "float32"


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
