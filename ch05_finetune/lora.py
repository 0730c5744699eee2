"""LoRA: fine-tune a frozen model through small low-rank adapters (Hu et al., 2021).

A weight matrix W (out x in) stays frozen; beside it we learn B (out x r) and
A (r x in) with r small, and the layer computes

    y = x W^T + (alpha / r) * x A^T B^T

B starts at zero, so before training the adapted model is exactly the
pretrained one. Only r * (in + out) numbers per matrix are trained instead of
in * out. After training, W + (alpha / r) B A is one ordinary matrix again:
merging costs nothing at inference.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from coursekit import CourseError, check_positive

# GPT-2's names: attention's qkv and output projections, the MLP's two layers.
DEFAULT_TARGETS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")


class LoRALinear(nn.Module):
    """A frozen nn.Linear plus a trainable low-rank update."""

    def __init__(self, base: nn.Linear, rank: int = 8, alpha: float = 16.0):
        super().__init__()
        check_positive("LoRA rank", rank)
        full = min(base.in_features, base.out_features)
        if rank > full:  # also what keeps a rank from a flag from allocating without bound
            raise CourseError(f"LoRA rank {rank:,} is above the rank of a {base.out_features} x {base.in_features} "
                              f"layer ({full}): it would no longer be a low-rank update; choose 1 to {full}")
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.scale = alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))  # zero: starts as the identity change
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear initialises its weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_A.T @ self.lora_B.T) * self.scale  # (..., out)

    def merged(self) -> nn.Linear:
        """The plain Linear with the update folded in."""
        out = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None)
        with torch.no_grad():
            out.weight.copy_(self.base.weight + self.scale * self.lora_B @ self.lora_A)
            if self.base.bias is not None:
                out.bias.copy_(self.base.bias)
        return out.to(self.base.weight.device)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def apply_lora(model: nn.Module, rank: int = 8, alpha: float = 16.0, targets=DEFAULT_TARGETS,
               train_also: tuple[str, ...] = ()) -> nn.Module:
    """Freeze `model` and wrap every Linear whose name ends with one of `targets` in a LoRALinear.

    `train_also`: name prefixes of parameters that stay trainable anyway (a new
    classifier head, say, which has no pretrained value to keep).
    """
    for p in model.parameters():
        p.requires_grad_(False)
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n.endswith(tuple(targets))]
    if not names:
        raise CourseError(f"no Linear layer matches the LoRA targets {', '.join(targets)}")
    for name in names:
        _replace(model, name, LoRALinear(model.get_submodule(name), rank, alpha))
    for n, p in model.named_parameters():
        if n.startswith(tuple(train_also)):
            p.requires_grad_(True)
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every LoRALinear by its merged Linear, in place; the result is a plain model again."""
    for name, module in list(model.named_modules()):
        if isinstance(module, LoRALinear):
            _replace(model, name, module.merged())
    for p in model.parameters():
        p.requires_grad_(True)
    return model
