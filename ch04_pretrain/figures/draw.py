"""Draws Chapter 4's diagrams, one small function per picture.

Run once from the repository root: python ch04_pretrain/figures/draw.py
It writes every PNG beside this file:

  overview.png       the opening picture: the chapter's path, at the notebook's scale and at GPT-2's
  bpe_merges.png     a word encoded merge by merge
  data_pipeline.png  documents -> tokens -> shards -> windows
  training_step.png  one optimizer step, and the loop around it (evaluate, save a checkpoint)
  grad_accum.png     micro-batches whose gradients add up to one batch's
  step_memory.png    what a training step of GPT-2 124M holds in memory
  gpt2_names.png     GPT-2's published tensors mapped onto Chapter 3's GPT
  data_parallel.png  two processes, one averaged gradient

The merges in bpe_merges.png are real: those the notebook's tiny encoder learns (300 merges on the first
100 kB of the built-in stories). The sizes in step_memory.png are `estimate_memory`'s for GPT-2 124M, and
the shapes in gpt2_names.png are GPT-2 124M's. The other figures are schematic.
"""

import itertools
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # the repository root, so that the course's packages import
DPI = 110  # every figure is at most 13 inches wide, with text of 10 pt or more at this size

# Colours, the same meaning in every figure: data green, tokens blue, files orange, loss and gradients red,
# the optimizer purple.
DATA, TOKENS, FILES, GRAD, OPTIM, GREY = "#eef5e9", "#dbe9f6", "#fde3c8", "#f9d5d3", "#e8e0f5", "#f3f3f3"


def box(ax, x, y, w, h, text, color="#dbe9f6", fontsize=10, family="sans-serif", edge="#335", weight="normal"):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08", fc=color, ec=edge, lw=1.2))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize, family=family, weight=weight)


def arrow(ax, start, end, text="", color="#333", fontsize=10, offset=(0, 0.12)):
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
    fig.savefig(HERE / name, dpi=DPI)
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
    ax.set_title("Byte-pair encoding of ' played' with the notebook's 300 merges: each step applies the"
                 " earliest-learned merge present\n(blue: a single byte, orange: a merged token; ␣ is the space;"
                 " the number under each piece is its id)", fontsize=11)
    save(fig, "bpe_merges.png")


def draw_data_pipeline() -> None:
    fig, ax = canvas(13, 4.6, (0, 13), (0, 4.6))
    # 1. documents
    ax.text(1.3, 4.25, "1. documents", ha="center", fontsize=12, weight="bold")
    for k, doc in enumerate(["Once there was a\nboy named Jack...", "Lily had a red\nball. One day...",
                             "There once was a\nhappy dog..."]):
        box(ax, 0.2, 3.0 - 1.05 * k, 2.2, 0.85, doc, color="#eef5e9", fontsize=10)
    # 2. tokens
    ax.text(4.6, 4.25, "2. GPT-2 tokens", ha="center", fontsize=12, weight="bold")
    ax.text(4.6, 3.75, "<|endoftext|> (50256) before\neach document; ids < 65,536", ha="center", va="center",
            fontsize=10)
    for k, ids in enumerate(["50256 7454 612 373 257 ...", "50256 43 813 550 257 ...", "50256 1858 1752 373 ..."]):
        box(ax, 3.4, 2.85 - 1.05 * k, 2.4, 0.6, ids, color="#dbe9f6", fontsize=10, family="monospace")
    arrow(ax, (2.5, 2.1), (3.3, 2.1), "encode", offset=(0, 0.1))
    # 3. shards
    ax.text(8.0, 4.25, "3. shards on disk", ha="center", fontsize=12, weight="bold")
    box(ax, 6.8, 2.7, 2.4, 0.75, "train_00000.bin\nuint16, 2 bytes/token", color="#fde3c8", fontsize=10)
    box(ax, 6.8, 1.75, 2.4, 0.75, "val_00000.bin\n(a few whole documents)", color="#fde3c8", fontsize=10)
    box(ax, 6.8, 0.55, 2.4, 0.95, "manifest.json\ntokenizer, counts,\nsha256 of every file", color="#f3f3f3",
        fontsize=10)
    arrow(ax, (5.9, 2.1), (6.7, 2.1), "split by\ndocument", offset=(0, 0.1))
    # 4. windows
    ax.text(11.4, 4.25, "4. training windows", ha="center", fontsize=12, weight="bold")
    box(ax, 10.0, 2.75, 2.8, 0.6, "x: t₀ t₁ t₂ … t₃₁", color="#e8e0f5", fontsize=10, family="monospace")
    box(ax, 10.0, 1.95, 2.8, 0.6, "y: t₁ t₂ t₃ … t₃₂", color="#e8e0f5", fontsize=10, family="monospace")
    ax.text(11.4, 1.35, "a random start, block_size\ntokens; y is x shifted by one;\n(B, T) batches per step",
            ha="center", va="center", fontsize=10)
    arrow(ax, (9.3, 3.05), (9.9, 2.75), "memory\nmap", offset=(0.0, 0.12))
    ax.set_title("The data path of pretraining: tokenized once, ahead of training; read as random windows at "
                 "every step", fontsize=12)
    save(fig, "data_pipeline.png")


