"""Chapter 3: the GPT model.

Chapter 2's attention becomes a transformer block (attention + feed-forward,
each wrapped in a residual connection with a LayerNorm in front), and blocks
are stacked into GPT. Parameter names follow Hugging Face's GPT-2
(`transformer.wte`, `transformer.h.0.attn.c_attn`, ...) so that Chapter 4 can
load OpenAI's weights by name. The model's shape, `GPTConfig`, is in config.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ch02_attention import CausalSelfAttention, attend, check_length
from coursekit import CourseError
from coursekit.hardware import check_memory

from .config import ACTIVATIONS, GPTConfig  # declared without torch

# GPT-2's released sizes (Hugging Face: openai-community/gpt2, gpt2-medium, gpt2-large, gpt2-xl).
GPT2_CONFIGS = {
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768),
    "gpt2-medium": dict(n_layer=24, n_head=16, n_embd=1024),
    "gpt2-large": dict(n_layer=36, n_head=20, n_embd=1280),
    "gpt2-xl": dict(n_layer=48, n_head=25, n_embd=1600),
}


def gpt2_config(name: str = "gpt2", **overrides) -> GPTConfig:
    if name not in GPT2_CONFIGS:
        raise CourseError(f"unknown GPT-2 size {name!r}; choose one of {', '.join(GPT2_CONFIGS)}")
    return GPTConfig(**{"vocab_size": 50257, "block_size": 1024, "dropout": 0.0, "bias": True,
                        "activation": "gelu_tanh", **GPT2_CONFIGS[name], **overrides})


class KVCache:
    """Keys and values of the tokens seen so far, one (B, n_head, T, head_size) pair per layer.

    With a cache, each generation step feeds only the new token: its query
    attends to the cached keys and values instead of recomputing them.
    """

    def __init__(self, n_layer: int):
        self.k: list[torch.Tensor | None] = [None] * n_layer
        self.v: list[torch.Tensor | None] = [None] * n_layer

    @property
    def length(self) -> int:
        return 0 if self.k[0] is None else self.k[0].shape[2]

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.k[layer] is not None:
            k = torch.cat((self.k[layer], k), dim=2)
            v = torch.cat((self.v[layer], v), dim=2)
        self.k[layer], self.v[layer] = k, v
        return k, v


class Attention(CausalSelfAttention):
    """Chapter 2's batched attention, plus an optional KV cache."""

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        if cache is None:
            return super().forward(x)
        q, k, v = self.split_heads(x)          # each (B, nh, T_new, hs)
        k, v = cache.append(layer, k, v)       # (B, nh, T_past + T_new, hs)
        check_length(k.shape[2], self.block_size)
        y = attend(q, k, v, self.dropout if self.training else 0.0, self.fused)
        return self.merge_heads(y)


class FeedForward(nn.Module):
    """Per-token MLP: widen 4x, GELU, project back. Attention gathers; this computes on what was gathered."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout else nn.Identity()
        self.approximate = ACTIVATIONS[cfg.activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # GELU: a smooth ReLU that lets a little negative signal through.
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate=self.approximate)))  # (B, T, C)


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x)).

    The residual path carries x through unchanged, so gradients reach early
    layers directly; normalising before each sublayer (GPT-2's choice) keeps
    that path clean.
    """

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = Attention(cfg.n_embd, cfg.n_head, cfg.block_size, cfg.dropout, bias=cfg.bias)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = FeedForward(cfg)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        # Sized before it is built: a shape from a flag or a file that cannot fit is refused, not allocated.
        layers = f"{cfg.n_layer:,} layer" + ("s" if cfg.n_layer != 1 else "")
        check_memory(4 * cfg.num_params(), f"a GPT of {cfg.num_params():,} parameters ({layers}, {cfg.n_embd:,} "
                                           f"wide, {cfg.vocab_size:,} tokens) for its weights alone")
        self.config = cfg
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(cfg.vocab_size, cfg.n_embd),
            wpe=nn.Embedding(cfg.block_size, cfg.n_embd),
            drop=nn.Dropout(cfg.dropout) if cfg.dropout else nn.Identity(),
            h=nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer)),
            ln_f=nn.LayerNorm(cfg.n_embd, bias=cfg.bias),
        ))
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        # Weight tying: the same matrix reads tokens in and scores them out.
        self.lm_head.weight = self.transformer.wte.weight
        self.apply(self._init_weights)
        # GPT-2: each residual projection adds to the stream once per sublayer, 2 per block;
        # scaling by 1/sqrt(2 * n_layer) keeps the stream's variance from growing with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    @property
    def block_size(self) -> int:
        return self.config.block_size

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache: KVCache | None = None):
        """Logits (B, T, V) for token ids idx (B, T), and the loss when targets are given.

        With a `cache`, idx holds only the new tokens; their positions continue
        after the cached ones.
        """
        B, T = idx.shape
        logits = self.lm_head(self.hidden_states(idx, cache))  # (B, T, C) -> (B, T, V)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.view(B * T, -1), targets.view(B * T), ignore_index=-100)
        return logits, loss

    def hidden_states(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Everything before the output head: (B, T) ids -> (B, T, C) features after the final LayerNorm.
        Chapter 5's classifier reads these at one position instead of scoring the whole vocabulary."""
        T = idx.shape[1]
        start = cache.length if cache is not None else 0
        check_length(start + T, self.config.block_size)
        pos = torch.arange(start, start + T, device=idx.device)                # (T,)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))  # (B, T, C)
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache, i)
        return self.transformer.ln_f(x)

    # ----------------------------------------------------------------- sizes

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameters, counting the tied wte/lm_head matrix once. `non_embedding` leaves out
        the position embeddings (the token embeddings stay: they are also the output head)."""
        n = sum(p.numel() for p in self.parameters())  # parameters() yields a shared tensor once
        if non_embedding:
            n -= self.transformer.wpe.weight.numel()
        return n

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token: 6 per parameter (forward 2, backward 4), plus attention's
        score and weighted-sum products, 12 * n_layer * n_embd * T (Kaplan et al.; PaLM appendix B)."""
        T = seq_len or self.config.block_size
        cfg = self.config
        return 6 * self.num_params(non_embedding=True) + 12 * cfg.n_layer * cfg.n_embd * T
