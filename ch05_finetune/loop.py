"""The fine-tuning loop shared by classification and instruction tuning.

Unlike pretraining (random windows of one long token stream, Chapter 1's
`train`), fine-tuning walks over a list of examples in shuffled batches, epoch
by epoch, and evaluates after each epoch. Only parameters with
`requires_grad` are given to the optimizer: freezing a parameter is how we
choose what fine-tuning may change.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ch03_gpt import configure_optimizer, cosine_lr
from coursekit import check_positive
from coursekit.hardware import check_training_memory, mixed_precision, resolve_dtype
from coursekit.progress import progress_bar

from .config import CLASSIFY_FIT, INSTRUCT_FIT, FitConfig  # noqa: F401  (the notebook imports the recipes here)


@dataclass
class FitHistory:
    step_losses: list[float] = field(default_factory=list)
    epochs: list[dict] = field(default_factory=list)  # one evaluation per epoch, epoch 0 = before training
    train_seconds: float = 0.0
    dtype: str = "float32"         # the number format training ran in


def trainable_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@dataclass
class Interrupted:
    """What `fit` hands to `on_interrupt` when Ctrl-C stops it; the model then holds the weights of `best`."""

    epoch: int                    # the epoch that was running
    steps: int                    # optimizer steps done
    best: dict | None = None      # the evaluation whose weights the model now holds; None: the current weights


def fit(model: torch.nn.Module, examples: list, loss_fn: Callable[[list], torch.Tensor], cfg: FitConfig,
        evaluate: Callable[[], dict] | None = None, progress: bool = True, log=print,
        best: tuple[str, str] | None = None, on_interrupt: Callable[[Interrupted], None] | None = None) -> FitHistory:
    """Train `model` on `examples` with `loss_fn(batch_of_examples) -> loss`, evaluating after each epoch.

    `best=(metric, "max" or "min")` keeps a copy of the weights of the best evaluation after an epoch of
    training. On Ctrl-C (KeyboardInterrupt) during training, the model is given those weights (it keeps its
    current ones when no epoch has ended yet), `on_interrupt(Interrupted(...))` is called to save it, and the
    interrupt goes on, so that the command still ends as interrupted.
    """
    for name in ("epochs", "batch_size"):
        check_positive(name.replace("_", " "), getattr(cfg, name))
    check_positive("learning rate", cfg.lr)
    params = [p for p in model.parameters() if p.requires_grad]
    device = params[0].device if params else torch.device("cpu")
    check_training_memory(model, str(device))
    optimizer = configure_optimizer(model, cfg.lr, cfg.weight_decay)
    width = getattr(getattr(model, "config", None), "n_embd", 0)
    dtype = resolve_dtype(cfg.dtype, str(device), width)
    # Products in bfloat16/float16 where that is faster; weights, gradients and AdamW stay float32.
    precision = mixed_precision(str(device), dtype)  # float16 adds a gradient scaler (its gradients underflow)
    steps_per_epoch = (len(examples) + cfg.batch_size - 1) // cfg.batch_size
    total = cfg.epochs * steps_per_epoch
    gen = torch.Generator().manual_seed(cfg.seed)
    history = FitHistory(dtype=dtype)

    def record(epoch: int) -> None:
        if evaluate is None:
            return
        model.eval()
        with torch.no_grad():
            result = {"epoch": epoch, **evaluate()}
        history.epochs.append(result)
        if log:
            log(f"epoch {epoch}: " + ", ".join(f"{k} {v:.3f}" for k, v in result.items()
                                                if k != "epoch" and isinstance(v, float)))

    best_so_far: dict = {}  # with `best`: the best evaluation after some training, and a copy of its weights

    def remember_if_best() -> None:
        if best is None or not history.epochs or history.epochs[-1]["epoch"] == 0:
            return
        metric, mode = best
        result, old = history.epochs[-1], best_so_far.get("result")
        value = result.get(metric)
        if value is not None and (old is None or (value > old[metric] if mode == "max" else value < old[metric])):
            best_so_far["result"] = result
            best_so_far["state"] = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}

    record(0)
    step = epoch = 0
    bar = progress_bar(total=total, desc="fine-tuning", unit="step", disable=not progress)
    try:
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            start = time.perf_counter()
            order = torch.randperm(len(examples), generator=gen).tolist()
            for b in range(steps_per_epoch):
                batch = [examples[i] for i in order[b * cfg.batch_size:(b + 1) * cfg.batch_size]]
                for group in optimizer.param_groups:
                    group["lr"] = cosine_lr(step, cfg.lr, cfg.lr / 10, cfg.warmup, total)
                with precision.autocast():
                    loss = loss_fn(batch)
                optimizer.zero_grad(set_to_none=True)
                precision.backward(loss)
                precision.unscale_(optimizer)  # clip the true gradients, not the scaled ones
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                precision.step(optimizer)
                history.step_losses.append(loss.item())
                step += 1
                bar.update()
                bar.set_postfix(loss=f"{history.step_losses[-1]:.3f}")
            history.train_seconds += time.perf_counter() - start
            record(epoch)
            remember_if_best()
    except KeyboardInterrupt:  # Ctrl-C: keep the best weights so far (the caller saves them), then stop
        bar.close()
        model.eval()
        if on_interrupt is not None:
            if "state" in best_so_far:
                model.load_state_dict(best_so_far["state"])
            on_interrupt(Interrupted(epoch, step, best_so_far.get("result")))
        raise
    bar.close()
    model.eval()
    return history


def interrupted_save(stop: Interrupted, metric: str, out, save: Callable[[dict], None]) -> None:
    """What `on_interrupt` does in `classify` and `instruct`: save the weights the model now holds with
    `save(note)` (`note` goes into config.json) and say so in one line on stderr; nothing is saved, and
    nothing already in `out` is replaced, when no training step was done."""
    if stop.steps == 0 and stop.best is None:
        print(f"interrupted before the first training step; nothing saved (anything already in {out} is kept)",
              file=sys.stderr)
        return
    if stop.best is not None:
        what = (f"the best model so far (epoch {stop.best['epoch']}, {metric.replace('_', ' ')} "
                f"{stop.best[metric]:.3f})")
    else:
        what = f"the current model (no epoch had ended; {stop.steps} step(s) done)"
    save({"epoch": stop.epoch, "steps": stop.steps, "saved_epoch": None if stop.best is None else stop.best["epoch"]})
    print(f"interrupted in epoch {stop.epoch}: saved {what} to {out}", file=sys.stderr)
