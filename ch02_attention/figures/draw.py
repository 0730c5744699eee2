"""Draws Chapter 2's diagrams, one function per figure:

model_overview.png, averaging_matrix.png, qkv_scores.png, causal_mask.png, encoder_decoder.png,
positions_bag.png, heads_split_merge.png and training_loop.png.

Run once from the repository root: python ch02_attention/figures/draw.py
The numbers are random or made up, for illustration only; the shapes are the point.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

HERE = Path(__file__).parent
HEAD_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]


def save(fig, name):
    out = HERE / name
    fig.savefig(out, dpi=110)
    plt.close(fig)
    print("wrote", out)


def inch_canvas(width, height):
    """A figure whose one axes is measured in inches, so boxes and grids can be placed by hand."""
    fig, ax = plt.subplots(figsize=(width, height))
    fig.subplots_adjust(0, 0, 1, 1)
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


def box(ax, x, y, w, h, text, colour="#dbe9f6", fontsize=11):
    """A rounded box with centred text; (x, y) is its lower-left corner."""
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0,rounding_size=0.12", facecolor=colour,
                                edgecolor="0.3", lw=1.2))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize)


def link(ax, start, end, text=None, offset=(0, 0.12), fontsize=10, style="-|>", **kw):
    """An arrow from `start` to `end`, with an optional label near its middle."""
    ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": style, "lw": 1.6, "color": "0.2",
                                                      "shrinkA": 0, "shrinkB": 0, **kw})
    if text:
        ax.text((start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1], text, ha="center",
                va="bottom", fontsize=fontsize)


def grid(ax, x0, y_top, values, cell=0.5, fill=None, text=None, fontsize=11, edge="0.4"):
    """A small matrix drawn cell by cell from its top-left corner: `fill(i, j)` a colour, `text(i, j)` a label."""
    rows, cols = len(values), len(values[0])
    for i in range(rows):
        for j in range(cols):
            colour = fill(i, j) if fill else "white"
            ax.add_patch(Rectangle((x0 + j * cell, y_top - (i + 1) * cell), cell, cell, facecolor=colour,
                                   edgecolor=edge, lw=1))
            label = text(i, j) if text else str(values[i][j])
            ax.text(x0 + (j + 0.5) * cell, y_top - (i + 0.5) * cell, label, ha="center", va="center",
                    fontsize=fontsize)
    return x0 + cols * cell, y_top - rows * cell   # the right and bottom edges


def softmax_rows(s):
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def show_matrix(ax, m, title, cmap="coolwarm", vmin=-2.5, vmax=2.5, text=None):
    """A matrix as coloured cells, one cell per entry, so its shape is what the reader sees."""
    rows, cols = m.shape
    ax.imshow(np.ma.masked_invalid(m), cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_xticks(np.arange(cols + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(rows + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=1.2)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    ax.set_title(title, fontsize=11)
    if text is not None:
        for i in range(rows):
            for j in range(cols):
                ax.text(j, i, text(i, j), ha="center", va="center", fontsize=10,
                        color="white" if cmap == "viridis" and m[i, j] < 0.5 else "black")


# --------------------------------------------------------------------------- #
# 1. One head: x -> Q, K, V -> scores -> weights -> output
# --------------------------------------------------------------------------- #

def draw_qkv():
    T, C, hs = 6, 8, 4
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (T, C))
    q, k, v = (x @ rng.normal(0, 1 / np.sqrt(C), (C, hs)) for _ in range(3))
    scores = q @ k.T / np.sqrt(hs)
    future = np.triu(np.ones((T, T), dtype=bool), k=1)
    weights = softmax_rows(np.where(future, -np.inf, scores))
    out = weights @ v

    fig = plt.figure(figsize=(13, 6.6))
    grid = fig.add_gridspec(2, 9, width_ratios=[C, 4.5, hs, 1.2, hs, 1.2, hs, 1.2, 3], height_ratios=[1, 1.25],
                            hspace=0.45, wspace=0.05, top=0.84, bottom=0.04)
    top = [fig.add_subplot(grid[0, i]) for i in (0, 2, 4, 6)]
    show_matrix(top[0], x, f"x: (T, C) = ({T}, {C})\none row per position")
    for ax, m, name in zip(top[1:], (q, k, v), ("Q = x Wq", "K = x Wk", "V = x Wv")):
        show_matrix(ax, m, f"{name}\n(T, hs) = ({T}, {hs})")
    ax = fig.add_subplot(grid[0, 1])
    ax.axis("off")
    ax.annotate("", xy=(0.92, 0.5), xytext=(0.08, 0.5), xycoords="axes fraction",
                arrowprops={"arrowstyle": "->", "lw": 2})
    ax.text(0.5, 0.58, "three Linear layers\nWq, Wk, Wv: (C, hs)\nno bias", ha="center", va="bottom", fontsize=10,
            transform=ax.transAxes)

    bottom = fig.add_gridspec(2, 11, width_ratios=[hs, 0.8, T, 0.9, T, 0.9, T, 0.9, hs, 0.8, hs],
                              height_ratios=[1, 1.25], hspace=0.45, wspace=0.05, top=0.84, bottom=0.04)
    axes = [fig.add_subplot(bottom[1, i]) for i in (0, 2, 4, 6, 8, 10)]
    show_matrix(axes[0], q, f"Q\n({T}, {hs})")
    show_matrix(axes[1], k.T, f"Kᵀ\n({hs}, {T})")
    axes[1].set_aspect("equal")
    show_matrix(axes[2], scores, f"scores = Q Kᵀ / √hs\n(T, T) = ({T}, {T})")
    show_matrix(axes[3], weights, "weights = softmax(masked)\nrows sum to 1", cmap="viridis", vmin=0, vmax=1,
                text=lambda i, j: "" if j > i else f"{weights[i, j]:.2f}".lstrip("0").replace("1.00", "1"))
    show_matrix(axes[4], v, f"V\n({T}, {hs})")
    show_matrix(axes[5], out, f"out = weights V\n(T, hs) = ({T}, {hs})")
    for ax in axes[3:4]:
        for i in range(T):
            for j in range(i + 1, T):
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, color="0.85"))
    for i, symbol in zip((1, 3, 5, 7, 9), ("@", "→", "→", "@", "=")):
        ax = fig.add_subplot(bottom[1, i])
        ax.axis("off")
        ax.text(0.5, 0.5, symbol, ha="center", va="center", fontsize=22)
    fig.text(0.5, 0.47, "row t of the scores: how well query t matches every key;\nthe grey cells are the future, "
             "masked to −∞ before the softmax, so their weight is 0", ha="center", fontsize=11)
    fig.suptitle("One head of attention: every position makes a query, a key and a value\n"
                 "(T = 6 positions, C = 8 channels, head size hs = 4)", fontsize=13)
    save(fig, "qkv_scores.png")


# --------------------------------------------------------------------------- #
# 2. The causal mask, and attention as a directed graph
# --------------------------------------------------------------------------- #

def draw_mask():
    chars = list("Mia h")
    labels = [c if c != " " else "␣" for c in chars]
    T = len(chars)
    scores = np.array([[0.8, -0.3, 1.1, 0.2, -0.5],
                       [0.1, 1.2, -0.7, 0.9, 0.3],
                       [-0.4, 0.6, 0.5, -1.0, 1.4],
                       [1.0, -0.2, 0.3, 0.4, 0.1],
                       [0.2, 0.9, -0.6, 1.3, 0.5]])
    allowed = np.tril(np.ones((T, T), dtype=bool))
    weights = softmax_rows(np.where(allowed, scores, -np.inf))

    fig, axes = plt.subplots(1, 4, figsize=(13, 4.9), gridspec_kw={"width_ratios": [1, 1, 1, 1.25]})
    panels = [
        (allowed.astype(float), "1. the mask: tril(ones(T, T))\n1 = may look, 0 = the future", "Greys", 0, 2.5,
         lambda i, j: str(int(allowed[i, j]))),
        (np.where(allowed, scores, np.nan), "2. scores.masked_fill(\nmask == 0, −∞)", "coolwarm", -1.5, 1.5,
         lambda i, j: f"{scores[i, j]:.1f}" if allowed[i, j] else "−∞"),
        (weights, "3. softmax over each row\nrows sum to 1, the future gets 0", "viridis", 0, 1,
         lambda i, j: f"{weights[i, j]:.2f}"),
    ]
    for ax, (m, title, cmap, lo, hi, text) in zip(axes, panels):
        ax.imshow(np.ma.masked_invalid(m), cmap=cmap, vmin=lo, vmax=hi)
        for i in range(T):
            for j in range(T):
                colour = "white" if (cmap == "viridis" and m[i, j] < 0.5) else "black"
                ax.text(j, i, text(i, j), ha="center", va="center", fontsize=11, color=colour)
        ax.set_xticks(range(T), [f"{j}\n{labels[j]}" for j in range(T)], fontsize=10)
        ax.set_yticks(range(T), [f"{labels[i]} {i}" for i in range(T)], fontsize=10)
        ax.set_xlabel("key: position looked at", fontsize=10)
        if ax is axes[0]:  # the three grids share their rows; one label is enough
            ax.set_ylabel("query: position looking", fontsize=10)
        ax.set_title(title, fontsize=11)

    ax = axes[3]
    xs = np.arange(T) * 1.0
    for s in range(T):
        for t in range(s + 1, T):
            rad = -0.25 - 0.12 * (t - s)
            ax.add_patch(FancyArrowPatch((xs[s], 0), (xs[t], 0), connectionstyle=f"arc3,rad={rad}",
                                         arrowstyle="-|>", mutation_scale=12, lw=1.0, color="0.35",
                                         shrinkA=14, shrinkB=14))
    for t in range(T):
        ax.add_patch(plt.Circle((xs[t], 0), 0.28, color="tab:blue", zorder=3))
        ax.text(xs[t], 0, labels[t], ha="center", va="center", color="white", fontsize=13, zorder=4)
        ax.text(xs[t], -0.5, f"{t}", ha="center", va="center", fontsize=10)
    ax.set_xlim(-0.6, T - 0.4)
    ax.set_ylim(-0.8, 2.1)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("4. as a directed graph: an edge s → t\nfor every s < t (each node\nalso reads itself)",
                 fontsize=11)
    fig.suptitle("The causal mask: each position may look at itself and the positions before it, never after",
                 fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.94), w_pad=1.5)
    save(fig, "causal_mask.png")


# --------------------------------------------------------------------------- #
# 3. Multi-head attention: split the channels into heads, attend, merge back
# --------------------------------------------------------------------------- #

def draw_heads():
    T, nh, hs = 5, 4, 2
    C = nh * hs
    fig, ax = plt.subplots(figsize=(13, 5.4))
    ax.set_xlim(0, 52)
    ax.set_ylim(-2.6, 13.2)
    ax.set_aspect("equal")
    ax.axis("off")

    def block(x0, y0, colours, rows, label):
        for c, colour in enumerate(colours):
            for r in range(rows):
                ax.add_patch(Rectangle((x0 + c, y0 + r), 1, 1, facecolor=colour, alpha=0.85, edgecolor="white",
                                       lw=1.2))
        ax.text(x0 + len(colours) / 2, y0 - 0.4, label, ha="center", va="top", fontsize=10)

    def arrow(x0, x1, y, text):
        ax.annotate("", xy=(x1, y), xytext=(x0, y), arrowprops={"arrowstyle": "->", "lw": 1.8})
        ax.text((x0 + x1) / 2, y - 0.5, text, ha="center", va="top", fontsize=10)

    y = 3.5
    per_channel = [HEAD_COLOURS[c // hs] for c in range(C)]
    block(0.5, y, ["0.6"] * C, T, f"q, k or v: (B, T, C)\n= (B, {T}, {C})")
    arrow(9.3, 13.7, y + T - 0.5, "head h owns\nchannels\nh·hs to\n(h+1)·hs − 1")
    block(14.5, y, per_channel, T, "the same tensor,\ncoloured by head")
    arrow(23.3, 28.7, y + T - 0.5, ".view(B, T, nh, hs)\n.transpose(1, 2)")
    for h in range(nh):
        x0, y0 = 29.5 + (h % 2) * 4, 7.2 - (h // 2) * 7.2
        block(x0, y0, [HEAD_COLOURS[h]] * hs, T, f"head {h}")
    ax.text(32.5, -1.5, f"(B, nh, T, hs) = (B, {nh}, {T}, {hs})", ha="center", va="top", fontsize=10)
    arrow(37.3, 42.7, y + T - 0.5, "attention in\nevery head at once;\n.transpose(1, 2)\n.view(B, T, C)")
    block(43.5, y, per_channel, T, "heads side by side (B, T, C),\nthen c_proj: C → C")
    ax.set_title(f"Multi-head attention as one batched tensor: C = {C} channels split into nh = {nh} heads\n"
                 f"of hs = {hs} channels, attended in parallel, merged back", fontsize=13)
    fig.tight_layout()
    save(fig, "heads_split_merge.png")


# --------------------------------------------------------------------------- #
# 0. The opening picture: the whole model this chapter builds
# --------------------------------------------------------------------------- #

def draw_overview():
    fig, ax = inch_canvas(13, 5.4)
    ax.text(6.5, 5.1, "What this chapter builds: a character language model with one layer of self-attention",
            ha="center", va="center", fontsize=13)
    mid = 3.15                                                 # the height of the main row of boxes
    box(ax, 0.2, mid - 0.65, 1.8, 1.3, "input text\n'Mia had'\nids: (B, T)")
    box(ax, 2.6, mid + 0.35, 2.4, 1.1, "token embedding\n(V, C) = (51, 64)\nwhat each character is")
    box(ax, 2.6, mid - 1.75, 2.4, 1.1, "position embedding\n(64, C) = (64, 64)\nwhere it stands")
    link(ax, (2.0, mid + 0.25), (2.6, mid + 0.9))
    link(ax, (2.0, mid - 0.25), (2.6, mid - 1.2))
    ax.text(1.1, mid - 0.85, "positions\n0 … T−1", ha="center", va="top", fontsize=10)
    # the two embeddings are added, position by position, before attention reads them
    ax.add_patch(plt.Circle((5.65, mid), 0.25, facecolor="white", edgecolor="0.3", lw=1.2))
    ax.text(5.65, mid, "+", ha="center", va="center", fontsize=16)
    link(ax, (5.0, mid + 0.9), (5.5, mid + 0.2))
    link(ax, (5.0, mid - 1.2), (5.5, mid - 0.2))
    link(ax, (5.9, mid), (6.7, mid), "(B, T, C)", offset=(0, 0.12))
    # the new part, in orange: every position mixes in what it finds in its past
    box(ax, 6.7, mid - 0.75, 2.6, 1.5,
        "CausalSelfAttention\n8 heads of 8 channels:\neach position reads\nitself and its past", colour="#fde2c4")
    grid(ax, 7.25, mid - 0.95, [[0] * 5] * 5, cell=0.28, text=lambda i, j: "",
         fill=lambda i, j: "#f5a55a" if j <= i else "white")
    ax.text(8.75, mid - 1.65, "the causal\nmask", ha="left", va="center", fontsize=10)
    link(ax, (9.3, mid), (10.1, mid), "(B, T, C)", offset=(0, 0.12))
    box(ax, 10.1, mid - 0.65, 1.2, 1.3, "lm_head\nLinear\nC → V")
    link(ax, (11.3, mid), (11.5, mid))
    box(ax, 11.5, mid - 0.75, 1.4, 1.5, "logits\n(B, T, V):\nscores for\nthe next\ncharacter")
    ax.text(6.5, 0.3, "B: sequences in a batch,  T: positions (up to 64),  C: channels (64),  "
            "V: vocabulary (51 characters)", ha="center", va="center", fontsize=10)
    save(fig, "model_overview.png")


# --------------------------------------------------------------------------- #
# 1. The averaging trick: a normalised lower-triangular matrix times x
# --------------------------------------------------------------------------- #

def draw_averaging():
    fig, ax = inch_canvas(13, 4.6)
    ax.text(6.5, 4.3, "The averaging trick: one matrix product gives every position the mean of itself and "
            "its past", ha="center", va="center", fontsize=13)
    x = np.array([[2, 0], [4, 2], [0, 6], [2, 4]], dtype=float)   # made-up rows, easy to average by eye
    T = len(x)
    xbow = np.cumsum(x, axis=0) / np.arange(1, T + 1)[:, None]
    fractions = ["1", "1/2", "1/3", "1/4"]
    row = 2                                                    # the row the colours follow through the product
    top, cell = 3.45, 0.5
    highlight = "#fde2c4"

    for t in range(T):
        ax.text(0.3, top - (t + 0.5) * cell, f"t = {t}", ha="center", va="center", fontsize=10)
    right, bottom = grid(ax, 0.7, top, np.tril(np.ones((T, T), dtype=int)), cell,
                         fill=lambda i, j: "0.8" if j <= i else "white")
    ax.text((0.7 + right) / 2, bottom - 0.3, "tril(ones(T, T))", ha="center", va="center", fontsize=11)
    link(ax, (right + 0.15, top - 1.0), (right + 1.45, top - 1.0), "divide each\nrow by its sum")

    x0 = right + 1.6
    right, _ = grid(ax, x0, top, np.zeros((T, T)), cell,
                    fill=lambda i, j: highlight if i == row and j <= i else ("0.8" if j <= i else "white"),
                    text=lambda i, j: fractions[i] if j <= i else "0")
    ax.text((x0 + right) / 2, bottom - 0.3, "wei: (T, T), rows sum to 1", ha="center", va="center", fontsize=11)
    ax.text(right + 0.35, top - 1.0, "@", ha="center", va="center", fontsize=20)

    x0 = right + 0.7
    right, _ = grid(ax, x0, top, x, cell, fill=lambda i, j: highlight if i <= row else "white",
                    text=lambda i, j: f"{x[i, j]:g}")
    ax.text((x0 + right) / 2, bottom - 0.3, "x: (T, C)", ha="center", va="center", fontsize=11)
    ax.text(right + 0.35, top - 1.0, "=", ha="center", va="center", fontsize=20)

    x0 = right + 0.7
    right, _ = grid(ax, x0, top, xbow, cell, fill=lambda i, j: highlight if i == row else "white",
                    text=lambda i, j: f"{xbow[i, j]:.3g}")
    ax.text((x0 + right) / 2, bottom - 0.3, "xbow: (T, C)", ha="center", va="center", fontsize=11)

    ax.text(right + 0.3, top - (row + 0.5) * cell,
            "row 2 = (x₀ + x₁ + x₂) / 3\n= ((2+4+0)/3, (0+2+6)/3)\n= (2, 2.67)",
            ha="left", va="center", fontsize=11)
    ax.text(6.5, 0.35, "Row t of wei holds 1/(t+1) in its first t+1 columns and 0 after, so row t of the "
            "product is the mean of rows 0 … t of x (made-up numbers)", ha="center", va="center", fontsize=11)
    save(fig, "averaging_matrix.png")


# --------------------------------------------------------------------------- #
# 4. Which positions may read which: encoder, decoder, cross-attention
# --------------------------------------------------------------------------- #

def node_row(ax, x0, y, labels, colour="tab:blue", gap=0.7):
    """Positions as circles in a row; returns their centres."""
    xs = [x0 + i * gap for i in range(len(labels))]
    for x, label in zip(xs, labels):
        ax.add_patch(plt.Circle((x, y), 0.2, color=colour, zorder=3))
        ax.text(x, y, label, ha="center", va="center", color="white", fontsize=12, zorder=4)
    return xs


def draw_encoder_decoder():
    fig, ax = inch_canvas(13, 6.6)
    ax.text(6.5, 6.3, "Which positions may read which: encoder, decoder and cross-attention",
            ha="center", va="center", fontsize=13)
    labels = ["M", "i", "a", "␣", "h"]
    T = len(labels)
    panels = [(0.3, "encoder self-attention: no mask"), (4.6, "decoder self-attention: causal mask"),
              (8.9, "cross-attention: no mask")]
    for x0, title in panels:
        ax.text(x0 + 1.9, 5.8, title, ha="center", va="center", fontsize=12, weight="bold")

    # encoder: every position reads every other, so there are arrows both ways (forward above, backward below)
    y = 4.3
    xs = node_row(ax, 0.5, y, labels, gap=0.85)
    for s in range(T):
        for t in range(T):
            if s != t:
                ax.add_patch(FancyArrowPatch((xs[s], y), (xs[t], y), connectionstyle="arc3,rad=-0.45",
                                             arrowstyle="-|>", mutation_scale=10, lw=0.9, color="0.35",
                                             shrinkA=11, shrinkB=11))
    # decoder: arrows only from the past to the future
    xs = node_row(ax, 4.8, y, labels, gap=0.85)
    for s in range(T):
        for t in range(s + 1, T):
            ax.add_patch(FancyArrowPatch((xs[s], y), (xs[t], y), connectionstyle="arc3,rad=-0.45",
                                         arrowstyle="-|>", mutation_scale=10, lw=0.9, color="0.35",
                                         shrinkA=11, shrinkB=11))
    # cross: three target positions (queries) read all five source positions (keys and values)
    src = node_row(ax, 9.1, 3.8, ["S0", "S1", "S2", "S3", "S4"], colour="tab:green", gap=0.85)
    tgt = node_row(ax, 9.95, 4.95, ["t0", "t1", "t2"], colour="tab:purple", gap=0.85)
    for xs_ in src:
        for xt in tgt:
            ax.add_patch(FancyArrowPatch((xs_, 3.8), (xt, 4.95), arrowstyle="-|>", mutation_scale=9, lw=0.7,
                                         color="0.45", shrinkA=11, shrinkB=11))
    ax.text(10.8, 5.35, "target: the queries", ha="center", va="center", fontsize=10)
    ax.text(10.8, 3.4, "source: the keys and values", ha="center", va="center", fontsize=10)

    # the weight matrices each graph allows, drawn as masks: grey = may read
    cell, top = 0.33, 3.05
    allowed = [np.ones((T, T)), np.tril(np.ones((T, T))), np.ones((3, T))]
    for (x0, _), m in zip(panels, allowed):
        rows, cols = m.shape
        left = x0 + 1.9 - cols * cell / 2
        grid(ax, left, top, m.astype(int), cell, fill=lambda i, j, m=m: "0.75" if m[i, j] else "white",
             fontsize=10)
        ax.text(x0 + 1.9, top - rows * cell - 0.2, f"allowed weights: ({rows}, {cols})", ha="center",
                va="center", fontsize=10)
    uses = [("every position reads every other:\nfor input known in full, e.g. classifying\na sentence, "
             "or reading the sentence to\ntranslate (the Transformer's encoder)"),
            ("each position reads itself and its past:\nfor writing text one character at a time,\n"
             "since the future does not exist yet\n(GPT, and every model of this course)"),
            ("queries from one sequence, keys and\nvalues from another: the translation so\nfar reads "
             "the source sentence (the\nTransformer's decoder reading its encoder)")]
    for (x0, _), text in zip(panels, uses):
        ax.text(x0 + 1.9, 0.5, text, ha="center", va="center", fontsize=10.5)
    save(fig, "encoder_decoder.png")


# --------------------------------------------------------------------------- #
# 6. Attention sees a set: why positions must be added
# --------------------------------------------------------------------------- #

def draw_positions():
    fig, ax = inch_canvas(13, 4.4)
    ax.text(6.5, 4.1, "Attention sees a set: without positions the last token cannot tell "
            "“dog bit man” from “man bit dog”", ha="center", va="center", fontsize=13)
    first, second = ["dog", "bit", "man", "."], ["man", "bit", "dog", "."]
    colours = {"dog": "#c6dbef", "bit": "#fdd0a2", "man": "#c7e9c0", ".": "0.85"}

    def words(x0, y, ws, suffix=""):
        for i, w in enumerate(ws):
            box(ax, x0 + i * 0.95, y, 0.85, 0.55, w + (f" + p{i}" if suffix else ""), colour=colours[w],
                fontsize=10.5 if suffix else 11)
        end = x0 + len(ws) * 0.95
        for row_y in (2.67, 1.47):                          # both sentences flow into the same reading
            link(ax, (end, row_y), (end + 0.35, row_y))
        return end + 0.45

    ax.text(0.2, 3.45, "without positions", ha="left", va="center", fontsize=12, weight="bold")
    end = words(0.2, 2.4, first)
    words(0.2, 1.2, second)
    ax.text(end, 2.07, "the last position ‘.’\nreads the same set\n{dog, bit, man, .}\nwith the same scores:\n"
            "the same output", ha="left", va="center", fontsize=11)

    ax.text(6.7, 3.45, "with a position vector added", ha="left", va="center", fontsize=12, weight="bold")
    end = words(6.7, 2.4, first, suffix="p")
    words(6.7, 1.2, second, suffix="p")
    ax.text(end, 2.07, "‘dog + p0’ and\n‘dog + p2’ differ,\nso do the two sets,\nthe scores and\n"
            "the outputs", ha="left", va="center", fontsize=11)
    ax.text(6.5, 0.5, "(the chapter's characters work the same way; words make it easier to see)",
            ha="center", va="center", fontsize=10)
    save(fig, "positions_bag.png")


# --------------------------------------------------------------------------- #
# 8. The training loop the notebook writes out
# --------------------------------------------------------------------------- #

def draw_training_loop():
    fig, ax = inch_canvas(13, 4.8)
    ax.text(6.5, 4.5, "One training step, repeated: the loop that trains the attention model",
            ha="center", va="center", fontsize=13)
    steps = ["x, y = get_batch(...)\n(B, T) windows and\ntargets shifted by one",
             "logits, loss =\nmodel(x, y)\nthe forward pass",
             "optimizer.zero_grad()\nclear the last\nstep's gradients",
             "loss.backward()\na gradient for\nevery weight",
             "optimizer.step()\nAdamW moves\nevery weight"]
    w, gap, x0, y, h = 2.1, 0.45, 0.35, 1.6, 1.25
    for i, text in enumerate(steps):
        box(ax, x0 + i * (w + gap), y, w, h, text, colour="#fde2c4" if i == 1 else "#dbe9f6")
        if i:
            link(ax, (x0 + i * (w + gap) - gap, y + h / 2), (x0 + i * (w + gap), y + h / 2))
    # back to the start: the arrow runs under the boxes
    last_mid, first_mid = x0 + 4 * (w + gap) + w / 2, x0 + w / 2
    ax.plot([last_mid, last_mid, first_mid], [y, 0.9, 0.9], color="0.2", lw=1.6)
    link(ax, (first_mid, 0.9), (first_mid, y))
    ax.text((first_mid + last_mid) / 2, 0.75, "repeat for cfg.steps steps (1,500 in the notebook)", ha="center",
            va="top", fontsize=11)
    # the evaluation that fills the history, before the step whenever step % eval_interval == 0
    box(ax, x0, 3.35, 7.2, 0.8, "if step % eval_interval == 0, and once at the end: estimate_loss on train and val\n"
        "(eval mode, no gradients, its own random batches) → history.train, history.val", colour="#e5f5e0",
        fontsize=10.5)
    link(ax, (first_mid, 3.35), (first_mid, y + h))
    save(fig, "training_loop.png")


if __name__ == "__main__":
    draw_overview()
    draw_averaging()
    draw_qkv()
    draw_mask()
    draw_encoder_decoder()
    draw_positions()
    draw_heads()
    draw_training_loop()
