"""Training checkpoints: everything a run needs to continue exactly where it stopped.

A run folder looks like this:

  runs/tiny/
    log.jsonl             one JSON line per logged step and per evaluation
    latest.json           {"dir": "step_000400", "step": 400}: the checkpoint --resume continues from
    best.json             {"dir": "step_000300", "step": 300, "val_loss": 2.31}: the best by val loss
    step_000300/          a checkpoint in Chapter 3's layout, so `ch03_gpt.load_checkpoint` reads it:
      model.safetensors     the weights (safetensors: tensors only, loading runs no code)
      config.json           {"model": ..., "tokenizer": {"type": "gpt2"}, "settings": ..., "step": ...}
      trainer.pt            optimizer, gradient scaler, every RNG state, the data position
      tokenizer.tiktoken    for data prepared with a rank file of our own: a copy of it, whose sha256
                            config.json records ({"type": "bpe", ...}), so each checkpoint is self-contained
    step_000400/

Every checkpoint is written into a hidden temporary folder, each file flushed
to disk, and the folder renamed into place; only then does latest.json (itself
replaced atomically) point to it. A crash at any moment leaves the previous
checkpoint and pointer untouched. Only the last `keep` checkpoints and the best
one are kept.

trainer.pt is read with `torch.load(weights_only=True)`, which unpickles only
tensors and plain containers: a file crafted to run code is refused.
"""

from __future__ import annotations

import math
import os
import pickle
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from ch03_gpt import save_checkpoint
from coursekit import CourseError, atomic_path, read_json, write_json
from coursekit.files import fsync_dir, write_bytes_atomically

TRAINER = "trainer.pt"
LATEST = "latest.json"
BEST = "best.json"


def step_dir_name(step: int) -> str:
    return f"step_{step:06d}"


# --------------------------------------------------------------------------- RNG states

def rng_state(device: str | torch.device = "cpu") -> dict:
    """Python's, NumPy's, torch's and (on CUDA) the current GPU's random states, as tensors and plain types."""
    np_state = np.random.get_state(legacy=False)
    version, internal, gauss = random.getstate()
    state = {
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {"key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)), "pos": np_state["state"]["pos"],
                  "has_gauss": np_state["has_gauss"], "gauss": np_state["gauss"]},
        "torch": torch.get_rng_state(),
    }
    if str(device).startswith("cuda"):
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: str | torch.device = "cpu") -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"].tolist()), py["gauss"]))
    n = state["numpy"]
    np.random.set_state({"bit_generator": "MT19937", "state": {"key": n["key"].numpy().astype(np.uint32),
                                                              "pos": n["pos"]},
                         "has_gauss": n["has_gauss"], "gauss": n["gauss"]})
    torch.set_rng_state(state["torch"])
    if "cuda" in state and str(device).startswith("cuda"):
        torch.cuda.set_rng_state(state["cuda"], device)


# --------------------------------------------------------------------------- safe loading

def safe_torch_load(path: str | Path) -> dict:
    """torch.load with weights_only=True: tensors and plain containers only; anything else is refused."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CourseError(f"{path} not found") from None
    except (pickle.UnpicklingError, RuntimeError, AttributeError, EOFError) as e:
        raise CourseError(f"refused to load {path}: it holds something other than tensors and plain values "
                          f"(loading it could run code), or it is damaged ({_first_line(e)})") from None
    except Exception as e:
        raise CourseError(f"cannot read {path}: it is damaged ({type(e).__name__}: {_first_line(e)})") from None


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:160]


def check_trainer_state(state, path: str | Path) -> dict:
    """trainer.pt's content, checked for the shape `_trainer_state` writes; a one-line CourseError otherwise."""
    def bad(problem: str):
        return CourseError(f"{path} is damaged ({problem}); resume from another checkpoint, or start a new run")

    if not isinstance(state, dict):
        raise bad(f"it holds a {type(state).__name__}, not the trainer's state")
    missing = [k for k in ("step", "optimizer", "scaler", "ranks") if k not in state]
    if missing:
        raise bad(f"no {missing[0]!r}")
    if not is_count(state["step"]):
        raise bad(f"step is {str(state['step'])[:40]}")
    optimizer = state["optimizer"]
    if not (isinstance(optimizer, dict) and isinstance(optimizer.get("state"), dict)
            and isinstance(optimizer.get("param_groups"), list)):
        raise bad("the optimizer's state is not an optimizer's")
    if state["scaler"] is not None and not isinstance(state["scaler"], dict):
        raise bad("the gradient scaler's state is not a scaler's")
    ranks = state["ranks"]
    if not isinstance(ranks, list) or not ranks:
        raise bad("no random states")
    for rank in ranks:
        rng = rank.get("rng") if isinstance(rank, dict) else None
        if not (isinstance(rng, dict) and all(isinstance(rng.get(k), (dict, torch.Tensor)) for k in
                                              ("python", "numpy", "torch"))
                and isinstance(rank.get("data"), torch.Tensor)):
            raise bad("a process's random state or data position is missing")
    return state


