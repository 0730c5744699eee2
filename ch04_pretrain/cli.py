"""Command line of Chapter 4: `python -m ch04_pretrain SUBCOMMAND ...`.

`build_parser` declares every subcommand's options and points each at its
`cmd_<name>` function (`set_defaults(run=...)`); `main` parses and calls it.
The training, evaluation and sampling modules are imported inside the cmd_
functions, so that a command loads only what it runs.
"""

from __future__ import annotations

import argparse
import re
import time
from dataclasses import fields, replace
from pathlib import Path

from ch01_bigram.corpus import DEFAULT_BYTES, DEFAULT_SEED
from coursekit import BUILTIN, CourseError, CourseParser, command_line
from coursekit.files import check_writable_dir, check_writable_file
from coursekit.numbers import Number, nonnegative_float, nonnegative_int, positive_float, positive_int, seed

from .data_pipeline.bpe import GPT2, MAX_MERGES, RANKS_FILE
from .data_pipeline.prepare import DOCS_PER_SHARD, SplitRule, prepare
from .data_pipeline.sources import OPENWEBTEXT, SourceOptions
from .pretraining.settings import MODEL_RULES, PRESETS, SETTING_RULES, TrainSettings

_SUFFIXES = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9}


def parse_count(text: str) -> int:
    """'10M' -> 10_000_000; also accepts K, B (or G), and 1,000 or 1_000."""
    match = re.fullmatch(r"\s*([\d_,]*\.?\d+)\s*([KMBG]?)\s*", text.upper())
    if not match:
        raise argparse.ArgumentTypeError(f"not a count: {text!r} (examples: 5000, 10M, 1.5B)")
    return int(float(match.group(1).replace(",", "").replace("_", "")) * _SUFFIXES[match.group(2)])


# A count of documents, tokens or bytes, at least 1: 5000, 10K, 10M, 1.5B.
count = Number(int, 1, parse=parse_count, called="positive")
# Merges of a byte-pair encoder: its vocabulary (256 bytes + merges + <|endoftext|>) must fit uint16 shards.
merges = Number(int, 0, MAX_MERGES)


_SETTING_HELP = {
    "n_layer": "transformer blocks", "n_head": "attention heads per block", "n_embd": "width of the residual stream",
    "block_size": "tokens of context per sequence", "dropout": "dropout rate (0 for pretraining on a large corpus)",
    "batch_size": "sequences per micro-batch, per process",
    "grad_accum": "micro-batches per optimizer step, counted over all processes",
    "max_steps": "optimizer steps in the whole run (the cosine decays to min-lr at this step)",
    "lr": "peak learning rate, reached at the end of warm-up", "min_lr": "the floor of the cosine decay",
    "warmup": "steps of linear warm-up from 0 to lr", "weight_decay": "AdamW weight decay on matrices only",
    "beta1": "AdamW beta1", "beta2": "AdamW beta2", "grad_clip": "maximum gradient norm (0: no clipping)",
    "dtype": "auto (bfloat16 where faster, float16 + gradient scaler on older GPUs), float32, bfloat16, float16",
    "compile": "compile the model with torch.compile (faster steps after a slow first one)",
    "activation_checkpointing": "recompute each block in the backward pass instead of storing its activations",
    "eval_interval": "estimate val loss and save a checkpoint every N steps",
    "eval_iters": "val batches per estimate", "log_interval": "write a log line every N steps",
    "keep": "checkpoints kept besides the best one", "seed": "seed of the initial weights and of the batches",
}


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
    p.add_argument("--seed", type=seed, default=SplitRule.seed,
                   help="seed of the train/val split; the same seed gives the same split (default: %(default)s)")
    p.add_argument("--start-method", default="spawn", choices=["spawn", "forkserver", "fork"],
                   help="how worker processes start; spawn, the default, works on every platform")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a preparation with other settings already in --out")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
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
    p.add_argument("--preset", default="tiny", choices=list(PRESETS), help="default: %(default)s")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the best available)")
    p.add_argument("--peak-flops", type=positive_float, metavar="F", help="the hardware peak for MFU, in FLOP/s "
                   "(default: measured with a large matrix product at startup)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    g = p.add_argument_group("the model's shape (default: the preset's)")
    for name, rule in MODEL_RULES.items():
        g.add_argument("--" + name.replace("_", "-"), type=rule, metavar=name.upper(),
                       help=f"{_SETTING_HELP[name]}; {rule.describe()}")
    g = p.add_argument_group("settings (default: the preset's)")
    for f in fields(TrainSettings):
        if f.name == "model":
            continue  # its fields are the options above
        flag = "--" + f.name.replace("_", "-")
        if f.type in (bool, "bool"):
            g.add_argument(flag, action="store_true", default=None, help=_SETTING_HELP[f.name])
        else:
            rule = SETTING_RULES.get(f.name)  # every number has its range; the only other setting is dtype
            g.add_argument(flag, type=rule or str, metavar=f.name.upper() if rule else "NAME",
                           help=_SETTING_HELP[f.name] + (f"; {rule.describe()}" if rule else ""))
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
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the best available)")
    p.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 or float16")
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
    p.add_argument("--seed", type=seed, default=1337)
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the best available)")
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
    p.add_argument("--separator", metavar="TEXT",
                   help=r"split .txt/.xz text files into documents at TEXT (e.g. '\n\n'; backslash escapes "
                        "are understood); default: one document per file")
    p.add_argument("--text-field", default="text", metavar="NAME",
                   help="the field of .jsonl lines / the column of .parquet files that holds the text "
                        "(default: %(default)s)")
    p.add_argument("--revision", help="Hub revision to read (default: main, else refs/convert/parquet)")
    p.add_argument("--builtin-bytes", type=count, default=DEFAULT_BYTES, metavar="N",
                   help="size of the built-in corpus in bytes (default: %(default)s)")
    p.add_argument("--builtin-seed", type=seed, default=DEFAULT_SEED,
                   help="seed of the built-in corpus (default: %(default)s)")


main = command_line(build_parser)  # parse, then run the command chosen


def _source_options(args: argparse.Namespace) -> SourceOptions:
    separator = args.separator.encode("utf-8").decode("unicode_escape") if args.separator else None
    if separator == "":
        raise CourseError("--separator must not be empty")
    return SourceOptions(separator=separator, text_field=args.text_field, builtin_bytes=args.builtin_bytes,
                         builtin_seed=args.builtin_seed, revision=args.revision)


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
                       split=SplitRule(seed=args.seed), overwrite=args.overwrite, progress=not args.no_progress,
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


def cmd_train(args: argparse.Namespace) -> None:
    from .pretraining import trainer

    preset = PRESETS[args.preset]
    shape = {name: getattr(args, name) for name in MODEL_RULES if getattr(args, name) is not None}
    overrides = {f.name: getattr(args, f.name) for f in fields(TrainSettings)
                 if f.name != "model" and getattr(args, f.name) is not None}
    # GPTConfig and TrainSettings check them: 6 heads in 128 wide, or min-lr above lr, stop here
    settings = replace(preset, model=replace(preset.model, **shape), **overrides)
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
