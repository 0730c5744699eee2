"""Chapter 5 exercises: write the pieces of fine-tuning yourself.

Replace each `raise NotImplementedError` with your code, then check your work:

    python -m ch05_finetune.exercises --check              # every exercise
    python -m ch05_finetune.exercises --check collate      # just one

Each exercise prints PASS, or FAIL with a hint and what went wrong. Do them in
order: 1 format_prompt, 2 collate, 3 masked_lm_loss, 4 lora_linear,
5 pad_right, 6 last_token, 7 scores. Only torch, torch.nn and
torch.nn.functional are needed; the chapter's notebook (finetune.ipynb)
explains every idea. Try not to peek at template.py, instruct.py, lora.py and
classify.py.
"""

from __future__ import annotations

import sys

import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: F401  (you will need it)

IGNORE = -100  # F.cross_entropy's default ignore_index: a target that adds nothing to the loss


# --------------------------------------------------------------------------- #
# Exercise 1: the prompt template
# --------------------------------------------------------------------------- #

def format_prompt(instruction: str, input: str = "", preamble: str = "") -> str:
    """The prompt an instruction-tuned model sees, as text.

    The frame is `preamble`, then "### Instruction:\\n" and the instruction;
    then, ONLY if `input` is not empty, "\\n\\n### Input:\\n" and the input;
    then "\\n\\n### Response:\\n" (the model writes its answer after it).
    For example format_prompt("Add.", "2 3") is

        "### Instruction:\\nAdd.\\n\\n### Input:\\n2 3\\n\\n### Response:\\n"

    and without an input there is no "### Input:" section at all.
    """
    raise NotImplementedError


# --------------------------------------------------------------------------- #
# Exercise 2: a batch of instruction examples, with its loss mask
# --------------------------------------------------------------------------- #

def collate(prompts: list[list[int]], answers: list[list[int]], pad_id: int,
            mask_prompt: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets for next-token training on prompt + answer sequences.

    Example i is the sequence `seq = prompts[i] + answers[i]` (the answer ends
    with <|endoftext|>). With T = the longest len(seq) - 1, return `(ids, targets)`,
    both (B, T) long tensors:

    * row i of `ids` starts with seq[:-1] and is right-padded with `pad_id`;
    * row i of `targets` starts with seq[1:] (the token after each input) and is
      IGNORE (-100) at every padded position;
    * with `mask_prompt`, the targets that are prompt tokens are IGNORE too: the
      first len(prompts[i]) - 1 of them. The target at the last prompt token
      stays: it is the answer's first token, which the model must learn to write.
    """
    raise NotImplementedError


# --------------------------------------------------------------------------- #
# Exercise 3: the loss over unmasked positions only
# --------------------------------------------------------------------------- #

def masked_lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the positions whose target is not IGNORE; a 0-d tensor.

    `logits` (B, T, V), `targets` (B, T). Positions with target IGNORE must not
    count at all: not in the sum, not in the number you divide by, and they
    must get exactly zero gradient. Either select the kept positions with a
    boolean mask (`targets != IGNORE`) or use `F.cross_entropy(...,
    ignore_index=IGNORE)` on the flattened (B*T, V) logits.
    """
    raise NotImplementedError


# --------------------------------------------------------------------------- #
# Exercise 4: a LoRA layer
# --------------------------------------------------------------------------- #

class LoRALinear(nn.Module):
    """A frozen nn.Linear plus a trainable low-rank update: y = base(x) + (alpha / rank) * x A^T B^T.

    `__init__(base, rank=8, alpha=16.0)`:
    * keep `base` as `self.base` and freeze its parameters (requires_grad False);
    * `self.scale = alpha / rank`;
    * `self.lora_A`: an nn.Parameter of shape (rank, in_features), random
      (e.g. `nn.init.kaiming_uniform_(A, a=math.sqrt(5))` or small normal values);
    * `self.lora_B`: an nn.Parameter of shape (out_features, rank), ZEROS, so the
      layer starts exactly as the pretrained `base`.

    `forward(x)`: x (..., in_features) -> (..., out_features) as above.

    `merged()`: a new plain nn.Linear (with a bias exactly when `base` has one)
    whose weight is W + scale * B @ A, giving the same outputs as `forward`.
    """

    def __init__(self, base: nn.Linear, rank: int = 8, alpha: float = 16.0):
        super().__init__()
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def merged(self) -> nn.Linear:
        raise NotImplementedError


# --------------------------------------------------------------------------- #
# Exercise 5: right-padding a batch of texts
# --------------------------------------------------------------------------- #

def pad_right(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token sequences to the longest one.

    Returns `(ids, lengths)`: ids (B, T) long, T = the longest length, row i
    holds seqs[i] then `pad_id` up to T; lengths (B,) long, the true length of
    each sequence.
    """
    raise NotImplementedError


# --------------------------------------------------------------------------- #
# Exercise 6: read the classifier at the last real token
# --------------------------------------------------------------------------- #

def last_token(logits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Pick, for each row, the logits at its last real (not padding) token.

    `logits` (B, T, C) from a causal model run on right-padded ids, `lengths`
    (B,) the true lengths. Returns (B, C): row b is logits[b, lengths[b] - 1].
    In a causal model that position has seen the whole text and none of the
    padding (logits[:, -1] would read a padding token for every shorter row).
    Hint: index with two tensors, `logits[torch.arange(B), lengths - 1]`.
    """
    raise NotImplementedError


# --------------------------------------------------------------------------- #
# Exercise 7: accuracy, precision, recall and F1
# --------------------------------------------------------------------------- #

def scores(pred, true, num_classes: int) -> dict[str, float]:
    """Classification scores from predicted and true class ids (lists or 1-D tensors of ints).

    Returns {"accuracy", "precision", "recall", "f1"} as Python floats.
    Per class c: precision = TP / (number predicted c), recall = TP / (number
    truly c), F1 = 2 P R / (P + R); each is 0.0 (not nan) where its denominator
    is 0. For two classes report class 1's precision, recall and F1 (class 1 is
    "positive"); for more classes, their plain mean over the classes (macro average).
    """
    raise NotImplementedError


if __name__ == "__main__":
    from ch05_finetune.exercise_checks import CHECKS
    from coursekit.exercise_kit import main
    raise SystemExit(main(sys.argv[1:], CHECKS, "ch05_finetune.exercises", "ch05_finetune.solutions.exercises"))
