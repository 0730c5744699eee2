"""Draws Chapter 5's diagrams, one small function per picture.

Run once from the repository root: python ch05_finetune/figures/draw.py
It writes every PNG beside this file. Most pictures are schematic: their words and shapes are
symbols (C for the model's width, V for its vocabulary, r for LoRA's rank), so they stay true whichever
pretrained model the chapter starts from. Two are exact: instruction_mask.png and chat_window.png cut
real built-in-style examples with the chapter's own tokenizer, template and `collate`, so they show
exactly what training and the chat see.
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch, Rectangle

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the course's root, so the chapter's package imports
from ch04_pretrain.pretraining.stories import STORY_GPT, train_story_bpe
from ch05_finetune.builtin import Instruction
from ch05_finetune.instruct import IGNORE, collate, encode_example
from ch05_finetune.template import TEMPLATES
from ch05_finetune.vocab import Codec, builtin_token_ids

HERE = Path(__file__).resolve().parent
DPI = 110

# Colours, the same meaning in every picture: frozen weights grey, trained ones green, LoRA's adapters
# orange, the prompt blue, the answer green, padding white and hatched, a wrong reading red.
FROZEN = "#d9d9d9"
TRAINED = "#a1d99b"
ADAPTER = "#fdae6b"
PROMPT = "#cfe0f5"
INPUT = "#fff2b3"
ANSWER = "#74c476"
WRONG = "#d62728"
GREY_TEXT = "#666666"


def box(ax, x, y, w, h, text, colour, fontsize=11, weight="normal", family=None, ec="black", hatch=None):
    """A rounded box with its lower left corner at (x, y)."""
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                fc=colour, ec=ec, lw=1.2, hatch=hatch))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize, fontweight=weight,
            family=family)


def arrow(ax, start, end, colour="black", lw=1.5, style="-|>", connection="arc3"):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, color=colour, lw=lw, mutation_scale=16,
                                 connectionstyle=connection, shrinkA=0, shrinkB=0))


def canvas(width, height):
    """A figure `width` x `height` inches whose data units are inches, so that sizes read as printed."""
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    fig.subplots_adjust(0, 0, 1, 1)
    return fig, ax


def save(fig, name):
    fig.savefig(HERE / name, dpi=DPI, bbox_inches="tight", pad_inches=0.1)
    plt.close(fig)
    print("wrote", HERE / name)


def overview():
    """The opening picture: one pretrained model, two ways to make it useful, and LoRA as a cheaper way to train."""
    fig, ax = canvas(12.5, 5.2)
    ax.text(6.25, 4.95, "What this chapter builds: one pretrained GPT, fine-tuned two ways",
            ha="center", va="center", fontsize=14)
    box(ax, 0.2, 1.85, 2.4, 1.5, "pretrained GPT\n\ncontinues text;\nanswers no question", "#f2f2f2", 11)
    # The classifier path (sections 2-3).
    box(ax, 3.4, 3.2, 2.6, 1.1, "swap the head:\nLinear(C → 2)", TRAINED, 11)
    box(ax, 6.6, 3.2, 2.6, 1.1, "read the last\nreal token", TRAINED, 11)
    box(ax, 9.8, 3.2, 2.5, 1.1, "\"The dog was not\nawful.\" → positive", "#ffffff", 11)
    # The instruction path (sections 4-5).
    box(ax, 3.4, 0.9, 2.6, 1.1, "prompt template,\nprompt's loss masked", PROMPT, 11)
    box(ax, 6.6, 0.9, 2.6, 1.1, "instruction\nfollower", ANSWER, 11)
    box(ax, 9.8, 0.9, 2.5, 1.1, "\"What is 3 plus 4?\"\n→ 7 <|endoftext|>", "#ffffff", 11)
    arrow(ax, (2.6, 2.9), (3.4, 3.75))
    arrow(ax, (2.6, 2.3), (3.4, 1.45))
    for y in (3.75, 1.45):
        arrow(ax, (6.0, y), (6.6, y))
        arrow(ax, (9.2, y), (9.8, y))
    ax.text(3.4, 4.45, "sections 2-3: classification", fontsize=11, style="italic")
    ax.text(3.4, 0.6, "sections 4-5: instructions, then a chat", fontsize=11, style="italic", va="top")
    # LoRA sits between the two paths: it is a way to train either one.
    box(ax, 4.3, 2.2, 4.0, 0.75, "LoRA: train a small B·A beside each frozen W", ADAPTER, 11)
    ax.text(8.45, 2.575, "(section 3; either path)", fontsize=10.5, va="center", color=GREY_TEXT)
    save(fig, "overview.png")


def head_swap():
    """The classifier head: the language-model head's V scores per position become 2."""
    fig, ax = canvas(12.5, 5.6)
    ax.text(6.25, 5.35, "The head swap: the same body, a new 2-way head in place of the V-way one",
            ha="center", va="center", fontsize=14)
    # The body, bottom to top, shared by both heads.
    body = "#e3d2ef"  # the pretrained body: neither frozen nor trained here (that is a later choice)
    layers = [("token ids (B, T)", "#ffffff"), ("embeddings", body), ("blocks 1 … N", body),
              ("final LayerNorm → (B, T, C)", body)]
    for k, (text, colour) in enumerate(layers):
        box(ax, 0.3, 0.5 + k * 1.05, 3.4, 0.75, text, colour, 11)
        if k:
            arrow(ax, (2.0, 0.5 + (k - 1) * 1.05 + 0.75), (2.0, 0.5 + k * 1.05))
    ax.text(2.0, 0.25, "the pretrained body, kept", ha="center", fontsize=11, color=GREY_TEXT)
    top = (3.7, 0.5 + 3 * 1.05 + 0.375)
    # Before: the language-model head, one score per vocabulary token at every position.
    box(ax, 4.7, 3.3, 2.8, 1.1, "lm_head\nLinear(C → V)\ntied to the embedding", "#f2f2f2", 10.5, ec="#888888")
    ax.text(6.1, 4.6, "before: pretraining", ha="center", fontsize=11, fontweight="bold")
    tokens = ["the", "dog", "was", "not", "…", "<eot>"]
    for k, tok in enumerate(tokens):
        ax.add_patch(Rectangle((8.2 + k * 0.65, 3.55), 0.65, 0.6, fc="#f2f2f2", ec="#888888"))
        ax.text(8.2 + k * 0.65 + 0.325, 3.85, tok, ha="center", va="center", fontsize=10)
    ax.text(8.2 + 3 * 0.65, 3.25, "V scores: which token comes next", ha="center", fontsize=10.5, va="top")
    ax.add_patch(Rectangle((4.55, 2.95), 7.8, 1.95, fill=False, ec=WRONG, lw=1.5, ls="--"))  # what goes
    ax.text(12.3, 4.6, "removed", color=WRONG, fontsize=11, ha="right")
    # After: the classifier head, two scores per position.
    box(ax, 4.7, 1.0, 2.8, 1.1, "new head\nLinear(C → 2)\nfresh, untied weights", TRAINED, 10.5)
    ax.text(6.1, 2.3, "after: classification", ha="center", fontsize=11, fontweight="bold")
    for k, tok in enumerate(["negative", "positive"]):
        ax.add_patch(Rectangle((8.2 + k * 1.5, 1.25), 1.5, 0.6, fc=TRAINED, ec="black"))
        ax.text(8.2 + k * 1.5 + 0.75, 1.55, tok, ha="center", va="center", fontsize=11)
    ax.text(9.7, 0.95, "2 scores per position: (B, T, 2);\none position per text is read", ha="center",
            fontsize=10.5, va="top")
    arrow(ax, top, (4.7, 3.85), colour="#888888")
    arrow(ax, top, (4.7, 1.55))
    arrow(ax, (7.5, 3.85), (8.2, 3.85), colour="#888888")
    arrow(ax, (7.5, 1.55), (8.2, 1.55))
    save(fig, "head_swap.png")


