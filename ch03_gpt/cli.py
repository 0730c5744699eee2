"""Command line of Chapter 3: `train` a character-level GPT, `sample` from a saved one."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

import torch

from ch01_bigram import CharTokenizer, load_text, prepare_char_data
from ch01_bigram.cli import add_corpus_args
from coursekit import CourseError, CourseParser, command_line
from coursekit.files import check_writable_dir, check_writable_file
from coursekit.hardware import DTYPE_CHOICES, resolve_dtype
from coursekit.numbers import (
    Number,
    fraction,
    learning_rate,
    min_learning_rate,
    nonnegative_float,
    nonnegative_int,
    positive_int,
    probability,
    seed,
)
from coursekit.runtime import pick_device

from .checkpoint import load_checkpoint
from .generate import check_sampling, stream
from .model import GPTConfig
from .train import OPTIMIZERS, RECIPES, train_gpt

DEFAULT_OUT = "runs/ch03"


def add_sampling_options(p: argparse.ArgumentParser, default_tokens: int = 500) -> None:
    g = p.add_argument_group("sampling")
    g.add_argument("--prompt", default="\n", help="text the sample continues (default: a newline); a prompt "
                   "longer than the block size is cropped from the left, since the model cannot see further back")
    g.add_argument("--max-new-tokens", type=nonnegative_int, default=default_tokens,
                   help="characters to generate (default: %(default)s)")
    g.add_argument("--temperature", type=nonnegative_float, default=0.8, help="0 = always the most likely "
                   "character; higher = more varied (default: %(default)s)")
    g.add_argument("--top-k", type=positive_int, help="sample only among the k most likely characters")
    g.add_argument("--top-p", type=probability, help="sample only among the most likely characters whose "
                   "probabilities add up to p, 0 < p <= 1")
    g.add_argument("--seed", type=seed, default=1337, help="the same seed gives the same text")
    g.add_argument("--no-cache", action="store_true", help="recompute every position at every step (slower)")


# A number of random batches per loss estimate, or 'all' (the loss over the whole val split, exactly).
eval_iters = Number(int, 1, words={"all": "all"}, called="positive")


def describe_estimate(recipe) -> str:
    """How a recipe's loss estimates are made, in words (and how many tokens they cover)."""
    if recipe.eval_iters is None:
        return "loss over the whole val split" + ("" if recipe.eval_train else " (train loss not estimated)")
    return f"loss over {recipe.eval_iters} random batches of {recipe.batch_size} per split"


def build_parser() -> argparse.ArgumentParser:
    parser = CourseParser(
        prog="python -m ch03_gpt",
        description="Chapter 3: train a character-level GPT and sample from it.",
        epilog="examples:\n"
               "  python -m ch03_gpt train                              # built-in corpus, baseline recipe\n"
               "  python -m ch03_gpt train --corpus tinyshakespeare --recipe fast\n"
               "  python -m ch03_gpt sample --checkpoint runs/ch03 --prompt 'ROMEO:'",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,sample,ablation}")

    t = sub.add_parser("train", help="train a GPT; keeps the best checkpoint by val loss",
                       description="Train a character-level GPT, evaluating every N steps and keeping the "
                                   "checkpoint with the best val loss (safetensors weights + config.json).")
    t.set_defaults(run=cmd_train)
    add_corpus_args(t)
    t.add_argument("--out", default=DEFAULT_OUT, help="checkpoint directory (default: %(default)s)")
    t.add_argument("--recipe", choices=RECIPES, default="baseline",
                   help="published: the published laptop-CPU settings (2,000 steps, batch 12, lr 1e-3); "
                        "baseline: the same with lr 2e-3 (val loss about 1.81 on Tiny Shakespeare); "
                        "fast: this chapter's recipe (450 steps of 16 with the Muon optimizer, lr 1.5e-2, one exact "
                        "estimate at the end), under 1.89 in under half the time of the published one")
    m = t.add_argument_group("model (default: 4 layers, 4 heads, 128 wide, block 64)")
    m.add_argument("--n-layer", type=positive_int, default=4)
    m.add_argument("--n-head", type=positive_int, default=4)
    m.add_argument("--n-embd", type=positive_int, default=128)
    m.add_argument("--block-size", type=positive_int, default=64)
    m.add_argument("--dropout", type=fraction, default=0.0, help="0 <= p < 1 (default: %(default)s)")
    m.add_argument("--no-bias", action="store_true", help="no biases in Linear and LayerNorm layers")
    o = t.add_argument_group("overrides of the recipe")
    for name, typ, text in [("steps", positive_int, "optimisation steps"),
                            ("batch-size", positive_int, "sequences per step"),
                            ("lr", learning_rate, "peak learning rate, above 0 and at most 1"),
                            ("min-lr", min_learning_rate, "final learning rate, at most --lr"),
                            ("warmup", nonnegative_int, "warm-up steps"),
                            ("eval-interval", positive_int, "evaluate every N steps"),
                            ("eval-iters", eval_iters, "random batches per loss estimate, or 'all': the loss over "
                             "the whole val split and as many train windows, exactly (the fast recipe's choice)"),
                            ("seed", seed, "random seed")]:
        o.add_argument(f"--{name}", type=typ, help=text)
    o.add_argument("--optimizer", choices=OPTIMIZERS, help="adamw, or muon: orthogonalised momentum for the blocks' "
                   "matrices, AdamW for the rest (see ch03_gpt/muon.py)")
    o.add_argument("--dtype", choices=DTYPE_CHOICES, help="number format (default auto: bfloat16 autocast on CPUs "
                   "with AVX-512 BF16 or AMX and on recent GPUs, float16 on older GPUs, float32 otherwise)")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    t.add_argument("--sample-length", type=nonnegative_int, default=300,
                   help="characters to print after training (0: none; default: %(default)s)")

    s = sub.add_parser("sample", help="generate text from a saved checkpoint",
                       description="Generate text from a checkpoint saved by `train`, streaming it as it comes.")
    s.set_defaults(run=cmd_sample)
    s.add_argument("--checkpoint", default=DEFAULT_OUT, help="checkpoint directory (default: %(default)s)")
    s.add_argument("--device", default="auto")
    add_sampling_options(s)

    a = sub.add_parser("ablation", help="the lecture's ablation with a depth row: attention -> + feed-forward "
                       "-> three plain layers -> + residual -> + LayerNorm, one val loss per row",
                       description="Train each stage of the road from Chapter 2's model to GPT at the lecture's "
                                   "small size (embedding 32, 4 heads, block 8, batch 32, lr 1e-3) with the same "
                                   "budget, and print the best val loss of each. The 'deep' row stacks three "
                                   "layers without residual connections, so that depth and the skip connections "
                                   "are measured apart. Published on Tiny Shakespeare at 5,000 steps: about 2.28, "
                                   "2.24, then 2.06 with residuals and LayerNorm.")
    a.set_defaults(run=cmd_ablation)
    add_corpus_args(a)
    a.add_argument("--steps", type=positive_int, default=5000, help="steps per stage (default: %(default)s)")
    a.add_argument("--seed", type=seed, default=1337)
    a.add_argument("--plot", metavar="PNG", help="also save a bar chart of the val losses")
    a.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return parser


