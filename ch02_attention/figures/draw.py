"""Draws Chapter 2's diagrams: qkv_scores.png, causal_mask.png and heads_split_merge.png.

Run once from the repository root: python ch02_attention/figures/draw.py
The numbers are random or made up, for illustration only; the shapes are the point.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyArrowPatch, Rectangle

HERE = Path(__file__).parent
HEAD_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]


def save(fig, name):
    out = HERE / name
    fig.savefig(out, dpi=110)
    plt.close(fig)
    print("wrote", out)


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
                ax.text(j, i, text(i, j), ha="center", va="center", fontsize=9,
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

    fig = plt.figure(figsize=(14, 7.6))
    grid = fig.add_gridspec(2, 9, width_ratios=[C, 4.5, hs, 1.2, hs, 1.2, hs, 1.2, 3], height_ratios=[1, 1.25],
                            hspace=0.45, wspace=0.05)
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
                              height_ratios=[1, 1.25], hspace=0.45, wspace=0.05)
    axes = [fig.add_subplot(bottom[1, i]) for i in (0, 2, 4, 6, 8, 10)]
    show_matrix(axes[0], q, f"Q\n({T}, {hs})")
    show_matrix(axes[1], k.T, f"Kᵀ\n({hs}, {T})")
    axes[1].set_aspect("equal")
    show_matrix(axes[2], scores, f"scores = Q Kᵀ / √hs\n(T, T) = ({T}, {T})")
    show_matrix(axes[3], weights, "weights = softmax(masked)\nrows sum to 1", cmap="viridis", vmin=0, vmax=1,
                text=lambda i, j: "" if j > i else f"{weights[i, j]:.2f}".lstrip("0"))
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
    fig.text(0.5, 0.50, "row t of the scores: how well query t matches every key;  the grey cells are the future, "
             "masked to −∞ before the softmax, so their weight is 0", ha="center", fontsize=11)
    fig.suptitle("One head of attention: every position makes a query, a key and a value "
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

    fig, axes = plt.subplots(1, 4, figsize=(17, 5.2), gridspec_kw={"width_ratios": [1, 1, 1, 1.35]})
    panels = [
        (allowed.astype(float), "1. the mask: tril(ones(T, T))\n1 = may look, 0 = the future", "Greys", 0, 2.5,
         lambda i, j: str(int(allowed[i, j]))),
        (np.where(allowed, scores, np.nan), "2. scores.masked_fill(mask == 0, −∞)", "coolwarm", -1.5, 1.5,
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
        ax.set_xlabel("key: the position looked at", fontsize=10)
        ax.set_ylabel("query: the position looking", fontsize=10)
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
    ax.set_title("4. as a directed graph: an edge s → t\nfor every s < t (each node also reads itself)",
                 fontsize=11)
    fig.suptitle("The causal mask: each position may look at itself and the positions before it, never after",
                 fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.92), w_pad=2.5)
    save(fig, "causal_mask.png")


# --------------------------------------------------------------------------- #
# 3. Multi-head attention: split the channels into heads, attend, merge back
# --------------------------------------------------------------------------- #

def draw_heads():
    T, nh, hs = 5, 4, 2
    C = nh * hs
    fig, ax = plt.subplots(figsize=(15, 5.6))
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
        ax.text((x0 + x1) / 2, y - 0.5, text, ha="center", va="top", fontsize=9.5)

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
    ax.set_title(f"Multi-head attention as one batched tensor: C = {C} channels split into nh = {nh} heads of "
                 f"hs = {hs}, attended in parallel, merged back", fontsize=13)
    fig.tight_layout()
    save(fig, "heads_split_merge.png")


if __name__ == "__main__":
    draw_qkv()
    draw_mask()
    draw_heads()
