"""The fine-tuning recipe, `FitConfig`, and the chapter's two recipes, each setting declared once on its field
(default, allowed values, help: `coursekit.settings`). The command line makes its options from them; no torch
here, so that `python -m ch05_finetune --help` starts at once. The loop that uses them is loop.py."""

from __future__ import annotations

from dataclasses import dataclass

from ch03_gpt.config import Recipe
from coursekit.numbers import positive_int
from coursekit.numbers import seed as seed_number
from coursekit.settings import DEFAULT_SEED, DTYPE_CHOICES, check_fields, setting, setting_like

# The name of the small GPT pretrained here that fine-tuning starts from (pretrained.py; `--from tiny`).
TINY = "tiny"
# `--from auto`: the tiny model where it can read the data, else GPT-2 (pretrained.choose_start).
AUTO = "auto"


@dataclass(frozen=True)
class FitConfig:
    """How to fine-tune: epochs, batches, the schedule, the seed and the number format (--seed and --dtype are
    the run options; weight decay, warm-up and clipping are set in code only)."""

    epochs: int = setting(4, positive_int, "passes over the training split")
    batch_size: int = setting(32, positive_int, "examples per step")
    # the schedule and the optimizer: Chapter 3's settings (their rules and help), with fine-tuning's defaults
    lr: float = setting_like(Recipe, "lr", 1e-3)
    # fine-tuning moves little from a good start; decay would pull it to zero
    weight_decay: float = setting_like(Recipe, "weight_decay", 0.0)
    warmup: int = setting_like(Recipe, "warmup", 20, flag=False)
    grad_clip: float = setting_like(Recipe, "grad_clip", 1.0)
    seed: int = setting(DEFAULT_SEED, seed_number, "seed of the split, the shuffling and the head", flag=False)
    # coursekit.hardware.resolve_dtype, for the model's width and device
    dtype: str = setting("auto", choices=DTYPE_CHOICES, help="number format", flag=False)

    def __post_init__(self):
        """A one-line `CourseError` for a value out of range (nan, inf, lr above 1...), as the command line says."""
        check_fields(self)


# The two fine-tuning recipes, each set once: the command line's defaults, the notebook's and the main job's
# starting point. Both suit the small pretrained model Chapter 5 starts from (64 wide).
CLASSIFY_FIT = FitConfig(epochs=5, lr=3e-3)  # batches of 32, the default
INSTRUCT_FIT = FitConfig(epochs=15, batch_size=16, lr=2e-3)