def last_token():
    """Right padding, and which position of each row the classifier reads (and the mistake of reading -1)."""
    rows = [(["The", "dog", "was", "not", "awful", "."], "positive"),
            (["The", "cup", "was", "ugly", "."], "negative"),
            (["It", "was", "nice", "."], "positive")]
    T, cw, ch = 6, 1.05, 0.6
    fig, ax = canvas(12.5, 4.9)
    ax.text(6.25, 4.7, "Right padding: each row is read at its last real token, position lengths[b] − 1",
            ha="center", va="center", fontsize=14)
    x0, y0 = 1.6, 3.3
    for t in range(T):
        label = f"{t}" if t < T - 1 else f"{t} = −1"
        ax.text(x0 + t * cw + cw / 2, y0 + ch + 0.15, label, ha="center", fontsize=10.5, color=GREY_TEXT)
    ax.text(x0 - 0.15, y0 + ch + 0.15, "position", ha="right", fontsize=10.5, color=GREY_TEXT)
    for b, (words, label) in enumerate(rows):
        y = y0 - b * (ch + 0.3)
        n = len(words)
        ax.text(x0 - 0.15, y + ch / 2, f"row {b}: {n} real", ha="right", va="center", fontsize=11)
        for t in range(T):
            pad = t >= n
            fc = "#ffffff" if pad else (TRAINED if t == n - 1 else PROMPT)
            ax.add_patch(Rectangle((x0 + t * cw, y), cw, ch, fc=fc, ec="#aaaaaa" if pad else "black",
                                   hatch="///" if pad else None, lw=1.6 if t == n - 1 else 0.8))
            ax.text(x0 + t * cw + cw / 2, y + ch / 2, "<eot>" if pad else words[t], ha="center", va="center",
                    fontsize=10.5, color=GREY_TEXT if pad else "black")
        # What is read: the last real token; its two logits give the class.
        # The reading runs down from that token into the gap below the row, then right: it crosses no token.
        xr, yg = x0 + (n - 0.5) * cw, y - 0.15
        ax.plot([xr, xr, 8.1], [y, yg, yg], color="#2c7a2c", lw=1.5)
        arrow(ax, (8.1, yg), (8.3, yg), colour="#2c7a2c")
        ax.text(8.4, yg, f"logits[{b}, {n - 1}] → {label}", va="center", fontsize=11)
    # Position -1 is padding for every row shorter than the longest.
    ax.add_patch(Rectangle((x0 + (T - 1) * cw - 0.04, y0 - 2 * (ch + 0.3) - 0.06), cw + 0.08,
                           3 * ch + 2 * 0.3 + 0.12, fill=False, ec=WRONG, lw=2, ls="--"))
    ax.text(x0 + (T - 0.5) * cw, 1.15, "position −1: padding\nfor rows 1 and 2", ha="center", va="top",
            fontsize=11, color=WRONG)
    ax.text(0.2, 0.3, "Causal attention: position t sees tokens 0 … t only, so the last real token has read the "
            "whole text and no padding.\nThe padding after it cannot change what it computes; "
            "left padding would put padding before the text instead.", fontsize=11, va="center")
    save(fig, "last_token.png")


