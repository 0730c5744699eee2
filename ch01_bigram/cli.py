"""Command-line interface of Chapter 1, and the argument groups later chapters reuse.

The training options are made from `TrainConfig`'s fields; torch and the model are imported when a command
runs, so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import os
import time

from coursekit import CourseError, CourseParser, command_line
from coursekit.numbers import nonnegative_float, nonnegative_int
from coursekit.settings import add_flags, add_run_flags, from_args, number_text

from .config import SAMPLE_LENGTH, TEMPERATURE, TrainConfig
from .data import BUILTIN, CORPORA, DATA_DIR_ENV

DEFAULTS = TrainConfig()  # the lecture's settings: TrainConfig's own defaults


def add_corpus_args(parser: argparse.ArgumentParser) -> None:
    """--corpus and --data-dir, shared by every character-level chapter."""
    names = ", ".join([BUILTIN, *CORPORA])
    parser.add_argument("--corpus", default=BUILTIN, metavar="NAME_OR_PATH",
                        help=f"text to train on: one of {names} (downloaded once and cached), "
                             f"or the path of any UTF-8 text file (default: {BUILTIN}, the generated stories)")
    parser.add_argument("--data-dir", metavar="DIR",
                        help=f"directory that already holds a downloaded corpus, for machines without "
                             f"network (also read from ${DATA_DIR_ENV})")


def add_sampling_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("sampling")
    g.add_argument("--sample-length", type=nonnegative_int, default=SAMPLE_LENGTH,
                   help="characters to generate after training (0: no sample; default: %(default)s)")
    g.add_argument("--prompt", default="\n",
                   help="text the sample continues; every character must occur in the corpus "
                        "(default: a newline, or the text's first character if it has no newline)")
    g.add_argument("--temperature", type=nonnegative_float, default=TEMPERATURE,
                   help="below 1: safer, more repetitive text; above 1: more surprising text; "
                        "0: always the most likely character (default: %(default)s)")


def check_sampling_args(args: argparse.Namespace) -> None:
    """Refuse bad sampling options before training, not after minutes of it (the numbers are checked by type)."""
    if not args.prompt:
        raise CourseError("the prompt is empty; give at least one character")


def build_parser() -> argparse.ArgumentParser:
    parser = CourseParser(
        prog="python -m ch01_bigram",
        description="Chapter 1: train a character-level bigram language model, print its losses and a sample. "
                    f"The defaults are the lecture's: block {DEFAULTS.block_size}, batch {DEFAULTS.batch_size}, "
                    f"{DEFAULTS.steps:,} steps, learning rate {number_text(DEFAULTS.lr)}.",
    )
    add_corpus_args(parser)
    add_flags(parser, TrainConfig, defaults=DEFAULTS, title="training")  # read back by from_args(args, DEFAULTS)
    add_run_flags(parser)
    add_sampling_args(parser)
    parser.set_defaults(run=run)
    return parser


main = command_line(build_parser)  # parse, then run the command chosen


def run(args: argparse.Namespace) -> None:
    """Train the bigram model as `args` say, print its losses and a sample."""
    import torch

    from coursekit.hardware import resolve_dtype
    from coursekit.runtime import pick_device, set_seed

    from .bigram import BigramLanguageModel, prepare_char_data, sample_text, train
    from .data import load_text

    cfg = from_args(args, DEFAULTS)  # the lecture's settings, with the options given and the seed
    check_sampling_args(args)
    device = pick_device(args.device)
    if device == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        # The bigram's matrices are tiny: spreading each one over threads costs more than it saves,
        # and on a busy machine it made the default run 20 times slower (75 s against 3.5 s).
        torch.set_num_threads(1)
    text = load_text(args.corpus, args.data_dir, progress=not args.no_progress)
    data = prepare_char_data(text, cfg.block_size)
    prompt = args.prompt
    if prompt == "\n" and "\n" not in data.tokenizer.stoi:
        prompt = text[0]  # the default prompt, for a text without line breaks: start where the text starts
    try:
        data.tokenizer.encode(prompt)  # refuse an unknown prompt before spending time on training
    except CourseError as e:
        raise CourseError(f"--prompt {prompt!r}: {e} (the corpus's characters are its vocabulary)") from None
    print(f"corpus: {args.corpus} ({len(text):,} characters, vocabulary of {data.tokenizer.vocab_size}); "
          f"device: {device}")
    set_seed(cfg.seed)
    model = BigramLanguageModel(data.tokenizer.vocab_size).to(device)
    start = time.perf_counter()
    dtype = resolve_dtype(args.dtype, device, data.tokenizer.vocab_size)  # the table is vocabulary-wide
    history = train(model, data.train, data.val, cfg, device, progress=not args.no_progress, dtype=dtype)
    print(f"trained {cfg.steps} steps in {time.perf_counter() - start:.1f} s; "
          f"final val loss {history.val[-1]:.4f} (best {history.best_val:.4f})")
    if args.sample_length:
        print("--- sample ---")
        print(sample_text(model, data.tokenizer, prompt, args.sample_length, args.temperature,
                          seed=cfg.seed, device=device))