def draw_data_parallel() -> None:
    fig, ax = canvas(12, 5.2, (0, 12), (0, 5.4))
    for r, y in enumerate((3.4, 0.9)):
        ax.text(0.1, y + 0.95, f"process {r} (GPU {r})", fontsize=11, weight="bold")
        box(ax, 0.1, y, 2.2, 0.8, f"its own windows:\npart {r} of every shard", color="#eef5e9", fontsize=10)
        box(ax, 3.0, y, 2.2, 0.8, "a copy of the model\n(identical weights)", color="#dbe9f6", fontsize=10)
        box(ax, 5.9, y, 1.7, 0.8, f"local gradient\ng{r}", color="#fde3c8", fontsize=10)
        box(ax, 9.8, y, 2.1, 0.8, "AdamW step with ḡ\n→ the same new weights", color="#dbe9f6", fontsize=10)
        arrow(ax, (2.35, y + 0.4), (2.95, y + 0.4))
        arrow(ax, (5.25, y + 0.4), (5.85, y + 0.4), "forward,\nbackward", fontsize=10, offset=(0, 0.42))
        arrow(ax, (7.65, y + 0.4), (8.2, 2.55 if r == 0 else 2.15))
        arrow(ax, (9.4, 2.55 if r == 0 else 2.15), (9.75, y + 0.4))
    box(ax, 8.0, 1.9, 1.6, 0.9, "all-reduce:\nḡ = (g0 + g1) / 2", color="#f9d5d3", fontsize=10, weight="bold")
    ax.text(6.0, 0.2, "One exchange per optimizer step: with gradient accumulation, DDP's no_sync skips it on every "
                      "micro-batch but the last.", ha="center", fontsize=10)
    ax.set_title("Data parallelism (DDP) with two processes: each computes a gradient on its own data, the gradients "
                 "are averaged,\nand every copy takes the same step, as one process would on the two batches together",
                 fontsize=11.5)
    save(fig, "data_parallel.png")


# The boxes of the two chain diagrams, left to right, each (title, text, colour): the chapter's path from text
# to a pretrained GPT, and one optimizer step in the trainer's order (its caption refers to the numbers).
PATH = [("text", "documents,\none story each", DATA),
        ("tokens", "byte-pair encoding:\nyours here,\nGPT-2's at scale", TOKENS),
        ("shards", "uint16 ids on disk,\ntrain / val", FILES),
        ("windows", "random (B, T) x;\ny: x shifted by one", TOKENS),
        ("training loop", "schedule, accumulation,\nclipping, AdamW;\nevaluate, checkpoint", OPTIM),
        ("pretrained GPT", "a checkpoint,\nto fine-tune\nin Chapter 5", GREY)]
