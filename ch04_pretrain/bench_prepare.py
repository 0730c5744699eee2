"""Benchmark: how close does `prepare` come to the speed limit of this machine?

The limit: tokenizing is the work, and each core can run one tiktoken encoder,
so preparing can be at most (number of workers) x (one encoder's speed). The
benchmark writes about 50 MB of the built-in stories to a text file (one story
per document, the hardest case: the most documents per megabyte), then in
turns measures, on the same documents:

  reference   tiktoken's encode_ordinary_batch(num_threads=1), in this process
  loop        a plain loop of encode_ordinary, the faster single-thread baseline
  prepare     the whole pipeline, in a fresh process: reading, worker processes
              (spawn), writing shards, hashing, the manifest

and prints prepare's speed as a fraction of 2 x reference (the target: at
least 80%) and of 2 x loop. The machine is shared, so each figure is the best
of --rounds runs. Run: python -m ch04_pretrain.bench_prepare
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ch01_bigram.corpus import generate_corpus

from .bpe import gpt2_encoding

PIPELINE = """
import json, multiprocessing, os, re, sys, threading, time
from ch04_pretrain.prepare import prepare
from ch04_pretrain.sources import SourceOptions

peaks = {}
def watch_workers():  # the peak resident size of each worker, as Linux reports it (VmHWM)
    while True:
        for child in multiprocessing.active_children():
            try:
                status = open(f"/proc/{child.pid}/status").read()
                peaks[child.pid] = max(peaks.get(child.pid, 0), int(re.search(r"VmHWM:\\s+(\\d+)", status)[1]))
            except (OSError, TypeError):
                pass
        time.sleep(0.05)
threading.Thread(target=watch_workers, daemon=True).start()

source, out, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
start = time.perf_counter()
m = prepare(source, out, options=SourceOptions(separator="\\n\\n"), workers=workers, overwrite=True, progress=False)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "documents": m["documents"], "tokens": m["tokens"],
                  # VmHWM, not ru_maxrss: the latter counts the parent's memory copied by fork before exec.
                  "rss_main_mb": int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read())[1]) / 1024,
                  "rss_worker_mb": max(peaks.values(), default=0) / 1024}))
"""


def time_encoder(docs: list[str], use_batch: bool, chunk: int = 2000) -> tuple[float, int]:
    """(seconds, tokens) to encode `docs` in one thread, a chunk at a time (so the token lists can be freed)."""
    enc = gpt2_encoding()
    seconds = tokens = 0
    for i in range(0, len(docs), chunk):
        part = docs[i:i + chunk]
        start = time.perf_counter()
        ids = enc.encode_ordinary_batch(part, num_threads=1) if use_batch else [enc.encode_ordinary(d) for d in part]
        seconds += time.perf_counter() - start
        tokens += sum(map(len, ids)) + len(part)  # + one <|endoftext|> per document, as prepare counts
    return seconds, tokens


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ch04_pretrain.bench_prepare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=50, help="megabytes of text (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each measurement (default: %(default)s)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "stories.txt"
        text = generate_corpus(n_bytes=int(args.mb * 1e6))
        source.write_text(text, encoding="utf-8")
        docs = [d for d in text.split("\n\n") if d]
        del text
        size = source.stat().st_size
        print(f"text: {size / 1e6:.1f} MB, {len(docs):,} documents; {args.workers} workers, best of {args.rounds}; "
              f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        best = {"reference": None, "loop": None, "prepare": None}
        tokens = 0
        for round_ in range(args.rounds):
            for name, use_batch in (("reference", True), ("loop", False)):
                seconds, tokens = time_encoder(docs, use_batch)
                best[name] = min(best[name] or seconds, seconds)
            run = subprocess.run([sys.executable, "-c", PIPELINE, str(source), str(Path(tmp) / f"out{round_}"),
                                  str(args.workers)], capture_output=True, text=True, check=True)
            stats = json.loads(run.stdout)
            if best["prepare"] is None or stats["seconds"] < best["prepare"]["seconds"]:
                best["prepare"] = stats
        stats = best["prepare"]
        assert stats["tokens"] == tokens and stats["documents"] == len(docs), "prepare and the reference disagree"

    def line(name, seconds, scale=1):
        return (f"{name:<34} {len(docs) * scale / seconds:>10,.0f} docs/s {tokens * scale / seconds:>12,.0f} tokens/s "
                f"{size * scale / seconds / 1e6:>6.2f} MB/s")

    print(line("tiktoken encode_ordinary_batch x1", best["reference"]))
    print(line("plain encode_ordinary loop x1", best["loop"]))
    print(line(f"limit = {args.workers} x encode_ordinary_batch", best["reference"], args.workers))
    print(line(f"prepare, {args.workers} workers", stats["seconds"]))
    print(f"prepare / ({args.workers} x encode_ordinary_batch): "
          f"{best['reference'] / (args.workers * stats['seconds']):.0%}  (target: at least 80%)")
    print(f"prepare / ({args.workers} x encode_ordinary loop):  "
          f"{best['loop'] / (args.workers * stats['seconds']):.0%}")
    print(f"peak RSS: main process {stats['rss_main_mb']:.0f} MB (of which torch, imported with Chapter 1, "
          f"about 500 MB), largest worker {stats['rss_worker_mb']:.0f} MB")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
