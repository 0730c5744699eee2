"""Chapter 2: the averaging trick, causality, the two multi-head layouts, the fused
path against the explicit one, the KV-cache shape of `attend`, what attention
adds over the bigram, the heat maps, the CLI and the benchmark."""

import math

import pytest
import torch

from ch01_bigram import TrainConfig, load_text, prepare_char_data
from ch02_attention import (
    AttentionLanguageModel,
    CausalSelfAttention,
    Head,
    MultiHeadAttention,
    attend,
    attention_weights,
    average_past_loops,
    average_past_matmul,
    average_past_softmax,
    bench_attention,
    causal_mask,
    check_heads,
    cli,
    plot_attention,
)
from ch02_attention.compare import compare_with_bigram, long_samples, loss_by_position, plot_losses
from coursekit import CourseError, run_cli
from coursekit.claims import claim

B, T, C, N_HEAD = 3, 10, 16, 4


def randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# --------------------------------------------------------------------------- #
# The averaging trick
# --------------------------------------------------------------------------- #

def test_three_averaging_versions_agree():
    x = randn(B, T, C)
    loops = average_past_loops(x)
    torch.testing.assert_close(average_past_matmul(x), loops)
    torch.testing.assert_close(average_past_softmax(x), loops)
    torch.testing.assert_close(loops[:, 0], x[:, 0])          # the first position sees only itself
    torch.testing.assert_close(loops[:, -1], x.mean(dim=1))   # the last sees everything


# --------------------------------------------------------------------------- #
# Causality: changing position t never changes an output before t
# --------------------------------------------------------------------------- #

def _modules():
    torch.manual_seed(0)
    yield "Head", Head(C, C // N_HEAD, T)
    yield "MultiHeadAttention", MultiHeadAttention(C, N_HEAD, T)
    yield "CausalSelfAttention fused", CausalSelfAttention(C, N_HEAD, T, fused=True)
    yield "CausalSelfAttention explicit", CausalSelfAttention(C, N_HEAD, T, fused=False)


@pytest.mark.parametrize("t", [0, 4, T - 1])
def test_attention_modules_are_causal(t):
    x = randn(B, T, C)
    x2 = x.clone()
    x2[:, t] += randn(B, C, seed=1)
    for name, module in _modules():
        module.eval()
        with torch.no_grad():
            y, y2 = module(x), module(x2)
        torch.testing.assert_close(y2[:, :t], y[:, :t], msg=f"{name} leaks the future")
        assert not torch.allclose(y2[:, t], y[:, t]), f"{name} ignores its own position"


@pytest.mark.parametrize("fused", [True, False])
def test_language_model_is_causal(fused):
    torch.manual_seed(0)
    model = AttentionLanguageModel(vocab_size=20, n_embd=C, n_head=N_HEAD, block_size=T, fused=fused).eval()
    idx = torch.randint(20, (2, T), generator=torch.Generator().manual_seed(0))
    idx2 = idx.clone()
    idx2[:, 6] = (idx2[:, 6] + 1) % 20
    with torch.no_grad():
        logits, _ = model(idx)
        logits2, _ = model(idx2)
    torch.testing.assert_close(logits2[:, :6], logits[:, :6])
    assert not torch.allclose(logits2[:, 6:], logits[:, 6:])


# --------------------------------------------------------------------------- #
# Two layouts of multi-head attention, two paths through attention
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("fused", [True, False])
def test_list_of_heads_and_batched_module_agree(fused):
    torch.manual_seed(0)
    mha = MultiHeadAttention(C, N_HEAD, T).eval()
    batched = CausalSelfAttention.from_heads(mha, fused=fused).eval()
    x = randn(B, T, C)
    with torch.no_grad():
        torch.testing.assert_close(batched(x), mha(x), atol=1e-5, rtol=1e-5)
        # and head by head, the weights are the same too
        per_head = torch.stack([h.weights(x) for h in mha.heads], dim=1)  # (B, nh, T, T)
        torch.testing.assert_close(batched.weights(x), per_head, atol=1e-6, rtol=1e-5)


def _fwd_bwd(fused, q, k, v, grad_out):
    q, k, v = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
    out = attend(q, k, v, 0.0, fused)
    out.backward(grad_out)
    return out, q.grad, k.grad, v.grad


@pytest.mark.parametrize("T_q", [12, 5, 1])  # 12: training; 5 and 1: new queries against cached keys
def test_fused_path_matches_explicit_forward_and_backward(T_q):
    T_k, hs = 12, 8
    q, k, v = randn(2, 3, T_q, hs, seed=1), randn(2, 3, T_k, hs, seed=2), randn(2, 3, T_k, hs, seed=3)
    grad_out = randn(2, 3, T_q, hs, seed=4)
    fused = _fwd_bwd(True, q, k, v, grad_out)
    explicit = _fwd_bwd(False, q, k, v, grad_out)
    for name, a, b in zip(("output", "dq", "dk", "dv"), fused, explicit):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5, msg=name)


