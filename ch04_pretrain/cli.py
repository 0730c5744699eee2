"""Command line of Chapter 4: `python -m ch04_pretrain SUBCOMMAND ...`.

Each subcommand has an `add_<name>_parser` function that declares its options
and a `run_<name>` function that does the work; `build_parser` collects them.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from ch01_bigram.corpus import DEFAULT_BYTES, DEFAULT_SEED
from ch01_bigram.errors import CourseError

from .prepare import DOCS_PER_SHARD, SplitRule, prepare
from .sources import BUILTIN, OPENWEBTEXT, SourceOptions

_SUFFIXES = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9}


def parse_count(text: str) -> int:
    """'10M' -> 10_000_000; also accepts K, B (or G), and 1,000 or 1_000."""
    match = re.fullmatch(r"\s*([\d_,]*\.?\d+)\s*([KMBG]?)\s*", text.upper())
    if not match:
        raise argparse.ArgumentTypeError(f"not a count: {text!r} (examples: 5000, 10M, 1.5B)")
    return int(float(match.group(1).replace(",", "").replace("_", "")) * _SUFFIXES[match.group(2)])


def add_prepare_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "prepare", help="tokenize a corpus into shards for pretraining",
        description="Tokenize documents with GPT-2's byte-pair encoding into uint16 shards plus a manifest.json. "
                    "Interrupted, it resumes where it stopped when run again with the same options.")
    p.add_argument("--source", required=True, metavar="SOURCE",
                   help=f"'{OPENWEBTEXT}': OpenWebText's parquet files from the Hugging Face Hub (needs "
                        f"pip install huggingface_hub pyarrow; downloads only the files it reads); "
                        f"'{BUILTIN}': Chapter 1's generated stories, one story per document; "
                        f"or a PATH: a file or folder of .txt, .xz (the original OpenWebText release), "
                        f".tar, .jsonl or .parquet files")
    p.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="folder for the shards and manifest.json (created if needed)")
    p.add_argument("--max-docs", type=parse_count, metavar="N", help="stop after N documents (e.g. 10K)")
    p.add_argument("--max-tokens", type=parse_count, metavar="N",
                   help="stop at the document that brings the total to N tokens (e.g. 10M)")
    p.add_argument("--workers", type=int, metavar="N", help="tokenizing processes; 0 tokenizes in this process "
                                               "(default: the number of CPU cores)")
    p.add_argument("--docs-per-shard", type=int, default=DOCS_PER_SHARD, metavar="N",
                   help="documents per shard file; a rerun after a crash redoes at most one shard "
                        "(default: %(default)s)")
    p.add_argument("--seed", type=int, default=SplitRule.seed,
                   help="seed of the train/val split; the same seed gives the same split (default: %(default)s)")
    p.add_argument("--separator", metavar="TEXT",
                   help=r"split .txt/.xz text files into documents at TEXT (e.g. '\n\n'; backslash escapes "
                        "are understood); default: one document per file")
    p.add_argument("--text-field", default="text", metavar="NAME",
                   help="the field of .jsonl lines / the column of .parquet files that holds the text "
                        "(default: %(default)s)")
    p.add_argument("--revision", help="Hub revision to read (default: main, else refs/convert/parquet)")
    p.add_argument("--builtin-bytes", type=parse_count, default=DEFAULT_BYTES, metavar="N",
                   help="size of the built-in corpus in bytes (default: %(default)s)")
    p.add_argument("--builtin-seed", type=int, default=DEFAULT_SEED,
                   help="seed of the built-in corpus (default: %(default)s)")
    p.add_argument("--start-method", default="spawn", choices=["spawn", "forkserver", "fork"],
                   help="how worker processes start; spawn, the default, works on every platform")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a preparation with other settings already in --out")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(run=run_prepare)


def run_prepare(args: argparse.Namespace) -> None:
    separator = args.separator.encode("utf-8").decode("unicode_escape") if args.separator else None
    if separator == "":
        raise CourseError("--separator must not be empty")
    options = SourceOptions(separator=separator, text_field=args.text_field, builtin_bytes=args.builtin_bytes,
                            builtin_seed=args.builtin_seed, revision=args.revision)
    start = time.perf_counter()
    manifest = prepare(args.source, args.out, options=options, max_docs=args.max_docs, max_tokens=args.max_tokens,
                       docs_per_shard=args.docs_per_shard, workers=args.workers, start_method=args.start_method,
                       split=SplitRule(seed=args.seed), overwrite=args.overwrite, progress=not args.no_progress)
    seconds = time.perf_counter() - start
    splits = manifest["splits"]
    size = sum(s[k]["tokens"] for s in manifest["shards"] for k in splits) * 2
    print(f"{args.out}: {manifest['documents']:,} documents in {len(manifest['shards'])} shard(s), "
          f"{manifest['skipped']:,} skipped (not UTF-8)")
    print(f"  train: {splits['train']['documents']:,} documents, {splits['train']['tokens']:,} tokens")
    print(f"  val:   {splits['val']['documents']:,} documents, {splits['val']['tokens']:,} tokens")
    print(f"  {size / 1e6:,.1f} MB of uint16 tokens; this run took {seconds:.1f} s")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ch04_pretrain",
        description="Chapter 4: pretraining a GPT. Start with `prepare` to tokenize a corpus into shards.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_prepare_parser(subparsers)
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    args.run(args)
