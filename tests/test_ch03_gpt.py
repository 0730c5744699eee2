"""Chapter 3: the GPT model, generation with a KV cache, checkpoints and the CLI."""

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ch01_bigram import prepare_char_data
from ch03_gpt import (
    GPT,
    GPTConfig,
    KVCache,
    Recipe,
    configure_optimizer,
    cosine_lr,
    filter_logits,
    generate,
    gpt2_config,
    load_checkpoint,
    sample_next,
    sampling_probs,
    save_checkpoint,
    stream,
    stream_with_probs,
    train_gpt,
)
from coursekit import CourseError
from coursekit.claims import claim

TINY = GPTConfig(vocab_size=37, block_size=16, n_layer=2, n_head=4, n_embd=32)


def tiny_model(seed=0, cfg=TINY):
    torch.manual_seed(seed)
    return GPT(cfg).eval()


def test_shapes_and_loss():
    m = tiny_model()
    idx = torch.randint(0, 37, (3, 16))
    targets = torch.randint(0, 37, (3, 16))
    logits, loss = m(idx, targets)
    assert logits.shape == (3, 16, 37)
    # Small initial weights spread the bets evenly: the loss starts near ln(vocab size).
    assert loss.shape == () and abs(loss.item() - torch.log(torch.tensor(37.0)).item()) < 0.1


def test_causality():
    m = tiny_model()
    idx = torch.randint(0, 37, (2, 16))
    base, _ = m(idx)
    for t in (0, 5, 15):
        changed = idx.clone()
        changed[:, t] = (changed[:, t] + 1) % 37
        out, _ = m(changed)
        assert torch.allclose(out[:, :t], base[:, :t], atol=1e-6), f"position {t} leaked backwards"
        assert not torch.allclose(out[:, t], base[:, t])


def test_weight_tying_shares_one_tensor():
    m = tiny_model()
    assert m.lm_head.weight is m.transformer.wte.weight
    assert m.lm_head.weight.data_ptr() == m.transformer.wte.weight.data_ptr()


def test_gpt2_124m_parameter_count():
    with torch.device("meta"):  # shapes only: no memory, no time
        m = GPT(gpt2_config("gpt2"))
    assert m.num_params() == 124_439_808
    assert m.num_params(non_embedding=True) == 124_439_808 - 1024 * 768


def test_parameter_names_match_huggingface():
    names = set(tiny_model().state_dict())
    for expected in ["transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.ln_1.weight",
                     "transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_proj.bias",
                     "transformer.h.1.ln_2.bias", "transformer.h.1.mlp.c_fc.weight",
                     "transformer.h.1.mlp.c_proj.weight", "transformer.ln_f.weight", "lm_head.weight"]:
        assert expected in names


def test_bias_switch_and_depth_scaled_init():
    m = GPT(GPTConfig(vocab_size=37, block_size=16, n_layer=8, n_head=4, n_embd=64, bias=False))
    assert all(not n.endswith(".bias") for n, _ in m.named_parameters())
    proj = m.transformer.h[0].mlp.c_proj.weight.std().item()
    fc = m.transformer.h[0].mlp.c_fc.weight.std().item()
    assert proj == pytest.approx(0.02 / 4, rel=0.15) and fc == pytest.approx(0.02, rel=0.15)


def test_flops_per_token():
    m = tiny_model()
    n = m.num_params(non_embedding=True)
    assert m.flops_per_token() == 6 * n + 12 * 2 * 32 * 16


def test_cached_logits_match_uncached_step_by_step():
    m = tiny_model()
    idx = torch.randint(0, 37, (2, 12))
    cache = KVCache(TINY.n_layer)
    logits, _ = m(idx[:, :4], cache=cache)  # prefill
    assert torch.allclose(logits, m(idx[:, :4])[0], atol=1e-5)
    for t in range(4, 12):
        step_logits, _ = m(idx[:, t:t + 1], cache=cache)
        full, _ = m(idx[:, :t + 1])
        assert torch.allclose(step_logits[:, -1], full[:, -1], atol=1e-5), f"step {t}"


@pytest.mark.parametrize("kwargs", [{}, {"temperature": 0.0}, {"top_k": 5}, {"top_p": 0.8, "temperature": 1.3}])
def test_cache_gives_the_same_tokens_even_past_the_block_size(kwargs):
    m = tiny_model()
    prompt = torch.randint(0, 37, (1, 20))  # longer than the block: cropped from the left
    a = generate(m, prompt, 40, use_cache=True, generator=torch.Generator().manual_seed(3), **kwargs)
    b = generate(m, prompt, 40, use_cache=False, generator=torch.Generator().manual_seed(3), **kwargs)
    assert a.shape == (1, 60) and torch.equal(a, b)