TRAINING_STEP = [("1. learning rate", "lr = cosine_lr(step)\n(Chapter 3)", OPTIM),
                 ("2. forward", "windows x, y (B, T)\n→ logits (B, T, V)\n→ loss (one number)", TOKENS),
                 ("3. backward", "loss.backward()\n.grad of every\nparameter", GRAD),
                 ("4. clip", "‖g‖ > 1.0 ?\nscale every g\nby 1.0 / ‖g‖", GRAD),
                 ("5. AdamW", "optimizer.step()\nzero_grad()\nstep += 1", OPTIM)]


def titled_chain(ax, steps, y: float, height: float, width: float, gap: float) -> None:
    """A row of boxes, each (title, text, colour) with its title above it, joined left to right by arrows."""
    for k, (title, text, colour) in enumerate(steps):
        x = 0.15 + k * (width + gap)
        box(ax, x, y, width, height, text, color=colour, fontsize=10)
        ax.text(x + width / 2, y + height + 0.15, title, ha="center", fontsize=11.5, weight="bold")
        if k:
            arrow(ax, (x - gap + 0.03, y + height / 2), (x - 0.03, y + height / 2))


def draw_overview() -> None:
    """The opening picture: one path from text to a pretrained GPT, run at two scales by the same code."""
    fig, ax = canvas(13, 5.0, (0, 13), (0, 5.0))
    titled_chain(ax, PATH, y=2.75, height=1.3, width=1.85, gap=0.27)
    ax.text(0.15, 2.2, "part 1: from text to training batches (sections 1-5)", fontsize=10.5, style="italic")
    ax.text(8.63, 2.2, "part 2: pretraining (sections 6-14)", fontsize=10.5, style="italic")
    # The two scales, one row each: the same commands, other data and another preset.
    rows = [("in this notebook", ("Chapter 1's built-in stories (1 MB); your 557-token encoder; a 3-layer GPT, "
                                  "400 steps on a CPU"), DATA),
            ("the same code at scale", ("OpenWebText (about 9 billion tokens); GPT-2 124M (12 layers, 768 wide); "
                                        "600,000 steps on 8 GPUs"), FILES)]
    for r, (who, what, colour) in enumerate(rows):
        y = 1.05 - r * 0.75
        box(ax, 0.15, y, 2.6, 0.6, who, color=colour, fontsize=10.5, weight="bold")
        ax.text(2.95, y + 0.3, what, va="center", fontsize=10.5)
    ax.set_title("What this chapter builds: the path from text to a pretrained GPT, run here on the stories",
                 fontsize=12.5)
    save(fig, "overview.png")


def draw_training_step() -> None:
    """One optimizer step as a chain of boxes, and the loop around it that evaluates and saves."""
    fig, ax = canvas(13, 4.6, (0, 13), (0, 4.6))
    titled_chain(ax, TRAINING_STEP, y=2.25, height=1.35, width=2.15, gap=0.45)
    # The loop back to the next step, and the branch that runs every eval_interval steps.
    ax.add_patch(FancyArrowPatch((11.3, 2.2), (1.2, 2.2), connectionstyle="arc3,rad=-0.18", arrowstyle="-|>",
                                 mutation_scale=14, color="#333", lw=1.4))
    ax.text(6.25, 1.0, "next step", ha="center", fontsize=10.5)
    arrow(ax, (12.6, 2.2), (12.6, 1.25))
    box(ax, 8.8, 0.2, 4.1, 1.0, "every eval_interval steps:\nval loss on fixed batches,\nthen save a checkpoint",
        color=FILES, fontsize=10)
    ax.text(0.15, 0.45, "2-3 run once per micro-batch with gradient accumulation;\n"
                        "2 runs under bfloat16 autocast where the settings ask for it", fontsize=10)
    ax.set_title("One training step, in the order the trainer runs it, and the loop around it", fontsize=12.5)
    save(fig, "training_step.png")


