"""Rerun a chapter's trained figures over seeds, and record the bands they back.

    python -m coursekit.sweep ch05_finetune            # 8 seed shifts, two runs at a time
    python -m coursekit.sweep ch01_bigram --seeds 12

For each seed shift the sweep runs the chapter's notebook (in a copy of the course, so nothing it
caches is shared) and the chapter's tests marked `trained`, with every seed shifted. Even shifts
run on this CPU's own kernels; odd shifts on the AVX2 kernels (`ATEN_CPU_CAPABILITY=avx2`) with
the number-format policy answering as on a CPU without bfloat16 hardware, so the sweep spans the
kinds of CPU a reader may have as well as their seeds. Every `claim(...)` records its figure.

The sweep writes `sweep.json` in the chapter (every value, each band, and a hash of the code that
made them) and the table between the sweep markers of the chapter's MEASUREMENTS.md. The test
suite's `tests/test_claims.py` then checks each band against it without training anything.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import hashlib
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .claims import LOG_VARIABLE, MIN_SEEDS, PLAIN_VARIABLE, SHIFT_VARIABLE, SIGMAS

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- sweep:begin -->", "<!-- sweep:end -->"
PREAMBLE = "import coursekit.claims\ncoursekit.claims.perturb_from_environment()"


# ---- where the claims are, read from the code (no execution)

def notebook_of(chapter: str) -> Path | None:
    found = sorted((ROOT / chapter).glob("*.ipynb"))
    return found[0] if found else None


def test_files_of(chapter: str) -> list[Path]:
    prefix = chapter.split("_")[0]  # ch01_bigram -> tests/test_ch01_*.py
    return sorted((ROOT / "tests").glob(f"test_{prefix}_*.py"))


def _python_of_cell(source: str) -> str:
    # IPython's magics and shell lines are not Python; blank them so the line numbers stay.
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def _claims_in(tree: ast.AST, source: str, where: str) -> list[dict]:
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "claim"):
            continue
        name = node.args[0] if node.args else None
        if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
            raise TypeError(f"{where}: a claim's name must be a plain string, the same on every run")
        bands = {k.arg: ast.get_source_segment(source, k.value) for k in node.keywords if k.arg in ("low", "high")}
        found.append({"name": name.value, "where": where, "low_src": bands.get("low"), "high_src": bands.get("high")})
    return found


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _code_digest(nodes: list[ast.AST], extra: str = "") -> str:
    # The syntax tree, not the text: rewrapping a line or editing a comment leaves the experiment alone.
    return _digest("\n".join(ast.dump(n, include_attributes=False) for n in nodes) + "\n\x00" + extra)


def claims_in_code(chapter: str) -> tuple[list[dict], dict[str, str]]:
    """Every claim(...) in the chapter's notebook and its tests, and a hash of the code behind each source.

    A notebook's hash covers all its code cells (any of them may change the experiment); a test's covers
    the test function that makes the claim.
    """
    claims, hashes = [], {}
    notebook = notebook_of(chapter)
    if notebook is not None:
        cells = [c["source"] for c in json.loads(notebook.read_text(encoding="utf-8"))["cells"]
                 if c["cell_type"] == "code"]
        cells = ["".join(c) if isinstance(c, list) else c for c in cells]
        where = notebook.relative_to(ROOT).as_posix()
        trees, magics = [], []
        for source in cells:
            python = _python_of_cell(source)
            trees.append(ast.parse(python))
            claims += _claims_in(trees[-1], python, where)
            magics += [line.strip() for line in source.splitlines() if line.lstrip().startswith(("%", "!"))]
        hashes[where] = _code_digest(trees, "\n".join(magics))
    for path in test_files_of(chapter):
        source = path.read_text(encoding="utf-8")
        for fn in ast.parse(source).body:
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                where = f"{path.relative_to(ROOT).as_posix()}::{fn.name}"
                found = _claims_in(fn, source, where)
                if found:
                    claims += found
                    hashes[where] = _code_digest([fn])
    return claims, hashes


# ---- the statistics of a band

def margin_in_sds(values: list[float], low: float, high: float) -> float:
    """How far the band's nearer finite edge lies from the values' mean, in their standard deviations."""
    mean, sd = statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0
    distance = min(mean - low, high - mean)
    if sd == 0:
        return math.inf if distance >= 0 else -math.inf
    return distance / sd


def band_problems(record: dict) -> list[str]:
    """What is wrong with one claim's sweep record (empty when its band is backed)."""
    values, low, high = record["values"], record["low"], record["high"]
    problems = []
    if len(values) < MIN_SEEDS:
        problems.append(f"{len(values)} runs, fewer than {MIN_SEEDS}")
    outside = [v for v in values if not low <= v <= high]
    if outside:
        shown = ", ".join(f"{v:.4g}" for v in outside)
        problems.append(f"{len(outside)} of {len(values)} runs outside the band: {shown}")
    elif values and margin_in_sds(values, low, high) < SIGMAS:
        margin = margin_in_sds(values, low, high)
        problems.append(f"an edge only {margin:.1f} sd from the mean (at least {SIGMAS:g} needed)")
    return problems


