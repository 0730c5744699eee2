"""The checks behind `python -m ch01_bigram.exercises --check`.

Each check takes the module that holds the implementations (the student's
`ch01_bigram.exercises` or the instructor's `ch01_bigram.solutions.exercises`)
and raises AssertionError with a one-line message when something is wrong.
Where it helps, the answer is compared with the chapter's own code in bigram.py.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ch01_bigram import bigram as course
from coursekit.exercise_kit import ExerciseChecks, expect_error

CHECKS = ExerciseChecks(hints=Path(__file__).with_name("hints.toml"))


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@CHECKS.exercise("tokenizer")
def check_tokenizer(ex) -> None:
    text = "hello, world!\nthe quick brown fox"
    tok, ref = ex.CharTokenizer(text), course.CharTokenizer(text)
    assert tok.vocab_size == ref.vocab_size, f"vocab_size is {tok.vocab_size}, expected {ref.vocab_size}"
    for s in ("hello", "the fox", "\n!", ""):
        ids = tok.encode(s)
        assert list(ids) == ref.encode(s), f"encode({s!r}) gave {list(ids)}, expected {ref.encode(s)}"
        assert tok.decode(ids) == s, f"decode(encode({s!r})) gave {tok.decode(ids)!r}"
    as_tensor = torch.tensor(ref.encode("brown"))
    assert tok.decode(as_tensor) == "brown", "decode should also accept a 1-D tensor of ids"
    expect_error(ValueError, lambda: tok.encode("Z"),
                 "encode('Z') should raise ValueError: 'Z' is not in the vocabulary")


@CHECKS.exercise("get_batch")
def check_get_batch(ex) -> None:
    data = torch.arange(100) + 500  # token ids that differ from positions, so returning indices is caught
    x, y = ex.get_batch(data, 4, 8, _seeded(0))
    assert tuple(x.shape) == (4, 8) and tuple(y.shape) == (4, 8), \
        f"shapes are x {tuple(x.shape)}, y {tuple(y.shape)}; expected (4, 8) each"
    assert x.dtype == torch.long and y.dtype == torch.long, f"dtypes are {x.dtype}, {y.dtype}; expected torch.int64"
    assert x.min() >= 500, "x holds positions, not the tokens of data at those positions"
    assert torch.equal(x[:, 1:], x[:, :-1] + 1), "a row of x is not a contiguous window of data"
    assert torch.equal(y, x + 1), "y is not x shifted by one token (y[b, t] must be the token after x[b, t])"

    again, _ = ex.get_batch(data, 4, 8, _seeded(0))
    other, _ = ex.get_batch(data, 4, 8, _seeded(1))
    assert torch.equal(x, again), \
        "the same seeded generator gave two different batches: the starts must come from the generator given"
    assert not torch.equal(x, other), \
        "different seeds gave the same batch: the starts must come from the generator given"

    torch.manual_seed(0)
    x_global, _ = ex.get_batch(data, 3, 5)
    assert tuple(x_global.shape) == (3, 5), "generator=None (the global generator) should work too"

    # 11 tokens, windows of 8 plus their target: starts 0, 1 and 2 only.
    short = torch.arange(11) + 500
    x, y = ex.get_batch(short, 300, 8, _seeded(2))
    starts = set((x[:, 0] - 500).tolist())
    assert starts <= {0, 1, 2}, f"starts {sorted(starts)} reach past the data (only 0, 1, 2 fit 11 tokens)"
    assert starts == {0, 1, 2}, f"only starts {sorted(starts)} were drawn from 0, 1, 2: the last window is missed"


@CHECKS.exercise("bigram_forward")
def check_bigram_forward(ex) -> None:
    torch.manual_seed(0)
    model = ex.BigramLanguageModel(5)
    idx = torch.tensor([[0, 1, 4], [3, 3, 2]])
    targets = torch.tensor([[1, 4, 0], [3, 2, 2]])
    logits, loss = model(idx, targets)
    assert tuple(logits.shape) == (2, 3, 5), f"logits have shape {tuple(logits.shape)}, expected (B, T, V) = (2, 3, 5)"
    table = model.token_embedding_table.weight
    assert torch.allclose(logits, table[idx]), "logits[b, t] should be the table's row for token idx[b, t]"
    assert loss is not None and loss.dim() == 0, "with targets, loss should be a 0-d tensor"
    expected = -F.log_softmax(table[idx], dim=-1).gather(-1, targets[..., None]).mean()
    assert math.isclose(loss.item(), expected.item(), rel_tol=1e-5), \
        f"loss is {loss.item():.5f}, expected the mean cross-entropy {expected.item():.5f}"
    assert loss.requires_grad, "the loss carries no gradient: it must be computed from the logits, inside the graph"
    logits_only, no_loss = model(idx)
    assert no_loss is None, "without targets, loss should be None"
    assert tuple(logits_only.shape) == (2, 3, 5), "without targets, logits should still be (B, T, V)"


class _ProbeModel(nn.Module):
    """Records how it is called; its n-th call returns loss n, so the means are known in advance."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.calls: list[tuple[bool, bool, torch.Tensor]] = []

    def forward(self, x, y=None):
        self.calls.append((self.training, torch.is_grad_enabled(), x.clone()))
        return None, torch.tensor(float(len(self.calls)))


