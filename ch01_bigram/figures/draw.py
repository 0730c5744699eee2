"""Draws Chapter 1's diagrams, one small function per picture.

Run once from the repository root: python ch01_bigram/figures/draw.py
It writes every PNG beside this file. The pictures are schematic: the tables, logits and probabilities
in them are made up (a six-character vocabulary stands in for the corpus's 51), and nothing in them
comes from a trained model. The only real things in them are the corpus's first characters, the ids
of "Once there" and ln 51, which the notebook prints too.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

HERE = Path(__file__).resolve().parent
DPI = 110

# One made-up six-character vocabulary, shared by every picture that shows a table or a distribution,
# so that the reader meets the same row ('h') in the lookup, the one-hot product, the loss and sampling.
CHARS = [" ", "a", "d", "e", "h", "t"]
LABELS = ["' '", "a", "d", "e", "h", "t"]
V = len(CHARS)
H, E = CHARS.index("h"), CHARS.index("e")

# Colours: inputs blue, targets orange, the model's table purple, the loss red, sampling green.
X_COLOUR = "#cfe0f5"
Y_COLOUR = "#fbd9b5"
TABLE_COLOUR = "#e3d2ef"
LOSS_COLOUR = "#f4b6b6"
SAMPLE_COLOUR = "#cdebc6"
GREY = "#eeeeee"


def made_up_table():
    """The V x V table of logits of bigram_lookup.png: random numbers, with 'e' then 'a' likely after 'h'."""
    rng = np.random.default_rng(0)
    table = rng.normal(0, 1, (V, V)).round(1)
    table[H, E] = 2.5
    table[H, CHARS.index("a")] = 1.6
    return table


def softmax(row):
    e = np.exp(row - row.max())
    return e / e.sum()


def box(ax, x, y, w, h, text, colour, fontsize=11, weight="normal", family=None):
    """A rounded box centred on (x, y)."""
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.1",
                                fc=colour, ec="black", lw=1.2))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, fontweight=weight, family=family)


def arrow(ax, start, end, colour="black", lw=1.5, connection="arc3", style="-|>", mutation=16):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, color=colour, lw=lw,
                                 connectionstyle=connection, mutation_scale=mutation, shrinkA=0, shrinkB=0))


def char_cells(ax, x0, y0, text, colour, size=0.5, fontsize=12, highlight=()):
    """One square per character from (x0, y0) to the right; a space is drawn as '␣' so that it can be seen."""
    for k, ch in enumerate(text):
        fc = colour if (not highlight or k in highlight) else "white"
        ax.add_patch(Rectangle((x0 + k * size, y0), size, size, fc=fc, ec="black", lw=1))
        ax.text(x0 + (k + 0.5) * size, y0 + size / 2, "␣" if ch == " " else ch, ha="center", va="center",
                fontsize=fontsize, family="monospace")


def save(fig, name):
    fig.savefig(HERE / name, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    print("wrote", HERE / name)


def overview():
    """The opening picture: the whole chapter as two paths through one table, training and writing."""
    fig, ax = plt.subplots(figsize=(13, 5.4))
    ax.set_xlim(0, 26)
    ax.set_ylim(0, 10.8)
    ax.axis("off")
    # training: left to right along the top
    y = 7.2
    ax.text(0.2, 8.55, "train", fontsize=13, fontweight="bold")
    box(ax, 2.3, y, 4.2, 1.9, "text\n\"Once there was\na girl named Mia.\"", GREY)
    box(ax, 7.1, y, 3.6, 1.9, "tokenizer\nids: 19 40 30 32\n1 45 35 32 ...", X_COLOUR)
    box(ax, 11.7, y, 3.6, 1.9, "get_batch\ninputs x (B, T)\ntargets y (B, T)", X_COLOUR)
    box(ax, 16.6, y, 4.0, 1.9, "bigram model\nV × V table:\nrow of the input", TABLE_COLOUR)
    box(ax, 22.2, y, 4.0, 1.9, "cross-entropy loss\nlogits (B, T, V)\nagainst y", LOSS_COLOUR)
    for x0, x1 in ((4.4, 5.3), (8.9, 9.9), (13.5, 14.6), (18.6, 20.2)):
        arrow(ax, (x0, y), (x1, y))
    # the update goes back from the loss into the table
    arrow(ax, (22.2, y + 0.95), (16.6, y + 0.95), "tab:red", lw=2, connection="arc3,rad=0.45")
    ax.text(19.4, 9.75, "backward + AdamW step: change the table so that the loss falls",
            ha="center", fontsize=11, color="tab:red")
    # the trained table is the one that writes
    arrow(ax, (16.6, y - 0.95), (16.6, 3.95), "0.4", lw=1.5)
    ax.text(16.8, 5.1, "trained\ntable", fontsize=10, va="center", color="0.3")
    # writing: the same table, read one character at a time along the bottom
    y = 3.0
    ax.text(0.2, 4.35, "write", fontsize=13, fontweight="bold")
    box(ax, 2.3, y, 4.2, 1.9, "prompt\n\"Once there was\na girl named Mia.\"", GREY)
    box(ax, 16.6, y, 4.0, 1.9, "the same table:\nrow of the\nlast character", TABLE_COLOUR)
    box(ax, 22.4, y, 4.6, 1.9, "logits ÷ temperature,\nsoftmax, draw the\nnext character", SAMPLE_COLOUR)
    arrow(ax, (4.4, y), (14.6, y))
    ax.text(9.5, y + 0.3, "only the last character is read", ha="center", fontsize=11)
    arrow(ax, (18.6, y), (20.1, y))
    arrow(ax, (22.4, y - 0.95), (2.3, y - 0.95), "tab:green", lw=2, connection="arc3,rad=-0.08")
    ax.text(12.3, 0.25, "append it to the text and repeat: new text, one character at a time", ha="center",
            fontsize=11, color="tab:green")
    ax.set_title("Chapter 1 at a glance: train a V × V table of next-character scores, then write with it",
                 fontsize=13)
    save(fig, "overview.png")


def one_hot_lookup():
    """An embedding lookup is a one-hot row vector times the table: the 1 selects one row."""
    table = made_up_table()
    one_hot = np.zeros(V)
    one_hot[H] = 1
    fig, ax = plt.subplots(figsize=(13, 4.6))
    ax.set_xlim(0, 31.5)
    ax.set_ylim(-1.0, 8.4)
    ax.set_aspect("equal")
    ax.axis("off")
    s = 1.1                       # side of a cell
    ty = 0.9                      # bottom of the table
    hy = ty + (V - 1 - H) * s     # bottom of the table's 'h' row: the vector and the result sit level with it

    def row_of_cells(x0, values, colour_of, fmt, bold):
        for j, v in enumerate(values):
            ax.add_patch(Rectangle((x0 + j * s, hy), s, s, fc=colour_of(j), ec="black"))
            ax.text(x0 + (j + 0.5) * s, hy + s / 2, fmt(v), ha="center", va="center", fontsize=11,
                    fontweight="bold" if bold(j) else "normal")
            ax.text(x0 + (j + 0.5) * s, hy + s + 0.3, LABELS[j], ha="center", fontsize=10, family="monospace")

    # the one-hot vector (1, V)
    vx = 0.5
    row_of_cells(vx, one_hot, lambda j: X_COLOUR if j == H else "white", lambda v: f"{v:.0f}", lambda j: j == H)
    ax.text(vx + V * s / 2, hy - 0.4, "one-hot of 'h'\nshape (1, V)", ha="center", va="top", fontsize=11)
    ax.text(vx + V * s + 0.75, hy + s / 2, "@", ha="center", va="center", fontsize=18)
    # the table (V, V), its 'h' row outlined
    tx = vx + V * s + 2.3
    for i in range(V):
        for j in range(V):
            ax.add_patch(Rectangle((tx + j * s, ty + (V - 1 - i) * s), s, s,
                                   fc=TABLE_COLOUR if i == H else "white", ec="0.5", lw=0.8))
            ax.text(tx + (j + 0.5) * s, ty + (V - 1 - i + 0.5) * s, f"{table[i, j]:.1f}", ha="center",
                    va="center", fontsize=10, fontweight="bold" if i == H else "normal")
        ax.text(tx - 0.2, ty + (V - 1 - i + 0.5) * s, LABELS[i], ha="right", va="center", fontsize=10,
                family="monospace")
    ax.add_patch(Rectangle((tx, hy), V * s, s, fill=False, ec="black", lw=2.5))
    ax.text(tx + V * s / 2, ty + V * s + 0.25, "the table: weight, shape (V, V)", ha="center", fontsize=11)
    ax.text(tx + V * s / 2, ty - 0.25, "row i: the logits of the\ncharacter after character i", ha="center",
            va="top", fontsize=11)
    ax.text(tx + V * s + 0.7, hy + s / 2, "=", ha="center", va="center", fontsize=18)
    # the result: the 'h' row
    rx = tx + V * s + 1.4
    row_of_cells(rx, table[H], lambda j: TABLE_COLOUR, lambda v: f"{v:.1f}", lambda j: False)
    ax.text(rx + V * s / 2, hy - 0.4, "row 'h' of the table\nshape (1, V)", ha="center", va="top", fontsize=11)
    # why the product equals the lookup
    ax.text(rx + V * s + 0.5, hy + s / 2,
            "each 0 multiplies a row by zero;\nthe single 1 keeps row 'h'.\n\nembedding(idx) = weight[idx]\n"
            "gives the same numbers\nwithout the multiplications.",
            ha="left", va="center", fontsize=11)
    ax.set_title("An embedding lookup is a one-hot vector times the table: the 1 picks out one row",
                 fontsize=13)
    save(fig, "one_hot_lookup.png")


def shift_targets():
    """The targets are the inputs moved one character on; each window holds T examples."""
    text = "Once ther"   # the first nine characters of the corpus: one window of 8 and its last target
    T = 8
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 4.9), gridspec_kw={"width_ratios": [1.25, 1]})
    for a in (ax, bx):
        a.axis("off")
    # left: the stretch of text, the input window and the target window
    s = 0.75
    ax.set_xlim(-2.2, 7.4)
    ax.set_ylim(-0.9, 5.6)
    char_cells(ax, 0, 4.1, text, GREY, size=s)
    for k in range(len(text)):
        ax.text((k + 0.5) * s, 4.1 + s + 0.15, str(k), ha="center", fontsize=10, color="0.35")
    ax.text(-0.2, 4.1 + s / 2, "data", ha="right", va="center", fontsize=11)
    char_cells(ax, 0, 2.2, text[:T], X_COLOUR, size=s)
    ax.text(-0.2, 2.2 + s / 2, "x = data[0:8]", ha="right", va="center", fontsize=11, family="monospace")
    char_cells(ax, s, 0.3, text[1:T + 1], Y_COLOUR, size=s)
    ax.text(-0.2, 0.3 + s / 2, "y = data[1:9]", ha="right", va="center", fontsize=11, family="monospace")
    for k in range(T):
        arrow(ax, ((k + 0.5) * s, 2.2), ((k + 1.5) * s, 0.3 + s), "0.3", lw=1.1, mutation=11)
    ax.text(T * s / 2 + s / 2, -0.45, "y[t] is the character after x[t]: the same window, one step later",
            ha="center", fontsize=11)
    ax.set_title("Inputs and targets: the one-step shift", fontsize=12)
    # right: the 8 examples hidden in the window; the bigram reads only the last character of each context
    bx.set_xlim(0, 10)
    bx.set_ylim(-1.0, T + 0.9)
    bx.text(0.3, T + 0.35, "context (x[0..t])", fontsize=11, fontweight="bold")
    bx.text(7.0, T + 0.35, "target y[t]", fontsize=11, fontweight="bold")
    c = 0.5
    for t in range(T):
        row = T - 1 - t
        char_cells(bx, 0.3, row, text[:t + 1], X_COLOUR, size=c, fontsize=11, highlight=(t,))
        arrow(bx, (0.3 + (t + 1) * c + 0.2, row + c / 2), (6.9, row + c / 2), "0.5", lw=1, mutation=10)
        char_cells(bx, 7.3, row, text[t + 1], Y_COLOUR, size=c, fontsize=11)
    bx.text(0.3, -0.8, "8 examples per window. Shaded: the only character the bigram reads.", fontsize=11)
    bx.set_title("One window of T = 8 holds T examples", fontsize=12)
    fig.suptitle("Each position's target is the next character of the text (the corpus's first nine characters)",
                 fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    save(fig, "shift_targets.png")


def batch_windows():
    """get_batch: B windows cut at random starts, stacked into (B, T) inputs and (B, T) targets."""
    text = "Once there was a boy named Jack. Jack had a brown cup that he loved."
    starts = [36, 5, 51, 20]          # made up, as torch.randint would draw them
    colours = ["#9ecae1", "#a1d99b", "#fdae6b", "#bcbddc"]
    T = 8
    s = 0.36
    fig, ax = plt.subplots(figsize=(13, 5.6))
    ax.set_xlim(-2.8, len(text) * s + 0.3)
    ax.set_ylim(-0.9, 6.7)
    ax.axis("off")
    # the long text, each window's characters shaded in its colour, a bar under each window
    ty = 5.2
    for k, ch in enumerate(text):
        fc = "white"
        for b, i in enumerate(starts):
            if i <= k < i + T:
                fc = colours[b]
        ax.add_patch(Rectangle((k * s, ty), s, s * 1.6, fc=fc, ec="0.6", lw=0.6))
        ax.text((k + 0.5) * s, ty + s * 0.8, "␣" if ch == " " else ch, ha="center", va="center", fontsize=11,
                family="monospace")
    ax.text(-0.15, ty + s * 0.8, "data (N ids)", ha="right", va="center", fontsize=11)
    for b, i in enumerate(starts):
        ax.text((i + 0.5) * s, ty + s * 1.6 + 0.15, f"ix[{b}] = {i}", ha="left", fontsize=10)
        ax.plot([i * s, (i + T) * s], [ty - 0.12] * 2, color=colours[b], lw=3)
    ax.text(len(text) * s / 2, ty - 0.6,
            "B = 4 random starts, ix = torch.randint(N − T, (B,)): a start can be 0 … N − T − 1, "
            "so that every window's last target exists",
            ha="center", va="center", fontsize=11)
    # the three stacked tables: positions, inputs, targets; row b comes from window b
    c = 0.72
    gy = 0.6     # bottom of the grids
    grids = [(0.0, None, 1.3, "positions = ix[:, None] + arange(T)",
              "row b: ix[b] + 0 … T − 1, a (B, 1) column\nbroadcast against a (T,) row → (B, T)"),
             (10.0, 0, 1.0, "x = data[positions]   (B, T)", "4 windows × 8 positions\n= 32 examples"),
             (17.6, 1, 1.0, "y = data[positions + 1]   (B, T)", "each row: its row of x,\none character on")]
    for gx, shift, widen, title, note in grids:
        w = c * widen
        ax.text(gx, gy + 4 * c + 0.25, title, ha="left", fontsize=11, family="monospace")
        for b, i in enumerate(starts):
            row_y = gy + (3 - b) * c
            for t in range(T):
                if shift is None:
                    label, size = str(i + t), 10
                else:
                    ch = text[i + t + shift]
                    label, size = ("␣" if ch == " " else ch), 12
                ax.add_patch(Rectangle((gx + t * w, row_y), w, c, fc=colours[b], ec="black", lw=0.8))
                ax.text(gx + (t + 0.5) * w, row_y + c / 2, label, ha="center", va="center", fontsize=size,
                        family="monospace")
        ax.text(gx, gy - 0.25, note, ha="left", va="top", fontsize=11)
    ax.set_title("get_batch: four windows of T = 8 cut at random starts, stacked into tensors of shape (B, T)",
                 fontsize=13)
    save(fig, "batch_windows.png")


def cross_entropy():
    """The loss is −ln of the probability given to the right next character; ln V for a uniform guess."""
    probs = softmax(made_up_table()[H])
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.4), gridspec_kw={"width_ratios": [1, 1.1, 1]})
    # left: the model's distribution after 'h', the target 'e' marked
    ax = axes[0]
    colours = ["tab:red" if j == E else "0.7" for j in range(V)]
    ax.bar(range(V), probs, color=colours)
    for j, p in enumerate(probs):
        ax.text(j, p + 0.02, f"{p:.2f}", ha="center", fontsize=10)
    ax.set_xticks(range(V), LABELS, fontsize=11)
    ax.set_ylim(0, 1)
    ax.set_xlabel("next character", fontsize=11)
    ax.set_ylabel("probability", fontsize=11)
    ax.set_title(f"after 'h' the text has 'e' (red):\nloss = −ln {probs[E]:.3f} = {-np.log(probs[E]):.2f}",
                 fontsize=12)
    # middle: the loss as a function of that probability
    ax = axes[1]
    p = np.linspace(0.01, 1, 300)
    ax.plot(p, -np.log(p), color="black")
    marks = [(probs[E], "tab:red", f"p = {probs[E]:.3f}: loss {-np.log(probs[E]):.2f}"),
             (1 / V, "tab:blue", f"p = 1/{V}: ln {V} = {np.log(V):.2f}"),
             (1 / 51, "tab:purple", f"p = 1/51: ln 51 = {np.log(51):.2f}")]
    for q, colour, label in marks:
        ax.plot([q], [-np.log(q)], "o", color=colour, ms=8, label=label)
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 5)
    ax.set_xlabel("probability given to the right character", fontsize=11)
    ax.set_ylabel("loss = −ln p  (nats)", fontsize=11)
    ax.set_title("sure and right costs 0; unsure costs more;\nsure and wrong costs a lot", fontsize=12)
    ax.legend(fontsize=10, loc="upper right")
    # right: the uniform guess
    ax = axes[2]
    ax.bar(range(V), [1 / V] * V, color=["tab:red" if j == E else "tab:blue" for j in range(V)])
    ax.set_xticks(range(V), LABELS, fontsize=11)
    ax.set_ylim(0, 1)
    ax.set_xlabel("next character", fontsize=11)
    ax.set_ylabel("probability", fontsize=11)
    ax.text(V / 2 - 0.5, 0.55, f"every character 1/V:\nloss = ln V, whatever the target\n"
            f"ln {V} = {np.log(V):.2f} here; ln 51 = {np.log(51):.2f}\nfor the corpus's 51 characters",
            ha="center", va="center", fontsize=11)
    ax.set_title("a model that knows nothing:\nthe uniform guess", fontsize=12)
    fig.suptitle("Cross-entropy: the loss of one position is −ln of the probability of the character that came next",
                 fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.95), w_pad=3)
    save(fig, "cross_entropy.png")


def training_loop():
    """One turn of the loop: batch, forward, zero_grad, backward, step, and round again."""
    fig, ax = plt.subplots(figsize=(12.4, 7.6))
    ax.set_xlim(-8.2, 8.2)
    ax.set_ylim(-5.0, 5.0)
    ax.set_aspect("equal")
    ax.axis("off")
    steps = [
        ("x, y = get_batch(...)", "a fresh batch:\nx, y of shape (B, T)", X_COLOUR),
        ("logits, loss = model(x, y)", "forward: logits (B, T, V),\nloss: one number", TABLE_COLOUR),
        ("optimizer.zero_grad()", "forget the last\nstep's gradients", GREY),
        ("loss.backward()", "W.grad (V, V): how the loss\nmoves with each weight", LOSS_COLOUR),
        ("optimizer.step()", "AdamW moves every weight\na little against its gradient", SAMPLE_COLOUR),
    ]
    w, h = 5.0, 1.7
    centres = []
    for k, (code, what, colour) in enumerate(steps):
        angle = np.pi / 2 - 2 * np.pi * k / len(steps)       # clockwise from the top
        cx, cy = 5.5 * np.cos(angle), 3.6 * np.sin(angle)
        centres.append((cx, cy))
        ax.add_patch(FancyBboxPatch((cx - w / 2, cy - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.1",
                                    fc=colour, ec="black", lw=1.2))
        ax.text(cx, cy + 0.42, f"{k + 1}. {code}", ha="center", va="center", fontsize=11, family="monospace")
        ax.text(cx, cy - 0.3, what, ha="center", va="center", fontsize=11)

    def edge(centre, towards, gap=0.15):
        # where the line from a box's centre towards another point leaves the box, plus a small gap
        (x0, y0), (x1, y1) = centre, towards
        dx, dy = x1 - x0, y1 - y0
        t = min((w / 2 + gap) / abs(dx) if dx else np.inf, (h / 2 + gap) / abs(dy) if dy else np.inf)
        return x0 + t * dx, y0 + t * dy

    for k in range(len(steps)):
        a, b = centres[k], centres[(k + 1) % len(steps)]
        arrow(ax, edge(a, b), edge(b, a), lw=2, connection="arc3,rad=-0.15", mutation=20)
    # the model's only weights sit in the middle: forward reads them, step changes them
    box(ax, 0, 0, 3.6, 1.3, "the table W (V, V):\nthe model's only weights", "white")
    arrow(ax, (1.9, 0.25), edge(centres[1], (0, 0)), "0.4", lw=1.3, style="-")
    ax.text(2.6, -0.12, "reads W", ha="center", va="center", fontsize=10, color="0.3")
    arrow(ax, edge(centres[4], (0, 0)), (-1.9, 0.25), "0.4", lw=1.3, mutation=14)
    ax.text(-2.7, -0.12, "changes W", ha="center", va="center", fontsize=10, color="0.3")
    ax.text(0, -4.75, "then round again with a fresh batch: 3,000 turns with the lecture's settings",
            ha="center", fontsize=11)
    ax.set_title("One turn of the training loop: five lines, the same in every chapter of the course",
                 fontsize=13)
    save(fig, "training_loop.png")


def sampling_temperature():
    """Writing one character: last row of logits ÷ temperature, softmax, draw, append; three temperatures."""
    logits = made_up_table()[H]
    fig = plt.figure(figsize=(12.6, 7.2))
    top = fig.add_axes((0, 0.55, 1, 0.38))
    top.set_xlim(0, 26)
    top.set_ylim(0, 5)
    top.axis("off")
    y = 2.8
    stages = [(2.2, "context idx (1, T):\n\"Once th\"", GREY),
              (7.0, "model\nlogits (1, T, V)", TABLE_COLOUR),
              (11.8, "last position\nlogits[:, -1]  (1, V)", TABLE_COLOUR),
              (16.6, "÷ temperature\nthen softmax", SAMPLE_COLOUR),
              (21.8, "torch.multinomial:\ndraw one id\n(argmax at temperature 0)", SAMPLE_COLOUR)]
    for x, text, colour in stages:
        box(top, x, y, 4.0 if x < 20 else 4.6, 1.8, text, colour, fontsize=11)
    for x0, x1 in ((4.2, 5.0), (9.0, 9.8), (13.8, 14.6), (18.6, 19.5)):
        arrow(top, (x0, y), (x1, y))
    arrow(top, (21.8, y - 0.95), (2.2, y - 0.95), "tab:green", lw=2, connection="arc3,rad=-0.12")
    top.text(12.0, 0.1, "append the drawn id to idx (torch.cat), \"Once the\" if it drew 'e', and go round again",
             ha="center", fontsize=11, color="tab:green")
    top.text(13.0, 4.75, "One step of sampling: the bigram reads only the last character, 'h'", ha="center",
             fontsize=13)
    # bottom: the same row of logits at three temperatures
    temps = [0.5, 1.0, 2.0]
    notes = {0.5: "sharper: the likely get likelier", 1.0: "the model's own distribution",
             2.0: "flatter: rare characters get a chance"}
    for k, t in enumerate(temps):
        ax = fig.add_axes((0.06 + k * 0.32, 0.07, 0.26, 0.36))
        p = softmax(logits / t)
        ax.bar(range(V), p, color=["tab:green" if j == E else "0.65" for j in range(V)])
        for j, q in enumerate(p):
            ax.text(j, q + 0.02, f"{q:.2f}", ha="center", fontsize=10)
        ax.set_ylim(0, 1)
        ax.set_xticks(range(V), LABELS, fontsize=11)
        ax.set_xlabel("next character after 'h'", fontsize=11)
        if k == 0:
            ax.set_ylabel("probability", fontsize=11)
        ax.set_title(f"temperature {t}: softmax(logits / {t})\n{notes[t]}", fontsize=11)
    save(fig, "sampling_temperature.png")


def long_range():
    """What the checker asks, and why the bigram cannot answer: the introduction is far behind."""
    lines = ["Once there was a girl named Mia. Mia had a red ball.",
             "One day, she went to the park with the red ball."]
    # (line, word, which occurrence in that line, colour, label, label above or below)
    marks = [(0, "girl", 0, "tab:purple", "introduction: a girl", "above"),
             (0, "Mia", 0, "tab:blue", "her name", "above"),
             (0, "ball", 0, "tab:orange", "her object", "above"),
             (0, "Mia", 1, "tab:blue", "name: Mia, not Leo", "below"),
             (1, "she", 0, "tab:purple", "pronoun: she, not he", "below"),
             (1, "ball", 0, "tab:orange", "object: ball, not kite", "below")]
    fig, ax = plt.subplots(figsize=(13, 5.0))
    ax.set_xlim(-0.5, 56)
    ax.set_ylim(-1.3, 8.4)
    ax.axis("off")
    rows_y = [5.0, 1.2]
    colour_at = {}
    for line, word, nth, colour, label, where in marks:
        i = -1
        for _ in range(nth + 1):
            i = lines[line].index(word, i + 1)
        for k in range(i, i + len(word)):
            colour_at[line, k] = colour
        x = i + len(word) / 2
        y = rows_y[line] + 1.55 if where == "above" else rows_y[line] - 0.45
        ax.text(x, y, label, ha="center", va="center", fontsize=10, color=colour, fontweight="bold")
    she = lines[1].index("she")
    for line, (text, ry) in enumerate(zip(lines, rows_y)):
        for k, ch in enumerate(text):
            ax.add_patch(Rectangle((k, ry), 1, 1.1, fc=colour_at.get((line, k), "white"), ec="0.7", lw=0.5,
                                   alpha=0.4 if (line, k) in colour_at else 1))
            shown = "␣" if (line, k) == (1, she - 1) else ch     # mark the one space the bigram reads
            ax.text(k + 0.5, ry + 0.55, shown, ha="center", va="center", fontsize=12, family="monospace")
    # the bigram, about to write the 's' of "she", sees only the space before it
    back = len(lines[0]) + 1 + she - lines[0].index("girl")
    ax.add_patch(Rectangle((she - 1, rows_y[1] - 0.1), 1, 1.3, fill=False, ec="black", lw=2.5))
    ax.text(she + 12, rows_y[1] + 2.2, f"all the bigram sees before it writes 's': this one space.\n"
            f"'girl' is {back} characters back.", ha="left", va="center", fontsize=11)
    arrow(ax, (she + 11.7, rows_y[1] + 2.1), (she - 0.3, rows_y[1] + 1.3), lw=1.5)
    ax.text(0, -0.9, "long_range_score checks every later name, pronoun and object against the introduction; "
            "on the corpus itself every share is 1.0", fontsize=11)
    ax.set_title("The long-range checker: do the later mentions agree with the story's introduction?",
                 fontsize=13)
    save(fig, "long_range.png")


def bigram_lookup():
    """The bigram as a lookup table feeding a softmax (the chapter's first diagram, kept as first drawn)."""
    chars = [" ", "a", "d", "e", "h", "t"]
    labels = ["' '", "a", "d", "e", "h", "t"]
    V = len(chars)
    rng = np.random.default_rng(0)
    table = rng.normal(0, 1, (V, V)).round(1)
    table[chars.index("h"), chars.index("e")] = 2.5      # after 'h', 'e' is likely
    table[chars.index("h"), chars.index("a")] = 1.6
    current = chars.index("h")
    row = table[current]
    probs = np.exp(row) / np.exp(row).sum()

    fig, axes = plt.subplots(1, 3, figsize=(13, 4.4), gridspec_kw={"width_ratios": [1.2, 1.0, 1.0]})

    ax = axes[0]
    ax.imshow(table, cmap="coolwarm", vmin=-3, vmax=3)
    for i in range(V):
        for j in range(V):
            ax.text(j, i, f"{table[i, j]:.1f}", ha="center", va="center", fontsize=10,
                    fontweight="bold" if i == current else "normal")
    ax.add_patch(plt.Rectangle((-0.5, current - 0.5), V, 1, fill=False, lw=3, ec="black"))
    ax.set_xticks(range(V), labels, fontsize=11)
    ax.set_yticks(range(V), labels, fontsize=11)
    ax.set_xlabel("next character", fontsize=11)
    ax.set_ylabel("current character (the input)", fontsize=11)
    ax.set_title("1. the table: V × V logits\ninput 'h' picks its row", fontsize=12)

    ax = axes[1]
    ax.bar(range(V), row, color=["tab:red" if v > 0 else "tab:blue" for v in row])
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(V), labels, fontsize=11)
    ax.set_xlabel("next character", fontsize=11)
    ax.set_ylabel("logit (any real number)", fontsize=11)
    ax.set_title("2. the row of logits for 'h'", fontsize=12)

    ax = axes[2]
    ax.bar(range(V), probs, color="tab:green")
    ax.set_ylim(0, 1)
    ax.set_xticks(range(V), labels, fontsize=11)
    ax.set_xlabel("next character", fontsize=11)
    ax.set_ylabel("probability (sums to 1)", fontsize=11)
    ax.set_title("3. softmax: exp(logit) / sum of exp", fontsize=12)
    for j, p in enumerate(probs):
        ax.text(j, p + 0.02, f"{p:.2f}", ha="center", fontsize=10)

    fig.suptitle("The bigram model: 1. look up the current character's row  →  2. its logits  →  "
                 "3. softmax: probabilities of the next character", fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.93), w_pad=4)
    # Saved without bbox_inches="tight", as it was first drawn, so that redrawing leaves the picture unchanged.
    out = HERE / "bigram_lookup.png"
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    print("wrote", out)


if __name__ == "__main__":
    overview()
    one_hot_lookup()
    shift_targets()
    batch_windows()
    bigram_lookup()
    cross_entropy()
    training_loop()
    sampling_temperature()
    long_range()