def draw_grad_accum() -> None:
    """Four micro-batches of 2 windows whose scaled gradients add up to the gradient of one batch of 8."""
    fig, ax = canvas(12.5, 4.2, (0, 12.5), (0.3, 4.45))
    for k in range(4):
        y = 3.55 - k * 0.95
        box(ax, 0.15, y, 2.3, 0.7, f"micro-batch {k + 1}\n2 windows (2, T)", color=DATA, fontsize=10)
        box(ax, 3.05, y, 2.9, 0.7, f"forward, loss{k + 1} / 4,\nbackward: .grad += g{k + 1} / 4", color=TOKENS,
            fontsize=10)
        arrow(ax, (2.5, y + 0.35), (3.0, y + 0.35))
        arrow(ax, (6.0, y + 0.35), (7.05, 2.35 + (1.5 - k) * 0.3))
    box(ax, 7.1, 1.55, 2.6, 1.6, ".grad\n= (g1 + g2 + g3 + g4) / 4\n= the gradient of\none batch of 8",
        color=GRAD, fontsize=10, weight="bold")
    arrow(ax, (9.75, 2.35), (10.25, 2.35))
    box(ax, 10.3, 1.85, 2.05, 1.0, "clip, then\none AdamW step", color=OPTIM, fontsize=10)
    ax.text(7.1, 0.6, "Backward passes add into .grad; dividing each loss by 4 makes the sum\nthe mean. Only one "
                      "micro-batch's activations exist at a time.", fontsize=10)
    ax.set_title("Gradient accumulation: 4 micro-batches of 2 windows, one optimizer step on the gradient of 8",
                 fontsize=12.5)
    save(fig, "grad_accum.png")


def draw_step_memory() -> None:
    """What one training step of GPT-2 124M holds, drawn to scale from `estimate_memory`'s figures."""
    from ch04_pretrain.pretraining.memory import estimate_memory
    from ch04_pretrain.pretraining.settings import PRESETS

    real = PRESETS["gpt2-124m"]
    est = {k: v / 2**30 for k, v in estimate_memory(real.model, real.batch_size, "bfloat16").items()}
    items = [("weights", est["parameters"], "4 bytes\n× N", TOKENS),
             ("gradients", est["gradients"], "4 bytes\n× N", GRAD),
             ("AdamW m, v", est["optimizer"], "8 bytes\n× N", OPTIM),
             ("activations", est["activations"],
              "grow with micro-batch × tokens\n× layers × width, and × vocabulary at the head", DATA),
             ("backward's\nlogit gradients", est["peak"] - est["total"], ("2 × tokens × vocabulary\n× 4 bytes, "
                                                                         "briefly"), GREY)]
    scale = 11.6 / est["peak"]  # inches of bar per GB
    fig, ax = canvas(13, 4.5, (0, 13), (0, 4.5))
    x = 0.7
    for name, gb, formula, colour in items:
        w = gb * scale
        ax.add_patch(FancyBboxPatch((x, 1.9), w, 0.9, boxstyle="square,pad=0", fc=colour, ec="#335", lw=1.2))
        if w > 1.5:  # wide enough for its name inside; the three narrow items get the legend above instead
            ax.text(x + w / 2, 2.35, f"{name.replace(chr(10), ' ')}: {gb:.1f} GB", ha="center", va="center",
                    fontsize=10.5, weight="bold")
            ax.text(x + w / 2, 1.7, formula, ha="center", va="top", fontsize=10)
        x += w
    for k, (name, gb, formula, colour) in enumerate(items[:3]):  # the legend of the narrow items
        lx = 0.7 + 3.6 * k
        ax.add_patch(FancyBboxPatch((lx, 3.3), 0.3, 0.25, boxstyle="square,pad=0", fc=colour, ec="#335", lw=1))
        ax.text(lx + 0.4, 3.42, f"{name} {gb:.1f} GB ({formula.replace(chr(10), ' ')})", va="center", fontsize=10)
    small = sum(gb for _, gb, _, _ in items[:3])
    ax.annotate("", xy=(0.7, 3.0), xytext=(0.7 + small * scale, 3.0),
                arrowprops={"arrowstyle": "<->", "color": "#333", "lw": 1.2})
    ax.text(0.7 + small * scale + 0.15, 3.0, "16 bytes per parameter (N = 124 million), whatever the batch",
            va="center", fontsize=10)
    ax.text(0.7, 0.35, "A smaller micro-batch (gradient accumulation keeps the step's batch), bfloat16 and activation "
                       "checkpointing (keep only each block's input)\nshrink the green part, and a smaller "
                       "micro-batch the grey one too; only sharding across GPUs (FSDP) shrinks the first three "
                       "per GPU.",
            fontsize=10)
    ax.set_title(f"The memory of one training step of GPT-2 124M, micro-batch 16 × 1,024 tokens in bfloat16: "
                 f"about {est['peak']:.0f} GB at the peak\n(drawn to scale from the estimates of "
                 f"ch04_pretrain/pretraining/memory.py)", fontsize=12)
    save(fig, "step_memory.png")


