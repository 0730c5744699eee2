"""The lecture's road from Chapter 2's attention model to GPT, one idea per row.

At the lecture's small size (embedding 32, 4 heads, block 8, batch 32,
5,000 steps at lr 1e-3) each row adds one thing:

    attention      one multi-head attention layer (Chapter 2's model)
    feedforward    + a per-token feed-forward layer after it
    deep           three such attention + feed-forward pairs, stacked plainly
    residual       + residual connections around every sublayer of the three
    layernorm      + LayerNorm before each sublayer and at the end

The lecture goes from one layer straight to three residual blocks, which
adds depth (and 2.5 times the parameters) and the skip connections at once;
the `deep` row separates the two, so that `residual` differs from the row
before it by the skip connections alone.

Every row is built from Chapter 3's own pieces (`Attention`, `FeedForward`,
`nn.LayerNorm`) with PyTorch's default initialisation, so that each row
differs from the one before by one idea only. The last row has the shape of
Chapter 3's `GPT`; `GPT` adds weight tying and GPT-2's initialisation, which
pay off at larger sizes.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from ch01_bigram import CharData, train
from ch02_attention import AttentionLanguageModel, check_length
from coursekit.runtime import set_seed
from coursekit.settings import DEFAULT_SEED

from .config import ABLATION, LECTURE  # declared without torch: the command line reads them too
from .model import Attention, FeedForward, GPTConfig

STAGES = ("attention", "feedforward", "deep", "residual", "layernorm")


class LectureModel(nn.Module):
    """A row of the ablation: embeddings, then attention with the parts switched on so far, then a head."""

    def __init__(self, cfg: GPTConfig, feedforward: bool, residual: bool, layernorm: bool):
        super().__init__()
        self.block_size, self.residual = cfg.block_size, residual
        n_layer = cfg.n_layer
        C = cfg.n_embd
        norm = (lambda: nn.LayerNorm(C)) if layernorm else nn.Identity
        self.wte = nn.Embedding(cfg.vocab_size, C)
        self.wpe = nn.Embedding(cfg.block_size, C)
        self.ln_1 = nn.ModuleList(norm() for _ in range(n_layer))
        self.attn = nn.ModuleList(Attention(C, cfg.n_head, cfg.block_size) for _ in range(n_layer))
        self.ln_2 = nn.ModuleList(norm() for _ in range(n_layer))
        self.mlp = nn.ModuleList((FeedForward(cfg) if feedforward else nn.Identity()) for _ in range(n_layer))
        self.ln_f = norm()
        self.lm_head = nn.Linear(C, cfg.vocab_size)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        check_length(T, self.block_size)
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))  # (B, T, C)
        for ln_1, attn, ln_2, mlp in zip(self.ln_1, self.attn, self.ln_2, self.mlp):
            x = x + attn(ln_1(x)) if self.residual else attn(ln_1(x))
            x = x + mlp(ln_2(x)) if self.residual else mlp(ln_2(x))
        logits = self.lm_head(self.ln_f(x))  # (B, T, V)
        loss = None if targets is None else F.cross_entropy(logits.view(B * T, -1), targets.view(B * T))
        return logits, loss


def build_stage(stage: str, vocab_size: int, n_embd=32, n_head=4, block_size=8, n_layer=3) -> nn.Module:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; choose from {STAGES}")
    if stage == "attention":
        return AttentionLanguageModel(vocab_size, n_embd, n_head, block_size)  # Chapter 2's model
    rank = STAGES.index(stage)
    depth = n_layer if rank >= STAGES.index("deep") else 1
    cfg = GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=depth, n_head=n_head, n_embd=n_embd)
    return LectureModel(cfg, feedforward=rank >= 1, residual=rank >= STAGES.index("residual"),
                        layernorm=rank >= STAGES.index("layernorm"))


def layer_gradient_norms(model: nn.Module, idx: torch.Tensor, targets: torch.Tensor) -> list[float]:
    """The gradient's norm at each layer's attention weights (`attn[i].c_attn.weight`), first layer first,
    after one backward pass of the loss on (idx, targets). Leaves the gradients zeroed."""
    model.zero_grad(set_to_none=True)
    _, loss = model(idx, targets)
    loss.backward()
    norms = [attn.c_attn.weight.grad.norm().item() for attn in model.attn]
    model.zero_grad(set_to_none=True)
    return norms


def run_ablation(data: CharData, steps: int = ABLATION.steps, stages=STAGES, seed: int = DEFAULT_SEED,
                 progress: bool = False, eval_iters: int = ABLATION.eval_iters, **size) -> dict[str, dict]:
    """Train each stage with the same budget and seed; return its best val loss, history and size."""
    size = {**LECTURE, **size}
    cfg = replace(ABLATION, steps=steps, block_size=size["block_size"], eval_interval=max(1, steps // 5),
                  eval_iters=eval_iters, seed=seed)
    results = {}
    for stage in stages:
        set_seed(seed)
        model = build_stage(stage, data.tokenizer.vocab_size, **size)
        history = train(model, data.train, data.val, cfg, progress=progress, log=None)
        results[stage] = {"val_loss": history.best_val, "history": history,
                          "params": sum(p.numel() for p in model.parameters())}
    return results


PUBLISHED = {"attention": 2.28, "feedforward": 2.24, "layernorm": 2.06}  # the lecture, Tiny Shakespeare


def plot_ablation(results: dict[str, dict], published: dict[str, float] | None = PUBLISHED,
                  title: str = "from attention to GPT, one idea at a time"):
    """Bar chart (from zero) of each stage's best val loss, labelled with its value and parameter count;
    the lecture's figures, where given, as red markers."""
    import matplotlib.pyplot as plt

    stages = [s for s in STAGES if s in results]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    losses = [results[s]["val_loss"] for s in stages]
    bars = ax.bar(stages, losses, color="tab:blue", label="best val loss, this run")
    for bar, s in zip(bars, stages):
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() / 2,
                f"{results[s]['val_loss']:.2f}\n{results[s]['params'] / 1000:.1f}k\nparams",
                ha="center", va="center", color="white", fontsize=8)
    if published:
        xs = [i for i, s in enumerate(stages) if s in published]
        ax.scatter(xs, [published[stages[i]] for i in xs], color="tab:red", zorder=3,
                   label="Karpathy's lecture (Tiny Shakespeare)")
    top = max(losses + (list(published.values()) if published else []))
    ax.set_ylim(0, top * 1.25)
    ax.set_ylabel("best val loss (nats per character)")
    ax.set_xlabel("row of the ablation (each adds one idea to the row before)")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    return fig