def test_same_seed_same_text_and_different_seed_differs():
    m = tiny_model()
    prompt = torch.zeros((1, 1), dtype=torch.long)
    run = lambda s: generate(m, prompt, 30, generator=torch.Generator().manual_seed(s))  # noqa: E731
    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


def test_streaming_yields_as_it_goes_and_stops_at_the_stop_token():
    m = tiny_model()
    prompt = torch.zeros((1, 1), dtype=torch.long)
    greedy = generate(m, prompt, 20, temperature=0.0)[0, 1:].tolist()
    it = stream(m, prompt, 20, temperature=0.0)
    assert next(it).item() == greedy[0]  # the first token arrives before the rest are computed
    stop = greedy[5]
    got = [t.item() for t in stream(m, prompt, 20, temperature=0.0, stop_token=stop)]
    assert got == greedy[:greedy.index(stop) + 1]


@pytest.mark.parametrize("settings", [dict(temperature=0.0), dict(temperature=0.8), dict(temperature=1.3, top_k=3),
                                      dict(temperature=1.0, top_p=0.6)])
def test_stream_with_probs_is_streams_loop_and_gives_the_distribution_each_token_was_drawn_from(settings):
    m = tiny_model()
    prompt = torch.zeros((1, 3), dtype=torch.long)
    plain = [t.item() for t in stream(m, prompt, 40, generator=torch.Generator().manual_seed(4), **settings)]
    steps = list(stream_with_probs(m, prompt, 40, generator=torch.Generator().manual_seed(4), **settings))
    assert [t.item() for t, _ in steps] == plain  # the same seed, the same tokens
    context = prompt
    for token, probs in steps:  # each step's distribution, recomputed from the whole context
        logits = m(context[:, -TINY.block_size:])[0][:, -1, :]  # the window the model sees (40 > 16)
        assert torch.allclose(probs, sampling_probs(logits, **settings), atol=1e-5)
        assert torch.allclose(probs.sum(-1), torch.ones(1)) and probs[0, token.item()] > 0
        context = torch.cat((context, token[:, None]), dim=1)
    if settings.get("top_k"):
        assert all((probs > 0).sum() <= settings["top_k"] for _, probs in steps)
    if settings["temperature"] == 0:  # greedy: the model's own distribution, and its most likely token taken
        assert all(probs.argmax().item() == token.item() for token, probs in steps)


def test_top_k_never_samples_outside_and_renormalises():
    torch.manual_seed(0)
    logits = torch.randn(4, 50)
    filtered = filter_logits(logits, top_k=5)
    allowed = torch.topk(logits, 5).indices
    assert (filtered.isfinite().sum(dim=-1) == 5).all()
    probs = F.softmax(filtered, dim=-1)
    assert torch.allclose(probs.sum(-1), torch.ones(4))
    expected = F.softmax(logits.gather(1, allowed), dim=-1)  # renormalised over the kept five
    assert torch.allclose(probs.gather(1, allowed), expected, atol=1e-6)
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        tok = sample_next(logits, top_k=5, generator=gen)
        assert (allowed == tok).any(dim=-1).all()


def test_top_p_keeps_the_smallest_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = filter_logits(logits, top_p=0.7).isfinite()[0].tolist()
    assert kept == [True, True, False, False]  # 0.5 < 0.7, 0.5 + 0.3 >= 0.7
    assert filter_logits(logits, top_p=0.4).isfinite()[0].tolist() == [True, False, False, False]
    probs = F.softmax(filter_logits(logits, top_p=0.7), dim=-1)[0]
    assert torch.allclose(probs[:2], torch.tensor([0.625, 0.375]))
    gen = torch.Generator().manual_seed(0)
    samples = {sample_next(logits, top_p=0.7, generator=gen).item() for _ in range(300)}
    assert samples == {0, 1}


