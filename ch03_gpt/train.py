"""Training GPT at character level, keeping the best checkpoint by val loss.

The loop is Chapter 1's, built again from its parts (`get_batch`,
`estimate_loss`, `History`), with what a real model needs: AdamW with weight
decay on the weight matrices only, a warm-up and cosine learning-rate
schedule, gradient clipping, the number format the hardware runs fastest
(`coursekit.hardware.resolve_dtype`), and saving the best model seen so far.
The settings of a run, `Recipe`, and the chapter's `RECIPES` are in config.py.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import torch

from ch01_bigram import CharData, History, TrainConfig, get_batch
from ch01_bigram.bigram import check_split_lengths, record_losses
from coursekit.files import own_folder
from coursekit.hardware import check_training_memory, mixed_precision, resolve_dtype
from coursekit.progress import progress_bar
from coursekit.runtime import set_seed

from .checkpoint import save_checkpoint
from .config import OPTIMIZER_NAMES, RECIPES, Recipe  # noqa: F401  (declared without torch; RECIPES re-exported)
from .model import GPT, GPTConfig
from .muon import Muon, Optimizers


def cosine_lr(step: int, max_lr: float, min_lr: float, warmup: int, total: int) -> float:
    """Linear warm-up from 0 to `max_lr` over `warmup` steps, then cosine decay to `min_lr` at `total`."""
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    progress = (step - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)


def configure_optimizer(model: torch.nn.Module, lr: float, weight_decay: float = 0.1,
                        betas: tuple[float, float] = (0.9, 0.99)) -> torch.optim.AdamW:
    """AdamW that decays weight matrices and embeddings (2-D and up) but not biases or LayerNorm gains,
    which set scales and offsets rather than store features."""
    return adamw([p for p in model.parameters() if p.requires_grad], lr, weight_decay, betas)


def adamw(params: list[torch.nn.Parameter], lr: float, weight_decay: float = 0.1,
          betas: tuple[float, float] = (0.9, 0.99)) -> torch.optim.AdamW:
    """AdamW over `params`, with weight decay on those of 2 dimensions and up (`configure_optimizer`)."""
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    # The fused kernel updates all parameters in one pass; it exists for CPU and CUDA in recent torch.
    try:
        return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=lr, betas=betas)


def configure_muon(model: GPT, lr: float, weight_decay: float = 0.1) -> Optimizers:
    """Muon for the matrices inside the transformer blocks; AdamW, as `configure_optimizer` sets it up, for
    everything else (the embeddings and the output layer tied to them, LayerNorm gains, biases)."""
    in_blocks = {id(p) for p in model.transformer.h.parameters()}
    params = [p for p in model.parameters() if p.requires_grad]
    matrices = [p for p in params if id(p) in in_blocks and p.dim() == 2]
    rest = [p for p in params if not (id(p) in in_blocks and p.dim() == 2)]
    return Optimizers(Muon(matrices, lr=lr, weight_decay=weight_decay), adamw(rest, lr, weight_decay))


OPTIMIZERS = {"adamw": configure_optimizer, "muon": configure_muon}
assert tuple(OPTIMIZERS) == OPTIMIZER_NAMES  # the names a Recipe accepts (config.py, read without torch)


def train_gpt(data: CharData, model_cfg: GPTConfig, recipe: Recipe, out_dir: str | Path | None = None,
              device: str = "cpu", progress: bool = True, log=print) -> tuple[GPT, History, dict]:
    """Train a GPT on character data; save the best model by val loss to `out_dir` (if given).

    Returns the model as it ended, the loss history, and a summary with the
    number format it trained in (`recipe.dtype` resolved for `device`), the
    best val loss (the figure to report: the last one can be worse), its step,
    the wall time, and the time spent training alone (recipes are compared on
    that, since how often one evaluates is a separate choice).
    """
    recipe.check()
    dtype = resolve_dtype(recipe.dtype, device, model_cfg.n_embd)
    set_seed(recipe.seed)
    model = GPT(model_cfg).to(device)
    optimizer = OPTIMIZERS[recipe.optimizer](model, recipe.lr, recipe.weight_decay)
    best = {"val_loss": float("inf"), "step": -1}
    meta = {"tokenizer": {"type": "char", "chars": data.tokenizer.chars}, "recipe": asdict(recipe)}

    def keep_best(step: int, losses: dict[str, float]) -> None:
        if losses["val"] < best["val_loss"]:
            best.update(val_loss=losses["val"], step=step)
            if out_dir is not None:
                save_checkpoint(model, out_dir, {**meta, "step": step, "val_loss": losses["val"]})

    start = time.perf_counter()
    # The folder is this run's while it saves there: a second run on it is refused (coursekit.files.own_folder).
    with own_folder(out_dir, f"the checkpoint folder {out_dir}") if out_dir is not None else nullcontext():
        history = train_steps(model, optimizer, data.train, data.val, recipe, dtype, device, progress, log,
                              keep_best)
    wall = time.perf_counter() - start
    summary = {"best_val_loss": best["val_loss"], "best_step": best["step"], "wall_time_s": wall, "dtype": dtype,
               "train_time_s": wall - history.eval_seconds}  # without loss estimates and checkpointing
    return model, history, summary


def train_steps(model: GPT, optimizer: torch.optim.Optimizer, train_data: torch.Tensor, val_data: torch.Tensor,
                recipe: Recipe, dtype: str = "float32", device: str = "cpu", progress: bool = True, log=print,
                on_eval: Callable[[int, dict[str, float]], None] | None = None) -> History:
    """The training loop: `recipe.steps` steps of AdamW on random windows of `train_data`.

    Each step sets the scheduled learning rate, runs forward (in `dtype` under
    autocast) and backward, clips the gradient and steps. Every `eval_interval`
    steps (and at the end) both losses are estimated, logged, and passed to
    `on_eval` (to keep the best checkpoint, say). Chapter 5 pretrains its
    small model with this loop too.
    """
    block_size = model.config.block_size
    cfg = TrainConfig(steps=recipe.steps, batch_size=recipe.batch_size, block_size=block_size, lr=recipe.lr,
                      eval_interval=recipe.eval_interval, eval_iters=recipe.eval_iters, seed=recipe.seed)
    check_split_lengths(train_data, val_data, block_size)
    check_training_memory(model, device)
    batch_gen = torch.Generator().manual_seed(cfg.seed)  # batches and estimates apart, as in Chapter 1
    eval_gen = torch.Generator().manual_seed(cfg.seed + 1)
    splits = {"train": train_data, "val": val_data} if recipe.eval_train else {"val": val_data}
    # Products in bfloat16 where the hardware runs it faster; weights, gradients and AdamW stay float32.
    precision = mixed_precision(device, dtype)  # float16 adds a gradient scaler (its small range)
    history = History()

    def evaluate(step: int) -> None:
        with precision.autocast():
            losses = record_losses(history, step, model, splits, cfg, eval_gen, device, log)
        if on_eval is not None:
            start = time.perf_counter()
            on_eval(step, losses)  # e.g. saving a checkpoint: not training time either
            history.eval_seconds += time.perf_counter() - start

    model.train()
    bar = progress_bar(range(recipe.steps), desc="training", unit="step", disable=not progress)
    for step in bar:
        if step % recipe.eval_interval == 0 and (step > 0 or recipe.eval_at_start):
            evaluate(step)
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, recipe.lr, recipe.min_lr, recipe.warmup, recipe.steps)
        x, y = get_batch(train_data, recipe.batch_size, block_size, batch_gen, device)  # (B, T) each
        with precision.autocast():
            _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        precision.backward(loss)  # with float32 or bfloat16 there is no scaler: loss.backward()
        if recipe.grad_clip:
            precision.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        precision.step(optimizer)
        history.step_losses.append(loss.item())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{history.step_losses[-1]:.3f}")
    evaluate(recipe.steps)
    return history