def trainable_split():
    """What trains in each of the chapter's four ways: one requires_grad flag per parameter."""
    layers = ["embeddings", "block 1", "block 2", "block N−1", "block N", "final LayerNorm", "classifier head"]
    ways = {"head only": {"final LayerNorm", "classifier head"},
            "last 2 blocks": {"block N−1", "block N", "final LayerNorm", "classifier head"},
            "LoRA": {"classifier head"},
            "everything": set(layers)}
    fig, ax = canvas(12.5, 6.0)
    ax.text(6.25, 5.75, "Frozen or trainable: one requires_grad flag per parameter; "
            "the optimizer gets only the trainable ones", ha="center", va="center", fontsize=13.5)
    w, h, gap = 2.2, 0.5, 0.12
    for c, (way, trained) in enumerate(ways.items()):
        x = 0.5 + c * 3.05
        ax.text(x + w / 2, 5.25, way, ha="center", fontsize=12, fontweight="bold")
        for k, layer in enumerate(layers):
            y = 0.6 + k * (h + gap)
            if k >= 3:  # a gap for the blocks in between
                y += 0.3
            on = layer in trained
            box(ax, x, y, w, h, layer, TRAINED if on else FROZEN, 10.5, ec="black" if on else "#888888")
            if way == "LoRA" and layer.startswith("block"):
                box(ax, x + w + 0.08, y + 0.05, 0.55, h - 0.1, "B·A", ADAPTER, 10)
        ax.text(x + w / 2, 0.6 + 3 * (h + gap) - 0.02, "⋮", ha="center", va="center", fontsize=14)
    ax.legend(handles=[Patch(fc=TRAINED, ec="black", label="trainable: gradient, AdamW moments, updated"),
                       Patch(fc=FROZEN, ec="#888888", label="frozen: requires_grad False, never changes"),
                       Patch(fc=ADAPTER, ec="black", label="LoRA adapters: trainable, beside frozen weights")],
              loc="lower center", bbox_to_anchor=(0.5, 0.0), ncol=3, fontsize=10.5, frameon=False)
    save(fig, "trainable_split.png")