@pytest.mark.parametrize("kwargs, message", [
    ({"max_new_tokens": -1}, "max new tokens"),
    ({"temperature": -0.5}, "temperature"),
    ({"top_k": 0}, "top-k"),
    ({"top_k": 38}, "top-k"),
    ({"top_p": 0.0}, "top-p"),
    ({"top_p": 1.5}, "top-p"),
])
def test_bad_sampling_settings_are_refused(kwargs, message):
    m = tiny_model()
    n = kwargs.pop("max_new_tokens", 5)
    with pytest.raises(CourseError, match=message):
        generate(m, torch.zeros((1, 1), dtype=torch.long), n, **kwargs)


def test_config_validation():
    with pytest.raises(CourseError, match="not divisible"):
        GPTConfig(n_embd=130, n_head=4)
    with pytest.raises(CourseError, match="dropout"):
        GPTConfig(dropout=1.5)


def test_cosine_schedule_values():
    assert cosine_lr(0, 1e-3, 1e-4, 10, 100) == pytest.approx(1e-4)
    assert cosine_lr(9, 1e-3, 1e-4, 10, 100) == pytest.approx(1e-3)
    assert cosine_lr(55, 1e-3, 1e-4, 10, 100) == pytest.approx(5.5e-4)
    assert cosine_lr(100, 1e-3, 1e-4, 10, 100) == pytest.approx(1e-4)
    assert cosine_lr(500, 1e-3, 1e-4, 10, 100) == pytest.approx(1e-4)


def test_weight_decay_only_on_matrices():
    m = tiny_model()
    opt = configure_optimizer(m, 1e-3, weight_decay=0.1)
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decayed["params"]) and all(p.dim() == 1 for p in plain["params"])
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == m.num_params()


def test_checkpoint_round_trip_and_mismatch(tmp_path):
    m = tiny_model()
    save_checkpoint(m, tmp_path / "ck", {"step": 7})
    loaded, meta = load_checkpoint(tmp_path / "ck")
    assert meta["step"] == 7 and meta["model"] == TINY.to_dict()
    idx = torch.randint(0, 37, (1, 8))
    assert torch.equal(loaded.eval()(idx)[0], m(idx)[0])
    assert loaded.lm_head.weight is loaded.transformer.wte.weight
    other = GPTConfig(vocab_size=37, block_size=16, n_layer=3, n_head=4, n_embd=32)
    with pytest.raises(CourseError, match="n_layer 2 != 3"):
        load_checkpoint(tmp_path / "ck", expect=other)


@pytest.mark.trained
def test_training_keeps_the_best_checkpoint(tmp_path):
    text = "hello world, this is a tiny corpus. " * 200
    data = prepare_char_data(text, 16)
    cfg = GPTConfig(vocab_size=data.tokenizer.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16)
    recipe = Recipe(steps=60, batch_size=8, lr=3e-3, warmup=5, eval_interval=20, eval_iters=4)
    _, history, summary = train_gpt(data, cfg, recipe, tmp_path / "run", progress=False, log=None)
    assert summary["best_val_loss"] == min(history.val)
    claim("test: 60 steps on a repeated sentence lower the val loss by", history.val[0] - summary["best_val_loss"],
          low=0.5)
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    assert meta["val_loss"] == pytest.approx(summary["best_val_loss"]) and meta["step"] == summary["best_step"]
    assert meta["tokenizer"]["chars"] == data.tokenizer.chars


def test_exact_estimate_covers_all_of_val_and_as_many_evenly_spread_train_windows():
    """eval_iters=None: every non-overlapping val window once, and the same number of train windows a whole
    number of windows apart; no generator, so the same figure every time, whatever the chunk size."""
    from ch01_bigram import estimate_loss
    from ch01_bigram.bigram import _windows_loss

    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=37, block_size=8, n_layer=1, n_head=2, n_embd=16)
    m = GPT(cfg).train()
    train, val = torch.randint(0, 37, (1000,)), torch.randint(0, 37, (170,))  # val: 21 windows; train: 124

    def manual(data, starts):
        with torch.no_grad():
            return sum(m(data[s:s + 8][None], data[s + 1:s + 9][None])[1].item() for s in starts) / len(starts)

    out = estimate_loss(m, {"train": train, "val": val}, batch_size=4, block_size=8, eval_iters=None)
    assert m.training  # mode restored
    assert out["val"] == pytest.approx(manual(val, range(0, 21 * 8, 8)), abs=1e-5)
    assert out["train"] == pytest.approx(manual(train, [i * 5 * 8 for i in range(21)]), abs=1e-5)  # 124 // 21 = 5
    assert estimate_loss(m, {"train": train, "val": val}, 4, 8, None) == out
    assert _windows_loss(m, val, 8, 21, "cpu", chunk_tokens=8) == pytest.approx(out["val"], abs=1e-5)
    # random batches estimate the same loss (positions see 1 to 8 tokens of context either way)
    sampled = estimate_loss(m, {"val": val}, 32, 8, 50, torch.Generator().manual_seed(0))
    assert sampled["val"] == pytest.approx(out["val"], abs=0.05)


