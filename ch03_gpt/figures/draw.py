"""Draws Chapter 3's diagrams, one small function per picture: the chapter's overview, the feed-forward
layer's expand-and-project, the residual stream through a block, post-norm against pre-norm, the whole GPT
with its shapes, the gradient's path with and without shortcuts, top-k against top-p, and the KV cache.

Run once from the repository root: python ch03_gpt/figures/draw.py
It writes every PNG beside this file. The pictures are schematic: the numbers in the feed-forward
picture and the probabilities in the top-k/top-p picture are made up, and nothing in them comes from a
trained model.
"""

import math
from itertools import pairwise
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

HERE = Path(__file__).resolve().parent


def save(fig, name: str) -> None:
    """Write one figure beside this script, at the size the notebook shows it."""
    fig.savefig(HERE / name, dpi=110, bbox_inches="tight")
    plt.close(fig)
STREAM = "#4a6fa5"      # the residual stream
SUBLAYER = "#f2c14e"    # attention, feed-forward
NORM = "#9bc995"        # LayerNorm
EMBED = "#d7b9e8"       # embeddings and the head
GREY = "#dddddd"
GRADIENT = "tab:red"    # the gradient on its way down
DROPPED = "#eeeeee"     # what a filter throws away


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
    save(fig, "residual_block.png")


def gpt_shapes() -> None:
    """The whole model, bottom to top, with each tensor's shape."""
    fig, ax = plt.subplots(figsize=(11, 10))
    ax.set_xlim(-3.4, 10)
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
        box(ax, cx, y, 5.4, 0.7, f"block {i}: x + attn(ln_1(x)),\nthen x + mlp(ln_2(x))", SUBLAYER, fontsize=10)
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
    ax.text(-0.95, 7.0, "weight tying:\nlm_head.weight\nis wte.weight\n(one V × C\nmatrix)", color="tab:red",
            fontsize=10, va="center", ha="right")
    ax.text(cx, 12.4, "B: batch   T: context length (≤ block_size)   C: n_embd   V: vocabulary size   L: n_layer",
            ha="center", fontsize=10)
    ax.set_title("The GPT: embeddings, a stack of blocks on one residual stream, a final norm, a tied head",
                 fontsize=12)
    save(fig, "gpt_shapes.png")


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
            for name, x0 in (("K", 0.0), ("V", 5.0)):
                colour = "tab:orange" if new else ("#bfe3bf" if cached else "#f4b6b6")
                ax.add_patch(Rectangle((x0, y + 0.1), 4.6, 0.8, fc=colour, ec="black", lw=1))
                label = ("computed now" if new else ("from the cache" if cached else "recomputed"))
                ax.text(x0 + 2.3, y + 0.5, f"{name}[{t}] {label}", ha="center", va="center", fontsize=10)
        ax.text(2.3, T + 0.35, "keys (B, nh, t+1, hs)", ha="center", fontsize=10)
        ax.text(7.3, T + 0.35, "values (B, nh, t+1, hs)", ha="center", fontsize=10)
        if cached:
            ax.text(4.8, -0.9, "feed: only the new token (B, 1); its query attends to all t+1 keys,\n"
                    "then K[t] and V[t] are appended: the cache grows by one row per layer", ha="center",
                    fontsize=10)
            ax.set_title("with a KV cache: one token's worth of work per step", fontsize=12)
        else:
            ax.text(4.8, -0.9, "feed: the whole context (B, t+1); every key and value is computed\n"
                    "again, though only the last row is new", ha="center", fontsize=10)
            ax.set_title("without a cache: the whole context again each step", fontsize=12)
    fig.suptitle("Generating the token after position t = 5: causality means earlier keys and values never change",
                 fontsize=12)
    save(fig, "kv_cache.png")