def test_module_paths_agree_including_parameter_gradients():
    torch.manual_seed(0)
    fused = CausalSelfAttention(C, N_HEAD, T, fused=True)
    explicit = CausalSelfAttention(C, N_HEAD, T, fused=False)
    explicit.load_state_dict(fused.state_dict())
    x = randn(B, T, C)
    for m in (fused, explicit):
        m(x).pow(2).sum().backward()
    torch.testing.assert_close(fused(x), explicit(x), atol=1e-5, rtol=1e-5)
    for (name, p), p2 in zip(fused.named_parameters(), explicit.parameters()):
        torch.testing.assert_close(p.grad, p2.grad, atol=1e-5, rtol=1e-5, msg=name)


def test_attention_rows_sum_to_one_and_the_future_gets_nothing():
    q, k = randn(B, N_HEAD, T, 8, seed=1), randn(B, N_HEAD, T, 8, seed=2)
    w = attention_weights(q, k)
    assert w.shape == (B, N_HEAD, T, T)
    torch.testing.assert_close(w.sum(dim=-1), torch.ones(B, N_HEAD, T))
    assert (w.masked_select(~causal_mask(T, T)) == 0).all()
    assert (w.masked_select(causal_mask(T, T)) > 0).all()


@pytest.mark.parametrize("fused", [True, False])
def test_attend_with_fewer_queries_matches_last_rows(fused):
    q, k, v = randn(2, 3, T, 8, seed=1), randn(2, 3, T, 8, seed=2), randn(2, 3, T, 8, seed=3)
    full = attend(q, k, v, 0.0, fused)
    for T_q in (1, 4):
        torch.testing.assert_close(attend(q[:, :, -T_q:], k, v, 0.0, fused), full[:, :, -T_q:],
                                   atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="5 queries and 3 keys"):
        attend(q[:, :, :5], k[:, :, :3], v[:, :, :3], 0.0, fused)


@pytest.mark.parametrize("fused", [True, False])
def test_dropout_acts_in_training_only(fused):
    torch.manual_seed(0)
    m = CausalSelfAttention(C, N_HEAD, T, dropout=0.5, fused=fused)
    x = randn(B, T, C)
    m.train()
    assert not torch.allclose(m(x), m(x))
    m.eval()
    torch.testing.assert_close(m(x), m(x))


def test_explicit_dropout_hits_the_attention_weights():
    torch.manual_seed(0)
    head = Head(C, 4, T, dropout=0.5).train()
    x = randn(1, T, C)
    w = head.weights(x)                  # (1, T, T)
    dropped = head.dropout(w)
    past = causal_mask(T, T)
    kept = dropped != 0
    # Some allowed weights are dropped, the kept ones are scaled by 1 / (1 - p) = 2, the future stays at 0.
    assert 0 < (past & ~kept[0]).sum() < past.sum()
    torch.testing.assert_close(dropped[kept], 2 * w[kept])
    assert (dropped[0].masked_select(~past) == 0).all()


# --------------------------------------------------------------------------- #
# Bad input
# --------------------------------------------------------------------------- #

def test_embedding_not_divisible_by_heads_names_both_values():
    with pytest.raises(CourseError, match="embedding size 30 is not divisible by the number of heads 4"):
        CausalSelfAttention(30, 4, 8)
    with pytest.raises(CourseError, match="30.*4"):
        MultiHeadAttention(30, 4, 8)
    with pytest.raises(CourseError, match="n_head must be positive, got 0"):
        check_heads(32, 0)


@pytest.mark.parametrize("head_size", [0, -3])
def test_head_size_must_be_positive(head_size):
    with pytest.raises(CourseError, match=f"head size must be positive, got {head_size}"):
        Head(16, head_size, 8)


