"""Chapter 3 benchmarks: training speed against Hugging Face's GPT-2, and the KV cache.

    python -m ch03_gpt.bench_gpt speed       # tokens/s: ours (eager and compiled) vs transformers' GPT2LMHeadModel,
                                         # float32 and bfloat16, and the floor set by the matrix products
    python -m ch03_gpt.bench_gpt kv-cache    # 500 new tokens from a 10M-parameter model, with and without the cache
    python -m ch03_gpt.bench_gpt recipes     # whole commands on Tiny Shakespeare: nanoGPT's CPU recipe against
                                         # `python -m ch03_gpt train --recipe fast`, alternating, over 3 seeds

Every figure is a ratio measured in the same run: the two contenders are timed
in alternating rounds, so a busy machine slows both alike. `transformers` is
needed for `speed` only (it is a test/benchmark dependency of the course).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from coursekit import CourseError, CourseParser, command_line, run_cli
from coursekit.hardware import MixedPrecision, matmul_peak_flops, mixed_precision
from coursekit.numbers import NumberList, positive_int, seed
from coursekit.settings import DEFAULT_SEED, add_run_flags

from .generate import generate
from .model import GPT, GPTConfig
from .train import configure_optimizer

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


def make_step(model, optimizer, x, y, precision: MixedPrecision, is_hf: bool):
    """One training step (forward, backward, AdamW), as the same closure for both models."""
    def step():
        with precision.autocast():
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


def linear_products(cfg: GPTConfig, tokens: int):
    """The matrix products the Linear layers do in one training step, on operands of the same shapes and layouts.

    Per Linear (in -> out) over `tokens` rows: the forward product (tokens, in) @ (in, out), and the
    backward's two, the input's gradient (tokens, out) @ (out, in) and the weight's (out, tokens) @
    (tokens, in). No float32 implementation of this model can skip them, and PyTorch's CPU kernel
    already runs them near the CPU's peak, so their time alone is the floor under any step.
    Returns a function that runs them once each, and their (M, K, N) shapes.
    """
    C, V = cfg.n_embd, cfg.vocab_size
    layers = [(C, 3 * C), (C, C), (C, 4 * C), (4 * C, C)] * cfg.n_layer + [(C, V)]  # (in, out); lm_head last
    gen = torch.Generator().manual_seed(0)
    operands = []
    for n_in, n_out in layers:
        x, dy, w = (torch.randn(*shape, generator=gen) for shape in ((tokens, n_in), (tokens, n_out), (n_out, n_in)))
        operands += [(x, w.t()), (dy, w), (dy.t(), x)]  # forward, input's gradient, weight's gradient

    def products():
        for a, b in operands:
            torch.mm(a, b)
    return products, [(a.shape[0], a.shape[1], b.shape[1]) for a, b in operands]


def speed(size: str, dtypes: list[str], rounds: int, steps: int, threads: int | None, compile: bool) -> None:
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
        precision = mixed_precision("cpu", dtype_name)
        contenders = {}
        for name, activation in (("ours", "gelu"), ("ours, tanh GELU", "gelu_tanh")):
            torch.manual_seed(0)
            model = GPT(GPTConfig(**{**cfg.to_dict(), "activation": activation}))
            contenders[name] = make_step(model, configure_optimizer(model, 1e-3), x, y, precision, False)
        if compile:
            torch.manual_seed(0)
            model = GPT(cfg)
            # Chapter 2's spelled-out attention: the compiler fuses its scaling, mask and softmax
            # with their neighbours, while the fused attention kernel is a black box to it.
            for block in model.transformer.h:
                block.attn.fused = False
            contenders["ours, torch.compile"] = make_step(torch.compile(model), configure_optimizer(model, 1e-3),
                                                          x, y, precision, False)
        for name, activation in (("transformers", "gelu_new"), ("transformers, exact GELU", "gelu")):
            torch.manual_seed(0)
            model = hf_model(cfg, activation)
            contenders[name] = make_step(model, torch.optim.AdamW(model.parameters(), lr=1e-3), x, y, precision, True)
        if dtype_name == "float32":
            contenders["Linear layers' products alone"], shapes = linear_products(cfg, B * T)
        start = time.perf_counter()
        for fn in contenders.values():  # warm-up: allocator, kernels, autocast caches, compilation
            time_steps(fn, 3)
        print(f"  {dtype_name}: warm-up (compilation included) {time.perf_counter() - start:.0f} s")
        rates = {name: [] for name in contenders}
        for _ in range(rounds):  # alternate, so that a busy machine slows every contender alike
            for name, fn in contenders.items():
                rates[name].append(B * T * steps / time_steps(fn, steps))
        med = {name: statistics.median(r) for name, r in rates.items()}
        results[dtype_name] = med
        print(f"  {dtype_name} (median of {rounds} rounds of {steps} steps):")
        for name, rate in med.items():
            print(f"    {name:30s} {rate:9,.0f} tokens/s")
        hf = med["transformers"]
        print(f"    ours / transformers (each with its default activation): {med['ours'] / hf:.2f}x")
        if compile:
            print(f"    ours with torch.compile / transformers: {med['ours, torch.compile'] / hf:.2f}x")
        print(f"    like for like, exact GELU: {med['ours'] / med['transformers, exact GELU']:.2f}x; "
              f"tanh GELU: {med['ours, tanh GELU'] / hf:.2f}x")
        floor = med.get("Linear layers' products alone")
        if floor:
            flops = 2 * sum(M * K * N for M, K, N in shapes)  # per step
            print(f"    the products alone run at {flops * floor / (B * T) / 1e9:.0f} GFLOP/s, against "
                  f"{matmul_peak_flops(size=1024) / 1e9:.0f} GFLOP/s for one 1024 x 1024 x 1024 product")
            step_ms, floor_ms = 1e3 * B * T / med["ours"], 1e3 * B * T / floor
            print(f"    the Linear layers' matrix products take {floor_ms:.1f} ms of our {step_ms:.1f} ms step "
                  f"({floor_ms / step_ms:.0%}); with everything else free, a step would be {floor / hf:.2f}x "
                  f"transformers', and 1.5x leaves {1e3 * B * T / (1.5 * hf) - floor_ms:.1f} ms for the rest")
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


NANOGPT_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "anchors" / "nanoGPT"
# nanoGPT's own CPU recipe for this model (as the anchors' README runs it): 4 layers, 4 heads, 128 wide,
# block 64, batch 12, 2,000 iterations, lr 1e-3 decaying to 1e-4, a 20-batch estimate every 250.
NANOGPT_ARGS = ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--eval_iters=20",
                "--log_interval=500", "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4",
                "--n_embd=128", "--max_iters=2000", "--lr_decay_iters=2000", "--dropout=0.0"]
# A CPU without AVX-512, as far as this one can pretend: ATen's own kernels, MKL's and oneDNN's
# all limited to AVX2 (the first alone would leave the matrix products on AVX-512).
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
VAL_LOSS = re.compile(r"val loss (\d+\.\d+)")
BEST_VAL_LOSS = re.compile(r"best val loss (\d+\.\d+)")


def timed_run(cmd: list[str], cwd, env: dict[str, str]) -> tuple[float, str]:
    """Run a whole command; its wall time from start to exit, and its output. A failure stops the bench."""
    start = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise CourseError(f"{' '.join(cmd[:4])} ... failed with status {r.returncode}: {tail[0]}")
    return wall, r.stdout


def prepare_nanogpt(source: Path, text_path: Path, work: Path, env: dict[str, str]) -> Path:
    """Copy nanoGPT beside the runs, put Tiny Shakespeare in it and tokenize it once (not timed)."""
    dest = work / "nanoGPT"
    shutil.copytree(source, dest)
    data = dest / "data" / "shakespeare_char"
    shutil.copyfile(text_path, data / "input.txt")
    timed_run([sys.executable, str(data / "prepare.py")], dest, env)
    return dest


def recipes(names: list[str], seeds: list[int], data_dir: str | None, nanogpt: Path, env: dict[str, str],
            dtype: str | None) -> dict:
    """Whole commands, alternating: nanoGPT's CPU recipe against `python -m ch03_gpt train --recipe NAME`.

    Each run's wall time is the command's, from start to exit (imports, data, training, the
    final estimate, the checkpoint and, for ours, the sample). nanoGPT's data preparation runs
    once beforehand, untimed. nanoGPT's seed is fixed in its script, so its loss repeats; its
    runs time the machine as it was beside each of ours.
    """
    from ch01_bigram import TINYSHAKESPEARE, find_or_download

    text_path = find_or_download(TINYSHAKESPEARE, data_dir)
    repo = Path(__file__).resolve().parents[1]
    results = {"nanoGPT": [], **{name: [] for name in names}}
    shown = " ".join(f"{k}={v}" for k, v in env.items())
    print(f"Tiny Shakespeare ({text_path}); nanoGPT from {nanogpt}; environment: {shown or 'as is'}", flush=True)
    with tempfile.TemporaryDirectory(prefix="ch03-recipes-") as work:
        work = Path(work)
        nano = prepare_nanogpt(nanogpt, text_path, work, env)
        for i, seed in enumerate(seeds):
            contenders = [("nanoGPT", [sys.executable, "train.py", *NANOGPT_ARGS, f"--out_dir={work / 'nano-out'}"],
                           nano, VAL_LOSS)]
            for name in names:
                cmd = [sys.executable, "-m", "ch03_gpt", "train", "--corpus", "tinyshakespeare", "--data-dir",
                       str(text_path.parent), "--recipe", name, "--seed", str(seed), "--no-progress",
                       "--out", str(work / f"ours-{name}")]
                contenders.append((name, cmd + (["--dtype", dtype] if dtype else []), repo, BEST_VAL_LOSS))
            if i % 2:  # alternate who goes first, so that a machine growing busier slows both alike
                contenders.reverse()
            for name, cmd, cwd, pattern in contenders:
                wall, out = timed_run(cmd, cwd, env)
                found = pattern.findall(out)
                if not found:
                    raise CourseError(f"{name} printed no val loss; its last line: {out.strip().splitlines()[-1:]}")
                loss = min(float(v) for v in found)  # nanoGPT prints one per estimate; ours prints its best
                results[name].append({"seed": seed, "wall_s": wall, "val_loss": loss})
                print(f"  seed {seed:5d}  {name:9s} {wall:6.1f} s  best val loss {loss:.4f}", flush=True)
            nano_wall = next(r["wall_s"] for r in results["nanoGPT"] if r["seed"] == seed)
            print(f"  seed {seed:5d}  " + ", ".join(
                f"{name} / nanoGPT: {results[name][-1]['wall_s'] / nano_wall:.2f}x" for name in names), flush=True)
    print("over the seeds (wall time: mean; val loss: mean +- standard deviation):")
    for name, runs in results.items():
        walls = [r["wall_s"] for r in runs]
        losses = [r["val_loss"] for r in runs]
        spread = f" +- {statistics.stdev(losses):.4f}" if len(losses) > 1 else ""
        line = f"  {name:9s} {statistics.mean(walls):6.1f} s  best val loss {statistics.mean(losses):.4f}{spread}"
        if name != "nanoGPT":
            ratios = [r["wall_s"] / n["wall_s"] for r, n in zip(runs, results["nanoGPT"])]
            line += (f"  {name} / nanoGPT: {sum(walls) / sum(r['wall_s'] for r in results['nanoGPT']):.2f}x "
                     f"(per seed {min(ratios):.2f}-{max(ratios):.2f})")
        print(line)
    return results


def parse_env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CourseError(f"--env takes NAME=VALUE, got {pair!r}")
        env[key] = value
    return env


def build_parser() -> argparse.ArgumentParser:
    parser = CourseParser(prog="python -m ch03_gpt.bench_gpt", description=__doc__,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("speed", help="training tokens/s against transformers' GPT2LMHeadModel")
    p.set_defaults(run=cmd_speed)
    p.add_argument("--size", choices=SIZES, default="small")
    p.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated: float32, bfloat16")
    p.add_argument("--rounds", type=positive_int, default=5, help="timed rounds (default: %(default)s)")
    p.add_argument("--steps", type=positive_int, default=20, help="steps per timed round (default: %(default)s)")
    add_run_flags(p, device=False, dtype=False, seed=False, progress=False, threads=True)
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                   help="also time our model under torch.compile (adds a compile of about half a minute)")
    p = sub.add_parser("kv-cache", help="generation time with and without the KV cache")
    p.set_defaults(run=cmd_kv_cache)
    p.add_argument("--new-tokens", type=positive_int, default=500, help="tokens to generate (default: %(default)s)")
    p.add_argument("--repeats", type=positive_int, default=1, help="timed runs of each (default: %(default)s)")
    p = sub.add_parser("recipes", help="whole commands, alternating: nanoGPT's CPU recipe against ours "
                                       "(wall time start to exit, best val loss, ratio)")
    p.set_defaults(run=cmd_recipes)
    p.add_argument("--recipes", default="fast", help="comma-separated names from ch03_gpt.RECIPES "
                                                     "(default: %(default)s)")
    p.add_argument("--seeds", type=NumberList(seed), default=[DEFAULT_SEED, 1, 2], metavar="SEED,SEED,...",
                   help="comma-separated seeds for ours, one round of every contender per seed "
                        f"(default: {DEFAULT_SEED},1,2)")
    p.add_argument("--data-dir", help="folder holding tinyshakespeare.txt (default: the course's cache)")
    p.add_argument("--nanogpt", default=str(NANOGPT_DEFAULT),
                   help="nanoGPT's train.py, model.py, configurator.py, config/ and data/ (default: %(default)s)")
    p.add_argument("--emulate-avx2", action="store_true",
                   help="run both as on a CPU without AVX-512: " + " ".join(f"{k}={v}" for k, v in AVX2_ENV.items())
                        + ", and ours in float32 (what auto picks there) unless --dtype says otherwise")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="an environment variable for both commands (repeatable), e.g. OMP_NUM_THREADS=1")
    add_run_flags(p, device=False, seed=False, progress=False)  # --dtype: ours' number format
    return parser


main = command_line(build_parser)  # parse, then run the command chosen


def cmd_speed(args: argparse.Namespace) -> None:
    dtypes = args.dtypes.split(",")
    unknown = [d for d in dtypes if d not in ("float32", "bfloat16")]
    if unknown:
        raise CourseError(f"unknown dtype {unknown[0]!r} in --dtypes; choose from float32, bfloat16")
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise CourseError("speed compares against transformers, which is not installed: "
                          "pip install -r requirements-dev.txt") from None
    speed(args.size, dtypes, args.rounds, args.steps, args.threads, args.compile)


def cmd_recipes(args: argparse.Namespace) -> None:
    from .train import RECIPES
    names = args.recipes.split(",")
    unknown = [r for r in names if r not in RECIPES]
    if unknown:
        raise CourseError(f"unknown recipe {unknown[0]!r} in --recipes; choose from {', '.join(RECIPES)}")
    env = {**(AVX2_ENV if args.emulate_avx2 else {}), **parse_env(args.env)}
    nanogpt = Path(args.nanogpt)
    if not (nanogpt / "train.py").is_file():
        raise CourseError(f"nanoGPT not found: no train.py in {nanogpt} (give its folder with --nanogpt)")
    # auto is the recipe's own format; on an emulated AVX2 CPU it is float32, passed on because the child
    # process sees the real CPU
    dtype = ("float32" if args.emulate_avx2 else None) if args.dtype == "auto" else args.dtype
    recipes(names, args.seeds, args.data_dir, nanogpt, env, dtype)


def cmd_kv_cache(args: argparse.Namespace) -> None:
    kv_cache(args.new_tokens, args.repeats)


if __name__ == "__main__":
    run_cli(main)
