"""Chapter 1: a character-level bigram language model, and the training machinery
that every later chapter reuses (tokenizer, batches, loss estimate, training loop,
sampling, device choice, seeding)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from coursekit import CourseError, check_positive
from coursekit.hardware import check_training_memory, mixed_precision
from coursekit.numbers import nonnegative_float
from coursekit.progress import progress_bar
from coursekit.settings import DEFAULT_SEED

from .config import (  # the settings, in a module without torch (for the command line)
    SAMPLE_LENGTH,
    TEMPERATURE,
    TrainConfig,
)

# --------------------------------------------------------------------------- #
# Tokenizer and data
# --------------------------------------------------------------------------- #

class CharTokenizer:
    """Maps each distinct character of a text to an integer id, in sorted order."""

    def __init__(self, chars: str | list[str]):
        self.chars = sorted(set(chars))
        self.stoi = {ch: i for i, ch in enumerate(self.chars)}
        self.itos = dict(enumerate(self.chars))

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        return cls(text)

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[ch] for ch in text]
        except KeyError as e:
            raise CourseError(f"character {e.args[0]!r} is not in the tokenizer's vocabulary") from None

    def decode(self, ids) -> str:
        return "".join(self.itos[int(i)] for i in ids)


def train_val_split(data: torch.Tensor, val_fraction: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """First (1 - val_fraction) of the tokens for training, the rest for validation."""
    n = int(len(data) * (1 - val_fraction))
    return data[:n], data[n:]


def get_batch(data: torch.Tensor, batch_size: int, block_size: int,
              generator: torch.Generator | None = None, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """`batch_size` random windows of `block_size` tokens and, as targets, the same windows shifted by one."""
    check_positive("batch size", batch_size)
    check_positive("block size", block_size)
    if len(data) < block_size + 1:
        raise CourseError(f"data has {len(data)} tokens, fewer than block size + 1 = {block_size + 1}")
    ix = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    offsets = torch.arange(block_size)
    x = data[ix[:, None] + offsets]      # (B, T)
    y = data[ix[:, None] + offsets + 1]  # (B, T): the token after each input token
    if device != "cpu":
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    return x, y


# --------------------------------------------------------------------------- #
# The model
# --------------------------------------------------------------------------- #

class BigramLanguageModel(nn.Module):
    """Predicts the next character from the current one only: row i of the table
    holds the logits of the character that follows character i."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.token_embedding_table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        logits = self.token_embedding_table(idx)  # (B, T, V)
        if targets is None:
            return logits, None
        B, T, V = logits.shape
        loss = F.cross_entropy(logits.view(B * T, V), targets.view(B * T))
        return logits, loss


# --------------------------------------------------------------------------- #
# Training and evaluation
# --------------------------------------------------------------------------- #