def draw_gpt2_names() -> None:
    """GPT-2's published tensor names and shapes, and what each becomes in Chapter 3's GPT."""
    rows = [("wte.weight  (50257, 768)", "copied", "transformer.wte.weight  (50257, 768)", TOKENS),
            ("h.0.ln_1.weight  (768,)", "copied", "transformer.h.0.ln_1.weight  (768,)", TOKENS),
            ("h.0.attn.c_attn.weight  (768, 2304)", "transposed", "transformer.h.0.attn.c_attn.weight  (2304, 768)",
             GRAD),
            ("h.0.attn.c_attn.bias  (2304,)", "copied", "transformer.h.0.attn.c_attn.bias  (2304,)", TOKENS),
            ("h.0.mlp.c_fc.weight  (768, 3072)", "transposed", "transformer.h.0.mlp.c_fc.weight  (3072, 768)", GRAD),
            ("h.0.attn.bias  (1, 1, 1024, 1024)", "dropped", "(the causal mask: a buffer, not a weight)", GREY),
            ("no lm_head.weight stored", "tied", "lm_head.weight is transformer.wte.weight", GREY)]
    fig, ax = canvas(13, 5.2, (0, 13), (0, 0.7 * len(rows) + 0.9))
    ax.text(2.6, 0.7 * len(rows) + 0.35, "GPT-2 on the Hub (model.safetensors)", ha="center", fontsize=11.5,
            weight="bold")
    ax.text(9.7, 0.7 * len(rows) + 0.35, "Chapter 3's GPT (nn.Linear)", ha="center", fontsize=11.5, weight="bold")
    for r, (theirs, how, ours, colour) in enumerate(rows):
        y = 0.7 * (len(rows) - 1 - r) + 0.1
        box(ax, 0.1, y, 5.0, 0.5, theirs, color=colour, fontsize=10, family="monospace")
        box(ax, 6.9, y, 6.0, 0.5, ours, color=colour, fontsize=10, family="monospace")
        arrow(ax, (5.15, y + 0.25), (6.85, y + 0.25), how, fontsize=10, offset=(0, 0.04))
    ax.set_title("Loading OpenAI's GPT-2 into our GPT: add the prefix, transpose the four Conv1D weights per block "
                 "(c_attn, attn.c_proj,\nc_fc, mlp.c_proj: stored (in, out), nn.Linear wants (out, in)), drop the "
                 "mask buffers; every other tensor is copied", fontsize=11.5)
    save(fig, "gpt2_names.png")


if __name__ == "__main__":
    draw_overview()
    draw_bpe_merges()
    draw_data_pipeline()
    draw_training_step()
    draw_grad_accum()
    draw_step_memory()
    draw_gpt2_names()
    draw_data_parallel()
    print("wrote", ", ".join(sorted(p.name for p in HERE.glob("*.png"))))
