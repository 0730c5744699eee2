"""What the machine can do: which number format trains fastest, its matrix-product peak, and its memory.

The one number-format policy of the course is `resolve_dtype`: every CLI,
recipe, preset, notebook and the main job default to `auto` and come here.
How a training loop then runs in that format is `mixed_precision`: autocast
for the forward passes, and a gradient scaler for float16.

- CUDA: bfloat16 where the GPU has it (Ampere and later), else float16 with a gradient scaler.
- CPU: bfloat16 only where the CPU multiplies bfloat16 matrices in hardware
  (AVX-512 BF16 or AMX) and the model is wide enough for that to pay; a CPU
  without them emulates bfloat16 and runs it several times slower than float32.
- Anything else (Apple's MPS, narrow models): float32.

Every model is sized before it is built (`check_memory`): a shape from a flag
or from a checkpoint's config.json that cannot fit is refused in one line,
naming the estimate and the memory the machine has, instead of allocating
until the machine runs out.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import CourseError
from .readers import size_text
from .settings import DTYPE_CHOICES

# The one table of number formats: name -> torch dtype. float32 means "no autocast".
DTYPE_NAMES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
assert ("auto", *DTYPE_NAMES) == DTYPE_CHOICES  # the names, declared in coursekit.settings for torch-free parsers
# Below this width bfloat16 does not pay on a CPU: autocast's casts cost more than the hardware's
# bfloat16 units save on such small products. On a 2-core Xeon with AMX, a training step of a 4-layer
# GPT (block 64, batch 16) in bfloat16 took 1.4-2x as long as in float32 at 128 wide, and 0.6-0.65x as
# long at 256 wide, on 1 and 2 threads (Chapter 3's MEASUREMENTS.md).
BF16_MIN_WIDTH_CPU = 256
FLOAT16_OFF_CUDA = "float16 training needs a CUDA GPU (it relies on a gradient scaler); use bfloat16 on CPU"


def cpu_has_fast_bf16() -> bool:
    """True when the CPU multiplies bfloat16 matrices in hardware (AVX-512 BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: ask torch's own probes (private helpers; absent in some releases, then no)
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(name: str, device: str, n_embd: int) -> str:
    """'auto' -> the format that trains fastest on `device` for a model `n_embd` wide; other names are checked."""
    if name not in DTYPE_CHOICES:
        raise CourseError(f"unknown dtype {name!r}; choose {', '.join(DTYPE_CHOICES)}")
    cuda = str(device).startswith("cuda")
    if name == "float16" and not cuda:
        raise CourseError(FLOAT16_OFF_CUDA)
    if name != "auto":
        return name
    if cuda:
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if str(device) == "cpu" and cpu_has_fast_bf16() and n_embd >= BF16_MIN_WIDTH_CPU:
        return "bfloat16"
    return "float32"


@dataclass(frozen=True)
class MixedPrecision:
    """How a training loop runs in `dtype` on `device`; weights, gradients and optimizer state stay float32.

    float32: no autocast, no scaler. bfloat16: forward passes under autocast, no scaler (its range is
    float32's). float16 (CUDA): autocast and a gradient scaler, which multiplies the loss before the backward
    pass so that small gradients do not round to zero in float16's narrow range, and divides them back
    (`unscale_`) before clipping and the optimizer's step.
    """

    device: str = "cpu"  # where autocast acts; `backward`, `unscale_` and `step` need only the scaler
    dtype: str = "float32"
    scaler: torch.amp.GradScaler | None = None

    def autocast(self):
        """The context of one forward pass (a new one each time): autocast in `dtype`, or nothing in float32."""
        if self.dtype == "float32":
            return contextlib.nullcontext()
        return torch.autocast(torch.device(self.device).type, dtype=DTYPE_NAMES[self.dtype])

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        """Divide the gradients by the loss's scale (to clip the true gradients); nothing without a scaler."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """The optimizer's step; with a scaler, skipped when float16 gradients overflowed (the scale then drops)."""
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()


def mixed_precision(device: str, dtype: str) -> MixedPrecision:
    """The number format of one training run (a `resolve_dtype` name): with a new gradient scaler for float16,
    which only CUDA trains in (`resolve_dtype` refuses it elsewhere, and so does this)."""
    if dtype not in DTYPE_NAMES:
        raise CourseError(f"unknown dtype {dtype!r}; choose {', '.join(DTYPE_NAMES)}")
    if dtype == "float16" and torch.device(device).type != "cuda":
        raise CourseError(FLOAT16_OFF_CUDA)
    scaler = torch.amp.GradScaler("cuda") if dtype == "float16" else None
    return MixedPrecision(device, dtype, scaler)


def synchronize(device: str) -> None:
    """Wait for queued GPU work, so that a timer measures it; a no-op on the CPU."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)


def matmul_peak_flops(device: str = "cpu", dtype: str = "float32", size: int | None = None,
                      seconds: float = 0.3) -> float:
    """FLOP/s of a size x size matrix product (2 size^3 FLOPs each), best of repeated runs for about `seconds`:
    the best case for the hardware, so as near to its peak as PyTorch gets. MFU divides by it.

    The operands are filled from a generator of their own: measuring must not move the global
    random state, or a resumed training run would draw different dropout masks from then on.
    """
    size = size or (8192 if str(device).startswith("cuda") else 2048)
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(size, size, generator=gen).to(device=device, dtype=getattr(torch, dtype))
    b = torch.rand(size, size, generator=gen).to(device=device, dtype=getattr(torch, dtype))
    a @ b  # warm-up: the first product pays for allocation and kernel selection
    synchronize(device)
    best, spent = float("inf"), 0.0
    while spent < seconds or best == float("inf"):
        start = time.perf_counter()
        a @ b
        synchronize(device)
        took = time.perf_counter() - start
        best, spent = min(best, took), spent + took
    return 2 * size**3 / best


def memory_available(device: str = "cpu") -> int | None:
    """Bytes a new allocation can take on `device` now; None where the platform does not say.

    CUDA: the GPU's free memory. Elsewhere (a CPU, or Apple's MPS, whose memory is the machine's):
    Linux's MemAvailable (free memory plus what the page cache would give back), lowered to the
    room left under a container's limit (cgroup v2) where there is one; else the physical memory.
    """
    if str(device).startswith("cuda"):
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return free
    known = [n for n in (_meminfo_available(), _cgroup_room()) if n is not None]
    if known:
        return min(known)
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # Windows
        return None


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room() -> int | None:
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text())
    except (OSError, ValueError):
        return None


def check_memory(needed: int, what: str, device: str = "cpu", advice: str = "choose a smaller model") -> None:
    """Refuse, in one line, work that needs an estimated `needed` bytes when `device` has less available.

    `what` says what needs it ("a GPT of 4,000,000,000 parameters: its weights"), `advice` what to do
    instead. Where the platform does not say how much memory it has, nothing is refused.
    """
    have = memory_available(device)
    if have is not None and needed > have:
        where = "this GPU" if str(device).startswith("cuda") else "this machine"
        raise CourseError(f"{what} needs about {size_text(needed)}, and {where} has {size_text(have)} "
                          f"available; {advice}")


def check_training_memory(model: torch.nn.Module, device: str = "cpu") -> None:
    """Refuse to train a built `model` where its gradients and AdamW's two running averages cannot fit:
    12 more bytes for each trainable parameter (float32), beside the weights already in memory."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    check_memory(12 * trainable, f"training {trainable:,} parameters (their gradients and AdamW's two averages)",
                 device)