@torch.no_grad()
def estimate_loss(model: nn.Module, splits: dict[str, torch.Tensor], batch_size: int, block_size: int,
                  eval_iters: int | None = 200, generator: torch.Generator | None = None,
                  device: str = "cpu") -> dict[str, float]:
    """Mean loss over `eval_iters` random batches of each split, in eval mode (no dropout).

    `eval_iters=None` measures instead of sampling: the loss over every non-overlapping window
    of the smallest split (for a 90/10 split, all of val), and over as many windows spread
    evenly across each larger split. No randomness, so no sampling error; a random window's
    positions see 1 to block_size tokens of context just as these do, so both estimate the
    same loss.
    """
    was_training = model.training
    model.eval()
    out = {}
    if eval_iters is None:
        n = min((len(data) - 1) // block_size for data in splits.values())
        for name, data in splits.items():
            out[name] = _windows_loss(model, data, block_size, n, device)
    else:
        for name, data in splits.items():
            losses = torch.empty(eval_iters)
            for k in range(eval_iters):
                x, y = get_batch(data, batch_size, block_size, generator, device)
                _, loss = model(x, y)
                losses[k] = loss.item()
            out[name] = losses.mean().item()
    model.train(was_training)
    return out


def _windows_loss(model: nn.Module, data: torch.Tensor, block_size: int, n: int, device: str,
                  chunk_tokens: int = 16384) -> float:
    """Mean loss over `n` windows of `block_size` tokens spread evenly over `data` (back to back
    when `data` holds exactly `n`), run in large batches: a forward pass is cheaper per token
    on 256 windows than on 12."""
    if n < 1:
        raise CourseError(f"a split has fewer than block size + 1 = {block_size + 1} tokens")
    stride = ((len(data) - 1) // block_size) // n * block_size  # a whole number of windows apart
    starts = torch.arange(n) * stride
    offsets = torch.arange(block_size)
    per_chunk = max(1, chunk_tokens // block_size)
    total = 0.0
    for i in range(0, n, per_chunk):
        ix = starts[i:i + per_chunk, None] + offsets
        x, y = data[ix].to(device), data[ix + 1].to(device)
        _, loss = model(x, y)
        total += loss.item() * len(ix)
    return total / n


@dataclass
class History:
    """Losses recorded during training: every step's train loss, and periodic estimates."""

    step_losses: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    train: list[float] = field(default_factory=list)
    val: list[float] = field(default_factory=list)
    eval_seconds: float = 0.0  # time spent estimating losses (and in on_eval), not training

    @property
    def best_val(self) -> float:
        return min(self.val)


def train(model: nn.Module, train_data: torch.Tensor, val_data: torch.Tensor, cfg: TrainConfig,
          device: str = "cpu", progress: bool = True, log=print, dtype: str = "float32") -> History:
    """AdamW on random batches, estimating train and val loss every `eval_interval` steps and at the end.

    Batches and evaluations draw from their own seeded generators, so the same
    seed gives the same losses, and evaluation does not change which batches
    training sees. (Chapter 3 builds a fuller loop from the same parts:
    `get_batch`, `estimate_loss` and `History`.)
    """
    cfg.check()
    check_split_lengths(train_data, val_data, cfg.block_size)
    check_training_memory(model, device)
    batch_gen = torch.Generator().manual_seed(cfg.seed)
    eval_gen = torch.Generator().manual_seed(cfg.seed + 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    splits = {"train": train_data, "val": val_data}
    # `dtype` other than float32 runs the forward passes in that format under autocast (where the hardware
    # makes it pay: coursekit.hardware.resolve_dtype); the weights and AdamW stay float32. float16 adds a
    # gradient scaler (its small range); with float32 or bfloat16 `backward` is loss.backward().
    precision = mixed_precision(device, dtype)
    history = History()
    model.train()
    bar = progress_bar(range(cfg.steps), desc="training", unit="step", disable=not progress)
    for step in bar:
        if step % cfg.eval_interval == 0:
            with precision.autocast():
                record_losses(history, step, model, splits, cfg, eval_gen, device, log)
        x, y = get_batch(train_data, cfg.batch_size, cfg.block_size, batch_gen, device)
        with precision.autocast():
            _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        precision.backward(loss)
        precision.step(optimizer)
        history.step_losses.append(loss.item())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{history.step_losses[-1]:.3f}")
    with precision.autocast():
        record_losses(history, cfg.steps, model, splits, cfg, eval_gen, device, log)
    return history


def check_split_lengths(train_data: torch.Tensor, val_data: torch.Tensor, block_size: int) -> None:
    """A one-line error unless both splits hold at least one window and its target."""
    for split, data in (("training", train_data), ("validation", val_data)):
        if len(data) < block_size + 1:
            raise CourseError(f"the {split} split has {len(data)} tokens, fewer than block size + 1 "
                              f"= {block_size + 1}; use a longer text or a smaller block size")


def record_losses(history: History, step: int, model: nn.Module, splits: dict[str, torch.Tensor], cfg: TrainConfig,
                  generator: torch.Generator, device: str, log) -> dict[str, float]:
    """Estimate the losses of `splits` (train and val, or val alone), append them to `history` with the time it
    took (nan for a train loss not estimated), log a line, and return them."""
    start = time.perf_counter()
    losses = estimate_loss(model, splits, cfg.batch_size, cfg.block_size, cfg.eval_iters, generator, device)
    history.eval_steps.append(step)
    history.train.append(losses.get("train", math.nan))
    history.val.append(losses["val"])
    if log:
        log(f"step {step:5d}: " + ", ".join(f"{name} loss {loss:.4f}" for name, loss in losses.items()))
    history.eval_seconds += time.perf_counter() - start
    return losses


# --------------------------------------------------------------------------- #
# Sampling
# --------------------------------------------------------------------------- #

@torch.no_grad()
def sample_tokens(model: nn.Module, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
             block_size: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Append `max_new_tokens` sampled tokens to `idx` (B, T).

    Logits are divided by `temperature` before the softmax: below 1 sharpens
    the distribution, above 1 flattens it. Temperature 0 is the limit of that
    sharpening: always the most likely token (greedy). If `block_size` is
    given, the model sees only the last `block_size` tokens (its context window).
    """
    if max_new_tokens < 0:
        raise CourseError(f"number of new tokens must be >= 0, got {max_new_tokens}")
    nonnegative_float.check("temperature", temperature)
    was_training = model.training
    model.eval()
    for _ in range(max_new_tokens):
        context = idx if block_size is None else idx[:, -block_size:]
        logits, _ = model(context)
        if temperature == 0:
            next_id = logits[:, -1, :].argmax(dim=-1, keepdim=True)  # (B, 1): greedy
        else:
            probs = F.softmax(logits[:, -1, :] / temperature, dim=-1)  # (B, V)
            next_id = torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)
        idx = torch.cat((idx, next_id), dim=1)
    model.train(was_training)
    return idx


def sample_text(model: nn.Module, tokenizer: CharTokenizer, prompt: str = "\n", length: int = SAMPLE_LENGTH,
                temperature: float = TEMPERATURE, block_size: int | None = None, seed: int = DEFAULT_SEED,
                device: str = "cpu") -> str:
    """Decode a sample of `length` new characters that continues `prompt`."""
    if not prompt:
        raise CourseError("the prompt is empty; give at least one character")
    ids = torch.tensor([tokenizer.encode(prompt)], dtype=torch.long, device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    out = sample_tokens(model, ids, length, temperature, block_size, gen)
    return tokenizer.decode(out[0].tolist())


def initial_loss(vocab_size: int) -> float:
    """The loss of a model that spreads its bets evenly over the vocabulary: ln(V)."""
    return math.log(vocab_size)


@dataclass
class CharData:
    """A text made ready for character-level training."""

    tokenizer: CharTokenizer
    train: torch.Tensor
    val: torch.Tensor


def prepare_char_data(text: str, block_size: int = 1, val_fraction: float = 0.1) -> CharData:
    """Tokenize `text` by character and split it; refuse a text too short for `block_size`."""
    check_positive("block size", block_size)
    if len(text) < block_size + 1:
        raise CourseError(f"the corpus has {len(text)} characters, fewer than block size + 1 = {block_size + 1}")
    tokenizer = CharTokenizer.from_text(text)
    data = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    train_data, val_data = train_val_split(data, val_fraction)
    return CharData(tokenizer, train_data, val_data)
