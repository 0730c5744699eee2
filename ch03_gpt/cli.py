"""Command line of Chapter 3: `train` a character-level GPT, `sample` from a saved one.

`train`'s model options are made from `GPTConfig`'s fields and its recipe options from `Recipe`'s, with the
chosen recipe's values as their defaults; torch and the model are imported when a command runs, so `--help`
stays fast.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from ch01_bigram.cli import add_corpus_args
from ch01_bigram.config import TrainConfig
from coursekit import CourseError, CourseParser, command_line, subcommand
from coursekit.files import check_writable_dir, check_writable_file
from coursekit.numbers import nonnegative_float, nonnegative_int, positive_int, probability
from coursekit.settings import add_flags, add_run_flags, from_args, number_text

from .config import ABLATION, LECTURE, RECIPES, GPTConfig, Recipe

DEFAULT_OUT = "runs/ch03"
DEFAULT_RECIPE = "baseline"
TEMPERATURE = 0.8  # of a sample: below 1, safer text than the model's own distribution


def add_sampling_options(p, unit: str, max_new_tokens: int, temperature: float, top_k: int | None = None,
                         top_p: bool = True, tokens=nonnegative_int) -> None:
    """--max-new-tokens, --temperature, --top-k and --top-p: how `generate` samples, for every chapter's sampling
    command. `unit` is what a token is (a character here; Chapters 4 and 5: a byte-pair token); `tokens` is the
    type of --max-new-tokens (Chapter 5's chat wants at least one); `top_p=False` leaves --top-p out."""
    p.add_argument("--max-new-tokens", type=tokens, default=max_new_tokens,
                   help=f"{unit}s to generate (default: %(default)s)")
    p.add_argument("--temperature", type=nonnegative_float, default=temperature,
                   help=f"0: always the most likely {unit}; higher: more varied (default: %(default)s)")
    p.add_argument("--top-k", type=positive_int, default=top_k, help=f"sample only among the k most likely {unit}s"
                   + (" (default: %(default)s)" if top_k else ""))
    if top_p:
        p.add_argument("--top-p", type=probability, help=f"sample only among the most likely {unit}s whose "
                       "probabilities add up to p, 0 < p <= 1")


def describe_estimate(recipe) -> str:
    """How a recipe's loss estimates are made, in words (and how many tokens they cover)."""
    if recipe.eval_iters is None:
        return "loss over the whole val split" + ("" if recipe.eval_train else " (train loss not estimated)")
    return f"loss over {recipe.eval_iters} random batches of {recipe.batch_size} per split"


def build_parser() -> argparse.ArgumentParser:
    parser = CourseParser(
        prog="python -m ch03_gpt",
        description="Chapter 3: train a character-level GPT and sample from it.",
        examples=["python -m ch03_gpt train                              # built-in corpus, baseline recipe",
                  "python -m ch03_gpt train --corpus tinyshakespeare --recipe fast",
                  "python -m ch03_gpt sample --checkpoint runs/ch03 --prompt 'ROMEO:'"])
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,sample,ablation}")

    t = subcommand(sub, "train", cmd_train, "train a GPT; keeps the best checkpoint by val loss",
                   "Train a character-level GPT, evaluating every N steps and keeping the checkpoint with the best "
                   "val loss (safetensors weights + config.json).")
    add_corpus_args(t)
    t.add_argument("--out", default=DEFAULT_OUT, help="checkpoint directory (default: %(default)s)")
    published, baseline, fast = RECIPES["published"], RECIPES["baseline"], RECIPES["fast"]
    t.add_argument("--recipe", choices=RECIPES, default=DEFAULT_RECIPE,
                   help=f"published: the published laptop-CPU settings ({published.steps:,} steps, batch "
                        f"{published.batch_size}, lr {number_text(published.lr)}); baseline: the same with lr "
                        f"{number_text(baseline.lr)} (val loss about 1.81 on Tiny Shakespeare); fast: this chapter's "
                        f"recipe ({fast.steps} steps of {fast.batch_size} with the Muon optimizer, lr "
                        f"{number_text(fast.lr)}, one exact estimate at the end), under 1.89 in under half the time "
                        f"of the published one (default: %(default)s)")
    add_flags(t, GPTConfig, title="model")
    add_flags(t, Recipe, defaults=RECIPES[DEFAULT_RECIPE],
              title=f"overrides of the recipe (the defaults shown are the {DEFAULT_RECIPE} recipe's)")
    add_run_flags(t)
    t.add_argument("--sample-length", type=nonnegative_int, default=300,
                   help="characters to print after training (0: none; default: %(default)s)")

    s = subcommand(sub, "sample", cmd_sample, "generate text from a saved checkpoint",
                   "Generate text from a checkpoint saved by `train`, streaming it as it comes.")
    s.add_argument("--checkpoint", default=DEFAULT_OUT, help="checkpoint directory (default: %(default)s)")
    g = s.add_argument_group("sampling")
    g.add_argument("--prompt", default="\n", help="text the sample continues (default: a newline); a prompt "
                   "longer than the block size is cropped from the left, since the model cannot see further back")
    add_sampling_options(g, "character", max_new_tokens=500, temperature=TEMPERATURE)
    g.add_argument("--no-cache", action="store_true", help="recompute every position at every step (slower)")
    add_run_flags(s, dtype=False, progress=False, seed_help="the same seed gives the same text")

    a = subcommand(sub, "ablation", cmd_ablation, "the lecture's ablation with a depth row: attention -> "
                   "+ feed-forward -> three plain layers -> + residual -> + LayerNorm, one val loss per row",
                   "Train each stage of the road from Chapter 2's model to GPT at the lecture's small size "
                   f"(embedding {LECTURE['n_embd']}, {LECTURE['n_head']} heads, block {ABLATION.block_size}, batch "
                   f"{ABLATION.batch_size}, lr {number_text(ABLATION.lr)}) with the same budget, and print the best "
                   "val loss of each. The 'deep' row stacks three layers without residual connections, so that "
                   "depth and the skip connections are measured apart. Published on Tiny Shakespeare at 5,000 "
                   "steps: about 2.28, 2.24, then 2.06 with residuals and LayerNorm.")
    add_corpus_args(a)
    add_flags(a, TrainConfig, defaults=ABLATION, only=("steps",))  # steps per stage
    a.add_argument("--plot", metavar="PNG", help="also save a bar chart of the val losses")
    add_run_flags(a, device=False, dtype=False)
    return parser


