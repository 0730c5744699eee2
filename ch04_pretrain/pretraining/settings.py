"""The settings of a pretraining run and the presets.

Each setting declares its default, its allowed values and its help once, on its field (`coursekit.settings`):
the Python API checks them, and `python -m ch04_pretrain train` makes its options from them. The model's shape
is Chapter 3's `GPTConfig`, one description of a model wherever the course needs one. No torch here: the
command line's parser, and so `--help`, stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ch03_gpt.config import GPTConfig, Recipe
from ch04_pretrain.data_pipeline.bpe import VOCAB_SIZE
from coursekit import CourseError
from coursekit.numbers import check_lr_floor, fraction, nonnegative_int, positive_int
from coursekit.numbers import seed as seed_number
from coursekit.settings import DEFAULT_SEED, DTYPE_CHOICES, check_fields, setting, setting_like


@dataclass
class TrainSettings:
    """Everything that decides a pretraining run.

    `model` is the shape of the model trained (Chapter 3's GPTConfig; default: GPT-2's vocabulary,
    block 64, 4 layers, 4 heads, 128 wide, no dropout). It may also be given as a dict, as it is
    when settings are read back from JSON: `GPTConfig.from_dict` converts it, and its vocab_size
    defaults to GPT-2's (VOCAB_SIZE). `seed` and `dtype` are the run options --seed and --dtype.
    """

    model: GPTConfig = field(default_factory=lambda: GPTConfig(vocab_size=VOCAB_SIZE))
    # optimisation
    batch_size: int = setting(8, positive_int, "sequences per micro-batch, per process")
    grad_accum: int = setting(1, positive_int, "micro-batches per optimizer step, counted over all processes")
    max_steps: int = setting(400, positive_int,
                             "optimizer steps in the whole run (the cosine decays to min-lr at this step)")
    # the schedule and the optimizer: Chapter 3's settings (their rules and help), with this chapter's defaults
    lr: float = setting_like(Recipe, "lr", 2e-3)
    min_lr: float = setting_like(Recipe, "min_lr", 2e-4)  # 10% of lr, as in GPT-3 and nanoGPT
    warmup: int = setting_like(Recipe, "warmup", 40)
    weight_decay: float = setting_like(Recipe, "weight_decay", 0.1, flag=True)
    beta1: float = setting(0.9, fraction, "AdamW beta1")
    beta2: float = setting(0.95, fraction, "AdamW beta2")
    grad_clip: float = setting_like(Recipe, "grad_clip", 1.0, flag=True)
    # numerics and speed
    # the number format (coursekit.hardware.resolve_dtype): the run option --dtype
    dtype: str = setting("auto", choices=DTYPE_CHOICES, help="number format", flag=False)
    compile: bool = setting(False, help="compile the model with torch.compile (faster steps after a slow first one)")
    activation_checkpointing: bool = setting(
        False, help="recompute each block in the backward pass instead of storing its activations")
    # bookkeeping
    eval_interval: int = setting(100, positive_int, "estimate val loss and save a checkpoint every N steps")
    eval_iters: int = setting(20, positive_int, "val batches per estimate")
    log_interval: int = setting(10, positive_int, "write a log line every N steps")
    keep: int = setting(2, nonnegative_int, "checkpoints kept besides the best one")
    seed: int = setting(DEFAULT_SEED, seed_number, "seed of the initial weights and of the batches", flag=False)

    def __post_init__(self):
        """Refuse nan, infinities and out-of-range values here, with the command line's words, not steps later."""
        if isinstance(self.model, dict):
            self.model = GPTConfig.from_dict({"vocab_size": VOCAB_SIZE, **self.model})
        if not isinstance(self.model, GPTConfig):
            raise CourseError(f"model must be a GPTConfig or a dict of its fields, got {type(self.model).__name__}")
        check_fields(self)
        check_lr_floor(self.lr, self.min_lr)

    def tokens_per_step(self) -> int:
        return self.batch_size * self.model.block_size * self.grad_accum


# `evaluate`'s measurement: batches of EVAL_BATCH_SIZE sequences, EVAL_BATCHES of them averaged (the function's
# defaults and the command's --batch-size and --iters).
EVAL_BATCH_SIZE = 8
EVAL_BATCHES = 50

PRESETS = {
    # Minutes on a CPU: 400 steps of 8 x 64 = 512 tokens, about 0.8 epoch of the built-in corpus.
    "tiny": TrainSettings(),
    # A 6-layer, 384-wide model (~30M parameters with GPT-2's vocabulary): an hour or so on one GPU.
    "small": TrainSettings(model=GPTConfig(vocab_size=VOCAB_SIZE, n_layer=6, n_head=6, n_embd=384, block_size=256),
                           batch_size=16, grad_accum=4, max_steps=5000, lr=1e-3, min_lr=1e-4, warmup=200,
                           eval_interval=250, eval_iters=50),
    # GPT-2 124M, the published recipe (GPT-3 paper's hyperparameters for its size, as nanoGPT reproduces them):
    # 16 x 1024 tokens x 32 = 524,288 tokens per step, 600,000 steps = 315 billion tokens.
    "gpt2-124m": TrainSettings(model=GPTConfig(vocab_size=VOCAB_SIZE, n_layer=12, n_head=12, n_embd=768,
                                               block_size=1024),
                               batch_size=16, grad_accum=32, max_steps=600_000, lr=6e-4, min_lr=6e-5, warmup=2000,
                               eval_interval=1000, eval_iters=200, keep=3),
}

# Settings that may change when a run is resumed: they do not affect the numbers it computes.
FREE_ON_RESUME = {"max_steps", "eval_interval", "log_interval", "keep", "compile", "eval_iters"}
