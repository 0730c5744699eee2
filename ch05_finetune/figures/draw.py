"""Draws instruction_mask.png: which positions of a padded batch the instruction loss counts.

Run once from the repository root: python ch05_finetune/figures/draw.py
The batch is real: two built-in-style examples cut by the tiny model's tokenizer and put through the
chapter's own `collate` (prompt masked), so the picture shows exactly what training sees.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Patch, Rectangle

from ch05_finetune.builtin import Instruction
from ch05_finetune.instruct import IGNORE, collate, encode_example
from ch05_finetune.template import TEMPLATES
from ch05_finetune.vocab import Codec, builtin_token_ids

codec = Codec(list(builtin_token_ids()))
template = TEMPLATES["compact"]
examples = [Instruction("What is 3 plus 4?", "", "7", "add"),
            Instruction("Spell the word backwards.", "cat", "tac", "backwards")]
encoded = [encode_example(codec, template, ex, 64) for ex in examples]
ids, targets = collate(encoded, codec.eot, mask_prompt=True)
B, T = ids.shape


def show(token: int) -> str:
    text = "<eot>" if token == codec.eot else codec.decode([token])
    return text.replace("\n", "\\n").replace(" ", "·")


def size(text: str) -> float:
    """Font size that fits `text` in one cell."""
    return 9 if len(text) <= 5 else 7 if len(text) <= 9 else 6


COLOURS = {"prompt": "#d9d9d9", "answer": "#74c476", "pad": "#ffffff"}
fig, ax = plt.subplots(figsize=(19, 5.4))
row_y = {}
for b in range(B):
    real = len(encoded[b].prompt) + len(encoded[b].answer) - 1  # positions with a real input token
    top = b * 3.2
    row_y[b] = top
    for t in range(T):
        x_tok, y_tok = ids[b, t].item(), targets[b, t].item()
        is_pad = t >= real
        kept = y_tok != IGNORE
        kind = "pad" if is_pad else ("answer" if kept else "prompt")
        # input row
        ax.add_patch(Rectangle((t, -top), 1, -1, fc="#f7fbff" if not is_pad else "#ffffff",
                               ec="#bbbbbb" if is_pad else "#555555", hatch="///" if is_pad else None, lw=0.8))
        text = "pad" if is_pad else show(x_tok)
        ax.text(t + 0.5, -top - 0.5, text, ha="center", va="center", fontsize=size(text),
                color="#888888" if is_pad else "black")
        # target row
        ax.add_patch(Rectangle((t, -top - 1.15), 1, -1, fc=COLOURS[kind], ec="#bbbbbb" if is_pad else "#555555",
                               hatch="///" if is_pad else None, lw=0.8))
        label = "-100" if not kept else show(y_tok)
        ax.text(t + 0.5, -top - 1.65, label, ha="center", va="center", fontsize=size(label),
                fontweight="bold" if kept else "normal",
                color="black" if kept else "#666666")
    ax.text(-0.3, -top - 0.5, f"row {b} inputs", ha="right", va="center", fontsize=11)
    ax.text(-0.3, -top - 1.65, f"row {b} targets", ha="right", va="center", fontsize=11)
    ax.text(T + 0.3, -top - 1.65, f"{(targets[b] != IGNORE).sum().item()} of {T} counted", ha="left",
            va="center", fontsize=11)
for t in range(T):
    ax.text(t + 0.5, 0.35, str(t), ha="center", va="bottom", fontsize=8, color="#555555")
ax.text(-0.3, 0.35, "position", ha="right", va="bottom", fontsize=9, color="#555555")
ax.set_xlim(-4.5, T + 4.5)
ax.set_ylim(-(B - 1) * 3.2 - 2.6, 1.3)
ax.axis("off")
ax.legend(handles=[Patch(fc=COLOURS["prompt"], ec="#555555", label="prompt: target -100, not in the loss"),
                   Patch(fc=COLOURS["answer"], ec="#555555", label="answer and <eot>: counted by the loss"),
                   Patch(fc=COLOURS["pad"], ec="#bbbbbb", hatch="///", label="padding: target -100, not in the loss")],
          loc="lower center", bbox_to_anchor=(0.5, -0.08), ncol=3, fontsize=11, frameon=False)
ax.set_title("What the instruction loss sees: targets are the inputs shifted left by one; "
             "prompt and padding targets are set to -100 (ignored)\n"
             "The target at the last prompt token ('\\n' after '### Response:') is the answer's first token, "
             "so it is kept.  · marks a space, \\n a newline.", fontsize=12)
fig.tight_layout()
out = Path(__file__).with_name("instruction_mask.png")
fig.savefig(out, dpi=100)
print("wrote", out)
