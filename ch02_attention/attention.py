"""Chapter 2: self-attention, built up from averaging the past.

Read top to bottom: three ways to average over earlier tokens, then one
attention `Head`, then multi-head attention twice (a list of heads, and the
batched `CausalSelfAttention` that Chapter 3's GPT uses), then a small
language model built on it.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from coursekit import CourseError, check_positive
from coursekit.hardware import check_memory

from .config import check_dropout, check_heads, check_length  # no torch there: the command line reads it

# --------------------------------------------------------------------------- #
# The averaging trick: each position gets the mean of itself and every earlier position
# --------------------------------------------------------------------------- #


def average_past_loops(x: torch.Tensor) -> torch.Tensor:
    """(B, T, C) -> (B, T, C), with explicit loops: out[b, t] = mean(x[b, :t+1])."""
    B, T, _ = x.shape
    out = torch.zeros_like(x)
    for b in range(B):
        for t in range(T):
            out[b, t] = x[b, : t + 1].mean(dim=0)
    return out


def average_past_matmul(x: torch.Tensor) -> torch.Tensor:
    """The same with one matrix product: row t of the weights is 1/(t+1) on the first t+1 columns."""
    T = x.shape[1]
    weights = torch.tril(torch.ones(T, T, dtype=x.dtype, device=x.device))
    weights = weights / weights.sum(dim=1, keepdim=True)  # (T, T), rows sum to 1
    return weights @ x  # (T, T) @ (B, T, C) -> (B, T, C)


def average_past_softmax(x: torch.Tensor) -> torch.Tensor:
    """The same through a softmax over masked scores: all-zero scores give equal weights,
    and -inf on future positions gives them weight 0. Attention replaces the zeros
    with scores that depend on the data."""
    T = x.shape[1]
    scores = torch.zeros(T, T, dtype=x.dtype, device=x.device)
    future = torch.triu(torch.ones(T, T, dtype=torch.bool, device=x.device), diagonal=1)
    weights = F.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
    return weights @ x


# --------------------------------------------------------------------------- #
# Shared by every attention module (their checks, check_heads and the others, are in config.py)
# --------------------------------------------------------------------------- #


def causal_mask(T_q: int, T_k: int, device=None) -> torch.Tensor:
    """(T_q, T_k) boolean mask, True where a query may look. The queries are the
    last T_q of the T_k positions (T_q < T_k when earlier keys come from a cache)."""
    offset = T_k - T_q
    return torch.ones(T_q, T_k, dtype=torch.bool, device=device).tril(diagonal=offset)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float = 0.0,
           fused: bool = True) -> torch.Tensor:
    """Causal scaled dot-product attention on (B, nh, T_q, hs) queries and (B, nh, T_k, hs) keys and values.

    `fused=True` calls `F.scaled_dot_product_attention` (one kernel, no (T, T)
    matrix kept for the backward pass); `fused=False` spells the same
    computation out.
    """
    T_q, T_k = q.shape[-2], k.shape[-2]
    if T_q > T_k:  # a query would have no key to look at: its softmax row would be all -inf
        raise ValueError(f"attend needs at most as many queries as keys, got {T_q} queries and {T_k} keys")
    if fused:
        if T_q == T_k:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        mask = causal_mask(T_q, T_k, q.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
    weights = attention_weights(q, k)
    if dropout_p > 0:
        weights = F.dropout(weights, dropout_p)
    return weights @ v  # (B, nh, T_q, T_k) @ (B, nh, T_k, hs) -> (B, nh, T_q, hs)


def attention_weights(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(head size)) with future positions masked: (..., T_q, T_k), rows sum to 1.

    Without the scaling, the scores' variance grows with the head size and the
    softmax saturates towards one-hot weights, which starve the gradients.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    mask = causal_mask(q.shape[-2], k.shape[-2], q.device)
    return F.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)


# --------------------------------------------------------------------------- #
# One head, and multi-head attention as a list of heads
# --------------------------------------------------------------------------- #


class Head(nn.Module):
    """One head of causal self-attention: each token asks (query), advertises (key) and offers (value)."""

    def __init__(self, n_embd: int, head_size: int, block_size: int, dropout: float = 0.0):
        super().__init__()
        check_positive("head size", head_size)
        check_positive("block size", block_size)
        check_dropout(dropout)
        self.block_size = block_size
        self.key = nn.Linear(n_embd, head_size, bias=False)
        self.query = nn.Linear(n_embd, head_size, bias=False)
        self.value = nn.Linear(n_embd, head_size, bias=False)
        self.dropout = nn.Dropout(dropout)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The (B, T, T) attention weights for input x (B, T, C)."""
        check_length(x.shape[1], self.block_size)
        return attention_weights(self.query(x), self.key(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.dropout(self.weights(x))  # (B, T, T)
        return w @ self.value(x)           # (B, T, hs)


class MultiHeadAttention(nn.Module):
    """Several heads side by side; their outputs are concatenated and projected back to n_embd."""

    def __init__(self, n_embd: int, n_head: int, block_size: int, dropout: float = 0.0):
        super().__init__()
        head_size = check_heads(n_embd, n_head)
        self.heads = nn.ModuleList(Head(n_embd, head_size, block_size, dropout) for _ in range(n_head))
        self.proj = nn.Linear(n_embd, n_embd)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat([h(x) for h in self.heads], dim=-1)  # (B, T, n_head * hs) = (B, T, C)
        return self.dropout(self.proj(out))


# --------------------------------------------------------------------------- #
# Multi-head attention as one batched module (GPT-2's layout)
# --------------------------------------------------------------------------- #


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with one fused q/k/v projection.

    The same computation as `MultiHeadAttention`, but all heads' queries, keys
    and values come from one (C, 3C) matrix product and the heads run as one
    batched tensor, which is much faster. Submodule names follow GPT-2's
    (`c_attn`, `c_proj`), so Chapter 4 can load OpenAI's weights by name.
    """

    def __init__(self, n_embd: int, n_head: int, block_size: int, dropout: float = 0.0,
                 bias: bool = True, fused: bool = True):
        super().__init__()
        self.head_size = check_heads(n_embd, n_head)
        check_positive("block size", block_size)
        check_dropout(dropout)
        self.n_embd, self.n_head, self.block_size = n_embd, n_head, block_size
        self.dropout = dropout
        self.fused = fused
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)  # queries, keys, values of every head
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)

    def split_heads(self, x: torch.Tensor):
        """(B, T, C) -> q, k, v, each (B, n_head, T, head_size)."""
        B, T, _ = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        return [t.view(B, T, self.n_head, self.head_size).transpose(1, 2) for t in (q, k, v)]

    def merge_heads(self, y: torch.Tensor) -> torch.Tensor:
        """(B, n_head, T, head_size) -> (B, T, C), then the output projection."""
        B, _, T, _ = y.shape
        y = y.transpose(1, 2).contiguous().view(B, T, self.n_embd)
        return self.resid_dropout(self.c_proj(y))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_length(x.shape[1], self.block_size)
        q, k, v = self.split_heads(x)
        y = attend(q, k, v, self.dropout if self.training else 0.0, self.fused)
        return self.merge_heads(y)

    @torch.no_grad()
    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """Every head's attention weights, (B, n_head, T, T), for plotting."""
        check_length(x.shape[1], self.block_size)
        q, k, _ = self.split_heads(x)
        return attention_weights(q, k)

    @classmethod
    @torch.no_grad()
    def from_heads(cls, mha: MultiHeadAttention, fused: bool = True) -> CausalSelfAttention:
        """A batched module holding exactly the weights of a list-of-heads `MultiHeadAttention`."""
        head0 = mha.heads[0]
        n_head, head_size = len(mha.heads), head0.key.out_features
        n_embd = n_head * head_size
        out = cls(n_embd, n_head, head0.block_size, mha.dropout.p, bias=True, fused=fused)
        for i, name in enumerate(("query", "key", "value")):
            # nn.Linear stores (out, in); stacking the heads' rows gives each part of c_attn.
            w = torch.cat([getattr(h, name).weight for h in mha.heads], dim=0)
            out.c_attn.weight[i * n_embd:(i + 1) * n_embd] = w
        out.c_attn.bias.zero_()  # the single heads have no bias
        out.c_proj.load_state_dict(mha.proj.state_dict())
        return out


# --------------------------------------------------------------------------- #
# A language model with attention
# --------------------------------------------------------------------------- #


class AttentionLanguageModel(nn.Module):
    """Token and position embeddings, one layer of multi-head self-attention, a linear head.

    Same interface as Chapter 1's `BigramLanguageModel` (`forward(idx, targets)
    -> (logits, loss)`), so Chapter 1's `train`, `estimate_loss` and `sample_tokens` work on it.
    """

    def __init__(self, vocab_size: int, n_embd: int = 32, n_head: int = 4, block_size: int = 8,
                 dropout: float = 0.0, fused: bool = True):
        super().__init__()
        check_positive("block size", block_size)
        check_heads(n_embd, n_head)
        # Sized before it is built: embeddings, attention's four C x C matrices with biases, the head.
        V, T, C = vocab_size, block_size, n_embd
        n_params = V * C + T * C + 4 * C * C + 4 * C + C * V + V
        check_memory(4 * n_params, f"an attention model of {n_params:,} parameters ({C:,} wide) for its weights")
        self.block_size = block_size
        self.token_embedding_table = nn.Embedding(vocab_size, n_embd)
        self.position_embedding_table = nn.Embedding(block_size, n_embd)
        self.sa = CausalSelfAttention(n_embd, n_head, block_size, dropout, fused=fused)
        self.lm_head = nn.Linear(n_embd, vocab_size)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        B, T = idx.shape
        x = self.embed(idx)  # (B, T, C)
        x = self.sa(x)       # (B, T, C): each position now mixes in what it found earlier
        logits = self.lm_head(x)  # (B, T, V)
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.view(B * T, -1), targets.view(B * T))

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids -> (B, T, C): what the attention layer reads."""
        check_length(idx.shape[1], self.block_size)
        pos = torch.arange(idx.shape[1], device=idx.device)
        # Without the positions, attention would see a bag of characters and could not tell order apart.
        return self.token_embedding_table(idx) + self.position_embedding_table(pos)  # (B, T, C) + (T, C)

    @torch.no_grad()
    def attention_weights(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids -> (B, n_head, T, T): how much each position looks at each earlier one."""
        return self.sa.weights(self.embed(idx))


# --------------------------------------------------------------------------- #
# Seeing attention
# --------------------------------------------------------------------------- #


def _show(ch: str) -> str:
    """A visible stand-in for characters a tick label would hide."""
    return {" ": "\u2423", "\n": "\u21b5", "\t": "\u21e5"}.get(ch, ch)


def default_attention_text(val_text: str, length: int) -> str:
    """What `plot_attention` shows when no text is given: `length` characters from the first paragraph start of
    the validation text (else its beginning)."""
    start = val_text.find("\n\n")
    start = start + 2 if 0 <= start < len(val_text) - length - 2 else 0
    return val_text[start:start + length]


def plot_attention(model: AttentionLanguageModel, tokenizer, text: str, path=None, max_cols: int = 4):
    """One heat map per head of the attention weights on `text`; rows are the
    positions that look (queries), columns the positions they look at (keys).

    Returns the matplotlib figure; saves it as a PNG too when `path` is given.
    """
    from matplotlib.figure import Figure  # imported here: the model code does not need matplotlib

    if not text:
        raise CourseError("the text to plot attention for is empty")
    check_length(len(text), model.block_size)
    device = next(model.parameters()).device
    idx = torch.tensor([tokenizer.encode(text)], dtype=torch.long, device=device)
    was_training = model.training
    model.eval()
    weights = model.attention_weights(idx)[0].cpu()  # (n_head, T, T)
    model.train(was_training)
    n_head, T = weights.shape[0], len(text)
    cols = min(n_head, max_cols)
    rows = math.ceil(n_head / cols)
    cell = max(3.2, 0.16 * T)  # inches per heat map: at least 11 points per character, so every tick label is legible
    fig = Figure(figsize=(cols * cell + 0.8, rows * cell), layout="constrained")
    labels = [_show(ch) for ch in text]
    image = None
    for h in range(n_head):
        ax = fig.add_subplot(rows, cols, h + 1)
        image = ax.imshow(weights[h].numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
        ax.set_title(f"head {h}")
        ax.set_xticks(range(T), labels, fontsize=9, family="monospace")
        ax.set_yticks(range(T), labels, fontsize=9, family="monospace")
        ax.tick_params(length=0)
        ax.set_xlabel("looks at (key)")
        ax.set_ylabel("position (query)")
    fig.colorbar(image, ax=fig.axes, shrink=0.8, label="attention weight (0 to 1)")
    fig.suptitle(f"attention weights of {n_head} heads (rows sum to 1; above the diagonal is the masked future)")
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
