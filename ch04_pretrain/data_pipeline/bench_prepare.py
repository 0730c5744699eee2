"""Benchmark: how does `prepare` scale with the number of worker processes?

The limit: tokenizing is the work, and each core can run one encoder, so
preparing with N workers can be at most N x (the fastest single-thread
encoder's speed). The benchmark writes --mb megabytes of the built-in stories
to a text file (one story per document, the hardest case: the most documents
per megabyte), then in turns measures, on the same documents:

  encode_ordinary_batch   tiktoken's batch encoder with num_threads=1
  encode_ordinary loop    a plain loop of encode_ordinary
  encode_to_numpy loop    a loop of encode_to_numpy (no Python list per document)
  worker function         workers.encode_documents on the documents' bytes, in
                          this process: what each worker does per batch
  prepare, N workers      the whole pipeline, in a fresh process, for each N of
                          --workers: reading, starting the worker processes
                          (spawn), writing shards, hashing, the manifest

and prints, for each N, prepare's speed and its ratio to N x the fastest of the
four single-thread encoders, measured in the same run (the target at 2
workers: at least 80%), and beside it what the machine gives N lone encoders
running side by side with no pipeline around them. Where N cores cannot run
N encoders at full speed (a shared or throttled machine), the first ratio is
capped by the machine, not by `prepare`; "prepare of lone" (prepare's speed
over the N lone encoders' speed, same tokens) says how much of what the
machine offers the pipeline uses. The machine may be shared, so each figure is the best
of --rounds runs. Run: python -m ch04_pretrain.data_pipeline.bench_prepare
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
from coursekit import CourseParser, command_line, run_cli
from coursekit.encode_workers import encode_documents
from coursekit.numbers import NumberList, float_in, positive_int

from .bpe import EOT, gpt2_encoding

PIPELINE = """
import json, multiprocessing, os, re, resource, sys, threading, time
from ch04_pretrain.data_pipeline.prepare import prepare
from ch04_pretrain.data_pipeline.sources import SourceOptions

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
start, cpu = time.perf_counter(), time.process_time()
m = prepare(source, out, options=SourceOptions(separator="\\n\\n"), workers=workers, overwrite=True, progress=False)
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the workers, all ended and waited for by now
print(json.dumps({"seconds": seconds, "documents": m["documents"], "tokens": m["tokens"],
                  "cpu_main": cpu, "cpu_workers": children.ru_utime + children.ru_stime,
                  # VmHWM, not ru_maxrss: the latter counts the parent's memory copied by fork before exec.
                  "rss_main_mb": int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read())[1]) / 1024,
                  "rss_worker_mb": max(peaks.values(), default=0) / 1024}))
"""

# N of these run at once, each encoding the whole text with the worker function: what the machine can
# give N encoders right now, with no pipeline around them. They start together when their stdin says so.
ALONE = """
import json, sys, time
from ch04_pretrain.data_pipeline.bpe import EOT, gpt2_encoding
from coursekit.encode_workers import encode_documents
docs = [d for d in open(sys.argv[1], "rb").read().split(b"\\n\\n") if d]
enc = gpt2_encoding()
sys.stdin.readline()
start = time.monotonic()
for i in range(0, len(docs), 700):
    encode_documents(docs[i:i + 700], [False] * len(docs[i:i + 700]), enc, EOT)
