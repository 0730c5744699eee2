"""Draws bigram_lookup.png: the bigram as a lookup table feeding a softmax.

Run once from the repository root: python ch01_bigram/figures/draw.py
The numbers are a made-up table over a six-character vocabulary, for illustration only.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

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

fig.suptitle("The bigram model: 1. look up the current character's row  →  2. its logits  →  3. softmax: probabilities of the next character",
             fontsize=13)
fig.tight_layout(rect=(0, 0, 1, 0.93), w_pad=4)
out = Path(__file__).with_name("bigram_lookup.png")
fig.savefig(out, dpi=110)
print("wrote", out)