# ---- running

def _environment(shift: int, log: Path) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    env[LOG_VARIABLE], env[SHIFT_VARIABLE] = str(log), str(shift)
    shared = ROOT.parent / "shared" / "data"  # the reference copies of real data, as the test suite finds them
    if (shared / "tinyshakespeare.txt").is_file():
        env.setdefault("COURSE_DATA_DIR", str(shared))
    env.pop("ATEN_CPU_CAPABILITY", None)
    env.pop(PLAIN_VARIABLE, None)
    if shift % 2:  # the other kind of CPU: AVX2 kernels, and float32 where auto would pick bfloat16
        env["ATEN_CPU_CAPABILITY"], env[PLAIN_VARIABLE] = "avx2", "1"
    return env


def run_notebook(notebook: Path, shift: int, log: Path, work: Path) -> str | None:
    """Execute the notebook once in a fresh copy of the course; None, or the error that stopped it."""
    copy = work / f"course-{shift}"
    ignore = shutil.ignore_patterns(".git", "runs", "data", "out", "__pycache__", ".ipynb_checkpoints", "*.safetensors")
    shutil.copytree(ROOT, copy, ignore=ignore)
    target = copy / notebook.relative_to(ROOT)
    script = (
        "import sys, nbformat\n"
        "from nbclient import NotebookClient\n"
        f"nb = nbformat.read({str(target)!r}, as_version=4)\n"
        f"nb.cells.insert(0, nbformat.v4.new_code_cell({PREAMBLE!r}))\n"
        f"NotebookClient(nb, timeout=1200, kernel_name='python3', "
        f"resources={{'metadata': {{'path': {str(target.parent)!r}}}}}).execute()\n"
    )
    env = _environment(shift, log)
    # The kernel imports the chapters from the copy, whichever checkout `pip install -e .` pointed at.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(copy), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=copy, capture_output=True, text=True,
                          check=False)
    shutil.rmtree(copy, ignore_errors=True)
    return None if done.returncode == 0 else _last_lines(done.stdout + done.stderr)


