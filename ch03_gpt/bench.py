"""Chapter 3 benchmarks: training speed against Hugging Face's GPT-2, and the KV cache.

    python -m ch03_gpt.bench speed       # tokens/s: ours vs transformers' GPT2LMHeadModel, float32 and bfloat16
    python -m ch03_gpt.bench kv-cache    # 500 new tokens from a 10M-parameter model, with and without the cache
    python -m ch03_gpt.bench recipes     # Tiny Shakespeare: the published CPU recipe against this chapter's fast one

Every figure is a ratio measured in the same run: the two contenders are timed
in alternating rounds, so a busy machine slows both alike. `transformers` is
needed for `speed` only (it is a test/benchmark dependency of the course).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ch01_bigram import CourseError, run_cli

from .generate import generate
from .model import GPT, GPTConfig
from .train import DTYPES, configure_optimizer

SIZES = {
    "small": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12),
    "lecture": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=16),
}


def hf_model(cfg: GPTConfig, activation: str = "gelu_new"):
    """transformers' GPT-2 at our size; by default with GPT-2's own activation (tanh-approximated GELU)."""
    from transformers import GPT2Config, GPT2LMHeadModel
    hf_cfg = GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd,
                        n_layer=cfg.n_layer, n_head=cfg.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        activation_function=activation, bos_token_id=None, eos_token_id=None)
    model = GPT2LMHeadModel(hf_cfg)
    return model


def make_step(model, optimizer, x, y, dtype, is_hf: bool):
    """One training step (forward, backward, AdamW), as the same closure for both models."""
    def step():
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            if is_hf:
                loss = model(input_ids=x, labels=y).loss  # shifts labels inside: same work per token
            else:
                _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()
    return step


def time_steps(step, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        step()
    return time.perf_counter() - start


def speed(size: str, dtypes: list[str], rounds: int, steps: int, threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)
    s = SIZES[size]
    cfg = GPTConfig(vocab_size=65, block_size=s["block_size"], n_layer=s["n_layer"], n_head=s["n_head"],
                    n_embd=s["n_embd"])
    B, T = s["batch_size"], s["block_size"]
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 65, (B, T), generator=gen)
    y = torch.randint(0, 65, (B, T), generator=gen)
    print(f"size {size}: {cfg.n_layer} layers, {cfg.n_head} heads, {cfg.n_embd} wide, block {T}, batch {B}; "
          f"{torch.get_num_threads()} threads; torch {torch.__version__}")
    results = {}
    for dtype_name in dtypes:
        dtype = DTYPES[dtype_name]
        contenders = {}
        for name, activation in (("ours", "gelu"), ("ours, tanh GELU", "gelu_tanh")):
            torch.manual_seed(0)
            model = GPT(GPTConfig(**{**cfg.to_dict(), "activation": activation}))
            contenders[name] = make_step(model, configure_optimizer(model, 1e-3), x, y, dtype, False)
        for name, activation in (("transformers", "gelu_new"), ("transformers, exact GELU", "gelu")):
            torch.manual_seed(0)
            model = hf_model(cfg, activation)
            contenders[name] = make_step(model, torch.optim.AdamW(model.parameters(), lr=1e-3), x, y, dtype, True)
        for fn in contenders.values():  # warm-up: allocator, kernels, autocast caches
            time_steps(fn, 3)
        rates = {name: [] for name in contenders}
        for _ in range(rounds):  # alternate, so that a busy machine slows every contender alike
            for name, fn in contenders.items():
                rates[name].append(B * T * steps / time_steps(fn, steps))
        med = {name: statistics.median(r) for name, r in rates.items()}
        results[dtype_name] = med
        print(f"  {dtype_name} (median of {rounds} rounds of {steps} steps):")
        for name, rate in med.items():
            print(f"    {name:26s} {rate:9,.0f} tokens/s")
        print(f"    ours / transformers (each with its default activation): {med['ours'] / med['transformers']:.2f}x")
        print(f"    like for like, exact GELU: {med['ours'] / med['transformers, exact GELU']:.2f}x; "
              f"tanh GELU: {med['ours, tanh GELU'] / med['transformers']:.2f}x")
    if "float32" in results and "bfloat16" in results:
        r = results["bfloat16"]["ours"] / results["float32"]["ours"]
        print(f"  bfloat16 / float32 (ours): {r:.2f}x")


def kv_cache(new_tokens: int, repeats: int) -> None:
    # About 10M parameters; the block is long enough for the prompt and every new token,
    # so the cache is never rebuilt and the comparison is the cache itself.
    cfg = GPTConfig(vocab_size=65, block_size=1024, n_layer=6, n_head=6, n_embd=384)
    torch.manual_seed(0)
    model = GPT(cfg).eval()
    prompt = torch.zeros((1, 1), dtype=torch.long)
    print(f"model: {model.num_params() / 1e6:.1f}M parameters; {new_tokens} new tokens; "
          f"{torch.get_num_threads()} threads")
    times, outputs = {True: [], False: []}, {}
    for _ in range(repeats):
        for use_cache in (True, False):
            start = time.perf_counter()
            out = generate(model, prompt, new_tokens, use_cache=use_cache, generator=torch.Generator().manual_seed(1))
            times[use_cache].append(time.perf_counter() - start)
            outputs[use_cache] = out
    with_cache, without = min(times[True]), min(times[False])
    print(f"  with cache: {with_cache:.2f} s ({new_tokens / with_cache:,.0f} tokens/s)")
    print(f"  without:    {without:.2f} s ({new_tokens / without:,.0f} tokens/s)")
    print(f"  speed-up:   {without / with_cache:.1f}x; identical tokens: {torch.equal(outputs[True], outputs[False])}")


def recipes(names: list[str], corpus: str, data_dir: str | None, threads: int | None,
            seeds: list[int] | None = None) -> None:
    """Train each recipe (with its own seed, or with each of `seeds`); print best val loss and time of each."""
    from dataclasses import replace

    from ch01_bigram import load_text, prepare_char_data

    from .train import RECIPES, train_gpt

    if threads:
        torch.set_num_threads(threads)
    data = prepare_char_data(load_text(corpus, data_dir), 64)
    cfg = GPTConfig(vocab_size=data.tokenizer.vocab_size, block_size=64, n_layer=4, n_head=4, n_embd=128)
    print(f"{corpus}: 4 layers, 4 heads, 128 wide, block 64; {torch.get_num_threads()} threads")
    rows = {}
    for name in names:
        runs = []
        for seed in seeds or [RECIPES[name].seed]:
            r = replace(RECIPES[name], seed=seed)
            _, _, summary = train_gpt(data, cfg, r, None, progress=False, log=None)
            runs.append(summary)
            print(f"  {name:9s} {r.steps:5d} steps, batch {r.batch_size:3d}, lr {r.lr:g}, {r.dtype:8s}, seed {seed}: "
                  f"best val loss {summary['best_val_loss']:.4f} at step {summary['best_step']}; training "
                  f"{summary['train_time_s']:.1f} s ({summary['wall_time_s']:.1f} s with evaluation)", flush=True)
        if len(runs) > 1:
            losses = torch.tensor([s["best_val_loss"] for s in runs])
            print(f"  {name:9s} over {len(runs)} seeds: best val loss {losses.mean():.4f} +- {losses.std():.4f} "
                  f"(min {losses.min():.4f}, max {losses.max():.4f})", flush=True)
        rows[name] = {key: sum(s[key] for s in runs) / len(runs) for key in ("train_time_s", "wall_time_s")}
    if "baseline" in rows and len(rows) > 1:
        base = rows["baseline"]
        for name, summary in rows.items():
            if name != "baseline":
                print(f"  {name} / baseline: wall time {summary['wall_time_s'] / base['wall_time_s']:.2f}, "
                      f"training time {summary['train_time_s'] / base['train_time_s']:.2f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ch03_gpt.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("speed", help="training tokens/s against transformers' GPT2LMHeadModel")
    p.add_argument("--size", choices=SIZES, default="small")
    p.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated: float32, bfloat16")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=20, help="steps per timed round")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p = sub.add_parser("kv-cache", help="generation time with and without the KV cache")
    p.add_argument("--new-tokens", type=int, default=500)
    p.add_argument("--repeats", type=int, default=1)
    p = sub.add_parser("recipes", help="train the baseline and fast recipes; best val loss and time of each")
    p.add_argument("--recipes", default="baseline,fast", help="comma-separated names from ch03_gpt.RECIPES")
    p.add_argument("--corpus", default="tinyshakespeare")
    p.add_argument("--data-dir")
    p.add_argument("--threads", type=int)
    p.add_argument("--seeds", help="comma-separated seeds: train each recipe once per seed and report the spread "
                                   "(default: each recipe's own seed)")
    args = parser.parse_args(argv)
    if args.command == "speed":
        speed(args.size, args.dtypes.split(","), args.rounds, args.steps, args.threads)
    elif args.command == "recipes":
        try:
            seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else None
        except ValueError:
            raise CourseError(f"--seeds must be whole numbers separated by commas, got {args.seeds!r}") from None
        recipes(args.recipes.split(","), args.corpus, args.data_dir, args.threads, seeds)
    else:
        kv_cache(args.new_tokens, args.repeats)


if __name__ == "__main__":
    run_cli(main)