def cmd_train(args) -> None:
    from ch01_bigram import load_text, prepare_char_data
    from coursekit.hardware import resolve_dtype
    from coursekit.runtime import pick_device

    from .checkpoint import load_checkpoint
    from .generate import print_stream
    from .train import train_gpt

    recipe = from_args(args, RECIPES[args.recipe])  # Recipe checks its settings: min-lr above lr stops here
    shape = from_args(args, GPTConfig())             # and GPTConfig its own: heads that do not divide the width
    check_writable_dir(args.out, "--out")
    device = pick_device(args.device)
    text = load_text(args.corpus, args.data_dir, progress=not args.no_progress)
    data = prepare_char_data(text, shape.block_size)
    cfg = replace(shape, vocab_size=data.tokenizer.vocab_size)
    print(f"corpus: {args.corpus} ({len(text):,} characters, vocabulary {cfg.vocab_size}); device {device}; "
          f"recipe {args.recipe}: {recipe.steps} steps, batch {recipe.batch_size}, lr {recipe.lr:g}, "
          f"{resolve_dtype(recipe.dtype, device, cfg.n_embd)}; {describe_estimate(recipe)}", flush=True)
    model, _, summary = train_gpt(data, cfg, recipe, args.out, device, progress=not args.no_progress)
    print(f"{model.num_params() / 1e6:.2f}M parameters; {summary['wall_time_s']:.1f} s in all, "
          f"{summary['train_time_s']:.1f} s of it training (the rest: evaluation and checkpoints); "
          f"best val loss {summary['best_val_loss']:.4f} at step {summary['best_step']} (saved to {args.out})")
    if args.sample_length > 0:
        best, _ = load_checkpoint(args.out, device=device)
        print("--- sample from the best checkpoint ---")
        prompt = "\n" if "\n" in data.tokenizer.stoi else text[0]
        print_stream(best, data.tokenizer, prompt, args.sample_length, TEMPERATURE, seed=recipe.seed, device=device)


def cmd_sample(args) -> None:
    from ch01_bigram import CharTokenizer
    from coursekit.runtime import pick_device

    from .checkpoint import load_checkpoint
    from .generate import check_sampling, print_stream

    device = pick_device(args.device)
    model, meta = load_checkpoint(args.checkpoint, device=device)
    tok = meta.get("tokenizer", {})
    if tok.get("type") != "char":
        raise CourseError(f"{args.checkpoint} is not a character-level checkpoint (tokenizer {tok.get('type')!r})")
    tokenizer = CharTokenizer(tok["chars"])
    check_sampling(model.config.vocab_size, args.max_new_tokens, args.temperature, args.top_k, args.top_p)
    print_stream(model, tokenizer, args.prompt, args.max_new_tokens, args.temperature, args.top_k, args.top_p,
                 args.seed, use_cache=not args.no_cache, device=device)


def cmd_ablation(args) -> None:
    from ch01_bigram import load_text, prepare_char_data

    from .ablation import STAGES, plot_ablation, run_ablation

    if args.plot:
        check_writable_file(args.plot, "--plot")
    data = prepare_char_data(load_text(args.corpus, args.data_dir, progress=not args.no_progress),
                             ABLATION.block_size)
    print(f"corpus: {args.corpus}; {args.steps} steps per stage")
    results = run_ablation(data, args.steps, seed=args.seed, progress=not args.no_progress)
    print(f"{'stage':<12} {'parameters':>10} {'best val loss':>14}")
    for stage in STAGES:
        print(f"{stage:<12} {results[stage]['params']:>10,} {results[stage]['val_loss']:>14.4f}")
    if args.plot:
        plot_ablation(results).savefig(args.plot, dpi=120, bbox_inches="tight")
        print(f"saved {args.plot}")


main = command_line(build_parser)  # parse, then run the command chosen
