"""Draws Chapter 4's diagrams: bpe_merges.png, data_pipeline.png, data_parallel.png.

Run once from the repository root: python ch04_pretrain/figures/draw.py
The merges in bpe_merges.png are real: those the notebook's tiny encoder learns (300 merges on the first
100 kB of the built-in stories). The other two figures are schematic.
"""

import itertools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

HERE = Path(__file__).resolve().parent


def box(ax, x, y, w, h, text, color="#dbe9f6", fontsize=10, family="sans-serif", edge="#335", weight="normal"):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08", fc=color, ec=edge, lw=1.2))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize, family=family, weight=weight)


def arrow(ax, start, end, text="", color="#333", fontsize=9, offset=(0, 0.12)):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, color=color, lw=1.4))
    if text:
        ax.text((start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1], text, ha="center",
                va="bottom", fontsize=fontsize, color=color)


def canvas(width: float, height: float, xlim: tuple[float, float], ylim: tuple[float, float]):
    """A figure of `width` x `height` inches whose axes, hidden, run over `xlim` and `ylim`."""
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.axis("off")
    return fig, ax


def save(fig, name: str) -> None:
    fig.tight_layout()
    fig.savefig(HERE / name, dpi=120)
    plt.close(fig)


def show_bytes(piece: bytes) -> str:
    return piece.decode("utf-8", errors="replace").replace(" ", "␣")


def draw_bpe_merges() -> None:
    from ch01_bigram import generate_corpus
    from ch04_pretrain.data_pipeline.bpe import merge_pair, train_bpe

    bpe = train_bpe(generate_corpus()[:100_000], num_merges=300)
    vocab, rank = bpe.vocab(), {pair: k for k, pair in enumerate(bpe.merges)}
    word = " played"
    ids = list(word.encode("utf-8"))
    rows = [(ids, "start: one token per byte (ids 0-255)")]
    while len(ids) > 1:
        pair = min(itertools.pairwise(ids), key=lambda p: rank.get(p, len(rank)))
        if pair not in rank:
            break
        new = 256 + rank[pair]
        ids = merge_pair(ids, pair, new)
        label = f"merge {rank[pair]:>3}: '{show_bytes(vocab[pair[0]])}' + '{show_bytes(vocab[pair[1]])}' → token {new}"
        rows.append((ids, label))
    fig, ax = canvas(11, 0.9 * len(rows) + 1.2, (-0.2, 17.5), (-0.2, len(rows)))
    for r, (ids, label) in enumerate(rows):
        y = len(rows) - 1 - r
        x = 0.0
        for i in ids:
            w = 0.55 + 0.32 * len(vocab[i])
            box(ax, x, y + 0.1, w, 0.62, f"{show_bytes(vocab[i])}\n{i}", color="#dbe9f6" if i < 256 else "#fde3c8",
                fontsize=10, family="monospace")
            x += w + 0.12
        ax.text(9.2, y + 0.41, label, va="center", fontsize=10.5, family="monospace")
    ax.set_title("Byte-pair encoding of ' played' with the notebook's 300 merges: each step applies the earliest-learned"
                 " merge present\n(blue: a single byte, orange: a merged token; ␣ is the space; the number under"
                 " each piece is its id)", fontsize=11)
    save(fig, "bpe_merges.png")


