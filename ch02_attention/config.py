"""Chapter 2's settings and the checks every attention module shares, in a module without torch.

The command line's model options are made from `ModelConfig`'s fields (`coursekit.settings.add_flags`), and
its comparison's defaults are here; `check_heads` also checks Chapter 3's `GPTConfig`, read without torch too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ch01_bigram.config import TrainConfig
from coursekit import CourseError, check_positive
from coursekit.numbers import fraction, positive_int
from coursekit.settings import check_fields, setting


def check_heads(n_embd: int, n_head: int) -> int:
    """The head size, or a `CourseError` naming the values that do not fit."""
    check_positive("n_embd", n_embd)
    check_positive("n_head", n_head)
    if n_embd % n_head != 0:
        raise CourseError(f"embedding size {n_embd} is not divisible by the number of heads {n_head}")
    return n_embd // n_head


def check_length(T: int, block_size: int) -> None:
    if block_size < T:
        raise CourseError(f"sequence length {T} is longer than the block size {block_size}")


def check_dropout(p: float) -> float:
    """`p` if it is a usable dropout probability (the rule of every dropout setting), else a `CourseError`."""
    return fraction.check("dropout", p)


# The training of `python -m ch02_attention`: Chapter 1's, with the settings that show the built-in stories'
# long-range structure in about a minute on a laptop CPU. A 64-character context spans a story's name and its
# next mentions (40-120 characters apart). Chapter 1's lr, 1e-2, gave the attention model its lowest val loss
# in 3,000 steps (0.57, against 0.63 at 3e-3); the bigram it is compared with trains with the same lr.
TRAINING = replace(TrainConfig(), block_size=64, eval_iters=100)


# The scored samples of the comparison with the bigram (compare.py): their prompt and temperature.
SCORE_PROMPT = "Once upon a time"
SCORE_TEMPERATURE = 0.8


def default_sample_context(block_size: int) -> int:
    """The attention model's context when it writes the scored samples: 3/4 of its window."""
    return max(1, block_size * 3 // 4)


@dataclass
class ModelConfig:
    """The attention language model of `python -m ch02_attention`, besides what the data and the training set
    (its vocabulary and its block size)."""

    n_embd: int = setting(64, positive_int, "embedding size, split evenly between the heads")
    n_head: int = setting(8, positive_int, "attention heads; must divide --n-embd")
    dropout: float = setting(0.0, fraction, "dropout on the attention weights and the output")
    explicit: bool = setting(False, help="spell attention out (softmax of masked scores) instead of the fused "
                                         "F.scaled_dot_product_attention; same result, slower")

    def __post_init__(self):
        check_fields(self)
        check_heads(self.n_embd, self.n_head)
