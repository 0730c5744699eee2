"""The checks behind `python -m ch03_gpt.exercises --check`.

Each check takes the module that holds the implementations (the student's
`ch03_gpt.exercises` or the instructor's `ch03_gpt.solutions.exercises`) and
raises AssertionError with a one-line message when something is wrong. The
answers are compared with the chapter's own code: `filter_logits`,
`cosine_lr`, `Block`, `KVCache`, `GPT` and `GPT.num_params`. Everything is
tiny, so the whole chapter's checks take well under a second.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ch02_attention import CausalSelfAttention
from ch03_gpt import model as course
from ch03_gpt.generate import filter_logits as course_filter_logits
from ch03_gpt.train import cosine_lr as course_cosine_lr
from coursekit.exercise_kit import ExerciseChecks

CHECKS = ExerciseChecks(hints=Path(__file__).with_name("hints.toml"))

NEG_INF = float("-inf")


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _kept(row: torch.Tensor) -> list[int]:
    """Indices of the logits that survived a filter."""
    return torch.nonzero(row != NEG_INF).flatten().tolist()


def _check_filter_output(out, logits, what: str) -> None:
    assert isinstance(out, torch.Tensor), f"{what} returned {type(out).__name__}, expected a tensor"
    assert tuple(out.shape) == tuple(logits.shape), \
        f"{what} returned shape {tuple(out.shape)}, expected {tuple(logits.shape)} (same as the logits)"
    kept = out != NEG_INF
    assert torch.equal(out[kept], logits[kept]), (f"{what} changed the values of kept logits "
                                                  "(only set others to -inf; keep every logit in its place)")


@CHECKS.exercise("top_k")
def check_top_k(ex) -> None:
    logits = torch.tensor([[1.0, 4.0, 2.0, 3.0, 0.0], [5.0, -1.0, 0.5, 2.0, 7.0]])
    original = logits.clone()
    out = ex.top_k_filter(logits, 2)
    _check_filter_output(out, logits, "top_k_filter(logits, 2)")
    assert torch.equal(logits, original), "top_k_filter changed the logits in place; return a new tensor"
    for row in range(2):
        assert _kept(out[row]) == [[1, 3], [0, 4]][row], \
            f"row {row} kept indices {_kept(out[row])}, expected {[[1, 3], [0, 4]][row]}: filter each row on its own"
    best = ex.top_k_filter(logits, 1)
    assert [_kept(r) for r in best] == [[1], [4]], \
        f"k=1 kept {[_kept(r) for r in best]}, expected only each row's largest logit, [[1], [4]]"
    for k in (5, 9):
        assert torch.equal(ex.top_k_filter(logits, k), logits), f"k={k} >= V=5 should keep every logit"
    ties = torch.tensor([[3.0, 1.0, 3.0, 2.0, 3.0]])
    assert _kept(ex.top_k_filter(ties, 2)[0]) == [0, 2, 4], \
        "logits equal to the k-th largest should be kept too (3 tied at the top, k=2 keeps all 3)"

    random = torch.randn(6, 40, generator=_seeded(0))
    for k in (1, 3, 17, 39):
        mine, ref = ex.top_k_filter(random, k), course_filter_logits(random, top_k=k)
        assert torch.equal(mine, ref), (f"on random logits with k={k}, "
                                        "the kept set differs from the chapter's filter_logits")


@CHECKS.exercise("top_p")
def check_top_p(ex) -> None:
    # Probabilities 0.2, 0.5, 0.1, 0.2 (token 1 first, then 0 and 3 (tied), then 2); a second row reversed.
    logits = torch.tensor([[0.2, 0.5, 0.1, 0.2], [0.5, 0.1, 0.25, 0.15]]).log()
    original = logits.clone()
    out = ex.top_p_filter(logits, 0.4)
    _check_filter_output(out, logits, "top_p_filter(logits, 0.4)")
    assert torch.equal(logits, original), "top_p_filter changed the logits in place; return a new tensor"
    assert [_kept(r) for r in out] == [[1], [0]], \
        (f"p=0.4 kept {[_kept(r) for r in out]}, expected [[1], [0]]: the most likely token (0.5) "
         f"already reaches p, and the result must be in vocabulary order, not sorted order")
    tiny = ex.top_p_filter(logits, 0.01)
    assert [_kept(r) for r in tiny] == [[1], [0]], \
        f"p=0.01 kept {[_kept(r) for r in tiny]}: the most likely token must always be kept"
    out = ex.top_p_filter(logits, 0.6)
    assert _kept(out[1]) == [0, 2], \
        f"row [0.5, 0.1, 0.25, 0.15] with p=0.6 kept {_kept(out[1])}, expected [0, 2] (0.5 + 0.25 first reaches 0.6)"
    assert len(_kept(out[0])) == 2 and 1 in _kept(out[0]), \
        f"row [0.2, 0.5, 0.1, 0.2] with p=0.6 kept {_kept(out[0])}: 0.5 and one of the 0.2s reach 0.6"
    out = ex.top_p_filter(logits, 0.95)
    assert [_kept(r) for r in out] == [[0, 1, 2, 3], [0, 1, 2, 3]], \
        f"p=0.95 kept {[_kept(r) for r in out]}: every token is needed to reach 0.95 (the last brings 0.9 to 1.0)"
    spread = torch.tensor([[30.0, 0.0, -30.0, -60.0, 10.0]])
    assert torch.equal(ex.top_p_filter(spread, 1.0), spread), \
        "p=1 must keep every token, even one whose probability rounds to 0"

    random = torch.randn(8, 50, generator=_seeded(1)) * 2
    for p in (0.1, 0.5, 0.9, 0.99):
        mine, ref = ex.top_p_filter(random, p), course_filter_logits(random, top_p=p)
        assert torch.equal(mine, ref), \
            (f"on random logits with p={p}, rows kept {[len(_kept(r)) for r in mine]} tokens; the chapter's "
             f"filter_logits keeps {[len(_kept(r)) for r in ref]}")


def _block(seed: int) -> course.Block:
    torch.manual_seed(seed)
    block = course.Block(course.GPTConfig(vocab_size=5, block_size=8, n_layer=1, n_head=2, n_embd=8))
    with torch.no_grad():
        # Different, non-trivial LayerNorm gains and biases, so that mixing up ln_1 and ln_2
        # (or leaving one out) changes the answer.
        for ln in (block.ln_1, block.ln_2):
            ln.weight.uniform_(0.5, 1.5)
            ln.bias.normal_(0.0, 0.5)
        for p in block.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.3)  # large enough that every sublayer visibly moves the stream
    return block.eval()


@CHECKS.exercise("block_forward")
def check_block_forward(ex) -> None:
    for seed in (0, 1):
        block = _block(seed)
        x = torch.randn(2, 5, 8, generator=_seeded(seed + 10)) * 3 + 1  # a stream that is far from normalised
        with torch.no_grad():
            mine = ex.block_forward(block, x)
            ref = block(x)
        assert isinstance(mine, torch.Tensor) and tuple(mine.shape) == (2, 5, 8), \
            f"block_forward returned shape {tuple(getattr(mine, 'shape', ()))}, expected (B, T, C) = (2, 5, 8)"
        assert not torch.allclose(mine, x), "the output equals the input: add the sublayers' outputs to x"
        with torch.no_grad():
            post_ln = block.ln_1(x + block.attn(x))
            post_ln = block.ln_2(post_ln + block.mlp(post_ln))
        assert not torch.allclose(mine, post_ln, atol=1e-5), \
            "this is the post-LayerNorm block (LayerNorm after adding); GPT-2 normalises each sublayer's INPUT"
        assert torch.allclose(mine, ref, atol=1e-5), \
            f"differs from the chapter's Block by up to {(mine - ref).abs().max().item():.3g}"
    x = torch.randn(1, 8, 8, generator=_seeded(3))
    block = _block(2)
    with torch.no_grad():
        early = ex.block_forward(block, x)[:, :4]
        changed = x.clone()
        changed[:, 4:] += 5.0
        early_changed = ex.block_forward(block, changed)[:, :4]
    assert torch.allclose(early, early_changed, atol=1e-5), \
        "changing later tokens changed earlier outputs: use block.attn (causal), not your own unmasked attention"


@CHECKS.exercise("cosine_lr")
def check_cosine_lr(ex) -> None:
    max_lr, min_lr = 1e-3, 1e-4
    value = ex.cosine_lr(0, max_lr, min_lr, 10, 110)
    assert isinstance(value, float), f"cosine_lr returned {type(value).__name__}, expected a float"
    assert math.isclose(value, 1e-4), f"step 0 of a 10-step warm-up gave {value:.3g}, expected max_lr / 10 = 1e-4"
    peak = ex.cosine_lr(9, max_lr, min_lr, 10, 110)
    assert math.isclose(peak, max_lr), f"the last warm-up step (9) gave {peak:.3g}, expected max_lr = 1e-3"
    assert math.isclose(ex.cosine_lr(10, max_lr, min_lr, 10, 110), max_lr), "the decay should start at max_lr"
    middle = ex.cosine_lr(60, max_lr, min_lr, 10, 110)
    assert math.isclose(middle, 5.5e-4), f"halfway through the decay (step 60) gave {middle:.3g}, expected 5.5e-4"
    for step in (110, 111, 500):
        end = ex.cosine_lr(step, max_lr, min_lr, 10, 110)
        assert math.isclose(end, min_lr), f"step {step} (at or after total=110) gave {end:.3g}, expected min_lr = 1e-4"
    for warmup, total in ((10, 110), (0, 50), (3, 7), (100, 1000)):
        for step in range(total + 3):
            mine = ex.cosine_lr(step, max_lr, min_lr, warmup, total)
            ref = course_cosine_lr(step, max_lr, min_lr, warmup, total)
            assert math.isclose(mine, ref, rel_tol=1e-9, abs_tol=1e-15), \
                (f"warmup={warmup}, total={total}: step {step} gave {mine:.6g}, the chapter's cosine_lr gives "
                 f"{ref:.6g}")


@CHECKS.exercise("kv_cache")
def check_kv_cache(ex) -> None:
    cache = ex.KVCache(2)
    assert cache.length == 0, f"an empty cache has length {cache.length}, expected 0"
    k1, v1 = torch.randn(1, 2, 3, 4, generator=_seeded(0)), torch.randn(1, 2, 3, 4, generator=_seeded(1))
    k_all, v_all = cache.append(0, k1, v1)
    assert torch.equal(k_all, k1) and torch.equal(v_all, v1), "the first append should return exactly k and v"
    assert cache.length == 3, f"after appending 3 tokens the length is {cache.length}, expected 3"
    k2, v2 = torch.randn(1, 2, 1, 4, generator=_seeded(2)), torch.randn(1, 2, 1, 4, generator=_seeded(3))
    k_all, v_all = cache.append(0, k2, v2)
    assert tuple(k_all.shape) == (1, 2, 4, 4), \
        f"after 3 + 1 tokens the keys have shape {tuple(k_all.shape)}, expected (B, nh, 4, hs) = (1, 2, 4, 4)"
    assert torch.equal(k_all, torch.cat((k1, k2), dim=2)) and torch.equal(v_all, torch.cat((v1, v2), dim=2)), \
        "append should return the old keys/values followed by the new ones, along dim 2 (time)"
    other_k, other_v = cache.append(1, k2, v2)
    assert torch.equal(other_k, k2) and torch.equal(other_v, v2), \
        "layer 1's first append returned layer 0's tokens too: each layer needs its own keys and values"
    assert cache.length == 4, f"the length is {cache.length} after 4 tokens in layer 0, expected 4"

    # A real model: feed a prompt, then one token at a time, through your cache.
    torch.manual_seed(0)
    cfg = course.GPTConfig(vocab_size=11, block_size=12, n_layer=2, n_head=2, n_embd=8)
    model = course.GPT(cfg).eval()
    idx = torch.randint(11, (2, 9), generator=_seeded(4))
    with torch.no_grad():
        full, _ = model(idx)                 # (B, T, V), no cache
        cache = ex.KVCache(cfg.n_layer)
        steps = [model(idx[:, :5], cache=cache)[0]]
        for t in range(5, 9):
            steps.append(model(idx[:, t:t + 1], cache=cache)[0])
    cached = torch.cat(steps, dim=1)
    assert cache.length == 9, f"after a 5-token prompt and 4 steps the cache length is {cache.length}, expected 9"
    assert torch.allclose(cached, full, atol=1e-5), \
        f"GPT with your cache gives logits up to {(cached - full).abs().max().item():.3g} away from the uncached ones"


@CHECKS.exercise("cached_attention")
def check_cached_attention(ex) -> None:
    torch.manual_seed(0)
    attn = CausalSelfAttention(n_embd=8, n_head=2, block_size=16).eval()
    x = torch.randn(2, 9, 8, generator=_seeded(5))
    with torch.no_grad():
        full = attn(x)  # (B, T, C) all at once, no cache
        cache = course.KVCache(1)
        first = ex.cached_attention(attn, x[:, :4], cache)
        assert tuple(first.shape) == (2, 4, 8), \
            f"4 new tokens gave shape {tuple(first.shape)}, expected (B, T_new, C) = (2, 4, 8)"
        assert torch.allclose(first, full[:, :4], atol=1e-5), \
            "with an empty cache the result should be ordinary causal attention (is the future masked?)"
        one = ex.cached_attention(attn, x[:, 4:5], cache)
        assert torch.allclose(one, full[:, 4:5], atol=1e-5), \
            "one new token after 4 cached ones differs from attention over the whole sequence"
        several = ex.cached_attention(attn, x[:, 5:9], cache)
        assert torch.allclose(several, full[:, 5:9], atol=1e-5), \
            ("4 new tokens after 5 cached ones differ from attention over the whole sequence: new token i "
             "sits at position T_past + i and sees keys up to there")
    assert cache.length == 9, f"the cache holds {cache.length} tokens after 4 + 1 + 4, expected 9: append to it"
    layered = course.KVCache(2)
    with torch.no_grad():
        layered.append(0, *attn.split_heads(x[:, :3])[1:])
        ex.cached_attention(attn, x[:, :2], layered, layer=1)
    assert layered.k[1] is not None and layered.k[1].shape[2] == 2 and layered.k[0].shape[2] == 3, \
        "cached_attention(..., layer=1) should append to layer 1 only"


def _meta_model(cfg: course.GPTConfig) -> course.GPT:
    with torch.device("meta"):  # shapes only, no memory: even GPT-2 sizes are instant
        return course.GPT(cfg)


@CHECKS.exercise("num_params")
def check_num_params(ex) -> None:
    configs = [
        course.GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128),
        course.GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, bias=False),
        course.GPTConfig(vocab_size=7, block_size=3, n_layer=1, n_head=1, n_embd=2),
        course.gpt2_config("gpt2"),
    ]
    small = ex.num_params(configs[2])
    assert isinstance(small, int), f"num_params returned {type(small).__name__}, expected an int"
    for cfg in configs:
        model = _meta_model(cfg)
        for with_positions in (True, False):
            mine = ex.num_params(cfg, position_embeddings=with_positions)
            ref = model.num_params(non_embedding=not with_positions)
            untied = ref + cfg.vocab_size * cfg.n_embd
            assert mine != untied, \
                f"{mine:,} counts the output head separately; it IS the token embedding (tied), count it once"
            assert mine == ref, \
                (f"n_layer={cfg.n_layer}, n_embd={cfg.n_embd}, bias={cfg.bias}, position_embeddings="
                 f"{with_positions}: got {mine:,}, the chapter's GPT has {ref:,} ({mine - ref:+,})")
    gpt2 = ex.num_params(configs[3])
    assert gpt2 == 124_439_808, f"GPT-2 small gave {gpt2:,}, expected 124,439,808"