def overview() -> None:
    """The chapter on one page: the data flow from ids to the next character, each piece tagged with the
    section that builds it, and the measurements below."""
    fig, ax = plt.subplots(figsize=(12.5, 4.4))
    ax.set_xlim(0, 25)
    ax.set_ylim(0.3, 8.7)
    ax.axis("off")
    y = 5.4
    ax.text(1.1, y, "token ids\n(B, T)\n\n'Once upon a'", ha="center", va="center", fontsize=10.5)
    arrow(ax, (2.2, y), (2.85, y))
    box(ax, 4.2, y, 2.6, 2.0, "embeddings\nwte + wpe\n(§5)", EMBED, fontsize=10.5)
    arrow(ax, (5.55, y), (6.25, y), STREAM, lw=3)
    # one block, drawn as its two residual updates; the dashed frame says it repeats
    ax.add_patch(Rectangle((6.3, 2.6), 10.0, 5.5, fc=GREY, ec="black", lw=1, ls="--"))
    ax.text(11.3, 7.65, "a block (§4), stacked n_layer times", ha="center", va="center", fontsize=11,
            fontweight="bold")
    box(ax, 11.3, 6.45, 8.6, 1.35, "x = x + attn(ln_1(x))\ntokens look back (Chapter 2's attention)", SUBLAYER,
        fontsize=10.5)
    arrow(ax, (11.3, 5.75), (11.3, 5.15))
    box(ax, 11.3, 4.45, 8.6, 1.35, "x = x + mlp(ln_2(x))\neach token computes alone (§3)", SUBLAYER,
        fontsize=10.5)
    ax.text(11.3, 3.15, "LayerNorm (§2) before each sublayer; x is the residual stream", ha="center",
            va="center", fontsize=10.5)
    arrow(ax, (16.35, y), (17.05, y), STREAM, lw=3)
    box(ax, 18.4, y, 2.6, 2.0, "ln_f, then\na head tied\nto wte (§5)", NORM, fontsize=10.5)
    arrow(ax, (19.75, y), (20.3, y))
    ax.text(21.1, y, "logits\n(B, T, V)", ha="center", va="center", fontsize=10.5)
    arrow(ax, (21.9, y), (22.4, y))
    box(ax, 23.75, y, 2.5, 2.6, "next\ncharacter:\ntop-k, top-p\n(§12),\nKV cache\n(§13)", "#cdebc6",
        fontsize=10.5)
    ax.text(12.5, 1.2, "Trained with AdamW, warm-up and cosine decay (§10). Measured along the way: the ablation (§6), "
            "gradients with and\nwithout shortcuts (§7), parameters and FLOPs (§8), GPT-2's initialisation (§9), "
            "the long-range checker on the stories (§11)", ha="center", va="center", fontsize=10.5)
    ax.set_title("What this chapter builds: Chapter 2's attention inside a block, blocks stacked into GPT",
                 fontsize=12.5)
    save(fig, "overview.png")


def mlp_expand() -> None:
    """One token through the feed-forward layer: 4 numbers widened to 16, bent by GELU, projected back to 4.
    The input, the first layer's outputs and the final outputs are made up; the GELU column is computed."""
    x_t = [0.5, -1.0, 0.8, 0.2]
    h = [1.2, -0.8, 0.3, -2.1, 0.9, -0.1, 2.0, -1.3, 0.5, -0.4, 1.6, -2.5, 0.1, 0.7, -0.9, 1.1]
    g = [0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in h]      # GELU, as in the notebook
    out = [0.3, -0.6, 1.1, 0.4]
    fig, ax = plt.subplots(figsize=(11, 6.2))
    ax.set_xlim(0, 11)
    ax.set_ylim(-0.9, 5.6)
    ax.axis("off")
    cmap = plt.get_cmap("RdBu_r")
    cell_h, cell_w = 0.27, 0.75

    def column(x, values, label):
        top = 2.3 + len(values) * cell_h / 2           # centred on y = 2.3
        for i, v in enumerate(values):
            colour = cmap(0.5 + max(-0.3, min(0.3, v / 7)))  # pale: the numbers must stay readable
            ax.add_patch(Rectangle((x - cell_w / 2, top - (i + 1) * cell_h), cell_w, cell_h, fc=colour,
                                   ec="black", lw=0.8))
            ax.text(x, top - (i + 0.5) * cell_h, f"{v:.2f}", ha="center", va="center", fontsize=10)
        ax.text(x, top + 0.3, label, ha="center", va="bottom", fontsize=10.5)

    cols = (1.0, 4.0, 7.0, 10.0)
    column(cols[0], x_t, "x_t\n(C = 4)")
    column(cols[1], h, "c_fc(x_t)\n(4C = 16)")
    column(cols[2], g, "GELU(c_fc(x_t))\n(4C = 16)")
    column(cols[3], out, "output\n(C = 4)")
    labels = ("c_fc: a C × 4C\nmatrix, + bias", "GELU, number\nby number", "c_proj: a 4C × C\nmatrix, + bias")
    for (a, b), text in zip(pairwise(cols), labels):
        arrow(ax, (a + 0.55, 2.3), (b - 0.55, 2.3), lw=2)
        ax.text((a + b) / 2, 2.55, text, ha="center", va="bottom", fontsize=10.5)
    ax.text(5.5, -0.55, "The same two matrices at every position: (B, T, C) → (B, T, 4C) → (B, T, C). "
            "No position reads another here;\nthat is attention's job. GELU squashes negative numbers towards 0 "
            "and keeps positive ones: without it, the two matrices would act as one.", ha="center", va="center",
            fontsize=10.5)
    ax.set_title("The feed-forward layer on one token: widen C → 4C, bend with GELU, project back 4C → C",
                 fontsize=12)
    save(fig, "mlp_expand.png")