@pytest.mark.trained
def test_fast_recipe_estimates_once_at_the_end_over_the_whole_val_split(tmp_path):
    from ch03_gpt import RECIPES

    fast = RECIPES["fast"]
    assert fast.eval_iters is None and fast.eval_interval >= fast.steps
    assert (RECIPES["published"].eval_iters, RECIPES["baseline"].eval_iters) == (200, 200)  # unchanged
    text = "hello world, this is a tiny corpus. " * 200
    data = prepare_char_data(text, 16)
    cfg = GPTConfig(vocab_size=data.tokenizer.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16)
    recipe = Recipe(steps=30, batch_size=8, lr=3e-3, warmup=5, eval_interval=30, eval_iters=None)
    _, history, summary = train_gpt(data, cfg, recipe, tmp_path / "run", progress=False, log=None)
    assert history.eval_steps == [0, 30] and summary["best_val_loss"] == history.val[-1]
    claim("test: 30 steps on a repeated sentence lower the val loss by", history.val[0] - history.val[-1], low=0.2)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["recipe"]["eval_iters"] is None


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ch03_gpt", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def char_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("ck") / "run"
    corpus = out.parent / "corpus.txt"
    corpus.write_text("to be or not to be, that is the question. " * 100)
    r = run_cli("train", "--corpus", str(corpus), "--out", str(out), "--steps", "10", "--eval-interval", "5",
                "--eval-iters", "2", "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "16",
                "--no-progress", "--sample-length", "20")
    assert r.returncode == 0, r.stderr
    assert "best val loss" in r.stdout
    return out


