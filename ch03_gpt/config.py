"""Chapter 3's settings: the model's shape (`GPTConfig`) and the training recipe (`Recipe`), and the recipes.

Each setting's default, allowed values and help are declared once, on its field: the classes check
themselves with them, and `python -m ch03_gpt train` makes its options from them. No torch here, so
`--help` stays fast; `model.py` and `train.py` re-export these names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ch01_bigram.config import TrainConfig, eval_iters
from ch02_attention.config import check_heads
from coursekit import CourseError
from coursekit.numbers import (
    check_lr_floor,
    fraction,
    learning_rate,
    min_learning_rate,
    nonnegative_float,
    nonnegative_int,
    positive_int,
    seed,
    weight_decay,
)
from coursekit.settings import DEFAULT_SEED, DTYPE_CHOICES, check_fields, setting

ACTIVATIONS = {"gelu": "none", "gelu_tanh": "tanh"}  # name -> F.gelu's `approximate`
OPTIMIZER_NAMES = ("adamw", "muon")                  # train.OPTIMIZERS: the function that sets each one up


@dataclass
class GPTConfig:
    vocab_size: int = setting(65, positive_int, "tokens the model knows (the data's vocabulary)", flag=False)
    block_size: int = setting(64, positive_int, "the longest context the model can see, in tokens")
    n_layer: int = setting(4, positive_int, "transformer blocks")
    n_head: int = setting(4, positive_int, "attention heads per block; must divide --n-embd")
    n_embd: int = setting(128, positive_int, "width of the residual stream")
    dropout: float = setting(0.0, fraction, "dropout rate")
    bias: bool = setting(True, help="biases in Linear and LayerNorm layers, as in GPT-2")
    # GELU as PyTorch computes it exactly ("gelu"), or the tanh approximation GPT-2 was trained
    # with ("gelu_tanh"): needed to reproduce OpenAI's weights exactly, and about 3x slower on CPU.
    activation: str = setting("gelu", help="GELU, exact or as GPT-2's tanh approximation",
                              choices=tuple(ACTIVATIONS), flag=False)

    def __post_init__(self):
        # A config may come from a file (config.json): every field is checked, its type too, before it is used.
        check_fields(self)
        check_heads(self.n_embd, self.n_head)

    def to_dict(self) -> dict:
        return asdict(self)

    def num_params(self) -> int:
        """The parameters of a GPT of this shape, counted without building it (the tied head once): token and
        position embeddings; per block 12 C^2 in the four matrices plus 13 C of biases and LayerNorms (2 C, the
        LayerNorms' scales, without biases); the final LayerNorm."""
        V, T, L, C = self.vocab_size, self.block_size, self.n_layer, self.n_embd
        per_block = 12 * C * C + (13 if self.bias else 2) * C
        return V * C + T * C + L * per_block + (2 if self.bias else 1) * C

    @classmethod
    def from_dict(cls, d: dict) -> GPTConfig:
        """The config a dict describes (a checkpoint's config.json: untrusted, so it is checked like any other)."""
        if not isinstance(d, dict):
            raise CourseError(f"a model config must be an object of GPTConfig's fields, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k)[:40] for k in set(d) - known)
        if unknown:
            raise CourseError(f"unknown GPTConfig fields: {', '.join(unknown[:5])}")
        return cls(**d)



@dataclass
class Recipe:
    """Everything that decides a character-level run, besides the model's shape."""

    steps: int = setting(2000, positive_int, "optimisation steps")
    batch_size: int = setting(12, positive_int, "sequences per step")
    # lr to grad_clip: the schedule and the optimizer, shared by Chapter 4's TrainSettings and Chapter 5's FitConfig
    lr: float = setting(1e-3, learning_rate, "peak learning rate, reached at the end of warm-up")
    min_lr: float = setting(1e-4, min_learning_rate, "the floor of the cosine decay, at most --lr")
    warmup: int = setting(100, nonnegative_int, "steps of linear warm-up from 0 to lr")
    weight_decay: float = setting(0.1, weight_decay, "AdamW weight decay on the matrices only", flag=False)
    grad_clip: float = setting(1.0, nonnegative_float, "maximum gradient norm (0: no clipping)", flag=False)
    optimizer: str = setting("adamw", help="adamw, or muon: orthogonalised momentum for the blocks' matrices, "
                             "AdamW for the rest (see ch03_gpt/muon.py)", choices=OPTIMIZER_NAMES)
    # coursekit.hardware.resolve_dtype: bfloat16 where the hardware runs it faster (the command's --dtype)
    dtype: str = setting("auto", help="number format", choices=DTYPE_CHOICES, flag=False)
    eval_interval: int = setting(250, positive_int, "evaluate every N steps")
    # None ('all' on the command line): all of val, and as many train windows
    eval_iters: int | None = setting(200, eval_iters, "random batches per loss estimate; 'all': the loss over "
                                     "the whole val split and as many train windows, exactly (the fast recipe's)")
    eval_at_start: bool = setting(True, help="estimate the untrained model's loss too (a plot's first point)",
                                  flag=False)
    eval_train: bool = setting(True, help="estimate the train loss too (the best checkpoint is chosen on val "
                               "alone)", flag=False)
    seed: int = setting(DEFAULT_SEED, seed, "random seed", flag=False)  # the command's --seed: add_run_flags

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """A one-line `CourseError` for a setting out of range (nan, inf, lr above 1, min_lr above lr...)."""
        check_fields(self)
        check_lr_floor(self.lr, self.min_lr)


# Three recipes for the small model (4 layers, 128 wide, block 64) on Tiny Shakespeare; see README
# and MEASUREMENTS.md. `published`: the published laptop-CPU recipe (val loss about 1.88 there; 1.90
# +- 0.02 over three seeds here). `baseline`: the same 2,000 steps of 12 windows with twice its
# learning rate (1.81). `fast`: 450 steps of 16 windows with Muon for the blocks' matrices
# (muon.py), lr 1.5e-2 after 20 warm-up steps decaying to 1.5e-4, and one loss estimate, at the
# end, over the whole val split alone (exact, and cheaper than 200 random batches; val alone picks
# the checkpoint, so the train split's estimate is skipped): about 1.86 on 3/10
# of the baseline's windows. A Muon step costs about 1.6 AdamW steps at this size and saves far
# more: AdamW needs about 1,000 steps of 16 to reach what Muon reaches in 450. Every recipe
# trains in the number format `auto` picks: at this model's 128 width, float32 on every CPU
# (bfloat16 pays from 256 wide).
RECIPES = {
    "published": Recipe(),
    "baseline": Recipe(lr=2e-3, min_lr=2e-4),
    "fast": Recipe(steps=450, batch_size=16, lr=1.5e-2, min_lr=1.5e-4, warmup=20, optimizer="muon",
                   eval_interval=450, eval_iters=None, eval_at_start=False, eval_train=False),
}


# The lecture's ablation (ablation.py, `python -m ch03_gpt ablation`): every stage is built at the lecture's small
# size and trained with Chapter 1's loop for the same budget, 5,000 steps of 32 windows at lr 1e-3, its loss
# estimated five times along the way (`run_ablation` sets eval_interval from the steps it is given).
LECTURE = dict(n_embd=32, n_head=4, block_size=8, n_layer=3)
ABLATION = TrainConfig(steps=5000, block_size=LECTURE["block_size"], lr=1e-3, eval_interval=1000)
