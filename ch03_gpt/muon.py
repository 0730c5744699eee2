"""Muon: momentum whose update is orthogonalised before it is applied.

AdamW scales each weight's step by that weight's own gradient history. Muon
(Keller Jordan and others, 2024: https://kellerjordan.github.io/posts/muon/)
treats a weight matrix as a whole: it takes the momentum of the gradient,
G = U S V^T, and steps along U V^T instead, the nearest matrix whose singular
values are all 1. A gradient is usually dominated by a few directions; an
orthogonalised step moves every direction by the same amount, so the rarer
directions learn too. On this chapter's small model it reaches a given loss
in far fewer steps than AdamW (see MEASUREMENTS.md).

Only the transformer blocks' matrices take Muon steps (`train.configure_muon`).
The embeddings (whose rows are looked up one token at a time, not multiplied
as a whole), the LayerNorm gains and the biases keep AdamW, as in Muon's own
recipes.
"""

from __future__ import annotations

import math

import torch

# A quintic Newton-Schulz iteration x <- a x + b (x x^T) x + c (x x^T)^2 x, with the coefficients Jordan
# chose to be steep at zero: five steps bring every singular value into roughly [0.7, 1.2], which is
# close enough to 1 for the update and much cheaper than an SVD.
NEWTON_SCHULZ = (3.4445, -4.7750, 2.0315)


def orthogonalize(matrix: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """About U V^T for matrix = U S V^T: the same singular vectors, singular values pushed towards 1.

    Computed in float32: the products are small, and bfloat16 would be many
    times slower on a CPU without bfloat16 hardware.
    """
    a, b, c = NEWTON_SCHULZ
    x = matrix.float()
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T  # iterate on the wide shape, so that the Gram matrix x x^T is the smaller one
    x = x / (x.norm() + eps)  # the Frobenius norm bounds the largest singular value: all now at most 1
    for _ in range(steps):
        gram = x @ x.T                                                  # (m, m), m = the smaller side
        poly = torch.addmm(gram, gram, gram, beta=b, alpha=c)           # b gram + c gram^2
        x = torch.addmm(x, poly, x, beta=a)                             # a x + (b gram + c gram^2) x
    return x.T if tall else x


class Muon(torch.optim.Optimizer):
    """Nesterov momentum, orthogonalised, for 2-D weight matrices.

    An orthogonalised (m, n) update has entries of RMS 1/sqrt(max(m, n)).
    Scaling it by 0.2 sqrt(max(m, n)) gives it the RMS of a typical AdamW
    update (about 0.2 of the learning rate), so one learning rate and one
    schedule serve both optimizers. Weight decay is decoupled, as in AdamW.
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.95, weight_decay: float = 0.0,
                 ns_steps: int = 5):
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "ns_steps": ns_steps})
        for group in self.param_groups:
            for p in group["params"]:
                if p.dim() != 2:
                    raise ValueError(f"Muon updates 2-D weight matrices only, got a tensor of shape {tuple(p.shape)}")

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum" not in state:
                    state["momentum"] = torch.zeros_like(p)
                momentum = state["momentum"]
                momentum.lerp_(p.grad, 1 - group["momentum"])      # m <- beta m + (1 - beta) g
                ahead = p.grad.lerp(momentum, group["momentum"])   # Nesterov: the step after this one
                update = orthogonalize(ahead, group["ns_steps"]).to(p.dtype)
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(update, alpha=-group["lr"] * 0.2 * math.sqrt(max(p.shape)))


class Optimizers:
    """Several optimizers used as one: one `param_groups` list (the schedule sets every group's rate),
    one `zero_grad`, one `step`, one state dict."""

    def __init__(self, *optimizers: torch.optim.Optimizer):
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict]:
        return [group for optimizer in self.optimizers for group in optimizer.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for optimizer in self.optimizers:
            optimizer.step()

    def state_dict(self) -> dict:
        return {"optimizers": [optimizer.state_dict() for optimizer in self.optimizers]}

    def load_state_dict(self, state: dict) -> None:
        for optimizer, own in zip(self.optimizers, state["optimizers"], strict=True):
            optimizer.load_state_dict(own)
