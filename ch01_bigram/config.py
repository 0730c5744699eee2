"""Chapter 1's training settings: each one's default, allowed values and help, declared once on its field.

The command line's options are made from these fields (`coursekit.settings.add_flags`), and `TrainConfig`
refuses in the Python API what the command line refuses. No torch here, so `--help` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass

from coursekit.numbers import Number, learning_rate, positive_int, seed
from coursekit.settings import DEFAULT_SEED, check_fields, setting

# Batches averaged per loss estimate, or None ('all' on the command line): the loss over the whole split,
# measured instead of sampled (`estimate_loss`).
eval_iters = Number(int, 1, words={"all": None}, called="positive")

# A sample after training: its length in characters and its temperature (1: the model's own distribution).
# `sample_text`'s defaults and the command line's --sample-length and --temperature.
SAMPLE_LENGTH = 500
TEMPERATURE = 1.0


@dataclass
class TrainConfig:
    steps: int = setting(3000, positive_int, "optimisation steps")
    batch_size: int = setting(32, positive_int, "sequences per step")
    block_size: int = setting(8, positive_int, "characters per sequence, the model's context")
    lr: float = setting(1e-2, learning_rate, "AdamW learning rate")
    eval_interval: int = setting(300, positive_int, "estimate train and val loss every N steps")
    eval_iters: int = setting(200, eval_iters, "batches averaged per loss estimate ('all': the whole split)")
    seed: int = setting(DEFAULT_SEED, seed, "random seed", flag=False)  # the command's --seed: add_run_flags

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """A one-line `CourseError` for a setting out of range (nan, inf, a size below 1, lr above 1)."""
        check_fields(self)
