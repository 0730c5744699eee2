"""What attention adds, measured: the attention model against Chapter 1's bigram,
trained with the same loop, steps, batch, learning rate and seed.

Two measures:

* validation loss (how well each model predicts the next character);
* `long_range_score` of samples (once a story has introduced "a girl named
  Mia" who "had a red ball", do its later names, objects and pronouns agree?),
  Chapter 1's checker for the built-in stories.

The scored samples are drawn at a temperature below 1, and the attention model
writes them with a context a quarter shorter than its training window: the
window's last position is among those it predicts worst (see
`loss_by_position`), and without the cut every new character would come from
the very last one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ch01_bigram import (
    BigramLanguageModel,
    CharData,
    CharTokenizer,
    History,
    LongRangeScore,
    TrainConfig,
    get_batch,
    long_range_score,
    sample_tokens,
    train,
)
from coursekit import CourseError, check_positive
from coursekit.runtime import set_seed
from coursekit.settings import DEFAULT_SEED

from .attention import AttentionLanguageModel
from .config import SCORE_PROMPT, SCORE_TEMPERATURE, default_sample_context  # no torch there: the command line's


@dataclass
class Comparison:
    config: TrainConfig
    bigram: History
    attention: History
    bigram_score: LongRangeScore
    attention_score: LongRangeScore
    bigram_samples: list[str]
    attention_samples: list[str]
    attention_model: AttentionLanguageModel
    bigram_model: BigramLanguageModel

    def summary(self, decimals: int = 3) -> str:
        """The comparison as a few aligned lines of figures rounded to `decimals`."""
        d = decimals
        lines = [f"{'model':<10} {'val loss':>8} {'stories':>7} {'mentions':>8} {'names':>6} {'objects':>7} "
                 f"{'pronouns':>8} {'score':>6}"]
        for name, hist, sc in (("bigram", self.bigram, self.bigram_score),
                               ("attention", self.attention, self.attention_score)):
            lines.append(f"{name:<10} {hist.val[-1]:>8.{d}f} {sc.stories:>7d} {sc.mentions:>8d} {sc.names:>6.2f} "
                         f"{sc.objects:>7.2f} {sc.pronouns:>8.2f} {sc.score:>6.{d}f}")
        return "\n".join(lines)


def long_samples(model: nn.Module, tokenizer: CharTokenizer, prompt: str = SCORE_PROMPT, streams: int = 8,
                 length: int = 2000, temperature: float = 1.0, block_size: int | None = None, seed: int = DEFAULT_SEED,
                 device: str = "cpu") -> list[str]:
    """`streams` independent samples of `length` new characters, each continuing `prompt`.

    The streams run as one batch, so eight of them cost about as much as one.
    """
    check_positive("number of sample streams", streams)
    check_positive("sample length", length)
    ids = torch.tensor([tokenizer.encode(prompt)] * streams, dtype=torch.long, device=device)  # (streams, P)
    gen = torch.Generator(device=device).manual_seed(seed)
    out = sample_tokens(model, ids, length, temperature, block_size, gen)  # (streams, P + length)
    return [tokenizer.decode(row) for row in out.tolist()]


def score_samples(samples: list[str]) -> LongRangeScore:
    """The long-range score of several samples together (each sample starts a new story)."""
    return long_range_score("\n\n".join(samples))


def compare_with_bigram(data: CharData, cfg: TrainConfig, n_embd: int = 64, n_head: int = 8, dropout: float = 0.0,
                        streams: int = 64, length: int = 600, prompt: str = SCORE_PROMPT,
                        temperature: float = SCORE_TEMPERATURE, sample_context: int | None = None,
                        fused: bool = True, device: str = "cpu", progress: bool = True, log=print,
                        dtype: str = "float32") -> Comparison:
    """Train a bigram and an attention model with the same `cfg`, then score samples of both.

    Both models are sampled with the same prompt, temperature, seed, number and
    length of streams. `sample_context` is how many characters the attention
    model sees while sampling (default: `default_sample_context(cfg.block_size)`);
    the bigram only ever needs one.
    """
    tok = data.tokenizer
    tok.encode(prompt)  # refuse a prompt the corpus cannot spell before training anything
    if sample_context is None:
        sample_context = default_sample_context(cfg.block_size)
    check_positive("sample context", sample_context)
    if sample_context > cfg.block_size:
        raise CourseError(f"sample context {sample_context} is longer than the block size {cfg.block_size}")
    results = {}
    for name in ("bigram", "attention"):
        set_seed(cfg.seed)  # the same initial draw of the generator for both models
        if name == "bigram":
            model = BigramLanguageModel(tok.vocab_size).to(device)
            context = 1  # a bigram looks at one character; a longer context only costs time
        else:
            model = AttentionLanguageModel(tok.vocab_size, n_embd, n_head, cfg.block_size, dropout,
                                           fused=fused).to(device)
            context = sample_context
        if log:
            log(f"--- {name}: {sum(p.numel() for p in model.parameters()):,} parameters ---")
        history = train(model, data.train, data.val, cfg, device, progress=progress, log=log, dtype=dtype)
        samples = long_samples(model, tok, prompt, streams, length, temperature, context, cfg.seed, device)
        results[name] = (model, history, samples)
    (bm, bh, bs), (am, ah, as_) = results["bigram"], results["attention"]
    return Comparison(cfg, bh, ah, score_samples(bs), score_samples(as_), bs, as_, am, bm)


@torch.no_grad()
def loss_by_position(model: nn.Module, data: torch.Tensor, block_size: int, batch_size: int = 256,
                     batches: int = 4, seed: int = 0) -> torch.Tensor:
    """(block_size,) mean loss at each position of the window, over random windows of `data`.

    `estimate_loss` averages over all positions; `sample_tokens` with a full context
    predicts from the last one only, so this curve tells which one that is worth.
    """
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    total = torch.zeros(block_size)
    for _ in range(batches):
        x, y = get_batch(data, batch_size, block_size, gen, str(device))  # (B, T), (B, T)
        logits, _ = model(x)  # (B, T, V)
        total += F.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(dim=0).cpu()
    model.train(was_training)
    return total / batches


def plot_losses(comparison: Comparison, path=None):
    """Train and val loss curves, one panel per model (so neither curve hides the other's); saved as PNG
    when `path` is given."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, (name, hist) in zip(axes, (("bigram", comparison.bigram), ("attention", comparison.attention))):
        ax.plot(hist.eval_steps, hist.val, color="tab:blue", linewidth=2, label="val")
        ax.plot(hist.eval_steps, hist.train, color="tab:orange", linestyle="none", marker="o", markersize=5,
                markerfacecolor="none", label="train")
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_ylabel("loss (nats per character)")
    cfg = comparison.config
    fig.suptitle(f"same loop and budget: {cfg.steps} steps, batch {cfg.batch_size}, block {cfg.block_size}, "
                 f"lr {cfg.lr:g}")
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