def test_sequence_longer_than_block_size():
    model = AttentionLanguageModel(vocab_size=10, n_embd=8, n_head=2, block_size=6)
    with pytest.raises(CourseError, match="sequence length 7 is longer than the block size 6"):
        model(torch.zeros(1, 7, dtype=torch.long))
    with pytest.raises(CourseError, match="sequence length 9 is longer than the block size 6"):
        CausalSelfAttention(8, 2, 6)(torch.zeros(1, 9, 8))
    with pytest.raises(CourseError, match="dropout must be at least 0 and below 1, got 1.0"):
        CausalSelfAttention(8, 2, 6, dropout=1.0)


@pytest.mark.parametrize("argv, message", [
    (["--n-embd", "30", "--n-head", "4"], "embedding size 30 is not divisible by the number of heads 4"),
    (["--n-head", "0"], "argument --n-head: must be positive (a whole number >= 1), got '0'"),
    (["--block-size", "8", "--attention-text", "a long text here"],
     "sequence length 16 is longer than the block size 8"),
    (["--dropout", "-0.1"], "argument --dropout: must be a finite number >= 0 and < 1, got '-0.1'"),
    (["--dropout", "nan"], "argument --dropout: must be a finite number >= 0 and < 1, got 'nan'"),
    (["--temperature", "nan"], "argument --temperature: must be a finite number >= 0, got 'nan'"),
    (["--save-attention", "attention.jpg"], "--save-attention must name a .png file"),
    (["--compare-bigram", "--block-size", "16", "--score-context", "17"],
     "score context 17 is longer than the block size 16"),
    (["--compare-bigram", "--score-temperature", "0"],
     "argument --score-temperature: must be positive (a finite number > 0), got '0'"),
])
def test_cli_bad_input_exits_2_with_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        run_cli(cli.main, argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


# --------------------------------------------------------------------------- #
# What attention adds, and seeing it
# --------------------------------------------------------------------------- #

@pytest.fixture(scope="module")
def small_comparison():
    """A small comparison on the built-in stories (about 10 s on one thread)."""
    data = prepare_char_data(load_text("builtin"), 32)
    cfg = TrainConfig(steps=1000, batch_size=16, block_size=32, lr=1e-2, eval_interval=500, eval_iters=10, seed=1)
    return data, compare_with_bigram(data, cfg, n_embd=64, n_head=16, streams=64, length=300, progress=False,
                                     log=None)


@pytest.mark.trained
def test_attention_beats_bigram_on_builtin_corpus(small_comparison):
    _, cmp = small_comparison
    bigram, attention = cmp.bigram.val[-1], cmp.attention.val[-1]
    # Same steps, batch, lr and seed; the band is the sweep's (python -m coursekit.sweep ch02_attention).
    claim("test: the attention model's lead over the bigram in val loss", bigram - attention, low=0.5)
    assert cmp.bigram.eval_steps == cmp.attention.eval_steps == [0, 500, 1000]
    assert len(cmp.attention_samples) == 64 and all(len(s) == len("Once upon a time") + 300
                                                   for s in cmp.attention_samples)
    summary = cmp.summary()
    assert summary.splitlines()[0].split() == ["model", "val", "loss", "stories", "mentions", "names", "objects",
                                               "pronouns", "score"]
    assert summary.splitlines()[1].startswith("bigram") and summary.splitlines()[2].startswith("attention")


@pytest.mark.trained
def test_attention_samples_write_stories_the_bigram_does_not(small_comparison):
    _, cmp = small_comparison
    b, a = cmp.bigram_score, cmp.attention_score
    # The bigram never spells a whole introduction ("named Mia"), so it has no story to score. The attention
    # model writes introductions and later mentions to check (64 samples of 300 characters at temperature 0.8).
    # How many varies by a factor from seed to seed, so their bands are on their logarithms. (Whether they then
    # score above the bigram's is the notebook's claim, on a model trained longer: at this size it is not reliable.)
    claim("test: stories the bigram's samples introduce", b.stories, high=1)
    claim("test: log of 1 + the stories the attention model's samples introduce", math.log1p(a.stories),
          low=math.log1p(1))
    claim("test: log of 1 + the later mentions in the attention model's samples", math.log1p(a.mentions),
          low=math.log1p(3))


def test_long_samples_are_seeded(small_comparison):
    data, cmp = small_comparison
    a = long_samples(cmp.attention_model, data.tokenizer, "Once", 2, 50, block_size=32, seed=3)
    b = long_samples(cmp.attention_model, data.tokenizer, "Once", 2, 50, block_size=32, seed=3)
    assert a == b and a[0] != a[1] and all(s.startswith("Once") for s in a)


def test_loss_by_position_averages_to_the_val_loss(small_comparison):
    data, cmp = small_comparison
    curve = loss_by_position(cmp.attention_model, data.val, 32, batch_size=64, batches=2)
    assert curve.shape == (32,)
    # Position 0 sees one character: it cannot beat the bigram by much. Later positions see more.
    assert curve[0] > 1.8 and curve[8:].mean() < curve[0] - 0.8
    assert abs(curve.mean().item() - cmp.attention.val[-1]) < 0.15


def test_sample_context_longer_than_the_block_is_refused(small_comparison):
    data, _ = small_comparison
    cfg = TrainConfig(steps=1, batch_size=2, block_size=8, eval_interval=1, eval_iters=1)
    with pytest.raises(CourseError, match="sample context 9 is longer than the block size 8"):
        compare_with_bigram(data, cfg, n_embd=8, n_head=2, sample_context=9, progress=False, log=None)


def test_plots_have_one_panel_per_head_and_characters_on_the_axes(small_comparison, tmp_path):
    data, cmp = small_comparison
    text = "Mia had a red ball.\nMia"
    path = tmp_path / "attention.png"
    fig = plot_attention(cmp.attention_model, data.tokenizer, text, path)
    axes = [ax for ax in fig.axes if ax.get_title().startswith("head")]
    assert len(axes) == 16
    labels = [t.get_text() for t in axes[0].get_xticklabels()]
    assert labels[:3] == ["M", "i", "a"] and labels[3] == "\u2423" and labels[19] == "\u21b5"
    assert len(axes[0].get_yticklabels()) == len(text)
    assert all(t.get_fontsize() >= 9 for t in axes[0].get_xticklabels())
    colour_bars = [ax for ax in fig.axes if ax.get_ylabel().startswith("attention weight")]
    assert len(colour_bars) == 1
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(CourseError, match="longer than the block size 32"):
        plot_attention(cmp.attention_model, data.tokenizer, "x" * 33)
    loss_png = tmp_path / "losses.png"
    plot_losses(cmp, loss_png)
    assert loss_png.stat().st_size > 1000


def test_cli_trains_samples_and_saves_heat_maps(tmp_path, capsys):
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("abcabd abcabd. " * 200)
    png = tmp_path / "attn.png"
    cli.main(["--corpus", str(corpus), "--steps", "20", "--block-size", "16", "--n-embd", "16", "--n-head", "2",
              "--eval-interval", "10", "--eval-iters", "2", "--sample-length", "30", "--prompt", "ab",
              "--no-progress", "--save-attention", str(png)])
    out = capsys.readouterr().out
    assert "model: 2 heads of 8 (embedding 16), block 16" in out
    assert "final val loss" in out and "--- sample ---" in out
    assert png.is_file() and "saved attention heat maps" in out


def test_bench_prints_both_timings_and_a_ratio(capsys):
    bench_attention.main(["--batch-size", "2", "--n-head", "2", "--head-size", "8", "--seq-len", "16",
                "--warmup", "1", "--repeats", "3"])
    out = capsys.readouterr().out
    assert "explicit" in out and "fused" in out and "x as fast as explicit" in out
    diff = float(out.rsplit("max output difference ", 1)[1].rstrip(")\n"))
    assert diff < 1e-5


def test_chapter_1s_loop_runs_the_forward_passes_in_the_format_asked():
    from ch01_bigram import train

    data = prepare_char_data("hello world, this is a tiny corpus. " * 50, 8)
    cfg = TrainConfig(steps=20, batch_size=8, block_size=8, eval_interval=10, eval_iters=2, lr=1e-2)
    torch.manual_seed(0)
    model = AttentionLanguageModel(data.tokenizer.vocab_size, n_embd=16, n_head=2, block_size=8)
    seen = []
    first_linear = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
    first_linear.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    history = train(model, data.train, data.val, cfg, progress=False, log=None, dtype="bfloat16")
    assert torch.bfloat16 in seen and history.val[-1] < history.val[0]
    assert next(model.parameters()).dtype == torch.float32  # the weights stay float32
