"""Loss and learning-rate curves of a run, drawn from its log.jsonl to a PNG."""

from __future__ import annotations

from pathlib import Path

from coursekit import CourseError

from .trainer import read_log


def plot_run(run_dir: str | Path, out: str | Path | None = None, title: str | None = None):
    """Two panels: train and val loss against the step, and the learning rate. Returns the figure."""
    import matplotlib
    if out is not None:
        matplotlib.use("Agg")  # a script writes a file; no window needed
    import matplotlib.pyplot as plt

    rows = read_log(run_dir)
    train = [r for r in rows if "loss" in r]
    val = [r for r in rows if "val_loss" in r]
    if not train and not val:
        raise CourseError(f"{Path(run_dir) / 'log.jsonl'} has no logged steps yet")
    fig, (ax_loss, ax_lr) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], label="train (one step's batch)", alpha=0.7)
    ax_loss.plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", label="val (fixed batches)")
    ax_loss.set(xlabel="step", ylabel="cross-entropy loss (nats)", title=title or "loss")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    ax_lr.plot([r["step"] for r in train], [r["lr"] for r in train], color="tab:green")
    ax_lr.set(xlabel="step", ylabel="learning rate", title="warm-up, then cosine decay")
    ax_lr.grid(alpha=0.3)
    fig.tight_layout()
    if out is not None:
        fig.savefig(out, dpi=120)
        plt.close(fig)
    return fig