def cmd_train(args) -> None:
    recipe = RECIPES[args.recipe]
    names = ("steps", "batch_size", "lr", "min_lr", "warmup", "eval_interval", "eval_iters", "seed", "optimizer",
             "dtype")
    overrides = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    if overrides.get("eval_iters") == "all":
        overrides["eval_iters"] = None
    recipe = replace(recipe, **overrides)  # Recipe checks its settings: min-lr above lr stops here
    check_writable_dir(args.out, "--out")
    device = pick_device(args.device)
    text = load_text(args.corpus, args.data_dir, progress=not args.no_progress)
    data = prepare_char_data(text, args.block_size)
    cfg = GPTConfig(vocab_size=data.tokenizer.vocab_size, block_size=args.block_size, n_layer=args.n_layer,
                    n_head=args.n_head, n_embd=args.n_embd, dropout=args.dropout, bias=not args.no_bias)
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
        _print_stream(best, data.tokenizer, prompt, args.sample_length, 0.8, None, None, recipe.seed, False, device)


def cmd_sample(args) -> None:
    device = pick_device(args.device)
    model, meta = load_checkpoint(args.checkpoint, device=device)
    tok = meta.get("tokenizer", {})
    if tok.get("type") != "char":
        raise CourseError(f"{args.checkpoint} is not a character-level checkpoint (tokenizer {tok.get('type')!r})")
    tokenizer = CharTokenizer(tok["chars"])
    check_sampling(model.config.vocab_size, args.max_new_tokens, args.temperature, args.top_k, args.top_p)
    _print_stream(model, tokenizer, args.prompt, args.max_new_tokens, args.temperature, args.top_k, args.top_p,
                  args.seed, args.no_cache, device)


def _print_stream(model, tokenizer, prompt, n, temperature, top_k, top_p, seed, no_cache, device) -> None:
    if not prompt:
        raise CourseError("the prompt is empty; give at least one character")
    idx = torch.tensor([tokenizer.encode(prompt)], dtype=torch.long, device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    sys.stdout.write(prompt)
    for token in stream(model, idx, n, temperature=temperature, top_k=top_k, top_p=top_p,
                        use_cache=not no_cache, generator=gen):
        sys.stdout.write(tokenizer.decode(token.tolist()))
        sys.stdout.flush()
    sys.stdout.write("\n")


def cmd_ablation(args) -> None:
    from .ablation import LECTURE, STAGES, plot_ablation, run_ablation

    if args.plot:
        check_writable_file(args.plot, "--plot")
    data = prepare_char_data(load_text(args.corpus, args.data_dir, progress=not args.no_progress),
                             LECTURE["block_size"])
    print(f"corpus: {args.corpus}; {args.steps} steps per stage")
    results = run_ablation(data, args.steps, seed=args.seed, progress=not args.no_progress)
    print(f"{'stage':<12} {'parameters':>10} {'best val loss':>14}")
    for stage in STAGES:
        print(f"{stage:<12} {results[stage]['params']:>10,} {results[stage]['val_loss']:>14.4f}")
    if args.plot:
        plot_ablation(results).savefig(args.plot, dpi=120, bbox_inches="tight")
        print(f"saved {args.plot}")


main = command_line(build_parser)  # parse, then run the command chosen