print(json.dumps({"start": start, "end": time.monotonic()}))
"""


def time_encoders_at_once(source: Path, n: int) -> float:
    """Seconds from the first start to the last end of n encoder processes running side by side."""
    procs = [subprocess.Popen([sys.executable, "-c", ALONE, str(source)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(n)]
    time.sleep(2.0)  # let every process load the text and its encoder before the start
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    times = [json.loads(proc.communicate()[0]) for proc in procs]
    if any(proc.returncode for proc in procs):
        sys.exit("error: an encoder process failed")
    return max(t["end"] for t in times) - min(t["start"] for t in times)


def time_encoder(docs: list[str], how: str, chunk: int = 2000) -> tuple[float, float, int]:
    """(seconds, CPU seconds, tokens) to encode `docs` in one thread, a chunk at a time (so the token lists
    can be freed)."""
    enc = gpt2_encoding()
    seconds = cpu = tokens = 0
    for i in range(0, len(docs), chunk):
        part = docs[i:i + chunk]
        if how == "worker function":
            part = [d.encode("utf-8") for d in part]  # what a worker receives from a .txt file
        start, start_cpu = time.perf_counter(), time.process_time()
        if how == "encode_ordinary_batch":
            ids = enc.encode_ordinary_batch(part, num_threads=1)
        elif how == "encode_ordinary loop":
            ids = [enc.encode_ordinary(d) for d in part]
        elif how == "encode_to_numpy loop":
            ids = [enc.encode_to_numpy(d, disallowed_special=()) for d in part]
        else:
            ids = encode_documents(part, [False] * len(part), enc, EOT)[2]
        seconds += time.perf_counter() - start
        cpu += time.process_time() - start_cpu
        if how == "worker function":
            tokens += sum(ids)
        else:
            tokens += sum(map(len, ids)) + len(part)  # + one <|endoftext|> per document, as prepare counts
    return seconds, cpu, tokens


ENCODERS = ("encode_ordinary_batch", "encode_ordinary loop", "encode_to_numpy loop", "worker function")


def build_parser() -> argparse.ArgumentParser:
    parser = CourseParser(prog="python -m ch04_pretrain.data_pipeline.bench_prepare", description=__doc__,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    cores = os.cpu_count() or 1
    parser.add_argument("--mb", type=float_in(0, 10_000, lo_open=True), default=50,
                        help="megabytes of text, above 0 and at most 10,000 (default: %(default)s)")
    parser.add_argument("--workers", type=NumberList(positive_int), default=list(range(1, cores + 1)),
                        metavar="N,N,...", help="worker counts to try, each >= 1 "
                                                f"(default: 1 to the number of cores, here 1 to {cores})")
    parser.add_argument("--rounds", type=positive_int, default=2,
                        help="runs of each measurement (default: %(default)s)")
    parser.set_defaults(run=run_benchmark)
    return parser


main = command_line(build_parser)  # parse, then run the command chosen


def run_benchmark(args: argparse.Namespace) -> None:
    args.workers = sorted(set(args.workers))
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "stories.txt"
        text = generate_corpus(n_bytes=int(args.mb * 1e6))
        source.write_text(text, encoding="utf-8")
        docs = [d for d in text.split("\n\n") if d]
        del text
        size = source.stat().st_size
        print(f"text: {size / 1e6:.1f} MB, {len(docs):,} documents; workers {','.join(map(str, args.workers))}; "
              f"best of {args.rounds}; load average before: {os.getloadavg()[0]:.1f} on {cores} cores")
        encoders: dict[str, float] = {}
        encoders_cpu: dict[str, float] = {}
        runs: dict[int, dict] = {}
        alone: dict[int, float] = {}
        tokens = 0
        for round_ in range(args.rounds):
            for name in ENCODERS:
                seconds, cpu, counted = time_encoder(docs, name)
                assert tokens in (0, counted), f"{name} counts {counted:,} tokens, another encoder {tokens:,}"
                tokens = counted
                encoders[name] = min(encoders.get(name, seconds), seconds)
                encoders_cpu[name] = min(encoders_cpu.get(name, cpu), cpu)
            for n in args.workers:
                out = Path(tmp) / f"out{round_}_{n}"
                run = subprocess.run([sys.executable, "-c", PIPELINE, str(source), str(out), str(n)],
                                     capture_output=True, text=True)
                if run.returncode != 0:
                    sys.exit(f"error: prepare with {n} workers failed:\n{run.stderr.strip()}")
                stats = json.loads(run.stdout)
                assert (stats["tokens"], stats["documents"]) == (tokens, len(docs)), "prepare and the encoders disagree"
                stats["cpu"] = stats["cpu_main"] + stats["cpu_workers"]
                best = runs.setdefault(n, stats)
                for key in ("seconds", "cpu", "cpu_main"):
                    best[key] = min(best[key], stats[key])
                for key in ("rss_main_mb", "rss_worker_mb"):
                    best[key] = max(best[key], stats[key])
                seconds = time_encoders_at_once(source, n)
                alone[n] = min(alone.get(n, seconds), seconds)

    def line(name, seconds):
        return (f"{name:<22} {len(docs) / seconds:>9,.0f} docs/s {tokens / seconds:>12,.0f} tokens/s "
                f"{size / seconds / 1e6:>6.2f} MB/s")

    print("single-thread encoders, in this process:")
    for name, seconds in encoders.items():
        print("  " + line(name, seconds))
    fastest = min(encoders, key=encoders.get)
    one, one_cpu = encoders[fastest], encoders_cpu[fastest]
    print(f"prepare with N workers, against N x the fastest single-thread encoder ({fastest}, "
          f"{tokens / one / 1e6:.2f}M tokens/s); the machine itself: N lone encoders run side by side:")
    print(f"  {'N':>3} {'prepare tokens/s':>17} {'of N x fastest':>15} {'N lone encoders':>16} {'of N x fastest':>15} "
          f"{'prepare of lone':>16} {'prepare CPU / encoding CPU':>27}")
    for n, stats in runs.items():
        print(f"  {n:>3} {tokens / stats['seconds']:>17,.0f} {one / (n * stats['seconds']):>15.0%} "
              f"{n * tokens / alone[n]:>16,.0f} {one / alone[n]:>15.0%} "
              f"{alone[n] / (n * stats['seconds']):>16.0%} "
              f"{stats['cpu'] / one_cpu:>13.2f} (main {stats['cpu_main'] / one_cpu:.2f})")
    print(f"peak RSS: main process up to {max(s['rss_main_mb'] for s in runs.values()):.0f} MB, "
          f"largest worker {max(s['rss_worker_mb'] for s in runs.values()):.0f} MB")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    run_cli(main)
