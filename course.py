"""The whole course in one command: `python -m course`.

It walks the path the chapters teach, on the course's own data, offline:

    1. Chapter 1   generate the built-in corpus (stories with long-range links)
    2. Chapter 1   train the bigram model on it
    3. Chapter 3   train a character-level GPT on it
    4. Chapter 4   tokenize it with GPT-2's byte-pair encoding into shards
    5. Chapter 4   pretrain a small GPT on the shards
    6. Chapter 5   instruction-tune that GPT
    7. Chapter 5   ask the tuned model a few questions

and ends with a table: each stage's loss or score, its time, and where its
files are (under runs/course/ by default). About 5 minutes on a 2-core CPU.

Each finished stage leaves a `done.json` with the settings it ran with, so a
second run reuses finished work and does only what is missing or changed; a
stage that runs again makes every stage after it run again too. An
interrupted pretraining resumes from its last checkpoint. `--fresh` starts over.

`python -m course playground` then serves a page on this machine where you can talk to every model the
course trained, watch the tokens stream and see what each model considered at each step (playground/).
For instructors, `python -m course handout DIR` writes a student's copy without the
solutions and `python -m course grade SUBMISSIONS` marks a class (coursekit.classroom).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

# isort: off
import coursekit  # noqa: F401  (first: a Ctrl-C while the rest imports then ends quietly, see coursekit.errors)
# isort: on
from ch01_bigram.config import TrainConfig
from ch01_bigram.corpus import DEFAULT_BYTES
from ch03_gpt import RECIPES, GPTConfig, Recipe
from ch04_pretrain.pretraining.settings import PRESETS, TrainSettings
from ch05_finetune.config import INSTRUCT_FIT, FitConfig
from coursekit import BUILTIN, CourseParser, command_line, run_cli, write_json
from coursekit.classroom import add_classroom_commands
from coursekit.files import check_writable_dir, load_json, own_folder, write_bytes_atomically
from coursekit.progress import progress_write
from coursekit.settings import DEFAULT_SEED, add_run_flags
from playground.cli import add_playground_command

# The settings above need no torch: each stage imports the code it runs, so that `python -m course --help`
# answers at once.

DEFAULT_OUT = Path("runs/course")
DONE = "done.json"        # written last, when a stage has finished
ATTEMPT = "attempt.json"  # written first: the settings of the work in progress (resumable only with the same)


# --------------------------------------------------------------------------- the plan

@dataclass(frozen=True)
class Plan:
    """Every setting of the main job. `quick()` keeps the path and shrinks the work (for tests)."""

    seed: int = DEFAULT_SEED  # of every stage: the recipes' own seeds are replaced by it
    corpus_bytes: int = DEFAULT_BYTES  # Chapter 1's built-in stories, at their default size
    # Chapter 1's recipe as its command line runs it (3,000 steps, a loss estimate every 300).
    bigram: TrainConfig = field(default_factory=TrainConfig)
    # Chapter 3's small model (4 layers, 4 heads, 128 wide, block 64); its vocabulary comes from the corpus.
    gpt: GPTConfig = field(default_factory=GPTConfig)
    gpt_recipe: Recipe = field(default_factory=lambda: RECIPES["fast"])
    gpt_sample_chars: int = 2000
    pretraining: TrainSettings = field(default_factory=lambda: PRESETS["tiny"])
    instructions: int = 1400
    # Chapter 5's instruction recipe (INSTRUCT_FIT: 15 epochs at 2e-3) suits its 64-wide model; the main job
    # tunes the 128-wide one it pretrained. That one's exact match, by `python -m course` at commit b53f817
    # (2026-11-26): 0.11 at 5e-3 and 0.38 at 1e-3 over 10 epochs, 0.76 at 1e-3 over 20 epochs.
    instruct_fit: FitConfig = field(default_factory=lambda: replace(INSTRUCT_FIT, epochs=20, lr=1e-3))
    questions: int = 7  # one test question per task, for the chat stage

    @staticmethod
    def quick() -> Plan:
        plan = Plan()
        return replace(plan, corpus_bytes=60_000,
                       bigram=replace(plan.bigram, steps=200, eval_interval=20, eval_iters=10),
                       gpt=GPTConfig(block_size=32, n_layer=1, n_head=2, n_embd=32),
                       gpt_recipe=replace(plan.gpt_recipe, steps=40, eval_interval=20, eval_iters=5),
                       gpt_sample_chars=300,
                       pretraining=replace(plan.pretraining,
                                           model=replace(plan.pretraining.model, n_layer=1, n_head=2, n_embd=32),
                                           max_steps=20, eval_interval=10, eval_iters=2, log_interval=5,
                                           warmup=5),
                       instructions=140, instruct_fit=replace(INSTRUCT_FIT, epochs=2, lr=1e-3))


# --------------------------------------------------------------------------- running stages

@dataclass
class StageRecord:
    name: str
    chapter: int
    title: str
    result: str       # one line: the stage's loss or score
    metrics: dict     # the same, as numbers
    files: str        # where the stage's files are
    seconds: float
    reused: bool = False


def _normal(obj) -> object:
    """Settings as they come back from JSON (tuples become lists), so a comparison is exact."""
    return json.loads(json.dumps(obj))


class Runner:
    """Runs stages in order, each in its own folder, reusing one whose settings (and all before it) match."""

    def __init__(self, out: Path, log=print):
        self.out, self.log = out, log
        self.key: dict = {}  # the settings of every stage so far: a stage's work depends on all of them
        self.records: list[StageRecord] = []
        self.ran = False     # once a stage has run again, everything after it runs again too

    def stage(self, name: str, chapter: int, title: str, settings: dict,
              work: Callable[[Path], tuple[str, dict, str]], total: int) -> StageRecord:
        self.key = _normal({**self.key, name: settings})
        folder = self.out / name
        number = len(self.records) + 1
        done = _read(folder / DONE)
        record = _saved_record(done.get("record")) if done is not None and done.get("settings") == self.key else None
        if not self.ran and record is not None:
            self.log(f"[{number}/{total}] Chapter {chapter}: {title}: done before, reused ({record.result})")
        else:
            if _read(folder / ATTEMPT) != self.key and folder.exists():
                shutil.rmtree(folder)  # left by other settings: nothing in it can be continued
            folder.mkdir(parents=True, exist_ok=True)
            _write(folder / ATTEMPT, self.key)
            self.log(f"\n[{number}/{total}] Chapter {chapter}: {title}")
            self.ran = True
            start = time.perf_counter()
            result, metrics, files = work(folder)
            record = StageRecord(name, chapter, title, result, metrics, files, time.perf_counter() - start)
            _write(folder / DONE, {"settings": self.key, "record": asdict(record)})
            self.log(f"  -> {result} ({record.seconds:.1f} s)")
        self.records.append(record)
        return record


def _read(path: Path) -> dict | None:
    try:
        saved = load_json(path)
    except (OSError, ValueError):
        return None  # missing, or damaged by a kill or by hand: the stage is simply not done
    return saved if isinstance(saved, dict) else None


def _saved_record(saved) -> StageRecord | None:
    """The record a finished stage saved, or None when the file does not hold one (the stage then runs again)."""
    kinds = {"name": str, "chapter": int, "title": str, "result": str, "metrics": dict, "files": str,
             "seconds": (int, float)}
    if not isinstance(saved, dict) or set(saved) - {"reused"} != set(kinds):
        return None
    if not all(isinstance(saved[k], kind) and not isinstance(saved[k], bool) for k, kind in kinds.items()):
        return None
    return StageRecord(**{**saved, "reused": True})


def _write(path: Path, obj) -> None:
    write_json(path, obj)


# --------------------------------------------------------------------------- the stages

def corpus_stage(plan: Plan):
    from ch01_bigram import generate_corpus

    def work(folder: Path):
        text = generate_corpus(plan.seed, plan.corpus_bytes)
        write_bytes_atomically(folder / "corpus.txt", text.encode())
        stories = text.count("\n\n") + 1
        return (f"{len(text):,} characters, {stories:,} stories", {"characters": len(text), "stories": stories},
                str(folder / "corpus.txt"))

    return {"seed": plan.seed, "bytes": plan.corpus_bytes}, work


def bigram_stage(plan: Plan, corpus: Path, device: str, progress: bool):
    import torch

    from ch01_bigram import BigramLanguageModel, initial_loss, prepare_char_data, sample_text, train
    from ch03_gpt.checkpoint import write_weights
    from coursekit.hardware import resolve_dtype
    from coursekit.runtime import set_seed

    cfg = replace(plan.bigram, seed=plan.seed)

    def work(folder: Path):
        data = prepare_char_data(corpus.read_text(encoding="utf-8"), cfg.block_size)
        set_seed(cfg.seed)
        model = BigramLanguageModel(data.tokenizer.vocab_size).to(device)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # a vocabulary-squared table: one thread is fastest (see Chapter 1's cli)
        try:
            dtype = resolve_dtype("auto", device, data.tokenizer.vocab_size)  # float32 on every CPU
            history = train(model, data.train, data.val, cfg, device, progress, log=None, dtype=dtype)
        finally:
            torch.set_num_threads(threads)
        write_weights({k: v.cpu() for k, v in model.state_dict().items()}, folder / "model.safetensors")
        # Its vocabulary beside it, so the folder is a model on its own (the playground reads it).
        write_json(folder / "config.json", {"bigram": {"vocab_size": data.tokenizer.vocab_size},
                                            "tokenizer": {"type": "char", "chars": data.tokenizer.chars}})
        sample = sample_text(model, data.tokenizer, "\n", 300, seed=cfg.seed, device=device)
        (folder / "sample.txt").write_text(sample, encoding="utf-8")
        start = initial_loss(data.tokenizer.vocab_size)
        return (f"val loss {history.val[-1]:.3f} (ln {data.tokenizer.vocab_size} = {start:.2f} before training)",
                {"val_loss": history.val[-1], "initial_loss": start}, f"{folder}/")

    return asdict(cfg), work


def gpt_stage(plan: Plan, corpus: Path, device: str, progress: bool):
    import torch

    from ch01_bigram import long_range_score, prepare_char_data
    from ch03_gpt import generate, load_checkpoint, train_gpt

    recipe = plan.gpt_recipe

    def work(folder: Path):
        text = corpus.read_text(encoding="utf-8")
        data = prepare_char_data(text, plan.gpt.block_size)
        cfg = replace(plan.gpt, vocab_size=data.tokenizer.vocab_size)
        _model, _history, summary = train_gpt(data, cfg, recipe, folder, device, progress, log=None)
        best, _meta = load_checkpoint(folder, device=device)
        prompt = torch.tensor([data.tokenizer.encode("\n")], device=device)
        gen = torch.Generator(device=device).manual_seed(plan.seed)
        ids = generate(best, prompt, plan.gpt_sample_chars, temperature=0.8, generator=gen)[0].tolist()
        sample = data.tokenizer.decode(ids)
        (folder / "sample.txt").write_text(sample, encoding="utf-8")
        score = long_range_score(sample)
        # How often a sampled story's later names and pronouns agree with its start (chance: 1/32 and 1/2).
        return (f"val loss {summary['best_val_loss']:.3f}; samples keep names {score.names:.0%} (chance 3%), "
                f"pronouns {score.pronouns:.0%} (chance 50%)",
                {"val_loss": summary["best_val_loss"], "parameters": best.num_params(),
                 "names_kept": score.names, "pronouns_kept": score.pronouns, "dtype": summary["dtype"]},
                f"{folder}/")

    return {"model": asdict(plan.gpt), "recipe": asdict(recipe)}, work


def shards_stage(plan: Plan, corpus: Path, progress: bool):
    from ch04_pretrain.data_pipeline.prepare import prepare
    from ch04_pretrain.data_pipeline.sources import SourceOptions

    options = SourceOptions(separator="\n\n")  # one story per document

    def work(folder: Path):
        manifest = prepare(str(corpus), folder, options=options, workers=0, progress=progress, log=lambda *a: None)
        train_tokens, val_tokens = manifest["splits"]["train"]["tokens"], manifest["splits"]["val"]["tokens"]
        return (f"{manifest['tokens']:,} GPT-2 tokens from {manifest['documents']:,} documents "
                f"(train {train_tokens:,}, val {val_tokens:,})",
                {"tokens": manifest["tokens"], "documents": manifest["documents"]}, f"{folder}/")

    return {"separator": options.separator, "workers": 0}, work


def pretrain_stage(plan: Plan, shards: Path, device: str, progress: bool, log):
    from ch04_pretrain.pretraining.trainer import pretrain

    settings = plan.pretraining

    def work(folder: Path):
        resume = (folder / "latest.json").is_file()  # an earlier run of this stage was interrupted
        summary = pretrain(settings, shards, folder, device=device, resume=resume, progress=progress,
                        log=lambda message: log(f"  {message}"))
        if summary["interrupted"]:
            raise KeyboardInterrupt  # the trainer saved a checkpoint; the next run resumes from it
        best = summary["best"]
        return (f"val loss {best['val_loss']:.3f} after {summary['steps']} steps "
                f"({summary['parameters'] / 1e6:.1f}M parameters, {summary['dtype']})",
                {"val_loss": best["val_loss"], "steps": summary["steps"], "parameters": summary["parameters"]},
                f"{folder}/")

    return asdict(settings), work


def instruct_stage(plan: Plan, pretrained: Path, device: str, progress: bool):
    from ch05_finetune.instruct import instruction_tune, load_instructions, split_instructions
    from ch05_finetune.pretrained import load_start
    from ch05_finetune.template import TEMPLATES

    cfg = replace(plan.instruct_fit, seed=plan.seed)

    def work(folder: Path):
        examples = load_instructions(BUILTIN, plan.instructions, plan.seed)
        splits = split_instructions(examples, plan.seed)
        model, codec, _meta = load_start(pretrained, device, progress=progress, log=None)
        run = instruction_tune(model, codec, TEMPLATES["compact"], splits, cfg, folder, BUILTIN,
                               progress=progress, log=None)
        before, after = run["before"]["exact_match"], run["after"]["exact_match"]
        f1_before, f1_after = run["before"]["token_f1"], run["after"]["token_f1"]
        epochs = run["history"].epochs
        return (f"exact match {before:.2f} -> {after:.2f} (token F1 {f1_before:.2f} -> {f1_after:.2f}) on "
                f"{len(splits[2])} test questions; answer loss {epochs[0]['val_loss']:.2f} -> "
                f"{epochs[-1]['val_loss']:.2f}",
                {"exact_match_before": before, "exact_match": after, "by_task": run["after"]["by_task"],
                 "token_f1_before": f1_before, "token_f1": f1_after, "rouge_l": run["after"]["rouge_l"],
                 "answer_loss": epochs[-1]["val_loss"]}, f"{folder}/")

    return {"fit": asdict(cfg), "instructions": plan.instructions, "template": "compact"}, work


def chat_stage(plan: Plan, tuned: Path, device: str, log):
    from ch05_finetune.chat import load_chat_model
    from ch05_finetune.instruct import load_instructions, respond, split_instructions

    def work(folder: Path):
        model, codec, template = load_chat_model(tuned, device)
        test = split_instructions(load_instructions(BUILTIN, plan.instructions, plan.seed), plan.seed)[2]
        questions, tasks = [], set()
        for ex in test:  # the first test question of each task
            if ex.task not in tasks and len(questions) < plan.questions:
                tasks.add(ex.task)
                questions.append(ex)
        records = []
        for ex in questions:
            answer = respond(model, codec, template, ex.instruction, ex.input)
            right = answer == ex.output.strip()
            records.append({"instruction": ex.instruction, "input": ex.input, "answer": answer,
                            "expected": ex.output, "right": right})
            shown = f"{ex.instruction} {_short(ex.input)}".strip()
            log(f"  you:   {shown}\n  model: {answer!r}  ({'right' if right else 'expected ' + repr(ex.output)})")
        _write(folder / "answers.json", records)
        right = sum(r["right"] for r in records)
        return (f"{right} of {len(records)} answers right", {"right": right, "asked": len(records)},
                str(folder / "answers.json"))

    return {"questions": plan.questions}, work


def _short(text: str, width: int = 70) -> str:
    return text if len(text) <= width else text[:width] + "..."


# --------------------------------------------------------------------------- the job

STAGES = 7


def run_course(out: str | Path = DEFAULT_OUT, plan: Plan = Plan(), device: str = "auto", fresh: bool = False,
               progress: bool = True, log=print) -> list[StageRecord]:
    """Run (or reuse) every stage; write summary.json; return the stages' records."""
    from coursekit.runtime import pick_device

    out = Path(out)
    if fresh:
        for name in ("corpus", "bigram", "gpt", "shards", "pretrain", "instruct", "chat", "summary.json"):
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    device = pick_device(None if device == "auto" else device)
    runner = Runner(out, log)

    def run(name, chapter, title, spec):
        settings, work = spec
        return runner.stage(name, chapter, title, settings, work, STAGES)

    run("corpus", 1, "the built-in corpus", corpus_stage(plan))
    corpus = out / "corpus" / "corpus.txt"
    run("bigram", 1, "the bigram model", bigram_stage(plan, corpus, device, progress))
    run("gpt", 3, "a character-level GPT", gpt_stage(plan, corpus, device, progress))
    run("shards", 4, "GPT-2 byte-pair encoding into shards", shards_stage(plan, corpus, progress))
    run("pretrain", 4, "pretraining a GPT on the shards", pretrain_stage(plan, out / "shards", device, progress, log))
    run("instruct", 5, "instruction tuning", instruct_stage(plan, out / "pretrain", device, progress))
    run("chat", 5, "questions for the tuned model", chat_stage(plan, out / "instruct", device, log))
    summary = {"device": device, "total_seconds": sum(r.seconds for r in runner.records),
               "stages": [asdict(r) for r in runner.records]}
    _write(out / "summary.json", summary)
    return runner.records


