"""The checks behind `python -m ch02_attention.exercises --check`.

Each check takes the module that holds the implementations (the student's
`ch02_attention.exercises` or the instructor's `ch02_attention.solutions.exercises`)
and raises AssertionError with a one-line message when something is wrong.
The answers are compared with the chapter's own code in attention.py.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ch02_attention import attention as course
from coursekit.exercise_kit import ExerciseChecks, expect_error

CHECKS = ExerciseChecks(hints=Path(__file__).with_name("hints.toml"))


def _randn(*shape: int, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _shape(t) -> tuple:
    return tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__


@CHECKS.exercise("average_past")
def check_average_past(ex) -> None:
    x = _randn(3, 6, 4, dtype=torch.float64)
    out = ex.average_past(x)
    assert _shape(out) == (3, 6, 4), f"output shape {_shape(out)}, expected (B, T, C) = (3, 6, 4)"
    assert out.dtype == torch.float64, f"output dtype {out.dtype}: make the weights with x's dtype (float64 here)"
    ref = course.average_past_loops(x)
    assert torch.allclose(out[:, 0], x[:, 0]), "position 0 should be x[:, 0] itself (the mean of one vector)"
    assert torch.allclose(out[:, -1], x.mean(dim=1)), "the last position should be the mean of the whole row"
    worst = (out - ref).abs().max().item()
    assert torch.allclose(out, ref), \
        f"differs from the mean of x[b, :t+1] by up to {worst:.3g}: output t should weigh positions 0..t equally"
    one = _randn(2, 1, 5, seed=1)
    assert torch.allclose(ex.average_past(one), one), "with T = 1 the output should equal the input"


@CHECKS.exercise("attention_weights")
def check_attention_weights(ex) -> None:
    B, T, hs = 2, 5, 16
    q, k = _randn(B, T, hs, seed=2) * 2, _randn(B, T, hs, seed=3) * 2
    w = ex.attention_weights(q, k)
    assert _shape(w) == (B, T, T), f"weights have shape {_shape(w)}, expected (B, T, T) = {(B, T, T)}"
    assert torch.allclose(w.sum(dim=-1), torch.ones(B, T)), \
        "the rows do not sum to 1: each query's weights over the keys should"
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    assert (w[:, future] == 0).all(), \
        "a position gives weight to a LATER one: weights above the diagonal should be exactly 0"
    assert torch.allclose(w[:, 0, 0], torch.ones(B)), "position 0 can only look at itself, so w[:, 0, 0] should be 1"
    ref = course.attention_weights(q, k)
    if not torch.allclose(w, ref, atol=1e-6):
        raw = q @ k.transpose(-2, -1)
        for scale, advice in ((1.0, "these are the weights of unscaled scores; the scale is missing"),
                              (1.0 / hs, "the scores are scaled by the head size, not by its square root"),
                              (1.0 / math.sqrt(q.shape[1]), "the scores are scaled by the number of positions T, "
                                                            "not by the head size")):
            unscaled = torch.softmax((raw * scale).masked_fill(future, float("-inf")), dim=-1)
            assert not torch.allclose(w, unscaled, atol=1e-6), advice
        raise AssertionError(f"weights differ from the chapter's by up to {(w - ref).abs().max().item():.3g}")


@CHECKS.exercise("head_forward")
def check_head_forward(ex) -> None:
    n_embd, hs, T = 12, 4, 6
    torch.manual_seed(0)
    head = ex.Head(n_embd, hs)
    ref = course.Head(n_embd, hs, block_size=T)
    ref.load_state_dict(head.state_dict())
    x = _randn(2, T, n_embd, seed=4)
    out = head(x)
    assert _shape(out) == (2, T, hs), f"output shape {_shape(out)}, expected (B, T, head_size) = {(2, T, hs)}"
    with torch.no_grad():
        q, k, v = head.query(x), head.key(x), head.value(x)
        swapped = course.attention_weights(k, q) @ v
        no_values = course.attention_weights(q, k) @ x[..., :hs]
    assert not torch.allclose(out, swapped, atol=1e-6), \
        "queries and keys are swapped: row t should be query t against every key"
    assert not torch.allclose(out, no_values, atol=1e-6), "the input x was averaged; the values should be"
    later = x.clone()
    later[:, -1] += 10.0  # change only the last token
    assert torch.allclose(head(later)[:, :-1], out[:, :-1], atol=1e-6), \
        "changing the last token changed earlier outputs: the future is not masked"
    expected = ref(x)
    assert torch.allclose(out, expected, atol=1e-6), \
        f"output differs from the chapter's Head by up to {(out - expected).abs().max().item():.3g}"
    assert out.requires_grad, "the output carries no gradient: compute it from the Linear layers' outputs"


@CHECKS.exercise("split_merge_heads")
def check_split_merge_heads(ex) -> None:
    B, T, C, nh = 2, 5, 12, 3
    hs = C // nh
    x = _randn(B, T, C, seed=5)
    # The chapter's CausalSelfAttention with c_attn = [I; 2I; 3I] and c_proj = I splits x itself (as q)
    # and merges without changing anything, so its split_heads/merge_heads are the reference.
    attn = course.CausalSelfAttention(C, nh, T, bias=False)
    with torch.no_grad():
        attn.c_attn.weight.copy_(torch.cat([torch.eye(C) * i for i in (1, 2, 3)]))
        attn.c_proj.weight.copy_(torch.eye(C))
        ref_split = attn.split_heads(x)[0]
    out = ex.split_heads(x, nh)
    assert _shape(out) == (B, nh, T, hs), f"split_heads gave shape {_shape(out)}, expected (B, nh, T, hs) = " \
                                          f"{(B, nh, T, hs)}"
    assert torch.equal(out[1, 2, 3], x[1, 3, 2 * hs:3 * hs]), \
        "out[1, 2, 3] should be channels 2*hs to 3*hs of x[1, 3] (head 2 of position 3), but is not"
    assert torch.equal(out, ref_split), "split_heads differs from the chapter's CausalSelfAttention.split_heads"
    back = ex.merge_heads(out)
    assert _shape(back) == (B, T, C), f"merge_heads gave shape {_shape(back)}, expected (B, T, C) = {(B, T, C)}"
    assert torch.equal(back, x), "merge_heads(split_heads(x)) is not x: the channels come back in the wrong order"
    y = _randn(B, nh, T, hs, seed=6)
    with torch.no_grad():
        assert torch.equal(ex.merge_heads(y), attn.merge_heads(y)), \
            "merge_heads differs from the chapter's CausalSelfAttention.merge_heads"
    expect_error(ValueError, lambda: ex.split_heads(_randn(1, 2, 10), 3),
                 "10 channels do not split into 3 heads: split_heads should raise ValueError")


@CHECKS.exercise("attend_with_cache")
def check_attend_with_cache(ex) -> None:
    B, nh, T_k, hs = 2, 3, 7, 8
    q_all, k, v = (_randn(B, nh, T_k, hs, seed=s) for s in (7, 8, 9))
    full = course.attend(q_all, k, v, fused=False)  # (B, nh, T_k, hs)
    for T_q in (T_k, 3, 1):
        q = q_all[:, :, -T_q:]
        out = ex.attend(q, k, v)
        assert _shape(out) == (B, nh, T_q, hs), \
            f"with {T_q} queries and {T_k} keys the output has shape {_shape(out)}, expected {(B, nh, T_q, hs)}"
        ref = course.attend(q, k, v, fused=False)
        if not torch.allclose(out, ref, atol=1e-5):
            aligned_left = torch.softmax((q @ k.transpose(-2, -1) / math.sqrt(hs)).masked_fill(
                ~torch.ones(T_q, T_k, dtype=torch.bool).tril(), float("-inf")), dim=-1) @ v
            assert not torch.allclose(out, aligned_left, atol=1e-5), \
                f"with {T_q} queries the mask treats them as the FIRST positions; they are the last"
            raise AssertionError(f"with {T_q} queries and {T_k} keys the output differs from the chapter's attend "
                                 f"by up to {(out - ref).abs().max().item():.3g}")
        assert torch.allclose(out, full[:, :, -T_q:], atol=1e-5), \
            f"with {T_q} queries the output is not the last {T_q} rows of full attention"
    expect_error(ValueError, lambda: ex.attend(q_all, k[:, :, :3], v[:, :, :3]),
                 f"{T_k} queries and 3 keys should raise ValueError (a query would have no key)")