@CHECKS.exercise("estimate_loss")
def check_estimate_loss(ex) -> None:
    splits = {"train": torch.arange(50), "val": torch.arange(50) + 100}
    probe = _ProbeModel().train()
    out = ex.estimate_loss(probe, splits, 2, 4, eval_iters=4, generator=_seeded(0))
    assert len(probe.calls) == 8, f"the model was called {len(probe.calls)} times, expected eval_iters per split = 8"
    assert set(out) == {"train", "val"}, f"the keys are {sorted(out)}, expected the splits' names"
    assert all(type(v) is float for v in out.values()), \
        f"the values are {sorted({type(v).__name__ for v in out.values()})}, expected Python floats"
    assert out == {"train": 2.5, "val": 6.5}, \
        f"got {out}; losses 1-4 (train) and 5-8 (val) should average to 2.5 and 6.5"
    assert not any(training for training, _, _ in probe.calls), \
        "the model was called in training mode; while estimating it should be in eval mode"
    assert not any(grad for _, grad, _ in probe.calls), "gradients were on while estimating"
    assert probe.training, "the model should be back in training mode afterwards"
    assert all(c[2].max() < 50 for c in probe.calls[:4]) and all(c[2].min() >= 100 for c in probe.calls[4:]), \
        "the batches did not come from each split in turn"
    probe = _ProbeModel().eval()
    ex.estimate_loss(probe, splits, 2, 4, eval_iters=1, generator=_seeded(0))
    assert not probe.training, "a model that was in eval mode should stay in eval mode"

    torch.manual_seed(0)
    model = course.BigramLanguageModel(10)
    data = torch.randint(10, (200,), generator=_seeded(1))
    real_splits = {"train": data[:150], "val": data[150:]}
    mine = ex.estimate_loss(model, real_splits, 4, 8, eval_iters=5, generator=_seeded(3))
    ref = course.estimate_loss(model, real_splits, 4, 8, eval_iters=5, generator=_seeded(3))
    for name in ref:
        assert math.isclose(mine[name], ref[name], rel_tol=1e-5), \
            f"{name} loss {mine[name]:.5f} differs from the chapter's estimate {ref[name]:.5f} with the same seed"


class _SuccessorModel(nn.Module):
    """Always predicts (token + 1) mod V, whatever the temperature."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size

    def forward(self, idx, targets=None):
        return F.one_hot((idx + 1) % self.vocab_size, self.vocab_size).float() * 100.0, None  # (B, T, V)


class _FixedModel(nn.Module):
    """The same next-token probabilities (0.7, 0.2, 0.1) everywhere."""

    def forward(self, idx, targets=None):
        logits = torch.tensor([0.7, 0.2, 0.1]).log()
        return logits.expand(*idx.shape, 3), None  # (B, T, V)


@CHECKS.exercise("sample_tokens")
def check_sample_tokens(ex) -> None:
    idx = torch.tensor([[0, 3], [2, 1]])
    out = ex.sample_tokens(_SuccessorModel(5), idx, 4, generator=_seeded(0))
    assert tuple(out.shape) == (2, 6), f"output shape {tuple(out.shape)}, expected (B, T + max_new_tokens) = (2, 6)"
    assert torch.equal(out[:, :2], idx), "the first T tokens should be idx unchanged"
    expected = torch.tensor([[0, 3, 4, 0, 1, 2], [2, 1, 2, 3, 4, 0]])
    assert torch.equal(out, expected), \
        f"got {out.tolist()}, expected {expected.tolist()}: sample from the LAST position's logits"
    assert torch.equal(ex.sample_tokens(_SuccessorModel(5), idx, 0), idx), "max_new_tokens=0 should return idx"

    start = torch.zeros(4000, 1, dtype=torch.long)
    for temperature in (1.0, 0.5, 2.0):
        probs = torch.tensor([0.7, 0.2, 0.1]) ** (1 / temperature)
        probs /= probs.sum()
        drawn = ex.sample_tokens(_FixedModel(), start, 1, temperature, _seeded(4))[:, -1]
        freqs = torch.bincount(drawn, minlength=3).float() / len(drawn)
        assert torch.allclose(freqs, probs, atol=0.03), \
            (f"at temperature {temperature} the tokens came {[round(f, 2) for f in freqs.tolist()]} of the time, "
             f"expected about {[round(p, 2) for p in probs.tolist()]}")

    first = ex.sample_tokens(_FixedModel(), start[:50], 5, 1.0, _seeded(5))
    second = ex.sample_tokens(_FixedModel(), start[:50], 5, 1.0, _seeded(5))
    assert torch.equal(first, second), \
        "the same seeded generator gave different samples: the draws must come from the generator given"
    greedy = ex.sample_tokens(_FixedModel(), start[:50], 3, 0.0, _seeded(6))
    assert torch.equal(greedy[:, 1:], torch.zeros(50, 3, dtype=torch.long)), \
        "at temperature 0 some tokens were not the most likely one: temperature 0 never draws"
    expect_error(ValueError, lambda: ex.sample_tokens(_FixedModel(), start[:2], 1, -1.0),
                 "a negative temperature should raise ValueError")