def lora():
    """LoRA: a frozen W with a trainable low-rank B·A beside it, summed; merged into one weight afterwards."""
    fig, ax = canvas(12.5, 5.6)
    ax.text(6.25, 5.35, "LoRA: the frozen weight W plus a trainable low-rank update (α / r) · B A",
            ha="center", va="center", fontsize=14)
    # x enters on the left, splits into the frozen path (top) and the adapter path (bottom).
    box(ax, 0.2, 2.35, 1.1, 0.8, "x\n(…, d_in)", "#ffffff", 11)
    ax.add_patch(Rectangle((2.3, 3.2), 1.9, 1.6, fc=FROZEN, ec="#555555", hatch="..", lw=1.2))
    ax.text(3.25, 4.0, "W\nd_out × d_in\nfrozen", ha="center", va="center", fontsize=11,
            bbox={"fc": FROZEN, "ec": "none"})
    ax.add_patch(Rectangle((2.3, 1.15), 1.9, 0.45, fc=ADAPTER, ec="black", lw=1.2))
    ax.text(3.25, 1.375, "A: r × d_in, random", ha="center", va="center", fontsize=10.5)
    ax.add_patch(Rectangle((4.9, 0.4), 0.45, 1.9, fc=ADAPTER, ec="black", lw=1.2))
    ax.text(5.5, 1.35, "B: d_out × r\nzero at the start", ha="left", va="center", fontsize=10.5)
    ax.text(3.25, 0.85, "r = rank, small (8 here)", ha="center", va="center", fontsize=10.5, color=GREY_TEXT)
    arrow(ax, (1.3, 2.9), (2.3, 4.0))
    arrow(ax, (1.3, 2.6), (2.3, 1.375))
    arrow(ax, (4.2, 1.375), (4.9, 1.375))
    # The sum.
    ax.add_patch(plt.Circle((8.0, 2.75), 0.3, fc="#ffffff", ec="black", lw=1.5))
    ax.text(8.0, 2.75, "+", ha="center", va="center", fontsize=16)
    arrow(ax, (4.2, 4.0), (7.8, 2.97))
    ax.text(6.1, 3.9, "x Wᵀ", fontsize=11)
    arrow(ax, (5.35, 2.0), (7.75, 2.58))
    ax.text(6.0, 2.55, "(α / r) · x Aᵀ Bᵀ", fontsize=11)
    box(ax, 8.8, 2.35, 1.3, 0.8, "y\n(…, d_out)", "#ffffff", 11)
    arrow(ax, (8.3, 2.75), (8.8, 2.75))
    ax.text(10.3, 4.55, "trainable: r · (d_in + d_out)\ninstead of d_in · d_out", fontsize=11, va="center")
    ax.text(10.3, 3.6, "at the start B = 0:\nexactly the pretrained layer", fontsize=11, va="center")
    ax.text(10.3, 1.6, "after training, merged:\nW + (α / r) · B A,\none ordinary Linear", fontsize=11,
            va="center")
    save(fig, "lora.png")


def prompt_template():
    """The template around an example: what the model reads (the prompt) and what it learns to write."""
    tpl = TEMPLATES["compact"]
    # (text, colour) pieces, line by line, of one example with an input and one without.
    with_input = [[("### Instruction:", PROMPT)], [("Spell the word backwards.", "#ffffff")], [],
                  [("### Input:", PROMPT)], [("cat", INPUT)], [], [("### Response:", PROMPT)],
                  [("tac", ANSWER), ("<|endoftext|>", ANSWER)]]
    without = [[("### Instruction:", PROMPT)], [("What is 3 plus 4?", "#ffffff")], [],
               [("### Response:", PROMPT)], [("7", ANSWER), ("<|endoftext|>", ANSWER)]]
    # The frame pieces drawn above are the template's own text (a check that the picture stays true).
    assert tpl.format("What is 3 plus 4?") == "### Instruction:\nWhat is 3 plus 4?\n\n### Response:\n"
    fig, ax = canvas(12.5, 5.4)
    ax.text(6.25, 5.2, "The prompt template: a fixed frame; the model learns to write the answer and "
            "<|endoftext|> after \"### Response:\"", ha="center", va="center", fontsize=13)
    line_h = 0.5
    for x0, lines, title in ((0.4, with_input, "with an input"), (6.9, without, "without one: no ### Input:")):
        ax.text(x0, 4.6, title, fontsize=12, fontweight="bold")
        y = 4.0
        for line in lines:
            x = x0
            for text, colour in line:
                wid = 0.135 * len(text) + 0.3
                ax.add_patch(Rectangle((x, y - 0.19), wid, 0.4, fc=colour, ec="#555555", lw=0.8))
                ax.text(x + 0.15, y, text, va="center", fontsize=11, family="monospace")
                x += wid + 0.1
            if not line:
                ax.text(x0 + 0.15, y, "(blank line)", va="center", fontsize=10, color=GREY_TEXT)
            y -= line_h
        prompt_bottom = y + line_h * 1.5
        ax.plot([x0 - 0.15] * 2, [4.2, prompt_bottom], color="#3a6ea5", lw=2.5)
        ax.plot([x0 - 0.15] * 2, [prompt_bottom - 0.05, y + 0.3], color="#2c7a2c", lw=2.5)
    ax.legend(handles=[Patch(fc=PROMPT, ec="#555555", label="the frame: the same in training and in use"),
                       Patch(fc="#ffffff", ec="#555555", label="instruction"),
                       Patch(fc=INPUT, ec="#555555", label="input (optional)"),
                       Patch(fc=ANSWER, ec="#555555", label="answer: the only targets in the loss")],
              loc="lower center", bbox_to_anchor=(0.5, -0.02), ncol=4, fontsize=10.5, frameon=False)
    ax.text(6.9, 1.45, "blue bar on the left: the prompt, which the model reads\n"
            "green bar: the answer, which it learns to write", fontsize=11, va="top")
    save(fig, "prompt_template.png")


