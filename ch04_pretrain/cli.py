"""Command line of Chapter 4: `python -m ch04_pretrain SUBCOMMAND ...`.

`build_parser` declares every subcommand's options and points each at its
`cmd_<name>` function (coursekit's `subcommand`); `main` parses and calls it.
The training, evaluation and sampling modules are imported inside the cmd_
functions, so that a command loads only what it runs; what a command prints
is made beside the code it reports on.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from ch03_gpt.cli import add_sampling_options
from ch03_gpt.config import GPTConfig
from coursekit import BUILTIN, CourseParser, command_line, subcommand
from coursekit.files import check_writable_dir, check_writable_file
from coursekit.numbers import Number, nonnegative_int, positive_float, positive_int
from coursekit.settings import add_flags, add_run_flags, from_args

from .data_pipeline.bpe import GPT2, MAX_MERGES
from .data_pipeline.prepare import DOCS_PER_SHARD, SplitRule, prepare, report
from .data_pipeline.sources import OPENWEBTEXT, SourceOptions, count, options_from_args
from .pretraining.settings import EVAL_BATCH_SIZE, EVAL_BATCHES, PRESETS, TrainSettings

DEFAULT_PRESET = "tiny"  # minutes on a CPU
# Merges of a byte-pair encoder: its vocabulary (256 bytes + merges + <|endoftext|>) must fit uint16 shards.
merges = Number(int, 0, MAX_MERGES)


def build_parser() -> argparse.ArgumentParser:
    parser = CourseParser(
        prog="python -m ch04_pretrain",
        description="Chapter 4: pretraining a GPT. Start with `prepare` to tokenize a corpus into shards (with "
                    "GPT-2's tokenizer, or one of our own learned by `bpe`), then `train`, `plot`, `evaluate` and "
                    "`sample`.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = subcommand(sub, "bpe", cmd_bpe, "learn a byte-pair encoder of our own and write its rank file",
                   "Learn byte-pair merges on a corpus (train_bpe, as in the notebook) and write them as a tiktoken "
                   "rank file: ids 0-255 are the bytes, 256 + k is merge k, <|endoftext|> comes after the last. "
                   "Byte-level, it encodes any text. Use it with prepare --tokenizer FILE.")
    _add_source_options(p)
    p.add_argument("--merges", type=merges, default=500, metavar="N",
                   help=f"merges to learn; fewer when every chunk of the text is already one token "
                        f"({merges.describe()}; default: %(default)s)")
    p.add_argument("--max-bytes", type=count, default=10_000_000, metavar="N",
                   help="learn from the source's first documents, up to about N bytes of text (default: 10M)")
    p.add_argument("--out", required=True, type=Path, metavar="FILE",
                   help="the rank file to write (e.g. tokenizers/stories-500.tiktoken)")

    p = subcommand(sub, "prepare", cmd_prepare, "tokenize a corpus into shards for pretraining",
                   "Tokenize documents with a byte-pair encoding (GPT-2's, or a rank file of our own) into uint16 "
                   "shards plus a manifest.json. Interrupted, it resumes where it stopped when run again with the "
                   "same options.")
    _add_source_options(p)
    p.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="folder for the shards and manifest.json (created if needed)")
    p.add_argument("--tokenizer", default=GPT2, metavar="gpt2|FILE",
                   help="gpt2: GPT-2's byte-pair encoding (50,257 ids; the default); or a rank file made by "
                        "`python -m ch04_pretrain bpe`, copied into --out")
    p.add_argument("--max-docs", type=count, metavar="N", help="stop after N documents (e.g. 10K)")
    p.add_argument("--max-tokens", type=count, metavar="N",
                   help="stop at the document that brings the total to N tokens (e.g. 10M)")
    p.add_argument("--workers", type=nonnegative_int, metavar="N",
                   help="tokenizing processes; 0 tokenizes in this process (default: the number of CPU cores)")
    p.add_argument("--docs-per-shard", type=positive_int, default=DOCS_PER_SHARD, metavar="N",
                   help="documents per shard file; a rerun after a crash redoes at most one shard "
                        "(default: %(default)s)")
    add_flags(p, SplitRule)  # --seed: of the train/val split
    p.add_argument("--start-method", default="spawn", choices=["spawn", "forkserver", "fork"],
                   help="how worker processes start; spawn, the default, works on every platform")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a preparation with other settings already in --out")
    add_run_flags(p, device=False, dtype=False, seed=False)

    p = subcommand(
        sub, "train", cmd_train, "pretrain a GPT on prepared shards",
        "Pretrain Chapter 3's GPT on shards made by `prepare`. A preset sets every option; the options given "
        "override it. Checkpoints, log.jsonl, latest.json and best.json go to --out. Ctrl-C saves and stops; "
        "--resume continues exactly where a run stopped, even after a crash. Several GPUs: torchrun "
        "--nproc_per_node=N -m ch04_pretrain train ...",
        epilog="presets: tiny (4 layers, 128 wide, block 64: minutes on a CPU), small (6 layers, 384 wide, "
               "block 256), gpt2-124m (GPT-2's published recipe: 12 layers, 768 wide, block 1024, 524,288 "
               "tokens per step, 600,000 steps; about 4 days on 8 A100 GPUs)")
    p.add_argument("--data", required=True, type=Path, metavar="DIR", help="a folder prepared by `prepare`")
    p.add_argument("--out", type=Path, metavar="DIR", help="run folder (default: runs/ch04-PRESET)")
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS), help="default: %(default)s")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    p.add_argument("--peak-flops", type=positive_float, metavar="F", help="the hardware peak for MFU, in FLOP/s "
                   "(default: measured with a large matrix product at startup)")
    add_run_flags(p, seed_help="the seed of the initial weights and of the batches")
    shown = PRESETS[DEFAULT_PRESET]  # --help shows the default preset's values; --preset sets its own
    # The model's shape is GPTConfig's fields (a shape it refuses stops at parse time); the vocabulary is the
    # data's, and the biases stay GPT-2's.
    add_flags(p, GPTConfig, defaults=shown.model, skip=("bias",),
              title=f"the model's shape (default: the preset's; shown: {DEFAULT_PRESET}'s)")
    add_flags(p, TrainSettings, defaults=shown, title=f"settings (default: the preset's; shown: {DEFAULT_PRESET}'s)")

    p = subcommand(sub, "evaluate", cmd_evaluate, "val loss and perplexity of a checkpoint, ours or OpenAI's",
                   "Report the mean loss and perplexity of a model on prepared shards. SOURCE is a run folder (its "
                   "best checkpoint), a checkpoint folder, a Hugging Face GPT-2 model.safetensors, or gpt2 / "
                   "gpt2-medium / gpt2-large / gpt2-xl (OpenAI's weights, downloaded once).")
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("--data", required=True, type=Path, metavar="DIR", help="a folder prepared by `prepare`")
    p.add_argument("--split", default="val", choices=["train", "val"])
    p.add_argument("--batch-size", type=positive_int, default=EVAL_BATCH_SIZE,
                   help="sequences per batch (default: %(default)s)")
    p.add_argument("--block-size", type=positive_int, help="tokens per sequence (default: the model's block size)")
    p.add_argument("--iters", type=positive_int, default=EVAL_BATCHES,
                   help="batches to average over (default: %(default)s)")
    add_run_flags(p, seed=False, progress=False)

    p = subcommand(sub, "plot", cmd_plot, "draw a run's loss and learning-rate curves to a PNG",
                   "Read RUN/log.jsonl and draw the train and val loss and the learning rate against the step.")
    p.add_argument("run_dir", type=Path, metavar="RUN", help="a run folder written by `train`")
    p.add_argument("--out", type=Path, metavar="PNG", help="default: RUN/curves.png")

    p = subcommand(sub, "sample", cmd_sample, "continue a prompt with a pretrained model",
                   "Generate text from SOURCE (as for `evaluate`).")
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("--prompt", default="<|endoftext|>", help="text to continue (default: a new document)")
    add_sampling_options(p, "token", max_new_tokens=100, temperature=0.8, top_k=50, top_p=False)
    add_run_flags(p, dtype=False, progress=False, seed_help="the same seed gives the same text")
    return parser


def _add_source_options(p: argparse.ArgumentParser) -> None:
    """--source and how to read it: the options `prepare` and `bpe` share."""
    p.add_argument("--source", required=True, metavar="SOURCE",
                   help=f"'{OPENWEBTEXT}': OpenWebText's parquet files from the Hugging Face Hub (needs "
                        f"pip install huggingface_hub pyarrow; downloads only the files it reads); "
                        f"'{BUILTIN}': Chapter 1's generated stories, one story per document; "
                        f"or a PATH: a file or folder of .txt, .xz (the original OpenWebText release), "
                        f".tar, .jsonl or .parquet files")
    add_flags(p, SourceOptions)  # --separator, --text-field, --builtin-bytes, --builtin-seed, --revision


main = command_line(build_parser)  # parse, then run the command chosen


def cmd_bpe(args: argparse.Namespace) -> None:
    from .data_pipeline.bpe import learn_rank_file

    options = options_from_args(args)
    check_writable_file(args.out, "--out")
    learn_rank_file(args.source, options, args.max_bytes, args.merges, args.out)


def cmd_prepare(args: argparse.Namespace) -> None:
    options = options_from_args(args)
    start = time.perf_counter()
    manifest = prepare(args.source, args.out, options=options, max_docs=args.max_docs, max_tokens=args.max_tokens,
                       docs_per_shard=args.docs_per_shard, workers=args.workers, start_method=args.start_method,
                       split=from_args(args, SplitRule()), overwrite=args.overwrite, progress=not args.no_progress,
                       tokenizer=args.tokenizer)
    print(report(manifest, args.out, time.perf_counter() - start))


def train_settings(args: argparse.Namespace) -> TrainSettings:
    """The preset chosen, with the model's shape and the settings the command line gave (--seed and --dtype
    included). GPTConfig and TrainSettings check them: 6 heads in 128 wide, or min-lr above lr, stop here."""
    preset = PRESETS[args.preset]
    return from_args(args, replace(preset, model=from_args(args, preset.model)))


def cmd_train(args: argparse.Namespace) -> None:
    from .pretraining import trainer

    settings = train_settings(args)
    out = args.out or Path("runs") / f"ch04-{args.preset}"
    check_writable_dir(out, "--out")
    summary = trainer.pretrain(settings, args.data, out, device=args.device, resume=args.resume,
                            peak_flops=args.peak_flops, progress=not args.no_progress)
    trainer.leave_distributed()
    if text := trainer.report(summary, out):  # under torchrun, the other ranks stay quiet
        print(text)
    if summary["interrupted"]:
        raise KeyboardInterrupt  # saved; run_cli ends the command as interrupted, exit status 130, for scripts


def cmd_evaluate(args: argparse.Namespace) -> None:
    from .pretraining.evaluate import evaluate

    r = evaluate(args.source, args.data, args.split, args.batch_size, args.block_size, args.iters, args.device,
                 args.dtype)
    print(f"{r['source']}: {r['parameters']:,} parameters, {r['split']} loss {r['loss']:.4f}, perplexity "
          f"{r['perplexity']:.2f} ({r['tokens']:,} tokens, block {r['block_size']}, {r['dtype']})")


def cmd_plot(args: argparse.Namespace) -> None:
    from .pretraining.plot import plot_run

    out = args.out or args.run_dir / "curves.png"
    if args.run_dir.is_dir():  # a missing run is plot_run's to report; no folder is made for it
        check_writable_file(out, "--out")
    plot_run(args.run_dir, out)
    print(f"wrote {out}")


def cmd_sample(args: argparse.Namespace) -> None:
    from .pretraining.evaluate import sample

    print(sample(args.source, args.prompt, args.max_new_tokens, args.temperature, args.top_k, args.seed, args.device))