def draw_data_pipeline() -> None:
    fig, ax = canvas(13, 4.6, (0, 13), (0, 4.6))
    # 1. documents
    ax.text(1.3, 4.25, "1. documents", ha="center", fontsize=12, weight="bold")
    for k, doc in enumerate(["Once there was a\nboy named Jack...", "Lily had a red\nball. One day...",
                             "There once was a\nhappy dog..."]):
        box(ax, 0.2, 3.0 - 1.05 * k, 2.2, 0.85, doc, color="#eef5e9", fontsize=9)
    # 2. tokens
    ax.text(4.6, 4.25, "2. GPT-2 tokens", ha="center", fontsize=12, weight="bold")
    ax.text(4.6, 3.75, "<|endoftext|> (50256) before\neach document; ids < 65,536", ha="center", va="center",
            fontsize=9)
    for k, ids in enumerate(["50256 7454 612 373 257 ...", "50256 43 813 550 257 ...", "50256 1858 1752 373 ..."]):
        box(ax, 3.4, 2.85 - 1.05 * k, 2.4, 0.6, ids, color="#dbe9f6", fontsize=9, family="monospace")
    arrow(ax, (2.5, 2.1), (3.3, 2.1), "encode", offset=(0, 0.1))
    # 3. shards
    ax.text(8.0, 4.25, "3. shards on disk", ha="center", fontsize=12, weight="bold")
    box(ax, 6.8, 2.7, 2.4, 0.75, "train_00000.bin\nuint16, 2 bytes/token", color="#fde3c8", fontsize=9)
    box(ax, 6.8, 1.75, 2.4, 0.75, "val_00000.bin\n(a few whole documents)", color="#fde3c8", fontsize=9)
    box(ax, 6.8, 0.55, 2.4, 0.95, "manifest.json\ntokenizer, counts,\nsha256 of every file", color="#f3f3f3",
        fontsize=9)
    arrow(ax, (5.9, 2.1), (6.7, 2.1), "split by\ndocument", offset=(0, 0.1))
    # 4. windows
    ax.text(11.4, 4.25, "4. training windows", ha="center", fontsize=12, weight="bold")
    box(ax, 10.0, 2.75, 2.8, 0.6, "x: t₀ t₁ t₂ … t₃₁", color="#e8e0f5", fontsize=10, family="monospace")
    box(ax, 10.0, 1.95, 2.8, 0.6, "y: t₁ t₂ t₃ … t₃₂", color="#e8e0f5", fontsize=10, family="monospace")
    ax.text(11.4, 1.35, "a random start, block_size\ntokens; y is x shifted by one;\n(B, T) batches per step",
            ha="center", va="center", fontsize=9)
    arrow(ax, (9.3, 3.05), (9.9, 2.75), "memory\nmap", offset=(0.0, 0.12))
    ax.set_title("The data path of pretraining: tokenized once, ahead of training; read as random windows at "
                 "every step", fontsize=12)
    save(fig, "data_pipeline.png")


def draw_data_parallel() -> None:
    fig, ax = canvas(12, 5.2, (0, 12), (0, 5.4))
    for r, y in enumerate((3.4, 0.9)):
        ax.text(0.1, y + 0.95, f"process {r} (GPU {r})", fontsize=11, weight="bold")
        box(ax, 0.1, y, 2.2, 0.8, f"its own windows:\npart {r} of every shard", color="#eef5e9", fontsize=9)
        box(ax, 3.0, y, 2.2, 0.8, "a copy of the model\n(identical weights)", color="#dbe9f6", fontsize=9)
        box(ax, 5.9, y, 1.7, 0.8, f"local gradient\ng{r}", color="#fde3c8", fontsize=9)
        box(ax, 9.8, y, 2.1, 0.8, "AdamW step with ḡ\n→ the same new weights", color="#dbe9f6", fontsize=9)
        arrow(ax, (2.35, y + 0.4), (2.95, y + 0.4))
        arrow(ax, (5.25, y + 0.4), (5.85, y + 0.4), "forward,\nbackward", fontsize=8, offset=(0, 0.42))
        arrow(ax, (7.65, y + 0.4), (8.2, 2.55 if r == 0 else 2.15))
        arrow(ax, (9.4, 2.55 if r == 0 else 2.15), (9.75, y + 0.4))
    box(ax, 8.0, 1.9, 1.6, 0.9, "all-reduce:\nḡ = (g0 + g1) / 2", color="#f9d5d3", fontsize=9, weight="bold")
    ax.text(6.0, 0.2, "One exchange per optimizer step: with gradient accumulation, DDP's no_sync skips it on every "
                      "micro-batch but the last.", ha="center", fontsize=9.5)
    ax.set_title("Data parallelism (DDP) with two processes: each computes a gradient on its own data, the gradients "
                 "are averaged,\nand every copy takes the same step, as one process would on the two batches together",
                 fontsize=11.5)
    save(fig, "data_parallel.png")


if __name__ == "__main__":
    draw_bpe_merges()
    draw_data_pipeline()
    draw_data_parallel()
    print("wrote", ", ".join(sorted(p.name for p in HERE.glob("*.png"))))