def instruction_mask():
    """Which positions of a padded batch the instruction loss counts: a real batch from the chapter's `collate`.

    Positions run down the page, one row each, so that every token can be printed at a legible size."""
    codec = Codec(list(builtin_token_ids()))
    template = TEMPLATES["compact"]
    examples = [Instruction("What is 3 plus 4?", "", "7", "add"),
                Instruction("Spell the word backwards.", "cat", "tac", "backwards")]
    encoded = [encode_example(codec, template, ex, 64) for ex in examples]
    ids, targets = collate(encoded, codec.eot, mask_prompt=True)
    T = ids.shape[1]
    colours = {"prompt": "#d9d9d9", "answer": ANSWER, "pad": "#ffffff"}

    def show(token):
        text = "<eot>" if token == codec.eot else codec.decode([token])
        return text.replace("\n", "\\n").replace(" ", "·")

    rh, cw = 0.3, 1.45                       # row height, cell width (inches)
    width, height = 9.4, T * rh + 2.6
    fig, ax = canvas(width, height)
    top = height - 1.5
    ax.text(width / 2, height - 0.35, "What the instruction loss sees: targets are the inputs shifted by one;\n"
            "prompt and padding targets are −100 (ignored)", ha="center", va="center", fontsize=13)
    for b, what in enumerate(("a sum", "a backwards spelling")):
        x0 = 1.0 + b * 4.3
        real = len(encoded[b].prompt) + len(encoded[b].answer) - 1  # positions holding a real input token
        counted = (targets[b] != IGNORE).sum().item()
        ax.text(x0 + cw, top + 0.55, f"row {b}, {what}: {counted} of {T} counted", ha="center", fontsize=11.5,
                fontweight="bold")
        ax.text(x0 + cw / 2, top + 0.18, "input", ha="center", fontsize=11)
        ax.text(x0 + 1.5 * cw, top + 0.18, "target", ha="center", fontsize=11)
        for t in range(T):
            y = top - (t + 1) * rh
            pad = t >= real
            kept = targets[b, t].item() != IGNORE
            kind = "pad" if pad else ("answer" if kept else "prompt")
            edge = "#bbbbbb" if pad else "#555555"
            ax.add_patch(Rectangle((x0, y), cw, rh, fc="#f7fbff" if not pad else "#ffffff", ec=edge,
                                   hatch="///" if pad else None, lw=0.8))
            ax.text(x0 + cw / 2, y + rh / 2, "pad" if pad else show(ids[b, t].item()), ha="center", va="center",
                    fontsize=10.5, color=GREY_TEXT if pad else "black", family="monospace")
            ax.add_patch(Rectangle((x0 + cw, y), cw, rh, fc=colours[kind], ec=edge, hatch="///" if pad else None,
                                   lw=0.8))
            ax.text(x0 + 1.5 * cw, y + rh / 2, show(targets[b, t].item()) if kept else "−100", ha="center",
                    va="center", fontsize=10.5, fontweight="bold" if kept else "normal",
                    color="black" if kept else GREY_TEXT, family="monospace")
            if b == 0:
                ax.text(x0 - 0.12, y + rh / 2, str(t), ha="right", va="center", fontsize=10, color=GREY_TEXT)
    ax.text(1.0 - 0.12, top + 0.18, "position", ha="right", fontsize=10, color=GREY_TEXT)
    ax.legend(handles=[Patch(fc=colours["prompt"], ec="#555555", label="prompt: −100, not in the loss"),
                       Patch(fc=ANSWER, ec="#555555", label="answer and <eot>: counted"),
                       Patch(fc="#ffffff", ec="#bbbbbb", hatch="///", label="padding: −100")],
              loc="lower center", bbox_to_anchor=(0.5, 0.0), ncol=3, fontsize=10.5, frameon=False)
    ax.text(width / 2, 0.62, "· marks a space, \\n a newline. The input \\n after \"### Response:\" has the "
            "answer's first token as its target, so it is kept.", ha="center", fontsize=10.5)
    save(fig, "instruction_mask.png")