def summary_table(records: list[StageRecord]) -> str:
    """The stages as a plain-text table: chapter, stage, result, time, files."""
    rows = [("ch", "stage", "result", "time", "files")]
    for r in records:
        rows.append((str(r.chapter), r.name, r.result, _duration(r.seconds) + (" (reused)" if r.reused else ""),
                     r.files))
    total = _duration(sum(r.seconds for r in records))
    if any(r.reused for r in records):
        total += f" ({_duration(sum(r.seconds for r in records if not r.reused))} this time)"
    rows.append(("", "total", "", total, ""))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    return f"{whole // 60} min {whole % 60:02d} s"


def build_parser() -> argparse.ArgumentParser:
    p = CourseParser(
        prog="python -m course",
        description="Run the course's whole path on its built-in data, offline: corpus -> bigram (Chapter 1) -> "
                    "character-level GPT (Chapter 3) -> BPE shards and pretraining (Chapter 4) -> instruction "
                    "tuning and a few questions (Chapter 5). About 5 minutes on a 2-core CPU. A second run reuses "
                    "what is done.",
        epilog="Afterwards: python -m course playground (every model in your browser), or "
               "python -m ch05_finetune chat --checkpoint runs/course/instruct")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                   help="where every stage keeps its files (default: %(default)s)")
    p.add_argument("--fresh", action="store_true", help="start over: delete the stages' earlier results first")
    p.add_argument("--quick", action="store_true",
                   help="the same path with tiny models and a few steps each (under a minute; the results "
                        "mean little)")
    add_run_flags(p, dtype=False, seed=False, threads=True)
    p.set_defaults(run=run)
    # Optional subcommands: without one, the command runs the path. The playground is for everyone; `handout`
    # and `grade` are for instructors (coursekit.classroom).
    commands = p.add_subparsers(title="other commands", metavar="{playground,handout,grade}", dest="command")
    add_playground_command(commands)
    add_classroom_commands(commands)
    return p


main = command_line(build_parser)  # parse, then run the command chosen


def run(args: argparse.Namespace) -> None:
    """Run every stage that is not done yet, then print the summary table."""
    check_writable_dir(args.out, "--out")
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    plan = Plan.quick() if args.quick else Plan()
    start = time.perf_counter()
    with own_folder(args.out, f"--out {args.out}"):  # a second main job on the same folder is refused
        # Stage messages print above a live progress bar instead of being overdrawn by it.
        records = run_course(args.out, plan, args.device, args.fresh, progress=not args.no_progress,
                             log=progress_write)
    print("\n" + summary_table(records))
    print(f"\nthis run took {_duration(time.perf_counter() - start)}; the summary is in {args.out / 'summary.json'}")
    print(f"talk to the tuned model: python -m ch05_finetune chat --checkpoint {args.out / 'instruct'}")
    runs = "" if args.out == DEFAULT_OUT else f" --runs {args.out}"
    print(f"or to every model, in your browser: python -m course playground{runs}")


if __name__ == "__main__":
    run_cli(main)
