"""The checks behind `python -m ch04_pretrain.exercises --check`.

Each check takes the module that holds the implementations (the student's
`ch04_pretrain.exercises` or the instructor's `ch04_pretrain.solutions.exercises`)
and raises AssertionError with a one-line message when something is wrong.
Answers are compared with the chapter's own code: bpe.py's `merge_pair` and
`train_bpe`, prepare.py's `SplitRule`, loader.py's `ShardDataset`, trainer.py's
`forward_backward`, Chapter 3's `configure_optimizer` and memory.py's `estimate_memory`.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import numpy as np
import torch

from ch03_gpt import GPT, GPTConfig, configure_optimizer, gpt2_config
from ch04_pretrain.data_pipeline.bpe import merge_pair as course_merge_pair
from ch04_pretrain.data_pipeline.bpe import train_bpe
from ch04_pretrain.data_pipeline.loader import ShardDataset
from ch04_pretrain.data_pipeline.prepare import SplitRule, save_as_prepared
from ch04_pretrain.pretraining.memory import estimate_memory
from ch04_pretrain.pretraining.trainer import forward_backward
from coursekit.exercise_kit import ExerciseChecks, expect_error

CHECKS = ExerciseChecks(hints=Path(__file__).with_name("hints.toml"))


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _tiny_gpt(seed: int = 0, **changes) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(**{"vocab_size": 37, "block_size": 8, "n_layer": 2, "n_head": 2, "n_embd": 16, **changes}))


@CHECKS.exercise("bpe_merge")
def check_bpe_merge(ex) -> None:
    assert ex.most_frequent_pair([1, 2, 3, 1, 2]) == (1, 2), \
        f"most_frequent_pair([1, 2, 3, 1, 2]) gave {ex.most_frequent_pair([1, 2, 3, 1, 2])}, expected (1, 2)"
    assert ex.most_frequent_pair([7, 7, 7, 5, 6]) == (7, 7), \
        "in [7, 7, 7, 5, 6] the pair (7, 7) occurs twice (overlapping pairs count when counting)"
    tie = ex.most_frequent_pair([9, 8, 3, 4])
    assert tie == (3, 4), f"on a tie most_frequent_pair gave {tie}, expected the smallest pair (3, 4)"
    expect_error(ValueError, lambda: ex.most_frequent_pair([5]),
                 "most_frequent_pair([5]) should raise ValueError: there is no pair")

    ids = [7, 7, 7, 1, 7, 7]
    merged = ex.merge_pair(ids, (7, 7), 256)
    assert list(merged) == [256, 7, 1, 256], f"merge_pair([7, 7, 7, 1, 7, 7], (7, 7), 256) gave {merged}, " \
                                             f"expected [256, 7, 1, 256] (matches must not overlap)"
    assert ids == [7, 7, 7, 1, 7, 7], "merge_pair changed its input list; build a new one"
    assert ex.merge_pair([], (1, 2), 256) == [] and ex.merge_pair([1], (1, 2), 256) == [1], \
        "merge_pair of [] or of a single id should return it unchanged"
    rng = random.Random(0)
    for _ in range(50):
        ids = [rng.randrange(4) for _ in range(rng.randrange(30))]
        pair = (rng.randrange(4), rng.randrange(4))
        assert ex.merge_pair(ids, pair, 99) == course_merge_pair(ids, pair, 99), \
            f"merge_pair({ids}, {pair}, 99) differs from the chapter's"

    # Three training steps on one chunk (letters only) must learn the chapter's merges.
    text = "aaabdaaabacaaab"
    ids = list(text.encode("utf-8"))
    learned = []
    for k in range(4):
        pair = ex.most_frequent_pair(ids)
        ids = ex.merge_pair(ids, pair, 256 + k)
        learned.append(tuple(pair))
    expected = train_bpe(text, 4)
    assert learned == expected.merges, f"four merge steps on {text!r} learned {learned}, " \
                                       f"train_bpe learned {expected.merges}"
    assert len(ids) == expected.tokens_after_merge[-1], \
        f"after four merges {len(ids)} tokens remain, train_bpe keeps {expected.tokens_after_merge[-1]}"


@CHECKS.exercise("split_rule")
def check_split_rule(ex) -> None:
    rules = [SplitRule(), SplitRule(seed=7, block=50, small_block=4, min_val_docs=6),
             SplitRule(seed=1, block=3, small_block=5, min_val_docs=0)]
    for rule in rules:
        kwargs = {"seed": rule.seed, "block": rule.block, "small_block": rule.small_block,
                  "min_val_docs": rule.min_val_docs}
        last = rule.small_block * rule.min_val_docs + 3 * rule.block
        for index in range(last):
            got = ex.is_val(index, **kwargs)
            assert bool(got) == rule.is_val(index), (f"is_val({index}, {kwargs}) gave {got}, "
                                                     f"the chapter's SplitRule says {rule.is_val(index)}")
    # The defaults are the chapter's: 100 validation documents in the first 1,000, then 1 in 2,000.
    first = sum(ex.is_val(i) for i in range(1000))
    assert first == 100, f"with the defaults, {first} of the first 1,000 documents are validation, expected 100"
    later = [i for i in range(1000, 5000) if ex.is_val(i)]
    assert later == [i for i in range(1000, 5000) if SplitRule().is_val(i)], \
        f"with the defaults, documents 1,000..4,999 give validation {later}, not the chapter's"


def _one_shard(folder: Path, tokens: np.ndarray) -> Path:
    """A prepared folder with one shard holding `tokens` as its training split (and an empty val split)."""
    save_as_prepared(folder, [(tokens, np.empty(0))])
    return folder


@CHECKS.exercise("get_batch")
def check_get_batch(ex) -> None:
    tokens = (np.arange(200) + 50_000).astype(np.uint16)  # ids above 32,767: a signed 16-bit copy would go negative
    x, y = ex.get_batch(tokens, 4, 8, _seeded(0))
    assert isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor), "return torch tensors, not numpy arrays"
    assert tuple(x.shape) == (4, 8) and tuple(y.shape) == (4, 8), \
        f"shapes are x {tuple(x.shape)}, y {tuple(y.shape)}; expected (4, 8) each"
    assert x.dtype == torch.int64 and y.dtype == torch.int64, f"dtypes are {x.dtype}, {y.dtype}; expected torch.int64"
    assert int(x.min()) >= 50_000, f"x holds {int(x.min())}: tokens 50,000 and up came out wrong " \
                                   "(positions instead of tokens, or a signed 16-bit conversion)"
    assert torch.equal(x[:, 1:], x[:, :-1] + 1), "a row of x is not a contiguous window of the tokens"
    assert torch.equal(y, x + 1), "y is not x shifted by one token"
    again, _ = ex.get_batch(tokens, 4, 8, _seeded(0))
    assert torch.equal(x, again), \
        "the same seeded generator gave two different batches: the starts must come from the generator given"

    with tempfile.TemporaryDirectory() as folder:
        data = ShardDataset(_one_shard(Path(folder), tokens), "train")
        ref_x, ref_y = data.get_batch(5, 16, _seeded(3))
    got_x, got_y = ex.get_batch(tokens, 5, 16, _seeded(3))
    assert torch.equal(got_x, ref_x) and torch.equal(got_y, ref_y), \
        "with the same seed the windows differ from the chapter's ShardDataset: draw all B starts in one call"

    short = np.arange(11, dtype=np.uint16)  # windows of 8 plus their target: starts 0, 1 and 2 only
    starts = set(ex.get_batch(short, 300, 8, _seeded(2))[0][:, 0].tolist())
    assert starts <= {0, 1, 2}, f"starts {sorted(starts)} reach past the data (only 0, 1, 2 fit 11 tokens)"
    assert starts == {0, 1, 2}, f"only starts {sorted(starts)} were drawn from 0, 1, 2: the last window is missed"
    expect_error(ValueError, lambda: ex.get_batch(short, 2, 11),
                 "11 tokens with block size 11 leave no room for the target: raise ValueError")


@CHECKS.exercise("weight_decay_groups")
def check_weight_decay_groups(ex) -> None:
    model = _tiny_gpt()
    model.transformer.h[0].ln_1.weight.requires_grad_(False)  # a frozen parameter belongs in no group
    groups = ex.weight_decay_groups(model, 0.1)
    assert isinstance(groups, list) and len(groups) == 2, "return a list of two dicts (decayed, not decayed)"
    reference = configure_optimizer(model, 1e-3, 0.1).param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    for got, ref, label in zip(groups, reference, ("first (decayed)", "second (not decayed)")):
        assert got["weight_decay"] == ref["weight_decay"], \
            f"the {label} group has weight_decay {got['weight_decay']}, expected {ref['weight_decay']}"
        got_ids, ref_ids = [id(p) for p in got["params"]], [id(p) for p in ref["params"]]
        if set(got_ids) != set(ref_ids):
            wrong = sorted(names.get(i, "?") for i in set(got_ids) ^ set(ref_ids))
            raise AssertionError(f"the {label} group is wrong about {', '.join(wrong[:3])}")
        assert got_ids == ref_ids, f"the {label} group is not in the order of model.parameters()"
    optimizer = torch.optim.AdamW(groups, lr=1e-3)  # the groups must be usable as they are
    assert len(optimizer.param_groups) == 2


@CHECKS.exercise("grad_accum")
def check_grad_accum(ex) -> None:
    g = _seeded(0)
    batches = [(torch.randint(37, (2, 8), generator=g), torch.randint(37, (2, 8), generator=g)) for _ in range(3)]

    big = _tiny_gpt()
    _, big_loss = big(torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches]))  # (6, 8) at once
    big_loss.backward()

    model = _tiny_gpt()
    loss = ex.accumulate_gradients(model, batches)
    assert isinstance(loss, torch.Tensor) and loss.dim() == 0, "return the mean loss as a 0-d tensor"
    assert not loss.requires_grad, "the returned loss is part of the graph; it should be detached from it"
    assert abs(loss.item() - big_loss.item()) < 1e-5, \
        f"returned loss {loss.item():.5f}, but the one big batch's loss is {big_loss.item():.5f}"
    for (name, p), q in zip(model.named_parameters(), big.parameters()):
        assert p.grad is not None, f"{name} has no gradient: call backward on every micro-batch"
        ratio = (p.grad.norm() / q.grad.norm()).item()
        assert torch.allclose(p.grad, q.grad, atol=1e-6, rtol=1e-4), \
            f"the gradient of {name} is {ratio:.2f} times the big batch's (k = {len(batches)} micro-batches)"

    course = _tiny_gpt()
    forward_backward(course, batches, "cpu", "float32")
    for p, q in zip(model.parameters(), course.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6, rtol=1e-4), \
            "the gradients differ from the chapter's forward_backward"
    again = _tiny_gpt()
    ex.accumulate_gradients(again, batches[:1])
    ex.accumulate_gradients(again, batches[1:])  # onto the gradients already there
    course_one = _tiny_gpt()
    forward_backward(course_one, batches[:1], "cpu", "float32")
    forward_backward(course_one, batches[1:], "cpu", "float32")
    for p, q in zip(again.parameters(), course_one.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6, rtol=1e-4), \
            "a second call must ADD to the gradients already there (do not zero them), as the chapter's does"
    expect_error(ValueError, lambda: ex.accumulate_gradients(_tiny_gpt(), []),
                 "an empty list of micro-batches should raise ValueError")


@CHECKS.exercise("memory_estimate")
def check_memory_estimate(ex) -> None:
    configs = [GPTConfig(vocab_size=37, block_size=8, n_layer=2, n_head=2, n_embd=16),
               GPTConfig(vocab_size=101, block_size=32, n_layer=3, n_head=4, n_embd=24)]
    for cfg in configs:
        got = ex.training_state_bytes(cfg)
        assert set(got) >= {"parameters", "gradients", "optimizer", "total"}, \
            f"the keys are {sorted(got)}; expected parameters, gradients, optimizer, total"
        torch.manual_seed(0)
        n = sum(p.numel() for p in GPT(cfg).parameters())
        assert got["parameters"] == 4 * n, (f"parameters: {got['parameters']:,} bytes, but the model has {n:,} "
                                            f"float32 parameters = {4 * n:,} bytes")
        assert got["gradients"] == 4 * n, \
            f"gradients: {got['gradients']:,} bytes, expected {4 * n:,} (one per parameter)"
        assert got["optimizer"] == 8 * n, f"optimizer: {got['optimizer']:,} bytes, expected {8 * n:,} (AdamW keeps two)"
        assert got["total"] == 16 * n, f"total: {got['total']:,} bytes, expected {16 * n:,}"
    gpt2 = gpt2_config("gpt2")
    got, ref = ex.training_state_bytes(gpt2), estimate_memory(gpt2, 1)
    for key in ("parameters", "gradients", "optimizer"):
        assert got[key] == ref[key], f"GPT-2 124M: {key} {got[key]:,} bytes, the chapter's estimate says {ref[key]:,}"