def is_count(value) -> bool:
    """A whole number >= 0 (and not a bool, which JSON and Python would take for 0 or 1)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# --------------------------------------------------------------------------- saving

def save_training_checkpoint(run_dir: str | Path, step: int, model: torch.nn.Module, meta: dict,
                             trainer_state: dict, val_loss: float | None = None, keep: int = 2,
                             files: dict[str, bytes] | None = None) -> Path:
    """Write checkpoint `step` atomically, point latest.json (and best.json if it improved) at it, prune old ones.

    `model` is the plain GPT (not a DDP or compiled wrapper); `files` are more files for the checkpoint's
    folder, by name (the tokenizer's rank file). Returns the checkpoint's folder.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    name = step_dir_name(step)
    final = run_dir / name
    if not final.is_dir():
        tmp = run_dir / f".{name}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)  # left by a crash during an earlier attempt
        save_checkpoint(model, tmp, {**meta, "step": step, "val_loss": val_loss})
        for file_name, data in (files or {}).items():
            write_bytes_atomically(tmp / file_name, data)
        with atomic_path(tmp / TRAINER) as path:
            torch.save(trainer_state, path)
        os.replace(tmp, final)
        fsync_dir(run_dir)
    if val_loss is not None:
        best = read_pointer(run_dir, BEST) if (run_dir / BEST).is_file() else None
        if best is None or val_loss < best["val_loss"]:
            write_json(run_dir / BEST, {"dir": name, "step": step, "val_loss": val_loss})
    write_json(run_dir / LATEST, {"dir": name, "step": step})
    prune(run_dir, keep)
    return final


def prune(run_dir: Path, keep: int) -> None:
    """Delete all checkpoints but the newest `keep` and the best, and temporary folders left by crashes."""
    protected = {read_pointer(run_dir, p)["dir"] for p in (LATEST, BEST) if (run_dir / p).is_file()}
    steps = sorted(d.name for d in run_dir.glob("step_*") if d.is_dir())
    protected |= set(steps[-keep:]) if keep > 0 else set()
    for name in steps:
        if name not in protected:
            shutil.rmtree(run_dir / name, ignore_errors=True)
    for tmp in run_dir.glob(".step_*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- loading

def read_pointer(run_dir: Path, name: str) -> dict:
    """latest.json or best.json of a run folder, checked: it names a checkpoint of this folder by its own name
    (step_NNNNNN, so no path leads outside it) and its step; best.json also a finite val loss."""
    path = run_dir / name
    pointer = read_json(path)
    step, folder = pointer.get("step"), pointer.get("dir")
    problem = None
    if not is_count(step):
        problem = f"its step is {str(step)[:40]}, not a whole number >= 0"
    elif folder != step_dir_name(step):
        problem = f"its dir is {str(folder)[:60]!r}, not {step_dir_name(step)!r}, the folder of step {step}"
    elif name == BEST and not (isinstance(pointer.get("val_loss"), (int, float))
                               and math.isfinite(pointer["val_loss"])):
        problem = f"its val_loss is {str(pointer.get('val_loss'))[:40]}"
    if problem:
        raise CourseError(f"{path} is damaged ({problem}); it should point to a checkpoint folder of {run_dir}")
    return pointer


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder: `path` itself, or the one a run folder's latest.json points to."""
    path = Path(path)
    if (path / TRAINER).is_file():
        return path
    if (path / LATEST).is_file():
        checkpoint = path / read_pointer(path, LATEST)["dir"]
        if not checkpoint.is_dir():
            raise CourseError(f"{path / LATEST} points to {checkpoint.name}, which is missing; resume from another "
                              f"checkpoint folder, or start a new run")
        return checkpoint
    raise CourseError(f"no checkpoint to resume in {path} (no {LATEST}); start without --resume")


def load_training_state(checkpoint: str | Path) -> tuple[dict, dict]:
    """(config.json's content, trainer.pt's content) of a checkpoint folder, loaded without running code and
    checked: the state's shape, and the same step in both files."""
    checkpoint = Path(checkpoint)
    meta = read_json(checkpoint / "config.json")
    state = check_trainer_state(safe_torch_load(checkpoint / TRAINER), checkpoint / TRAINER)
    if meta.get("step") != state["step"]:
        raise CourseError(f"{checkpoint}: config.json says step {str(meta.get('step'))[:20]}, {TRAINER} step "
                          f"{state['step']}; the checkpoint is damaged: resume from another, or start a new run")
    if not isinstance(meta.get("model"), dict) or not isinstance(meta.get("settings", {}), dict):
        raise CourseError(f"{checkpoint / 'config.json'} is damaged (no model config); resume from another "
                          f"checkpoint, or start a new run")
    return meta, state


def settings_difference(saved: dict, current: dict, free: set[str]) -> str:
    """'model.n_embd 32 != 64, lr 0.001 != 0.0006' for settings that differ, ignoring those in `free`.

    Nested settings (the model's shape, `asdict` of a GPTConfig) are compared field by field and named
    with a dot, so that a changed width reads as one field, not as two whole dicts.
    """
    saved, current = _flatten(saved), _flatten(current)
    keys = sorted((set(saved) | set(current)) - free)
    return ", ".join(f"{k} {saved.get(k)} != {current.get(k)}" for k in keys if saved.get(k) != current.get(k))


def _flatten(settings: dict, prefix: str = "") -> dict:
    """{"model": {"n_embd": 32}, "lr": 0.001} -> {"model.n_embd": 32, "lr": 0.001}."""
    flat = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