def test_cli_eval_iters_all_and_its_refusals(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("to be or not to be, that is the question. " * 100)
    small = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "16", "--no-progress",
             "--sample-length", "0", "--corpus", str(corpus), "--out", str(tmp_path / "run")]
    r = run_cli("train", *small, "--steps", "4", "--eval-interval", "4", "--eval-iters", "all")
    assert r.returncode == 0, r.stderr
    assert "loss over the whole val split" in r.stdout and "best val loss" in r.stdout
    for bad, message in (("x", "argument --eval-iters: must be positive (a whole number >= 1 or 'all'), got 'x'"),
                         ("0", "argument --eval-iters: must be positive")):
        r = run_cli("train", *small, "--eval-iters", bad)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_cli_sample_streams_from_a_checkpoint(char_checkpoint):
    r = run_cli("sample", "--checkpoint", str(char_checkpoint), "--prompt", "to be", "--max-new-tokens", "30",
                "--seed", "1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("to be") and len(r.stdout.rstrip("\n")) == 35
    again = run_cli("sample", "--checkpoint", str(char_checkpoint), "--prompt", "to be", "--max-new-tokens", "30",
                    "--seed", "1")
    assert again.stdout == r.stdout


@pytest.mark.parametrize("args, message", [
    (["--max-new-tokens", "-3"], "--max-new-tokens"),
    (["--temperature", "-1"], "temperature"),
    (["--top-k", "0"], "top-k"),
    (["--top-k", "1000"], "top-k"),
    (["--top-p", "0"], "top-p"),
    (["--top-p", "1.01"], "top-p"),
    (["--prompt", "XYZ"], "not in the tokenizer"),
])
def test_cli_bad_sampling_input(char_checkpoint, args, message):
    r = run_cli("sample", "--checkpoint", str(char_checkpoint), *args)
    assert r.returncode == 2
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_cli_refuses_a_mismatched_checkpoint(char_checkpoint, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    meta = json.loads((char_checkpoint / "config.json").read_text())
    meta["model"]["n_layer"] = 2  # the weights have one layer
    (bad / "config.json").write_text(json.dumps(meta))
    (bad / "model.safetensors").write_bytes((char_checkpoint / "model.safetensors").read_bytes())
    r = run_cli("sample", "--checkpoint", str(bad))
    assert r.returncode == 2 and "missing" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("sample", "--checkpoint", str(tmp_path / "nowhere"))
    assert r.returncode == 2 and "not found" in r.stderr


def test_speed_floor_times_exactly_the_products_a_training_step_does():
    """The benchmark's floor (the Linear layers' matrix products alone) must be the step's own products:
    the same (M, K, N) shapes, each as often, as torch's profiler records in a real forward and backward."""
    from torch.profiler import ProfilerActivity, profile

    from ch03_gpt.bench_gpt import linear_products

    cfg = GPTConfig(vocab_size=65, block_size=8, n_layer=2, n_head=2, n_embd=32)
    model = GPT(cfg)
    idx = torch.randint(0, 65, (3, 8))
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        _, loss = model(idx, idx)
        loss.backward()
    recorded = []
    for event in prof.events():
        if event.name == "aten::addmm":    # bias, (M, K), (K, N)
            (M, K), (_, N) = event.input_shapes[1], event.input_shapes[2]
        elif event.name == "aten::mm":     # (M, K), (K, N)
            (M, K), (_, N) = event.input_shapes[0], event.input_shapes[1]
        else:
            continue
        recorded.append((M, K, N))
    run, shapes = linear_products(cfg, tokens=3 * 8)
    assert len(shapes) == 3 * (4 * cfg.n_layer + 1)  # forward, input and weight gradients, of every Linear
    assert sorted(shapes) == sorted(recorded)
    run()  # and the products run


def test_bench_speed_prints_every_contender_and_the_floor(capsys):
    pytest.importorskip("transformers")
    from ch03_gpt import bench_gpt as bench

    threads = torch.get_num_threads()
    try:
        bench.main(["speed", "--dtypes", "float32", "--rounds", "1", "--steps", "1", "--no-compile", "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    for name in ("ours ", "ours, tanh GELU", "transformers ", "transformers, exact GELU",
                 "Linear layers' products alone"):
        assert name in out
    assert "ours / transformers" in out and "with everything else free" in out


@pytest.mark.parametrize("args, message", [
    (["speed", "--dtypes", "float64"], "unknown dtype 'float64'"),
    (["speed", "--rounds", "0"], "argument --rounds: must be positive"),
    (["speed", "--threads", "-1"], "argument --threads: must be positive"),
    (["kv-cache", "--new-tokens", "-1"], "argument --new-tokens: must be positive"),
    (["kv-cache", "--repeats", "0"], "argument --repeats: must be positive"),
    (["recipes", "--recipes", "nope"], "unknown recipe 'nope'"),
    (["recipes", "--seeds", "a,b"], "argument --seeds: must be a whole number >= 0"),
    (["recipes", "--nanogpt", "/no/such/folder"], "nanoGPT not found: no train.py in /no/such/folder"),
    (["recipes", "--env", "OMP_NUM_THREADS"], "--env takes NAME=VALUE"),
])
def test_bench_bad_input_is_refused_before_any_work(args, message):
    r = subprocess.run([sys.executable, "-m", "ch03_gpt.bench_gpt", *args], capture_output=True, text=True,
                       timeout=120, check=False)
    assert r.returncode == 2 and r.stdout == ""  # refused before printing (or downloading) anything
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_bench_recipes_times_whole_commands_alternating(tmp_path, monkeypatch, capsys):
    """nanoGPT is prepared once in a copy, then each seed runs nanoGPT and ours as whole commands, who goes
    first alternating; ours gets the seed, the dtype and the AVX2 environment; the ratios are per seed."""
    import ch01_bigram
    from ch03_gpt import bench_gpt as bench

    nano = tmp_path / "nanoGPT"
    (nano / "data" / "shakespeare_char").mkdir(parents=True)
    (nano / "train.py").write_text("")
    (nano / "data" / "shakespeare_char" / "prepare.py").write_text("")
    text = tmp_path / "tinyshakespeare.txt"
    text.write_text("First Citizen:\n")
    monkeypatch.setattr(ch01_bigram, "find_or_download", lambda remote, data_dir=None, progress=True: text)
    calls = []

    def fake_run(cmd, cwd, env):
        calls.append((cmd, Path(cwd), env))
        if cmd[1].endswith("prepare.py"):
            assert (Path(cwd) / "data" / "shakespeare_char" / "input.txt").read_text() == "First Citizen:\n"
            return 0.5, ""
        if cmd[1] == "train.py":
            return 10.0, "step 0: train loss 4.1, val loss 4.2\nstep 2000: train loss 1.7, val loss 1.8857\n"
        return 4.0, "... best val loss 1.8600 at step 600 ...\n"

    monkeypatch.setattr(bench, "timed_run", fake_run)
    bench.main(["recipes", "--seeds", "7,1", "--nanogpt", str(nano), "--emulate-avx2", "--env", "A=b"])
    out = capsys.readouterr().out
    runs = [c for c in calls if not c[0][1].endswith("prepare.py")]
    assert [c[0][1] for c in runs] == ["train.py", "-m", "-m", "train.py"]  # alternating
    ours = runs[1][0]
    assert ours[ours.index("--recipe") + 1] == "fast" and ours[ours.index("--seed") + 1] == "7"
    assert ours[ours.index("--dtype") + 1] == "float32"
    assert all(c[2]["ATEN_CPU_CAPABILITY"] == "avx2" and c[2]["A"] == "b" for c in calls)
    assert "fast / nanoGPT: 0.40x" in out and "best val loss 1.8857" in out and "1.8600 +- 0.0000" in out


def test_the_chapter_loop_schedules_clips_and_evaluates_where_the_recipe_says(tmp_path):
    from ch01_bigram import prepare_char_data
    from ch03_gpt import Recipe

    data = prepare_char_data("the cat sat on the mat. " * 60, 8)
    cfg = GPTConfig(vocab_size=data.tokenizer.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=16)
    recipe = Recipe(steps=10, batch_size=4, lr=1e-2, min_lr=1e-3, warmup=2, eval_interval=4, eval_iters=2)
    _, history, summary = train_gpt(data, cfg, recipe, tmp_path, progress=False, log=None)
    assert history.eval_steps == [0, 4, 8, 10] and len(history.step_losses) == 10
    assert summary["best_val_loss"] == min(history.val)
    _, history, _ = train_gpt(data, cfg, replace(recipe, eval_interval=10, eval_at_start=False), progress=False,
                              log=None)
    assert history.eval_steps == [10]  # the fast recipe's way: one estimate, of the trained model


# ----------------------------------------------------------------------------- the ablation


def test_ablation_rows_differ_by_one_idea_each():
    from ch03_gpt.ablation import STAGES, LectureModel, build_stage

    assert STAGES == ("attention", "feedforward", "deep", "residual", "layernorm")
    models = {stage: build_stage(stage, 37) for stage in STAGES}
    params = {stage: sum(p.numel() for p in m.parameters()) for stage, m in models.items()}
    # `deep` adds only depth (three layers, no skip connections); `residual` adds only the skip connections
    assert len(models["feedforward"].attn) == 1 and len(models["deep"].attn) == len(models["residual"].attn) == 3
    assert params["deep"] == params["residual"] > 2 * params["feedforward"]
    assert not models["deep"].residual and models["residual"].residual
    assert isinstance(models["residual"].ln_1[0], torch.nn.Identity)
    assert isinstance(models["layernorm"].ln_1[0], torch.nn.LayerNorm)
    x = torch.randint(0, 37, (2, 8))
    for stage, m in models.items():
        logits, loss = m(x, x)
        assert logits.shape == (2, 8, 37) and loss.ndim == 0, stage
    # the rows shared with the lecture are built exactly as before `deep` was added (same weights from a seed)
    torch.manual_seed(0)
    ff = build_stage("feedforward", 37)
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=37, block_size=8, n_layer=1, n_head=4, n_embd=32)
    again = LectureModel(cfg, feedforward=True, residual=False, layernorm=False)
    assert all(torch.equal(a, b) for a, b in zip(ff.state_dict().values(), again.state_dict().values()))
    with pytest.raises(ValueError, match="unknown stage"):
        build_stage("dropout", 37)


def test_gradient_norms_vanish_without_shortcuts_and_not_with_them():
    from ch03_gpt.ablation import LectureModel, layer_gradient_norms

    cfg = GPTConfig(vocab_size=37, block_size=8, n_layer=8, n_head=4, n_embd=32)
    x = torch.randint(0, 37, (4, 8), generator=torch.Generator().manual_seed(0))
    norms = {}
    for residual in (False, True):
        torch.manual_seed(0)
        model = LectureModel(cfg, feedforward=True, residual=residual, layernorm=False)
        norms[residual] = layer_gradient_norms(model, x, x)
        assert len(norms[residual]) == 8
        assert all(p.grad is None for p in model.parameters())  # left zeroed
    assert norms[False][0] < 1e-3 * norms[False][-1]
    assert max(norms[True]) < 5 * min(norms[True])


def test_ablation_plot_starts_at_zero():
    import matplotlib

    matplotlib.use("Agg")
    from ch03_gpt.ablation import STAGES, plot_ablation

    results = {s: {"val_loss": 2.0 + i / 10, "params": 1000 * (i + 1)} for i, s in enumerate(STAGES)}
    fig = plot_ablation(results)
    ax = fig.axes[0]
    assert ax.get_ylim()[0] == 0 and ax.get_ylim()[1] >= 2.4
    assert [t.get_text() for t in ax.get_xticklabels()] == list(STAGES)
    fig_no_markers = plot_ablation(results, published=None)
    assert fig_no_markers.axes[0].get_ylim()[0] == 0


@pytest.mark.parametrize("shape", [(96, 32), (32, 96), (48, 48)])
def test_orthogonalize_pushes_every_singular_value_towards_one(shape):
    from ch03_gpt.muon import orthogonalize

    g = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    g[:, 0] *= 3  # one direction stronger than the rest, as in a real gradient
    o = orthogonalize(g)
    s = torch.linalg.svdvals(o)
    assert s.min() > 0.5 and s.max() < 1.3, s
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    exact = u @ vh  # what the iteration approximates
    cosine = (o * exact).sum() / (o.norm() * exact.norm())
    assert cosine > 0.95, cosine


def test_muon_steps_the_blocks_matrices_and_adamw_the_rest():
    from ch03_gpt import GPT
    from ch03_gpt.muon import Muon
    from ch03_gpt.train import configure_muon

    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16))
    opt = configure_muon(model, 1e-2)
    muon, adamw = opt.optimizers
    assert isinstance(muon, Muon) and isinstance(adamw, torch.optim.AdamW)
    seen = [id(p) for group in opt.param_groups for p in group["params"]]
    assert sorted(seen) == sorted(id(p) for p in model.parameters()) and len(set(seen)) == len(seen)
    assert {tuple(p.shape) for g in muon.param_groups for p in g["params"]} == {(48, 16), (16, 16), (64, 16), (16, 64)}
    # One step moves a matrix by about 0.2 x lr in RMS, as AdamW's first step does (weight decay aside).
    x = torch.randint(0, 11, (4, 8))
    w = model.transformer.h[0].mlp.c_fc.weight
    before = w.detach().clone()
    _, loss = model(x, x)
    loss.backward()
    opt.step()
    rms = ((w.detach() - before * (1 - 1e-2 * 0.1)) / 1e-2).pow(2).mean().sqrt().item()
    assert 0.12 < rms < 0.3, rms
    state = opt.state_dict()
    opt.load_state_dict(state)  # round trip


