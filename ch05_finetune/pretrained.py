"""Where fine-tuning starts: a pretrained GPT and its tokenizer.

Three kinds of starting point:

* `tiny`: a small GPT (4 layers, 64 wide, 0.2M parameters besides its
  embeddings) pretrained here on Chapter 1's stories and unlabelled reviews,
  in about half a minute on a CPU, and cached under runs/. It uses a trimmed
  GPT-2 vocabulary (see vocab.py), and refuses text it cannot read. It is
  what the notebook and tests use, and what the command line's `--from auto`
  picks for the built-in data.
* a checkpoint directory or run from Chapter 4 (model.safetensors +
  config.json with GPT-2's tokenizer, or with the byte-pair encoder Chapter 4
  trains on the stories, whose rank file lies beside config.json: byte-level,
  it reads any review or instruction, with no unknown token);
* OpenAI's GPT-2 ("gpt2", "gpt2-medium", ...), through Chapter 4's
  `load_pretrained`, which downloads the weights once (needs network): the
  start `--from auto` picks for real data.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from ch01_bigram import generate_corpus
from ch03_gpt import GPT, GPTConfig, Recipe, configure_optimizer, load_checkpoint, save_checkpoint, train_steps
from coursekit import BUILTIN, CourseError, read_json
from coursekit.hardware import resolve_dtype
from coursekit.numbers import learning_rate, positive_int
from coursekit.numbers import seed as seed_number
from coursekit.runtime import set_seed
from coursekit.settings import DEFAULT_SEED, check_fields, setting

from .builtin import generate_reviews
from .config import AUTO, TINY
from .vocab import MAX_UNKNOWN_SHARE, Codec, builtin_token_ids

DEFAULT_TINY_DIR = Path("runs/ch05/tiny")


@dataclass(frozen=True)
class TinyRecipe:
    """The tiny practice model and its pretraining run.

    `model` is the model's shape (Chapter 3's GPTConfig: 4 layers, 4 heads, 64 wide, block 64); its
    vocab_size is set to the trimmed vocabulary's size when the model is built (`pretrain_tiny`).
    """

    # block 64: the longest built-in instruction example is 51 tokens
    model: GPTConfig = field(default_factory=lambda: GPTConfig(block_size=64, n_layer=4, n_head=4, n_embd=64))
    steps: int = setting(400, positive_int, "optimisation steps")
    batch_size: int = setting(32, positive_int, "sequences per step")
    lr: float = setting(3e-3, learning_rate, "peak learning rate")
    corpus_bytes: int = setting(400_000, positive_int, "bytes of Chapter 1's stories (and a review for each story)")
    seed: int = setting(DEFAULT_SEED, seed_number, "seed of the text, the weights and the batches")

    def __post_init__(self):
        check_fields(self)


def pretraining_text(recipe: TinyRecipe) -> list[str]:
    """Stories and (unlabelled) reviews: the kind of text the tiny model will later be fine-tuned on."""
    stories = generate_corpus(recipe.seed, recipe.corpus_bytes).split("\n\n")
    reviews = [r.text for r in generate_reviews(len(stories), recipe.seed + 1)]
    return [doc for pair in zip(stories, reviews) for doc in pair]


def pretrain_tiny(out_dir: str | Path = DEFAULT_TINY_DIR, recipe: TinyRecipe = TinyRecipe(),
                  progress: bool = True, log=print) -> Path:
    """Pretrain the tiny model and save it to `out_dir`; reuse it if the same recipe is already there."""
    out_dir = Path(out_dir)
    config = out_dir / "config.json"
    if config.is_file() and read_json(config).get("pretrain") == asdict(recipe):
        return out_dir
    codec = Codec(list(builtin_token_ids()))
    ids = []
    for doc in pretraining_text(recipe):
        ids += codec.encode(doc) + [codec.eot]
    data = torch.tensor(ids, dtype=torch.long)
    n_val = len(data) // 20
    cfg = replace(recipe.model, vocab_size=codec.vocab_size)
    set_seed(recipe.seed)
    model = GPT(cfg)
    optimizer = configure_optimizer(model, recipe.lr)
    # Chapter 3's loop: AdamW, warm-up and cosine decay to a tenth, clipping; one estimate before and one after.
    steps = Recipe(steps=recipe.steps, batch_size=recipe.batch_size, lr=recipe.lr, min_lr=recipe.lr / 10, warmup=50,
                   grad_clip=1.0, eval_interval=recipe.steps, eval_iters=10, seed=recipe.seed)
    start = time.perf_counter()
    dtype = resolve_dtype(steps.dtype, "cpu", cfg.n_embd)
    history = train_steps(model, optimizer, data[:-n_val], data[-n_val:], steps, dtype, progress=progress, log=None)
    if log:
        log(f"pretrained the tiny model ({model.num_params():,} parameters) on {len(data):,} tokens for "
            f"{recipe.steps} steps in {time.perf_counter() - start:.1f} s: val loss {history.val[-1]:.2f}")
    save_checkpoint(model, out_dir, {"tokenizer": codec.to_meta(), "pretrain": asdict(recipe),
                                     "val_loss": history.val[-1]})
    return out_dir


def load_start(source: str | Path, device: str = "cpu", tiny_dir: str | Path = DEFAULT_TINY_DIR,
               progress: bool = True, log=print) -> tuple[GPT, Codec, dict]:
    """The model, tokenizer and metadata to fine-tune from `source` (see the module docstring)."""
    if str(source) == TINY:
        source = pretrain_tiny(tiny_dir, progress=progress, log=log)
    path = Path(source)
    if path.is_dir() and (path / "config.json").is_file():
        meta = read_json(path / "config.json")
        tokenizer = meta.get("tokenizer")
        if isinstance(tokenizer, dict) and tokenizer.get("type") == "gpt2-subset":  # ours: Chapter 4 does not know it
            codec = Codec.from_meta(tokenizer, path)
            model, meta = load_checkpoint(path, device=device)
            if model.config.vocab_size != codec.vocab_size:
                raise CourseError(f"{path}: the model has {model.config.vocab_size} token ids but its "
                                  f"tokenizer {codec.vocab_size}")
            return model, codec, meta
    # Everything else (OpenAI's GPT-2 by name, Chapter 3/4 checkpoints and runs) is Chapter 4's job; its loader
    # also reads the tokenizer a checkpoint keeps, which the codec then wraps.
    from ch04_pretrain.pretraining.gpt2_weights import load_pretrained

    model, encoding, meta = load_pretrained(source, device=device)
    return model, Codec.from_meta(meta.get("tokenizer"), encoding=encoding), meta


def choose_start(source: str, data: str, texts, labelled: bool = True) -> tuple[str, str]:
    """The starting model for `--from auto`, and why: the tiny model where it can read the data, else GPT-2.

    The tiny model keeps only the GPT-2 tokens of the built-in world; on other text most tokens would
    become one unknown id, so real data starts from a model with GPT-2's whole vocabulary. `--from tiny`
    on such data is refused here, before the tiny model is pretrained for nothing."""
    if source == TINY and data != BUILTIN:
        share, _ = Codec(list(builtin_token_ids())).unknown_share(texts)
        if share > MAX_UNKNOWN_SHARE:
            raise CourseError(f"--from {TINY} cannot read this data: {share:.1%} of its tokens are outside the tiny "
                              f"model's vocabulary (at most {MAX_UNKNOWN_SHARE:.0%}).\n" + ways_forward(data, labelled))
    if source != AUTO:
        return source, ""
    if data == BUILTIN:
        return TINY, "the built-in data"
    share, _ = Codec(list(builtin_token_ids())).unknown_share(texts)
    if share <= MAX_UNKNOWN_SHARE:
        return TINY, f"only {share:.1%} of the data's tokens are outside its vocabulary"
    return "gpt2", f"{share:.1%} of the data's tokens are outside the tiny model's vocabulary"


def ways_forward(data: str, labelled: bool = True) -> str:
    """The three ways to a model that reads any text, when GPT-2 cannot be downloaded: three lines. The first
    pretrains on the training texts of labelled `data`, or on a text file of the user's (instructions)."""
    texts = (f"python -m ch05_finetune texts --data {data} --out runs/my_texts.jsonl, then " if labelled else
             "put text of your domain in runs/my_texts.jsonl ({\"text\": ...} lines) or a .txt file, then ")
    return (f"  1. pretrain one on your own text, offline: {texts}python -m ch04_pretrain prepare --source "
            f"runs/my_texts.jsonl --out runs/my_prep and python -m ch04_pretrain train --data runs/my_prep "
            f"--out runs/my_lm --preset tiny --block-size 128 --batch-size 16 (ch05_finetune/README.md, "
            f"'Your own labelled data')\n"
            f"  2. --from DIR: that run folder, another Chapter 4 run or checkpoint, or a folder holding GPT-2's "
            f"model.safetensors and config.json\n"
            f"  3. connect to the network once: --from gpt2 downloads GPT-2 into the cache, and it is read from there "
            f"offline afterwards")


def load_chosen(source: str, reason: str, device: str, progress: bool, data: str = BUILTIN, labelled: bool = True):
    """`load_start`, saying which model `--from auto` chose; a GPT-2 that cannot be had offline is an error that
    says what to do instead."""
    if reason:
        print(f"start: {source} (--from auto: {reason})")
    try:
        return load_start(source, device, progress=progress)
    except CourseError as e:
        if not reason or source == TINY:
            raise
        raise CourseError(f"{e}\n--from auto needs a model with GPT-2's whole vocabulary for this data; three "
                          f"ways on:\n" + ways_forward(data, labelled)) from None