class StoryCodec:
    """Enough of a Codec to count tokens as the notebook's model reads them: Chapter 4's story encoder."""

    def __init__(self):
        self.bpe = train_story_bpe()
        self.eot = self.bpe.vocab_size  # <|endoftext|>, the id after the encoder's last

    def encode(self, text: str) -> list[int]:
        return self.bpe.encode(text)


def chat_window():
    """What the model reads at the third turn of a chat: earlier turns in front, while they fit the context."""
    codec, tpl = StoryCodec(), TEMPLATES["compact"]
    context, budget = STORY_GPT.model.block_size, 8  # the notebook's model; 8 tokens kept for the answer
    turns = [("What is 3 plus 4?", "7"), ("What is 5 plus 1?", "6")]  # short answers, as a sum's are
    sizes = [len(tpl.encode(codec, q)[0]) + len(codec.encode(a)) + 1 for q, a in turns]  # + <|endoftext|>
    new = len(tpl.encode(codec, "What is 2 plus 2?")[0])
    room = context - budget - new
    kept = 0  # the newest turns that fit, as chat_prompt keeps them
    while kept < len(sizes) and sum(sizes[len(sizes) - kept - 1:]) <= room:
        kept += 1
    scale = 9.0 / context  # inches per token
    fig, ax = canvas(12.5, 3.4)
    ax.text(6.25, 3.15, f"A chat's prompt: earlier turns, each with its answer and <|endoftext|>, in front of the new "
            f"message,\nwhile they fit the {context}-token context minus {budget} tokens kept for the answer",
            ha="center", va="center", fontsize=13)
    x, y, h = 0.3, 1.6, 0.8
    start = x + sum(sizes[:len(sizes) - kept]) * scale  # where the context begins
    for i, ((question, _), n) in enumerate(zip(turns, sizes)):
        dropped = i < len(sizes) - kept
        box(ax, x, y, n * scale - 0.06, h, f"turn {i + 1}{' (dropped)' if dropped else ''}:\n\"{question}\" framed,"
            f"\nits answer, <eot>: {n} tokens", "#f6f6f6" if dropped else "#e3e3e3", 10)
        x += n * scale
    box(ax, x, y, new * scale - 0.06, h, f"new: \"What is 2 plus 2?\"\nframed: {new} tokens", PROMPT, 10)
    x += new * scale
    free = context - budget - new - sum(sizes[len(sizes) - kept:])
    if free > 0:
        ax.add_patch(Rectangle((x, y), free * scale - 0.06, h, fc="#ffffff", ec="#bbbbbb", ls="--"))
        ax.text(x + free * scale / 2, y + h / 2, f"{free}\nfree", ha="center", va="center", fontsize=10,
                color=GREY_TEXT)
        x += free * scale
    box(ax, x, y, budget * scale - 0.06, h, f"answer\n≤ {budget}", ANSWER, 10)
    ax.annotate("", (start, 1.3), (start + context * scale, 1.3),
                arrowprops={"arrowstyle": "<->", "color": "black", "lw": 1.2})
    ax.text(start + context * scale / 2, 1.15, f"the model's context: {context} tokens", ha="center", va="top",
            fontsize=11)
    ax.text(0.3, 0.45, "The oldest turn is dropped first when the turns no longer fit; a model tuned on single "
            "questions has never seen a prompt like this.", fontsize=11, va="center")
    save(fig, "chat_window.png")


if __name__ == "__main__":
    overview()
    head_swap()
    last_token()
    trainable_split()
    lora()
    prompt_template()
    instruction_mask()
    chat_window()