def test_a_recipe_with_muon_trains_and_an_unknown_optimizer_is_one_line():
    text = "hello world, this is a tiny corpus. " * 200
    data = prepare_char_data(text, 16)
    cfg = GPTConfig(vocab_size=data.tokenizer.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16)
    recipe = Recipe(steps=30, batch_size=8, lr=3e-3, warmup=5, eval_interval=30, eval_iters=None, optimizer="muon")
    _, history, _ = train_gpt(data, cfg, recipe, None, progress=False, log=None)
    assert history.val[-1] < history.val[0] - 0.25
    with pytest.raises(CourseError, match="optimizer must be one of adamw, muon, got 'sgd'"):
        Recipe(optimizer="sgd")


def test_a_recipe_may_estimate_val_alone_and_the_log_says_so():
    text = "hello world, this is a tiny corpus. " * 200
    data = prepare_char_data(text, 16)
    cfg = GPTConfig(vocab_size=data.tokenizer.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16)
    lines = []
    recipe = Recipe(steps=10, batch_size=4, lr=3e-3, warmup=2, eval_interval=10, eval_iters=None,
                    eval_at_start=False, eval_train=False)
    _, history, summary = train_gpt(data, cfg, recipe, None, progress=False, log=lines.append)
    assert lines == [f"step    10: val loss {history.val[0]:.4f}"] and summary["best_val_loss"] == history.val[0]
    assert history.eval_steps == [10] and len(history.train) == 1 and history.train[0] != history.train[0]  # nan
    both = train_gpt(data, cfg, replace(recipe, eval_train=True), None, progress=False, log=None)[1]
    assert both.val == history.val  # the same val loss: skipping the train split changes nothing else
