"""Training speed on this machine: `python -m ch04_pretrain.pretraining.bench_train`.

For two sizes (the tiny preset, and 6 layers x 384 wide at block 256), trains
a few steps in float32 and in bfloat16 autocast on random GPT-2 token ids and
reports tokens/s, MFU against the matrix-multiply peak measured here in the
same format, and the bfloat16/float32 ratio. Each format runs from the same
initial weights and batches; their losses are printed side by side so one sees
the curves agree. Runs alternate between the formats, and the best of each is
kept, because the machine may be shared.
"""

from __future__ import annotations

import argparse
import time

import torch

from ch03_gpt import GPT, GPTConfig, configure_optimizer
from ch04_pretrain.data_pipeline.bpe import VOCAB_SIZE
from coursekit import CourseParser, command_line, run_cli
from coursekit.hardware import cpu_has_fast_bf16, matmul_peak_flops
from coursekit.numbers import positive_int

from .settings import PRESETS
from .trainer import forward_backward, optimizer_step

# name: (the model, sequences per batch); the models are those of the presets tiny and small
SIZES: dict[str, tuple[GPTConfig, int]] = {
    "tiny": (PRESETS["tiny"].model, 16),            # 4 layers, 128 wide, block 64
    "384-wide": (PRESETS["small"].model, 4),        # 6 layers, 384 wide, block 256
}


def run(cfg: GPTConfig, batch: int, dtype: str, steps: int, device: str = "cpu",
        seed: int = 0) -> tuple[float, list[float]]:
    """Tokens/s over `steps` steps after one warm-up step, and the loss of every step."""
    torch.manual_seed(seed)
    model = GPT(cfg).to(device)
    optimizer = configure_optimizer(model, 1e-3)
    g = torch.Generator().manual_seed(seed)
    data = torch.randint(VOCAB_SIZE, (steps + 1, batch, cfg.block_size + 1), generator=g)
    losses, start = [], None
    for i, d in enumerate(data):
        if i == 1:
            start = time.perf_counter()  # the first step pays for allocation and kernel selection
        loss = forward_backward(model, [(d[:, :-1].contiguous().to(device), d[:, 1:].contiguous().to(device))],
                                device, dtype)
        optimizer_step(model, optimizer, 1.0)
        losses.append(float(loss))
    return steps * batch * cfg.block_size / (time.perf_counter() - start), losses


def build_parser() -> argparse.ArgumentParser:
    p = CourseParser(prog="python -m ch04_pretrain.pretraining.bench_train", description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=positive_int, default=5, help="timed steps per run (default: %(default)s)")
    p.add_argument("--repeats", type=positive_int, default=2,
                   help="runs per format; the best is kept (default: %(default)s)")
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    p.set_defaults(run=run_benchmark)
    return p


main = command_line(build_parser)  # parse, then run the command chosen


def run_benchmark(args: argparse.Namespace) -> None:
    threads = torch.get_num_threads()
    peaks = {d: matmul_peak_flops("cpu", d, 2048, seconds=1.0) for d in ("float32", "bfloat16")}
    print(f"CPU, {threads} thread(s); hardware bfloat16 products: {'yes' if cpu_has_fast_bf16() else 'no'}")
    print(f"matrix-multiply peak at 2048 x 2048: float32 {peaks['float32'] / 1e9:.0f} GFLOP/s, "
          f"bfloat16 {peaks['bfloat16'] / 1e9:.0f} GFLOP/s")
    for name in args.sizes:
        cfg, batch = SIZES[name]
        flops_per_token = GPT(cfg).flops_per_token()
        best, losses = {}, {}
        for _ in range(args.repeats):
            for dtype in ("float32", "bfloat16"):
                rate, losses[dtype] = run(cfg, batch, dtype, args.steps)
                best[dtype] = max(best.get(dtype, 0.0), rate)
        print(f"\n{name}: {cfg.n_layer} layers, {cfg.n_embd} wide, block {cfg.block_size}, batch "
              f"{batch}, {GPT(cfg).num_params() / 1e6:.1f}M parameters")
        for dtype in ("float32", "bfloat16"):
            mfu = flops_per_token * best[dtype] / peaks[dtype]
            print(f"  {dtype:>8}: {best[dtype]:>8,.0f} tokens/s   MFU {mfu:6.1%} of the {dtype} peak   "
                  f"losses {' '.join(f'{x:.3f}' for x in losses[dtype])}")
        print(f"  bfloat16 / float32: {best['bfloat16'] / best['float32']:.2f}x tokens/s; largest loss difference "
              f"{max(abs(a - b) for a, b in zip(losses['float32'], losses['bfloat16'])):.3f}")


if __name__ == "__main__":
    run_cli(main)