def pre_post_norm() -> None:
    """The same sublayer f wrapped two ways: LayerNorm on the stream after the addition (post-norm), or on
    the branch before f (pre-norm)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 6.2))
    sx, bx = 2.0, 5.6      # the stream's x, the branch's x
    for ax, pre in zip(axes, (False, True)):
        ax.set_xlim(-0.6, 8.6)
        ax.set_ylim(-1.6, 8.2)
        ax.axis("off")
        ax.text(sx, -0.1, "x from below", ha="center", fontsize=10.5)
        ax.text(sx, 7.85, "x to the next sublayer", ha="center", fontsize=10.5)
        arrow(ax, (sx, 0.3), (sx, 3.78), STREAM, lw=5, mutation=1, style="-")
        plus(ax, sx, 4.0)
        if pre:
            arrow(ax, (sx, 4.22), (sx, 7.5), STREAM, lw=5, mutation=20)
            arrow(ax, (sx, 1.0), (bx - 1.3, 1.0))
            box(ax, bx, 1.0, 2.6, 0.7, "LayerNorm", NORM, fontsize=10.5)
            arrow(ax, (bx, 1.35), (bx, 2.05))
        else:
            arrow(ax, (sx, 4.22), (sx, 5.25), STREAM, lw=5, mutation=1, style="-")
            box(ax, sx, 5.6, 2.6, 0.7, "LayerNorm", NORM, fontsize=10.5)
            arrow(ax, (sx, 5.95), (sx, 7.5), STREAM, lw=5, mutation=20)
            arrow(ax, (sx, 1.0), (bx, 1.0), mutation=1, style="-")    # the branch leaves the stream un-normalised
            arrow(ax, (bx, 0.99), (bx, 2.05))
        box(ax, bx, 2.6, 3.0, 1.1, "f: attention or\nfeed-forward", SUBLAYER, fontsize=10.5)
        arrow(ax, (bx, 3.15), (sx + 0.25, 4.0), connection="arc3,rad=0.25")
        formula = "x = x + f(LayerNorm(x))" if pre else "x = LayerNorm(x + f(x))"
        ax.text(4.0, -0.85, formula, ha="center", fontsize=12, family="monospace")
        note = ("the stream is never normalised inside the\nblocks; one final ln_f sits before the head" if pre
                else "the stream itself passes through a\nLayerNorm after every sublayer")
        ax.text(sx + 0.5, 6.6, note, ha="left", va="center", fontsize=10.5, color=STREAM)
        ax.set_title("pre-norm: GPT-2, and this chapter" if pre else "post-norm: the original Transformer (2017)",
                     fontsize=12)
    fig.suptitle("Where the LayerNorm sits: on the stream after the addition, or on the branch before f",
                 fontsize=12.5)
    save(fig, "pre_post_norm.png")


def residual_gradient() -> None:
    """Four layers without and with shortcuts; the red arrows are the gradient going down, their width its
    size (schematic: no measured numbers)."""
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 7))
    levels = [1.5, 3.0, 4.5, 6.0]          # the four layers' heights
    for ax, shortcut in zip(axes, (False, True)):
        ax.set_xlim(-0.8, 9.2)
        ax.set_ylim(-1.6, 8.3)
        ax.axis("off")
        ax.text(2.2, 0.0, "input", ha="center", fontsize=10.5)
        box(ax, 2.2, 7.6, 2.0, 0.6, "loss", "#f4b6b6", fontsize=10.5)
        if not shortcut:
            # the forward pass goes through every layer; so does the gradient, multiplied at each
            for i, y in enumerate(levels):
                box(ax, 2.2, y, 2.4, 0.8, f"layer {i + 1}: f{i + 1}", SUBLAYER, fontsize=10.5)
            for lo, hi in zip([0.3] + [y + 0.4 for y in levels], [y - 0.4 for y in levels] + [7.3]):
                arrow(ax, (1.6, lo), (1.6, hi))
            widths = [7, 4.2, 2.5, 1.4, 0.7]      # the gradient shrinks at every layer it crosses
            for k, (hi, lo) in enumerate(zip([7.3] + [y - 0.4 for y in levels[::-1]],
                                             [y + 0.4 for y in levels[::-1]] + [0.35])):
                arrow(ax, (2.9, hi), (2.9, lo), GRADIENT, lw=widths[k], mutation=12 + 2 * widths[k])
            for i, y in enumerate(levels):
                ax.text(3.7, y, f"× ∂f{i + 1}/∂x", ha="left", va="center", fontsize=10.5, color=GRADIENT)
            ax.text(4.0, -0.95, "what reaches layer 1 is a product of four Jacobians:\nfactors below 1 shrink it "
                    "geometrically (it vanishes)", ha="center", va="center", fontsize=10.5)
            ax.set_title("x = f(x): no shortcuts", fontsize=12)
        else:
            sx, bx = 2.2, 5.8
            arrow(ax, (sx, 0.35), (sx, 7.3), STREAM, lw=5, mutation=20)
            for i, y in enumerate(levels):
                box(ax, bx, y - 0.35, 2.4, 0.8, f"layer {i + 1}: f{i + 1}", SUBLAYER, fontsize=10.5)
                arrow(ax, (sx, y - 1.0), (bx - 1.2, y - 0.35))
                arrow(ax, (bx - 1.2, y - 0.1), (sx + 0.25, y + 0.25), connection="arc3,rad=0.2")
                plus(ax, sx, y + 0.25)
                arrow(ax, (bx + 1.35, y + 0.15), (bx + 1.35, y - 0.85), GRADIENT, lw=1.5, mutation=12)
            arrow(ax, (1.4, 7.3), (1.4, 0.35), GRADIENT, lw=7, mutation=26)
            ax.text(1.1, 3.9, "× 1 at\nevery +", ha="right", va="center", fontsize=10.5, color=GRADIENT)
            ax.text(bx + 1.55, 6.55, "+ ∂f/∂x\nthrough\neach branch", ha="left", va="center", fontsize=10.5,
                    color=GRADIENT)
            ax.text(4.0, -0.95, "d(x + f(x))/dx = I + ∂f/∂x: a copy of the gradient\nreaches every layer "
                    "whatever the branches do", ha="center", va="center", fontsize=10.5)
            ax.set_title("x = x + f(x): shortcuts, the residual stream", fontsize=12)
    fig.suptitle("The gradient (red) on its way down from the loss; arrow width shows its size (schematic)",
                 fontsize=12.5)
    save(fig, "residual_gradient.png")


def top_k_top_p() -> None:
    """Two made-up next-character distributions, sorted, and which characters each filter keeps: top-k keeps
    k whatever the shape, top-p keeps as many as it takes to cover p."""
    chars = ["o", "a", "e", "r", "i", "u", "l", "y"]
    unsure = [0.40, 0.22, 0.15, 0.09, 0.06, 0.04, 0.03, 0.01]
    sure = [0.93, 0.03, 0.02, 0.01, 0.005, 0.003, 0.001, 0.001]
    fig, axes = plt.subplots(2, 2, figsize=(12, 7.2), sharey=True)
    for row, (probs, mood) in enumerate(((unsure, "an unsure model"), (sure, "a sure model"))):
        running = [sum(probs[:i + 1]) for i in range(len(probs))]
        for col, (name, k) in enumerate((("top-k, k = 3", None), ("top-p, p = 0.9", 0.9))):
            ax = axes[row, col]
            if k is None:
                kept = [i < 3 for i in range(len(probs))]
            else:   # keep a token while the mass of those ranked above it is still below p
                kept = [running[i] - probs[i] < k for i in range(len(probs))]
            colours = ["tab:blue" if keep else DROPPED for keep in kept]
            ax.bar(range(len(probs)), probs, color=colours, edgecolor="black", lw=0.8,
                   hatch=[None if keep else "//" for keep in kept])
            for i, p in enumerate(probs):
                ax.text(i, p + 0.02, f"{p:.2f}" if p >= 0.01 else f"{p:.3f}",
                        ha="center", va="bottom", fontsize=10)
            if k is not None:
                ax.text(-0.6, 1.29, "running sum, likeliest first:", ha="left", va="center", fontsize=10,
                        color="dimgray")
                for i, r in enumerate(running):
                    ax.text(i, 1.17, f"{r:.2f}", ha="center", va="center", fontsize=10, color="dimgray")
            ax.set_xticks(range(len(probs)), chars, fontsize=11)
            ax.set_ylim(0, 1.36)
            ax.set_yticks([0, 0.5, 1.0])
            ax.set_title(f"{mood}, {name}: keeps {sum(kept)}", fontsize=11.5)
            if col == 0:
                ax.set_ylabel("probability", fontsize=10.5)
            if row == 1:
                ax.set_xlabel("next character, likeliest first", fontsize=10.5)
    fig.suptitle("Top-k keeps a fixed number of characters; top-p keeps the fewest whose probabilities reach p "
                 "(blue: kept, hatched: dropped)", fontsize=12)
    fig.tight_layout()
    save(fig, "top_k_top_p.png")


if __name__ == "__main__":
    overview()
    mlp_expand()
    residual_block()
    pre_post_norm()
    gpt_shapes()
    residual_gradient()
    top_k_top_p()
    kv_cache()
    print("wrote", ", ".join(p.name for p in sorted(HERE.glob("*.png"))))
