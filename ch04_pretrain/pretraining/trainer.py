"""Pretraining Chapter 3's GPT on prepared shards, on one CPU, one GPU, or many GPUs with DDP.

One optimizer step, in order:
  1. the learning rate for this step: linear warm-up, then cosine decay to a floor (Chapter 3's `cosine_lr`);
  2. `grad_accum` micro-batches, each forward under autocast (bfloat16 or float16) and backward, each loss
     divided by `grad_accum` so the summed gradients are those of one batch `grad_accum` times larger;
     with DDP, gradients are averaged across processes on the last micro-batch only;
  3. the loss is checked: NaN or infinity stops the run, keeping the last good checkpoint;
  4. gradients are clipped to a maximum norm, and AdamW (Chapter 3's `configure_optimizer`) updates.

Every `eval_interval` steps the val loss is estimated on fixed batches and a
checkpoint is saved (training_state.py); every `log_interval` steps a JSON line
with the step, learning rate, loss, tokens/s, MFU and peak memory goes to
log.jsonl. Ctrl-C (SIGINT) finishes the current step, saves, and exits.

All randomness (initialisation, dropout, the batches drawn) comes from
generators saved in every checkpoint, so a run resumed with `resume=True`
computes exactly the losses the uninterrupted run would have (bitwise on CPU).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.checkpoint import checkpoint as recompute

from ch03_gpt import GPT, configure_optimizer, cosine_lr, load_weights
from ch03_gpt.checkpoint import config_of
from ch04_pretrain.data_pipeline.bpe import RANKS_FILE, VOCAB_SIZE, checkpoint_tokenizer, format_ranks
from ch04_pretrain.data_pipeline.loader import ShardDataset
from ch04_pretrain.data_pipeline.prepare import prepared_tokenizer
from coursekit import CourseError, read_json
from coursekit.files import own_folder
from coursekit.hardware import MixedPrecision, check_memory, matmul_peak_flops, mixed_precision, resolve_dtype
from coursekit.progress import progress_bar
from coursekit.runtime import pick_device, set_seed

from .peak_memory import peak_memory_bytes, reset_peak_memory
from .settings import FREE_ON_RESUME, PRESETS, TrainSettings  # noqa: F401  (PRESETS: re-exported)
from .training_state import (
    BEST,
    find_checkpoint,
    load_training_state,
    read_pointer,
    rng_state,
    save_training_checkpoint,
    set_rng_state,
    settings_difference,
)

LOG = "log.jsonl"


# --------------------------------------------------------------------------- distributed setup

@dataclass
class Dist:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str) -> tuple[Dist, str]:
    """Join the process group when started by torchrun (it sets RANK, LOCAL_RANK, WORLD_SIZE)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist(), device
    info = Dist(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), world)
    if device.startswith("cuda"):
        device = f"cuda:{info.local_rank}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return info, device


