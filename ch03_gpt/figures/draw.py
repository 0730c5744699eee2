"""Draws Chapter 3's diagrams: the residual stream through a block, the whole GPT with its shapes,
and the KV cache during generation.

Run once from the repository root: python ch03_gpt/figures/draw.py
It writes residual_block.png, gpt_shapes.png and kv_cache.png beside this file. The pictures are
schematic: no numbers in them come from a trained model.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

HERE = Path(__file__).resolve().parent
STREAM = "#4a6fa5"      # the residual stream
SUBLAYER = "#f2c14e"    # attention, feed-forward
NORM = "#9bc995"        # LayerNorm
EMBED = "#d7b9e8"       # embeddings and the head
GREY = "#dddddd"


def box(ax, x, y, w, h, text, colour, fontsize=11, weight="normal"):
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                fc=colour, ec="black", lw=1.2))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, fontweight=weight)


def arrow(ax, start, end, colour="black", lw=1.5, style="-|>", connection="arc3", mutation=14):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, color=colour, lw=lw,
                                 connectionstyle=connection, mutation_scale=mutation))


def plus(ax, x, y):
    ax.add_patch(plt.Circle((x, y), 0.22, fc="white", ec=STREAM, lw=2.5, zorder=5))
    ax.text(x, y, "+", ha="center", va="center", fontsize=16, fontweight="bold", color=STREAM, zorder=6)


def residual_block() -> None:
    """One pre-LN block: the stream goes straight up; each sublayer reads a normalised copy and adds back."""
    fig, ax = plt.subplots(figsize=(8.5, 8))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 11)
    ax.axis("off")
    sx = 2.6  # the stream's x
    ax.text(sx, 0.35, "x  (B, T, C) from the block below", ha="center", fontsize=11)
    ax.text(sx, 10.65, "x  (B, T, C) to the next block", ha="center", fontsize=11)
    # the stream itself: a thick line with two additions on it
    arrow(ax, (sx, 0.7), (sx, 3.78), STREAM, lw=5, mutation=1, style="-")
    plus(ax, sx, 4.0)
    arrow(ax, (sx, 4.22), (sx, 7.78), STREAM, lw=5, mutation=1, style="-")
    plus(ax, sx, 8.0)
    arrow(ax, (sx, 8.22), (sx, 10.3), STREAM, lw=5, mutation=20)
    ax.text(sx - 0.35, 2.0, "residual stream:\ncarried through\nunchanged", ha="right", va="center", fontsize=10,
            color=STREAM)
    # first branch: LayerNorm -> attention -> add
    bx = 6.3
    for y0, norm, sub, note, add_y in ((1.4, "ln_1: LayerNorm", ("attn: causal self-attention\n(tokens talk to each "
                                         "other)"), "x = x + attn(ln_1(x))", 4.0),
                                       (5.4, "ln_2: LayerNorm", ("mlp: feed-forward, C → 4C → C\n(each token "
                                         "computes alone)"), "x = x + mlp(ln_2(x))", 8.0)):
        arrow(ax, (sx, y0), (bx - 1.6, y0), "black", connection="arc3")
        box(ax, bx, y0, 3.2, 0.7, norm, NORM)
        arrow(ax, (bx, y0 + 0.35), (bx, y0 + 0.95))
        box(ax, bx, y0 + 1.5, 3.6, 1.1, sub, SUBLAYER, fontsize=10)
        arrow(ax, (bx, y0 + 2.05), (sx + 0.25, add_y), "black", connection="arc3,rad=0.25")
        ax.text(bx + 0.3, add_y + 0.05, note, ha="left", va="center", fontsize=11, family="monospace")
    ax.set_title("A pre-LayerNorm transformer block (GPT-2's): two branches read the stream and add to it",
                 fontsize=12)
    fig.savefig(HERE / "residual_block.png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def gpt_shapes() -> None:
    """The whole model, bottom to top, with each tensor's shape."""
    fig, ax = plt.subplots(figsize=(9.5, 10))
    ax.set_xlim(-1.6, 10)
    ax.set_ylim(0, 13.2)
    ax.axis("off")
    cx = 4.0
    ax.text(cx - 1.2, 0.3, "idx: token ids (B, T)", ha="center", fontsize=10.5, family="monospace")
    arrow(ax, (cx - 1.2, 0.6), (cx - 1.2, 1.25))
    box(ax, cx - 1.2, 1.6, 3.0, 0.7, "wte: token embedding\n(V, C)", EMBED, fontsize=10)
    ax.text(cx + 2.4, 0.3, "positions 0..T-1 (T,)", ha="center", fontsize=10.5, family="monospace")
    arrow(ax, (cx + 2.4, 0.6), (cx + 2.4, 1.25))
    box(ax, cx + 2.4, 1.6, 3.2, 0.7, "wpe: position embedding\n(block_size, C)", EMBED, fontsize=10)
    plus(ax, cx, 2.7)
    arrow(ax, (cx - 1.2, 1.95), (cx - 0.2, 2.55))
    arrow(ax, (cx + 2.4, 1.95), (cx + 0.2, 2.55))
    ax.text(cx + 0.4, 3.2, "(B, T, C)  +  (T, C)  →  (B, T, C)   (broadcast over the batch)", fontsize=10,
            family="monospace", va="center")
    arrow(ax, (cx, 2.92), (cx, 3.8), STREAM, lw=3)
    # the stack of blocks
    ax.add_patch(Rectangle((cx - 2.9, 3.85), 5.8, 4.6, fc=GREY, ec="black", lw=1, ls="--"))
    ys = [4.4, 5.3, 7.8]
    for i, y in zip(("h[0]", "h[1]", "h[L-1]"), ys):
        box(ax, cx, y, 5.4, 0.7, f"block {i}: x + attn(ln_1(x)), then x + mlp(ln_2(x))", SUBLAYER, fontsize=8.5)
    ax.text(cx, 6.55, "⋮", ha="center", va="center", fontsize=22)
    ax.text(cx + 3.05, 6.1, "n_layer blocks;\neach keeps the shape\n(B, T, C)", fontsize=10, va="center")
    arrow(ax, (cx, 8.5), (cx, 9.0), STREAM, lw=3)
    box(ax, cx, 9.35, 3.0, 0.7, "ln_f: final LayerNorm", NORM, fontsize=10)
    arrow(ax, (cx, 9.7), (cx, 10.2), STREAM, lw=3)
    box(ax, cx, 10.55, 3.0, 0.7, "lm_head: (C → V)", EMBED, fontsize=10)
    ax.text(cx, 11.4, "logits  (B, T, V)   → softmax → next-token probabilities", ha="center", fontsize=11,
            family="monospace")
    arrow(ax, (cx, 10.9), (cx, 11.2))
    # weight tying
    arrow(ax, (cx - 2.75, 1.6), (cx - 1.55, 10.55), "tab:red", lw=1.8, style="<|-|>",
          connection="arc3,rad=-0.35")
    ax.text(-1.6, 7.0, "weight tying:\nlm_head.weight\nis wte.weight\n(one V × C matrix)", color="tab:red",
            fontsize=10, va="center")
    ax.text(cx, 12.4, "B: batch   T: context length (≤ block_size)   C: n_embd   V: vocabulary size   L: n_layer", ha="center",
            fontsize=10)
    ax.set_title("The GPT: embeddings, a stack of blocks on one residual stream, a final norm, a tied head",
                 fontsize=12)
    fig.savefig(HERE / "gpt_shapes.png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def kv_cache() -> None:
    """Generation step t: one new query against cached keys and values, one new row appended to each."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [1, 1]})
    T = 6
    for ax, cached in zip(axes, (False, True)):
        ax.set_xlim(-1.6, 10.6)
        ax.set_ylim(-2.2, T + 1.6)
        ax.axis("off")
        ax.set_aspect("equal")
        tokens = ["O", "n", "c", "e", " ", "u"]
        for t, ch in enumerate(tokens):
            y = T - 1 - t
            new = t == T - 1
            ax.text(-1.0, y + 0.5, repr(ch), ha="center", va="center", fontsize=11, family="monospace",
                    fontweight="bold" if new else "normal")
            # a row of K and a row of V per position
            for col, (name, x0) in enumerate((("K", 0.0), ("V", 5.0))):
                colour = "tab:orange" if new else ("#bfe3bf" if cached else "#f4b6b6")
                ax.add_patch(Rectangle((x0, y + 0.1), 4.6, 0.8, fc=colour, ec="black", lw=1))
                label = ("computed now" if new else ("from the cache" if cached else "recomputed"))
                ax.text(x0 + 2.3, y + 0.5, f"{name}[{t}]  {label}", ha="center", va="center", fontsize=9)
        ax.text(2.3, T + 0.35, "keys (B, nh, t+1, hs)", ha="center", fontsize=10)
        ax.text(7.3, T + 0.35, "values (B, nh, t+1, hs)", ha="center", fontsize=10)
        if cached:
            ax.text(4.8, -0.9, "feed: only the new token (B, 1); its query attends to all t+1 keys,\n"
                    "then K[t] and V[t] are appended: the cache grows by one row per layer", ha="center",
                    fontsize=9.5)
            ax.set_title("with a KV cache: one token's worth of work per step", fontsize=12)
        else:
            ax.text(4.8, -0.9, "feed: the whole context (B, t+1); every key and value is computed\n"
                    "again, though only the last row is new", ha="center", fontsize=9.5)
            ax.set_title("without a cache: the whole context again each step", fontsize=12)
    fig.suptitle("Generating the token after position t = 5: causality means earlier keys and values never change",
                 fontsize=12)
    fig.savefig(HERE / "kv_cache.png", dpi=110, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    residual_block()
    gpt_shapes()
    kv_cache()
    print("wrote", ", ".join(p.name for p in sorted(HERE.glob("*.png"))))