def run_tests(files: list[Path], shift: int, log: Path) -> str | None:
    """Run the `trained` tests of `files` once; None, or what failed."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-m", "trained", "-p", "no:cacheprovider", *map(str, files)]
    done = subprocess.run(cmd, env=_environment(shift, log), cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode in (0, 5):  # 5: no test is marked trained in these files
        return None
    return _last_lines(done.stdout + done.stderr)


def _last_lines(text: str, n: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def sweep(chapter: str, seeds: int, jobs: int) -> dict:
    notebook, files = notebook_of(chapter), test_files_of(chapter)
    code_claims, hashes = claims_in_code(chapter)
    with_claims = {c["where"].split("::")[0] for c in code_claims}
    notebook = notebook if notebook and notebook.relative_to(ROOT).as_posix() in with_claims else None
    files = [f for f in files if f.relative_to(ROOT).as_posix() in with_claims]
    work = Path(tempfile.mkdtemp(prefix="sweep-"))
    kinds = (["notebook"] if notebook else []) + (["tests"] if files else [])
    tasks = [(kind, shift) for shift in range(seeds) for kind in kinds]
    failures = []

    def one(task):
        kind, shift = task
        log = work / f"{kind}-{shift}.jsonl"
        log.touch()
        t0 = time.time()
        error = run_notebook(notebook, shift, log, work) if kind == "notebook" else run_tests(files, shift, log)
        print(f"  {kind} at seed shift {shift}: {'ok' if error is None else 'FAILED'} in {time.time() - t0:.0f} s",
              flush=True)
        if error is not None:
            failures.append(f"{kind} at seed shift {shift}:\n{error}")
        return kind, shift, [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]

    print(f"sweeping {chapter}: {len(tasks)} runs, {jobs} at a time", flush=True)
    with ThreadPoolExecutor(jobs) as pool:
        results = list(pool.map(one, tasks))
    shutil.rmtree(work, ignore_errors=True)

    records: dict[str, dict] = {}
    for c in code_claims:
        if c["name"] in records:
            raise SystemExit(f"{chapter}: two claims are named {c['name']!r}; each needs a name of its own")
        records[c["name"]] = {**c, "values": [], "low": None, "high": None}
    for _kind, _shift, seen in sorted(results, key=lambda r: (r[1], r[0])):
        names = [s["name"] for s in seen]
        for s in seen:
            r = records.get(s["name"])
            if r is None:
                raise SystemExit(f"{chapter}: a run claimed {s['name']!r}, which is not in the code as a plain string")
            if names.count(s["name"]) > 1:
                raise SystemExit(f"{chapter}: {s['name']!r} was claimed more than once in one run")
            if r["low"] is not None and (r["low"], r["high"]) != (s["low"], s["high"]):
                raise SystemExit(f"{chapter}: {s['name']!r} had a different band from one run to another")
            r["values"].append(s["value"])
            r["low"], r["high"] = s["low"], s["high"]
    return {
        "chapter": chapter,
        "command": f"python -m coursekit.sweep {chapter}" + (f" --seeds {seeds}" if seeds != MIN_SEEDS else ""),
        "date": datetime.date.today().isoformat(),
        "cpu": cpu_name(),
        "torch": _torch_version(),
        "seed_shifts": list(range(seeds)),
        "code": hashes,
        "failures": failures,
        "claims": records,
    }


def cpu_name() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    model = re.search(r"^model name\s*:\s*(.+)$", info, re.MULTILINE)
    flags = set(re.search(r"^flags\s*:\s*(.+)$", info, re.MULTILINE).group(1).split()) if "flags" in info else set()
    kind = "AMX" if "amx_bf16" in flags else "AVX-512 BF16" if "avx512_bf16" in flags else \
        "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{model.group(1).strip() if model else platform.machine()} ({kind}), {os.cpu_count()} cores"


def _torch_version() -> str:
    import torch

    return torch.__version__


# ---- writing it down

def _number(x: float) -> str:
    if x in (math.inf, -math.inf):
        return "∞" if x > 0 else "−∞"
    return f"{x:.4g}"


def table(result: dict) -> str:
    shifts = result["seed_shifts"]
    lines = [
        (f"`{result['command']}`, {result['date']}, {result['cpu']}, torch {result['torch']}: "
         f"{len(shifts)} seed shifts ({shifts[0]}–{shifts[-1]}; the odd ones on the AVX2 kernels, in float32 where "
         f"`auto` would pick bfloat16). The notebook's saved outputs are shift 0. Each band must hold "
         f"every value and lie at least {SIGMAS:g} sd from the mean (`tests/test_claims.py`)."),
        "",
        "| claim | where | band | min | median | max | mean ± sd | edge in sd |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["claims"].items():
        v = r["values"]
        if not v:
            lines.append(f"| {name} | {r['where']} | | (not reached) | | | | |")
            continue
        band = f"{_number(r['low'])} to {_number(r['high'])}" if r["low"] > -math.inf and r["high"] < math.inf else \
            f"≥ {_number(r['low'])}" if r["low"] > -math.inf else f"≤ {_number(r['high'])}"
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        margin = margin_in_sds(v, r["low"], r["high"])
        where = r["where"].split("/")[-1]
        lines.append(
            f"| {name} | {where} | {band} | {_number(min(v))} | {_number(statistics.median(v))} | {_number(max(v))} "
            f"| {_number(statistics.fmean(v))} ± {_number(sd)} | {'—' if math.isinf(margin) else f'{margin:.1f}'} |")
    return "\n".join(lines)


def write(result: dict) -> list[str]:
    """Save sweep.json and the MEASUREMENTS.md table; returns the problems found in the bands."""
    chapter = ROOT / result["chapter"]
    (chapter / "sweep.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    measurements = chapter / "MEASUREMENTS.md"
    text = measurements.read_text(encoding="utf-8") if measurements.exists() else ""
    section = f"{BEGIN}\n{table(result)}\n{END}"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n## The bands of the trained figures\n\n" \
            "Every check on a figure that comes out of training or sampling, in the notebook and in the tests, " \
            "is a band backed by this sweep.\n\n" + section + "\n"
    measurements.write_text(text, encoding="utf-8")
    return [f"{name}: {p}" for name, r in result["claims"].items() for p in band_problems(r)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursekit.sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("chapter", help="a chapter's folder, for example ch01_bigram")
    parser.add_argument("--seeds", type=int, default=MIN_SEEDS,
                        help=f"how many seed shifts, 0 to N-1 (default {MIN_SEEDS}, the least a band may rest on)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="runs at a time (default: 2)")
    args = parser.parse_args(argv)
    if not (ROOT / args.chapter).is_dir() or not args.chapter.startswith("ch"):
        parser.error(f"no chapter folder {args.chapter!r}")
    if not 1 <= args.seeds <= 1000 or not 1 <= args.jobs <= 64:
        parser.error("--seeds must be 1 to 1000 and --jobs 1 to 64")
    result = sweep(args.chapter, args.seeds, args.jobs)
    problems = write(result)
    print(table(result))
    for failure in result["failures"]:
        print(f"\nFAILED {failure}")
    for problem in problems:
        print(f"band not backed: {problem}")
    return 1 if problems or result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