def leave_distributed() -> None:
    """Wait for every process (rank 0 may still be writing a checkpoint), then close the process group.

    Exiting with the group open, or closing it while a peer still sends, can end a gloo
    process with SIGABRT instead of a clean exit.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def average_across(values: list[float], info: Dist, device: str) -> list[float]:
    """The mean of each value over all processes (the values themselves when there is one process)."""
    if not info.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return (t / info.world_size).tolist()


# --------------------------------------------------------------------------- the model's pieces

def enable_activation_checkpointing(model: GPT) -> None:
    """Keep only each block's input for the backward pass and recompute the block's inside when needed.

    Memory for activations drops from ~17 numbers per token per layer and
    width to ~1, at the price of a second forward pass through each block.
    The parameter names do not change, so checkpoints stay interchangeable.
    """
    for block in model.transformer.h:
        plain = block.forward

        def forward(x, cache=None, layer=0, _plain=plain):
            if cache is not None or not torch.is_grad_enabled():
                return _plain(x, cache, layer)
            return recompute(_plain, x, None, layer, use_reentrant=False)

        block.forward = forward


def forward_backward(model: torch.nn.Module, batches, device: str, dtype: str,
                     scaler: torch.amp.GradScaler | None = None) -> torch.Tensor:
    """Accumulate the gradients of the mean loss over `batches` (a list of (x, y) pairs); return that loss.

    Each micro-batch's loss is divided by the number of micro-batches, so the
    summed gradients equal those of one big batch. Under DDP, `no_sync` skips
    the gradient all-reduce on every micro-batch but the last: one exchange per
    step instead of one per micro-batch, and the same result.
    """
    n = len(batches)
    precision = MixedPrecision(device, dtype, scaler)  # matrix products in bfloat16/float16, the rest float32
    total = torch.zeros((), device=device)
    for i, (x, y) in enumerate(batches):
        last = i == n - 1
        sync = contextlib.nullcontext() if last or not isinstance(model, DistributedDataParallel) else model.no_sync()
        with sync:
            with precision.autocast():
                _, loss = model(x, y)
            loss = loss.float() / n
            precision.backward(loss)
        total += loss.detach()
    return total


def optimizer_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, grad_clip: float,
                   scaler: torch.amp.GradScaler | None = None) -> float:
    """Clip the gradient norm, update, clear the gradients; returns the norm before clipping."""
    precision = MixedPrecision(scaler=scaler)  # the scaler's part of the mixed-precision set-up
    precision.unscale_(optimizer)  # clip the true gradients, not the scaled ones
    if grad_clip > 0:
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    else:
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]))
    precision.step(optimizer)  # skipped when float16 gradients overflowed; the scaler then lowers its scale
    optimizer.zero_grad(set_to_none=True)
    return float(norm)


@torch.no_grad()
def estimate_val_loss(model: torch.nn.Module, data: ShardDataset, batch_size: int, block_size: int, iters: int,
                      device: str, dtype: str, seed: int = 0) -> float:
    """Mean loss over `iters` val batches drawn from a fixed seed: the same batches at every evaluation, so
    the curve shows the model changing, not the sample; and the training generators are left untouched."""
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    precision = MixedPrecision(device, dtype)
    for _ in range(iters):
        x, y = data.get_batch(batch_size, block_size, generator, device)
        with precision.autocast():
            _, loss = model(x, y)
        total += float(loss)
    model.train(was_training)
    return total / iters


# --------------------------------------------------------------------------- the run

class _StopRequest:
    """Turns the first Ctrl-C into a request to stop after the current step; a second one interrupts at once."""

    def __init__(self):
        self.requested = False
        self.previous = None

    def __enter__(self):
        if threading_main():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def threading_main() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


def read_log(run_dir: str | Path) -> list[dict]:
    """The records of a run's log.jsonl, in order. A line that is not a record with a step (the half-written
    last line of a killed run, or damage) is left out: the log is a report, the checkpoints are the state."""
    path = Path(run_dir) / LOG
    if not path.is_file():
        return []
    records = []
    with open(path, "rb") as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:  # not JSON, not UTF-8, or a number of thousands of digits
                continue
            if isinstance(record, dict) and isinstance(record.get("step"), int):
                records.append(record)
    return records


def _truncate_log(run_dir: Path, step: int) -> None:
    """On resume, drop the lines logged after the checkpoint: the resumed run logs those steps again."""
    path = run_dir / LOG
    if path.is_file():
        keep = [r for r in read_log(run_dir) if r["step"] <= step]
        path.write_text("".join(json.dumps(r) + "\n" for r in keep))


def pretrain(settings: TrainSettings, data_dir: str | Path, out_dir: str | Path, device: str | None = None,
          resume: bool = False, peak_flops: float | None = None, progress: bool = True, log=print,
          on_step=None) -> dict:
    """Pretrain a GPT on the shards in `data_dir`, writing checkpoints and log.jsonl into `out_dir`.

    The model reads the data's tokenizer: its vocab_size is the tokenizer's (GPT-2's, or a rank file of our
    own, whose copy every checkpoint keeps beside its config.json) when `settings` leave it at GPT-2's.
    `peak_flops` is the denominator of MFU (default: measured, `matmul_peak_flops`).
    `on_step(step, model)` is called before every step (tests use it to inject faults).
    Returns a summary: steps done, last and best val loss, tokens/s, the dtype used, whether interrupted.
    The run holds `out_dir` while it trains (coursekit.files.own_folder): a second run on it is refused.
    """
    out_dir = Path(out_dir)
    main_process = int(os.environ.get("RANK", "0")) == 0  # under torchrun, the first process holds the folder
    with own_folder(out_dir, f"the run folder {out_dir}") if main_process else contextlib.nullcontext():
        return _pretrain(settings, data_dir, out_dir, device, resume, peak_flops, progress, log, on_step)


def report(summary: dict, out: Path) -> str:
    """What `python -m ch04_pretrain train` prints of `pretrain`'s summary: the val losses, then the speed.
    Empty on the processes of torchrun that stay quiet (those that did not keep the best checkpoint)."""
    best = summary["best"]
    if summary["world_size"] > 1 and best is None:
        return ""
    text = (f"{out}: {summary['steps']} steps, val loss {summary['val_loss']:.4f}; best {best['val_loss']:.4f} "
            f"at step {best['step']} ({out / best['dir']})")
    if "tokens_per_s" in summary:
        text += (f"\n  {summary['tokens_per_s']:,.0f} tokens/s, MFU {summary['mfu']:.1%}, {summary['dtype']} on "
                 f"{summary['device']}, peak memory {summary['peak_mem_mb']:,.0f} MB")
    return text


def _pretrain(settings: TrainSettings, data_dir: str | Path, out_dir: Path, device: str | None, resume: bool,
              peak_flops: float | None, progress: bool, log, on_step) -> dict:
    info, device = init_distributed(pick_device(device))
    dtype = resolve_dtype(settings.dtype, device, settings.model.n_embd)
    if settings.grad_accum % info.world_size:
        raise CourseError(f"grad accum {settings.grad_accum} must be a multiple of the number of processes "
                          f"{info.world_size} (it counts micro-batches over all of them)")
    accum = settings.grad_accum // info.world_size
    train_data = ShardDataset(data_dir, "train", info.rank, info.world_size)
    val_data = ShardDataset(data_dir, "val", info.rank, info.world_size)
    tokenizer, ranks = prepared_tokenizer(data_dir)
    settings = _with_data_vocabulary(settings, tokenizer, data_dir)
    cfg = settings.model
    for data in (train_data, val_data):  # an empty or too-short split is refused now, not after the first step
        data.check_block_size(cfg.block_size)
    check_training_fits(settings, dtype, device)

    set_seed(settings.seed)  # the same initial weights in every process (DDP also broadcasts rank 0's)
    model = GPT(cfg).to(device)
    optimizer = configure_optimizer(model, settings.lr, settings.weight_decay, (settings.beta1, settings.beta2))
    scaler = mixed_precision(device, dtype).scaler  # float16's gradient scaler, saved with every checkpoint
    data_rng = torch.Generator().manual_seed(settings.seed + 1 + info.rank)  # each process draws its own windows
    torch.manual_seed(settings.seed + 1 + info.rank)  # dropout differs across processes, as it should
    meta = {"tokenizer": checkpoint_tokenizer(tokenizer), "settings": asdict(settings), "data": str(data_dir),
            "world_size": info.world_size}
    files = {RANKS_FILE: format_ranks(ranks)} if ranks is not None else None  # the rank file, in every checkpoint
    step = 0
    if resume:
        step = _resume(out_dir, settings, model, optimizer, scaler, data_rng, info, device, meta["tokenizer"])
    elif info.main and (out_dir / LOG).is_file():
        (out_dir / LOG).unlink()  # a fresh run starts a fresh log
    if settings.activation_checkpointing:
        enable_activation_checkpointing(model)
    runner = torch.compile(model) if settings.compile else model
    if info.enabled:
        runner = DistributedDataParallel(runner, device_ids=[info.local_rank] if device.startswith("cuda") else None)
    peak = peak_flops or matmul_peak_flops(device, "float32" if dtype == "float32" else dtype)
    flops_per_step = model.flops_per_token(cfg.block_size) * settings.tokens_per_step()

    def write_log(record: dict) -> None:
        if info.main:
            out_dir.mkdir(parents=True, exist_ok=True)
            with open(out_dir / LOG, "a") as f:
                f.write(json.dumps(record) + "\n")

    def evaluate_and_save(step: int) -> float:
        val = estimate_val_loss(runner, val_data, settings.batch_size, cfg.block_size, settings.eval_iters,
                                device, dtype, seed=settings.seed + 7919 + info.rank)
        val = average_across([val], info, device)[0]
        write_log({"step": step, "val_loss": val})
        state = _trainer_state(step, optimizer, scaler, data_rng, device, info)  # every process joins the gather
        if info.main:
            save_training_checkpoint(out_dir, step, model, meta, state, val, settings.keep, files)
        log(f"step {step:>6}: val loss {val:.4f}")
        return val

    summary = {"dtype": dtype, "device": device, "start_step": step, "interrupted": False,
               "parameters": model.num_params(), "val_loss": None, "world_size": info.world_size}
    if info.main:
        log(f"{model.num_params():,} parameters, {settings.tokens_per_step():,} tokens per step "
            f"({settings.batch_size} x {cfg.block_size} x {settings.grad_accum}), {dtype} on {device}"
            + (f", {info.world_size} processes" if info.enabled else ""))
    if step == 0:
        summary["val_loss"] = evaluate_and_save(0)
    elif step >= settings.max_steps and info.main:
        log(f"the run is already at step {step} of --max-steps {settings.max_steps}: nothing to train "
            f"(raise --max-steps to go on)")
    bar = _progress(progress and info.main, step, settings.max_steps)
    window_tokens, window_time = 0, 0.0
    reset_peak_memory(device)
    with _StopRequest() as stop:
        while step < settings.max_steps:
            if on_step is not None:
                on_step(step, model)
            start = time.perf_counter()
            lr = cosine_lr(step, settings.lr, settings.min_lr, settings.warmup, settings.max_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batches = [train_data.get_batch(settings.batch_size, cfg.block_size, data_rng, device)
                       for _ in range(accum)]
            loss = forward_backward(runner, batches, device, dtype, scaler)
            # One small exchange per step: every process stops together, on a bad loss or a Ctrl-C.
            loss_value, bad, stop_now = average_across([float(loss), float(not math.isfinite(float(loss))),
                                                        float(stop.requested)], info, device)
            if bad:
                last = find_checkpoint(out_dir) if (out_dir / "latest.json").is_file() else None
                raise CourseError(f"the loss became {float(loss)} at step {step} (learning rate {lr:.3g}); "
                                  f"stopped without saving. The last good checkpoint is {last}; resume from it "
                                  f"with a lower --lr or more --warmup")
            norm = optimizer_step(runner, optimizer, settings.grad_clip, scaler)
            step += 1
            took = time.perf_counter() - start
            window_tokens += settings.tokens_per_step()
            window_time += took
            bar.update(1)
            if step % settings.log_interval == 0 or step == settings.max_steps:
                rate = window_tokens / window_time
                record = {"step": step, "lr": lr, "loss": loss_value, "grad_norm": norm,
                          "tokens_per_s": rate, "mfu": flops_per_step / settings.tokens_per_step() * rate / peak,
                          "peak_mem_mb": peak_memory_bytes(device) / 2**20}
                write_log(record)
                bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}", tok_s=f"{rate:,.0f}")
                summary["tokens_per_s"], summary["mfu"] = rate, record["mfu"]
                window_tokens, window_time = 0, 0.0
            if step % settings.eval_interval == 0 or step == settings.max_steps or stop_now:
                summary["val_loss"] = evaluate_and_save(step)
            if stop_now:
                summary["interrupted"] = True
                log(f"interrupted: saved step {step} in {out_dir}; continue with --resume")
                break
    bar.close()
    if summary["val_loss"] is None:  # resumed at or past max_steps: the val loss is the checkpoint's
        summary["val_loss"] = read_json(find_checkpoint(out_dir) / "config.json").get("val_loss")
    summary.update(steps=step, peak_mem_mb=peak_memory_bytes(device) / 2**20,
                   best=read_pointer(out_dir, BEST) if info.main else None)
    return summary


def check_training_fits(settings: TrainSettings, dtype: str, device: str) -> None:
    """Refuse, before the model is built, a run whose estimated peak memory (memory.py) exceeds the device's."""
    from .memory import estimate_memory  # memory.py imports this module's training step

    cfg = settings.model
    peak = estimate_memory(cfg, settings.batch_size, dtype, settings.activation_checkpointing)["peak"]
    check_memory(peak, f"training a GPT of {cfg.num_params():,} parameters on micro-batches of "
                       f"{settings.batch_size} x {cfg.block_size} tokens", device)


