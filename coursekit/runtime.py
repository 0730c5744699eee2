"""Seeding and device choice: what every training run of the course does first."""

from __future__ import annotations

import random

import numpy as np
import torch

from .errors import CourseError


def set_seed(seed: int) -> None:
    """Seed every generator a run touches (Python, NumPy, torch on CPU and GPU)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def pick_device(preferred: str | None = None) -> str:
    """`preferred` if given, else the best available: cuda, then mps, then cpu."""
    if preferred and preferred != "auto":
        if preferred.startswith("cuda") and not torch.cuda.is_available():
            raise CourseError(f"device {preferred!r} requested but CUDA is not available")
        if preferred == "mps" and not torch.backends.mps.is_available():
            raise CourseError("device 'mps' requested but MPS is not available")
        if preferred not in ("cpu", "mps") and not preferred.startswith("cuda"):
            raise CourseError(f"unknown device {preferred!r}; use auto, cpu, cuda, cuda:N or mps")
        return preferred
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"
