"""Command line of Chapter 4: `python -m ch04_pretrain SUBCOMMAND ...`.

`build_parser` declares every subcommand's options and points each at its
`cmd_<name>` function (`set_defaults(run=...)`); `main` parses and calls it.
The training, evaluation and sampling modules are imported inside the cmd_
functions, so that a command loads only what it runs.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from ch03_gpt.config import GPTConfig
from coursekit import BUILTIN, CourseError, CourseParser, command_line
from coursekit.files import check_writable_dir, check_writable_file
from coursekit.numbers import Number, nonnegative_float, nonnegative_int, positive_float, positive_int
from coursekit.settings import add_flags, add_run_flags, from_args

from .data_pipeline.bpe import GPT2, MAX_MERGES, RANKS_FILE
from .data_pipeline.prepare import DOCS_PER_SHARD, SplitRule, prepare
from .data_pipeline.sources import OPENWEBTEXT, SourceOptions, count
from .pretraining.settings import PRESETS, TrainSettings

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

    p = sub.add_parser(
        "bpe", help="learn a byte-pair encoder of our own and write its rank file",
        description="Learn byte-pair merges on a corpus (train_bpe, as in the notebook) and write them as a "
                    "tiktoken rank file: ids 0-255 are the bytes, 256 + k is merge k, <|endoftext|> comes after "
                    "the last. Byte-level, it encodes any text. Use it with prepare --tokenizer FILE.")
    _add_source_options(p)
    p.add_argument("--merges", type=merges, default=500, metavar="N",
                   help=f"merges to learn; fewer when every chunk of the text is already one token "
                        f"({merges.describe()}; default: %(default)s)")
    p.add_argument("--max-bytes", type=count, default=10_000_000, metavar="N",
                   help="learn from the source's first documents, up to about N bytes of text (default: 10M)")
    p.add_argument("--out", required=True, type=Path, metavar="FILE",
                   help="the rank file to write (e.g. tokenizers/stories-500.tiktoken)")
    p.set_defaults(run=cmd_bpe)

    p = sub.add_parser(
        "prepare", help="tokenize a corpus into shards for pretraining",
        description="Tokenize documents with a byte-pair encoding (GPT-2's, or a rank file of our own) into uint16 "
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
    p.set_defaults(run=cmd_prepare)

    p = sub.add_parser(
        "train", help="pretrain a GPT on prepared shards",
        description="Pretrain Chapter 3's GPT on shards made by `prepare`. A preset sets every option; the "
                    "options given override it. Checkpoints, log.jsonl, latest.json and best.json go to --out. "
                    "Ctrl-C saves and stops; --resume continues exactly where a run stopped, even after a crash. "
                    "Several GPUs: torchrun --nproc_per_node=N -m ch04_pretrain train ...",
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
    p.set_defaults(run=cmd_train)

    p = sub.add_parser(
        "evaluate", help="val loss and perplexity of a checkpoint, ours or OpenAI's",
        description="Report the mean loss and perplexity of a model on prepared shards. SOURCE is a run folder "
                    "(its best checkpoint), a checkpoint folder, a Hugging Face GPT-2 model.safetensors, or "
                    "gpt2 / gpt2-medium / gpt2-large / gpt2-xl (OpenAI's weights, downloaded once).")
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("--data", required=True, type=Path, metavar="DIR", help="a folder prepared by `prepare`")
    p.add_argument("--split", default="val", choices=["train", "val"])
    p.add_argument("--batch-size", type=positive_int, default=8, help="sequences per batch (default: %(default)s)")
    p.add_argument("--block-size", type=positive_int, help="tokens per sequence (default: the model's block size)")
    p.add_argument("--iters", type=positive_int, default=50, help="batches to average over (default: %(default)s)")
    add_run_flags(p, seed=False, progress=False)
    p.set_defaults(run=cmd_evaluate)

    p = sub.add_parser("plot", help="draw a run's loss and learning-rate curves to a PNG",
                       description="Read RUN/log.jsonl and draw the train and val loss and the "
                                   "learning rate against the step.")
    p.add_argument("run_dir", type=Path, metavar="RUN", help="a run folder written by `train`")
    p.add_argument("--out", type=Path, metavar="PNG", help="default: RUN/curves.png")
    p.set_defaults(run=cmd_plot)

    p = sub.add_parser("sample", help="continue a prompt with a pretrained model",
                       description="Generate text from SOURCE (as for `evaluate`).")
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("--prompt", default="<|endoftext|>", help="text to continue (default: a new document)")
    p.add_argument("--max-new-tokens", type=nonnegative_int, default=100,
                   help="tokens to generate (default: %(default)s)")
    p.add_argument("--temperature", type=nonnegative_float, default=0.8,
                   help="0: always the most likely token; higher: more varied (default: %(default)s)")
    p.add_argument("--top-k", type=positive_int, default=50,
                   help="sample only among the k most likely tokens (default: %(default)s)")
    add_run_flags(p, dtype=False, progress=False, seed_help="the same seed gives the same text")
    p.set_defaults(run=cmd_sample)
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


def _source_options(args: argparse.Namespace) -> SourceOptions:
    options = from_args(args, SourceOptions())  # an empty --separator is refused here
    if options.separator:  # typed with backslash escapes: '\n\n' is a blank line
        options = replace(options, separator=options.separator.encode("utf-8").decode("unicode_escape"))
    return options


def cmd_bpe(args: argparse.Namespace) -> None:
    from .data_pipeline.bpe import train_bpe, write_ranks
    from .data_pipeline.sources import source_text

    options = _source_options(args)
    check_writable_file(args.out, "--out")
    text = source_text(args.source, options, args.max_bytes)
    bpe = train_bpe(text, args.merges)
    write_ranks(bpe.ranks(), args.out)
    fewer = (f" (of {args.merges:,} asked: after {len(bpe.merges):,}, every chunk of the text is one token)"
             if len(bpe.merges) < args.merges else "")
    size = len(text.encode("utf-8"))
    tokens = bpe.tokens_after_merge[-1] if bpe.merges else size
    print(f"{args.out}: 256 bytes + {len(bpe.merges):,} merges{fewer} + <|endoftext|> = {bpe.vocab_size + 1:,} ids")
    print(f"  learned on {size:,} bytes of {args.source}: {tokens:,} tokens, {size / tokens:.2f} bytes per token")
    print(f"  use it: python -m ch04_pretrain prepare --source {args.source} --tokenizer {args.out} --out DIR")


def cmd_prepare(args: argparse.Namespace) -> None:
    options = _source_options(args)
    start = time.perf_counter()
    manifest = prepare(args.source, args.out, options=options, max_docs=args.max_docs, max_tokens=args.max_tokens,
                       docs_per_shard=args.docs_per_shard, workers=args.workers, start_method=args.start_method,
                       split=from_args(args, SplitRule()), overwrite=args.overwrite, progress=not args.no_progress,
                       tokenizer=args.tokenizer)
    seconds = time.perf_counter() - start
    splits = manifest["splits"]
    size = sum(s[k]["tokens"] for s in manifest["shards"] for k in splits) * 2
    tokenizer = manifest["settings"]["tokenizer"]
    print(f"{args.out}: {manifest['documents']:,} documents in {len(manifest['shards'])} shard(s), "
          f"{manifest['skipped']:,} skipped (not UTF-8)")
    print(f"  train: {splits['train']['documents']:,} documents, {splits['train']['tokens']:,} tokens")
    print(f"  val:   {splits['val']['documents']:,} documents, {splits['val']['tokens']:,} tokens")
    print(f"  {size / 1e6:,.1f} MB of uint16 tokens; this run took {seconds:.1f} s")
    if tokenizer["name"] != GPT2:
        print(f"  tokenizer {tokenizer['name']} ({tokenizer['vocab_size']:,} ids), its rank file kept as "
              f"{args.out / RANKS_FILE}")


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
    if summary["world_size"] == 1 or summary["best"] is not None:  # under torchrun, the other ranks stay quiet
        best = summary["best"]
        print(f"{out}: {summary['steps']} steps, val loss {summary['val_loss']:.4f}; best {best['val_loss']:.4f} "
              f"at step {best['step']} ({out / best['dir']})")
        if "tokens_per_s" in summary:
            print(f"  {summary['tokens_per_s']:,.0f} tokens/s, MFU {summary['mfu']:.1%}, {summary['dtype']} on "
                  f"{summary['device']}, peak memory {summary['peak_mem_mb']:,.0f} MB")
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
    import torch

    from ch03_gpt import generate
    from coursekit.runtime import pick_device

    from .pretraining.evaluate import describe_tokenizer
    from .pretraining.gpt2_weights import load_pretrained

    device = pick_device(args.device)
    model, encoding, meta = load_pretrained(args.source, device)
    if encoding is None:
        raise CourseError(f"{args.source} has no byte-pair tokenizer to sample with (its tokenizer: "
                          f"{describe_tokenizer(meta.get('tokenizer'))})")
    ids = encoding.encode(args.prompt, allowed_special={"<|endoftext|>"})
    if not ids:
        raise CourseError("the prompt is empty")
    generator = torch.Generator(device=device).manual_seed(args.seed)
    out = generate(model, torch.tensor([ids], device=device), args.max_new_tokens, temperature=args.temperature,
                   top_k=args.top_k, generator=generator)
    print(encoding.decode(out[0].tolist()))
