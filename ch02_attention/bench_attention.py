"""Benchmark: explicit attention (softmax of masked scores) against the fused
`F.scaled_dot_product_attention`, forward and backward, on this machine.

    python -m ch02_attention.bench_attention            # B=8, 6 heads of 64, sequence length 256

Both are timed in the same run, alternately, so a busy machine slows both alike;
the ratio is the figure to quote, not the milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from coursekit import CourseParser, command_line, run_cli
from coursekit.numbers import nonnegative_int, positive_int
from coursekit.runtime import pick_device
from coursekit.settings import add_run_flags

from .attention import attend


def time_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, fused: bool) -> float:
    """Seconds for one forward and backward pass of causal attention."""
    for t in (q, k, v):
        t.grad = None
    if q.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = attend(q, k, v, 0.0, fused)  # (B, nh, T, hs)
    out.backward(torch.ones_like(out))
    if q.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def build_parser() -> argparse.ArgumentParser:
    p = CourseParser(prog="python -m ch02_attention.bench_attention",
                     description="Time forward + backward of explicit and fused causal attention "
                                 "and print the median of each and their ratio.")
    p.add_argument("--batch-size", type=positive_int, default=8, help="sequences per batch (default: %(default)s)")
    p.add_argument("--n-head", type=positive_int, default=6, help="attention heads (default: %(default)s)")
    p.add_argument("--head-size", type=positive_int, default=64, help="size of each head (default: %(default)s)")
    p.add_argument("--seq-len", type=positive_int, default=256, help="sequence length T (default: %(default)s)")
    p.add_argument("--warmup", type=nonnegative_int, default=3,
                   help="untimed passes of each first (default: %(default)s)")
    p.add_argument("--repeats", type=positive_int, default=15, help="timed passes of each (default: %(default)s)")
    add_run_flags(p, dtype=False, progress=False, seed_help="the same seed gives the same inputs")
    p.set_defaults(run=run_benchmark)
    return p


main = command_line(build_parser)  # parse, then run the command chosen


def run_benchmark(args: argparse.Namespace) -> None:
    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    shape = (args.batch_size, args.n_head, args.seq_len, args.head_size)
    q, k, v = (torch.randn(shape, device=device, requires_grad=True) for _ in range(3))

    # The two paths must agree before their speeds mean anything.
    with torch.no_grad():
        diff = (attend(q, k, v, 0.0, True) - attend(q, k, v, 0.0, False)).abs().max().item()

    times = {True: [], False: []}
    for _ in range(args.warmup):
        for fused in (False, True):
            time_attention(q, k, v, fused)
    for _ in range(args.repeats):
        for fused in (False, True):  # alternate, so drifts in machine load hit both
            times[fused].append(time_attention(q, k, v, fused))

    explicit, fast = statistics.median(times[False]), statistics.median(times[True])
    print(f"causal attention, forward + backward, B={args.batch_size}, {args.n_head} heads of {args.head_size}, "
          f"T={args.seq_len}, float32, {device}, {torch.get_num_threads()} threads; "
          f"median of {args.repeats} after {args.warmup} warm-up")
    print(f"explicit (softmax of masked scores): {explicit * 1e3:8.2f} ms")
    print(f"fused (scaled_dot_product_attention): {fast * 1e3:8.2f} ms")
    print(f"fused is {explicit / fast:.2f}x as fast as explicit (max output difference {diff:.1e})")


if __name__ == "__main__":
    run_cli(main)
