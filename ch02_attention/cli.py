"""Command-line interface of Chapter 2: train the attention language model, or compare it with the bigram.

The training options are Chapter 1's (`TrainConfig`'s fields, with this chapter's defaults), the model's are
`ModelConfig`'s; torch and the models are imported when the command runs, so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ch01_bigram.cli import add_corpus_args, add_sampling_args
from ch01_bigram.config import TrainConfig
from coursekit import CourseError, CourseParser, command_line
from coursekit.files import check_writable_file
from coursekit.numbers import positive_float, positive_int
from coursekit.settings import add_flags, add_run_flags, from_args

from .config import SCORE_PROMPT, SCORE_TEMPERATURE, TRAINING, ModelConfig, check_length, default_sample_context


def build_parser() -> argparse.ArgumentParser:
    parser = CourseParser(
        prog="python -m ch02_attention",
        description="Chapter 2: train a language model with one layer of multi-head self-attention on a corpus, "
                    "print its losses and a sample. With --compare-bigram, also train Chapter 1's bigram with "
                    "the same budget and print both validation losses and both long-range scores. "
                    "The lecture's Tiny Shakespeare run: --corpus tinyshakespeare --block-size 8 --n-embd 32 "
                    "--n-head 4 --lr 1e-3 --steps 5000 --eval-interval 500 --eval-iters 200.",
    )
    add_corpus_args(parser)
    add_flags(parser, TrainConfig, defaults=TRAINING, title="training")
    add_run_flags(parser)
    add_flags(parser, ModelConfig, title="model")
    add_sampling_args(parser)
    g = parser.add_argument_group("comparison and plots")
    g.add_argument("--compare-bigram", action="store_true",
                   help="also train the bigram with the same steps, batch, learning rate and seed, and score "
                        "samples of both with Chapter 1's long-range checker")
    g.add_argument("--score-prompt", default=SCORE_PROMPT,
                   help="prompt of the scored samples (default: %(default)r)")
    g.add_argument("--score-streams", type=positive_int, default=64,
                   help="independent samples to score, generated as one batch (default: %(default)s)")
    g.add_argument("--score-length", type=positive_int, default=600,
                   help="characters per scored sample (default: %(default)s)")
    g.add_argument("--score-temperature", type=positive_float, default=SCORE_TEMPERATURE,
                   help="temperature of the scored samples, for both models (default: %(default)s)")
    g.add_argument("--score-context", type=positive_int, metavar="N",
                   help="characters the attention model sees while writing the scored samples, at most "
                        "--block-size (default: 3/4 of --block-size; the window's last positions are its "
                        "least trained)")
    g.add_argument("--save-losses", metavar="PATH.png",
                   help="with --compare-bigram: save both models' loss curves as a PNG")
    g.add_argument("--save-attention", metavar="PATH.png",
                   help="save heat maps of each head's attention weights on --attention-text as a PNG")
    g.add_argument("--attention-text", metavar="TEXT",
                   help="text for the heat maps, at most --block-size characters "
                        "(default: the start of a story from the validation split)")
    parser.set_defaults(run=run)
    return parser


def check_png_path(option: str, path: str | None) -> None:
    """Refuse an output path before training, rather than lose the run at the end."""
    if path is None:
        return
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise CourseError(f"{option} must name a .png file, got {path}")
    if not p.parent.is_dir():
        raise CourseError(f"{option}: directory {p.parent} does not exist")
    check_writable_file(p, option)


main = command_line(build_parser)  # parse, then run the command chosen


def check_args(args: argparse.Namespace, block_size: int) -> None:
    """Every check that can fail runs before training, so a typo never costs a training run (the settings'
    own, heads that divide the width, are made with `ModelConfig`)."""
    if args.compare_bigram:
        if args.score_context is None:
            args.score_context = default_sample_context(block_size)
        if args.score_context > block_size:
            raise CourseError(f"score context {args.score_context} is longer than the block size {block_size}")
    elif args.save_losses:
        raise CourseError("--save-losses plots the comparison; add --compare-bigram")
    check_png_path("--save-losses", args.save_losses)
    check_png_path("--save-attention", args.save_attention)
    if args.attention_text is not None:
        if not args.attention_text:
            raise CourseError("--attention-text is empty")
        check_length(len(args.attention_text), block_size)


def run(args: argparse.Namespace) -> None:
    """Train the attention model (and the bigram, with --compare-bigram); print losses, scores and a sample."""
    from ch01_bigram import load_text, prepare_char_data, sample_text, train
    from coursekit.hardware import resolve_dtype
    from coursekit.runtime import pick_device, set_seed

    from .attention import AttentionLanguageModel, default_attention_text, plot_attention
    from .compare import compare_with_bigram, plot_losses

    cfg = from_args(args, TRAINING)  # this chapter's training, with the options given
    m = from_args(args, ModelConfig())  # the model's settings
    check_args(args, cfg.block_size)
    device = pick_device(args.device)

    text = load_text(args.corpus, args.data_dir, progress=not args.no_progress)
    data = prepare_char_data(text, cfg.block_size)
    tok = data.tokenizer
    tok.encode(args.prompt)
    if args.compare_bigram:
        tok.encode(args.score_prompt)
    attention_text = args.attention_text
    if args.save_attention and attention_text is None:
        attention_text = default_attention_text(tok.decode(data.val.tolist()), min(cfg.block_size, 48))
    if attention_text:
        tok.encode(attention_text)
    print(f"corpus: {args.corpus} ({len(text):,} characters, vocabulary of {tok.vocab_size}); device: {device}")
    print(f"model: {m.n_head} heads of {m.n_embd // m.n_head} (embedding {m.n_embd}), block {cfg.block_size}, "
          f"dropout {m.dropout:g}, {'explicit' if m.explicit else 'fused'} attention")

    progress = not args.no_progress
    dtype = resolve_dtype(args.dtype, device, m.n_embd)
    start = time.perf_counter()
    if args.compare_bigram:
        cmp = compare_with_bigram(data, cfg, m.n_embd, m.n_head, m.dropout, args.score_streams,
                                  args.score_length, args.score_prompt, args.score_temperature, args.score_context,
                                  fused=not m.explicit, device=device, progress=progress, dtype=dtype)
        model = cmp.attention_model
        print(f"trained and sampled both models in {time.perf_counter() - start:.1f} s")
        print(f"long-range checker on {args.score_streams} samples of {args.score_length:,} characters "
              f"after {args.score_prompt!r} (temperature {args.score_temperature:g}, attention context "
              f"{args.score_context}):")
        print(cmp.summary())
        if args.save_losses:
            plot_losses(cmp, args.save_losses)
            print(f"saved loss curves to {args.save_losses}")
    else:
        set_seed(cfg.seed)
        model = AttentionLanguageModel(tok.vocab_size, m.n_embd, m.n_head, cfg.block_size, m.dropout,
                                       fused=not m.explicit).to(device)
        print(f"{sum(p.numel() for p in model.parameters()):,} parameters")
        history = train(model, data.train, data.val, cfg, device, progress=progress, dtype=dtype)
        print(f"trained {cfg.steps} steps in {time.perf_counter() - start:.1f} s; "
              f"final val loss {history.val[-1]:.4f} (best {history.best_val:.4f})")

    if args.sample_length:
        print("--- sample ---")
        print(sample_text(model, tok, args.prompt, args.sample_length, args.temperature,
                          block_size=cfg.block_size, seed=cfg.seed, device=device))
    if args.save_attention:
        plot_attention(model, tok, attention_text, args.save_attention)
        print(f"saved attention heat maps of {attention_text!r} to {args.save_attention}")