def _with_data_vocabulary(settings: TrainSettings, tokenizer: dict, data_dir) -> TrainSettings:
    """`settings` with the model's vocab_size set to the data tokenizer's when it was left at GPT-2's; any other
    size that differs from the tokenizer's is refused (ids beyond the embedding, or outputs never trained)."""
    have, need = settings.model.vocab_size, tokenizer["vocab_size"]
    if have == need:
        return settings
    if have != VOCAB_SIZE:
        raise CourseError(f"the model's vocab_size {have:,} does not match the tokenizer of {data_dir} "
                          f"({tokenizer['name']}, {need:,} ids); set it to {need:,}, or leave it at GPT-2's "
                          f"{VOCAB_SIZE:,} to take the data's")
    return replace(settings, model=replace(settings.model, vocab_size=need))


def _trainer_state(step: int, optimizer, scaler, data_rng: torch.Generator, device: str, info: Dist) -> dict:
    """Optimizer, scaler, and every process's random states and data position (gathered from all processes)."""
    mine = {"rng": rng_state(device), "data": data_rng.get_state()}
    everyone = [None] * info.world_size
    if info.enabled:
        dist.all_gather_object(everyone, mine)
    else:
        everyone = [mine]
    return {"step": step, "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None, "ranks": everyone}


def _progress(enabled: bool, start: int, total: int):
    return progress_bar(total=total, initial=start, disable=not enabled, desc="pretraining", unit="step",
                        dynamic_ncols=True)


def _resume(out_dir: Path, settings: TrainSettings, model: GPT, optimizer, scaler, data_rng: torch.Generator,
            info: Dist, device: str, tokenizer: dict) -> int:
    checkpoint = find_checkpoint(out_dir)
    meta, state = load_training_state(checkpoint)
    if meta.get("tokenizer") != tokenizer:
        saved = meta.get("tokenizer")
        saved = (saved.get("name") or saved.get("type")) if isinstance(saved, dict) else str(saved)[:40]
        raise CourseError(f"checkpoint {checkpoint} was trained on data of another tokenizer ({saved}, the data now "
                          f"{tokenizer.get('name') or tokenizer.get('type')}); start a new run in another --out folder")
    saved_cfg = config_of(meta, checkpoint / "config.json")
    if saved_cfg != model.config:
        from ch03_gpt import config_difference
        raise CourseError(f"checkpoint {checkpoint} is of another model: {config_difference(saved_cfg, model.config)}")
    difference = settings_difference(meta.get("settings", {}), asdict(settings), FREE_ON_RESUME)
    if difference:
        raise CourseError(f"checkpoint {checkpoint} was trained with other settings: {difference} "
                          f"(saved != now); start a new run in another --out folder")
    if len(state["ranks"]) != info.world_size:
        raise CourseError(f"checkpoint {checkpoint} was written by {len(state['ranks'])} process(es), this run has "
                          f"{info.world_size}; each process's data position is saved, so resume with as many")
    load_weights(model, checkpoint / "model.safetensors")
    try:  # trainer.pt's shape was checked; what it holds must also fit this model and these generators
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state["scaler"] is not None:
            scaler.load_state_dict(state["scaler"])
        mine = state["ranks"][info.rank]
        set_rng_state(mine["rng"], device)
        data_rng.set_state(mine["data"])
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as e:
        raise CourseError(f"{checkpoint / 'trainer.pt'} does not fit this run ({type(e).__name__}: "
                          f"{str(e).strip()[:120]}); resume from another checkpoint, or start a new run") from None
    if info.main:
        _truncate_log(out_dir, state["step"])
    return state["step"]
