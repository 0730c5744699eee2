"""The settings of a pretraining run and the presets.

The model's shape is Chapter 3's `GPTConfig`, one description of a model
wherever the course needs one; so importing this module imports torch (through
ch03_gpt), as importing the ch04_pretrain package does anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ch03_gpt import GPTConfig
from ch03_gpt.model import GPT_RULES
from ch04_pretrain.data_pipeline.bpe import VOCAB_SIZE
from coursekit import CourseError
from coursekit.numbers import (
    Number,
    check_lr_floor,
    check_settings,
    fraction,
    learning_rate,
    min_learning_rate,
    nonnegative_float,
    nonnegative_int,
    positive_int,
    seed,
    weight_decay,
)


@dataclass
class TrainSettings:
    """Everything that decides a pretraining run.

    `model` is the shape of the model trained (Chapter 3's GPTConfig; default: GPT-2's vocabulary,
    block 64, 4 layers, 4 heads, 128 wide, no dropout). It may also be given as a dict, as it is
    when settings are read back from JSON: `GPTConfig.from_dict` converts it, and its vocab_size
    defaults to GPT-2's (VOCAB_SIZE).
    """

    model: GPTConfig = field(default_factory=lambda: GPTConfig(vocab_size=VOCAB_SIZE))
    # optimisation
    batch_size: int = 8           # sequences per micro-batch, per process
    grad_accum: int = 1           # micro-batches per optimizer step, over all processes together
    max_steps: int = 400
    lr: float = 2e-3
    min_lr: float = 2e-4          # the floor the cosine decays to (10% of lr, as in GPT-3 and nanoGPT)
    warmup: int = 40
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0        # 0 turns clipping off
    # numerics and speed
    dtype: str = "auto"           # auto, float32, bfloat16 or float16 (hardware.resolve_dtype)
    compile: bool = False
    activation_checkpointing: bool = False
    # bookkeeping
    eval_interval: int = 100
    eval_iters: int = 20
    log_interval: int = 10
    keep: int = 2                 # checkpoints kept besides the best
    seed: int = 1337

    def __post_init__(self):
        """Refuse nan, infinities and out-of-range values here, with the command line's words, not steps later."""
        if isinstance(self.model, dict):
            self.model = GPTConfig.from_dict({"vocab_size": VOCAB_SIZE, **self.model})
        if not isinstance(self.model, GPTConfig):
            raise CourseError(f"model must be a GPTConfig or a dict of its fields, got {type(self.model).__name__}")
        check_settings(self, SETTING_RULES)
        check_lr_floor(self.lr, self.min_lr)

    def tokens_per_step(self) -> int:
        return self.batch_size * self.model.block_size * self.grad_accum


# The allowed values of the model's shape and of every numeric setting: the `type` of its command-line option
# (--n-layer, ..., --batch-size, ...), and the checks above.
MODEL_RULES: dict[str, Number] = {name: rule for name, rule in GPT_RULES.items() if name != "vocab_size"}  # the data's
SETTING_RULES: dict[str, Number] = {
    "batch_size": positive_int, "grad_accum": positive_int, "max_steps": positive_int,
    "lr": learning_rate, "min_lr": min_learning_rate, "warmup": nonnegative_int, "weight_decay": weight_decay,
    "beta1": fraction, "beta2": fraction, "grad_clip": nonnegative_float, "eval_interval": positive_int,
    "eval_iters": positive_int, "log_interval": positive_int, "keep": nonnegative_int, "seed": seed,
}

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
                               eval_interval=1000, eval_iters=200, log_interval=10, keep=3),
}

# Settings that may change when a run is resumed: they do not affect the numbers it computes.
FREE_ON_RESUME = {"max_steps", "eval_interval", "log_interval", "keep", "compile", "eval_iters"}
