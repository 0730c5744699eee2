"""Saving and loading a model: weights as safetensors, the config beside them as JSON.

safetensors holds only tensors, so loading a file never runs code from it
(a pickle-based `torch.save` file can). Writes are atomic: a file is written
under a temporary name, flushed to disk and renamed over the old one, so a
crash leaves either the old checkpoint or the new one, never half of one.
`write_weights` is the course's one writer of a weights file: every chapter's
checkpoints, Chapter 5's classifiers and the main job's bigram model go through it,
and the file gets the mode any new file of the user gets (their umask).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from coursekit import CourseError, read_json, write_json
from coursekit.files import atomic_path

from .model import GPT, GPTConfig

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def model_state(model: GPT) -> dict[str, torch.Tensor]:
    """The state dict without the tied output head (it is the token embedding, stored once)."""
    return {k: v.detach().contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}


def write_weights(state: dict[str, torch.Tensor], path: str | Path) -> Path:
    """Write the tensors of `state` to the safetensors file `path`, atomically, with the user's umask."""
    with atomic_path(path) as tmp:  # it gives the file the user's umask (safetensors makes it private, 0600)
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
    return Path(path)


def save_checkpoint(model: GPT, directory: str | Path, meta: dict | None = None) -> Path:
    """Write `model.safetensors` and `config.json` (the model config plus `meta`) into `directory`."""
    directory = Path(directory)
    write_weights(model_state(model), directory / WEIGHTS)
    write_json(directory / CONFIG, {"model": model.config.to_dict(), **(meta or {})})
    return directory


def config_difference(a: GPTConfig, b: GPTConfig) -> str:
    """'n_layer 4 != 6, n_embd 128 != 384' for the fields where two configs differ."""
    da, db = a.to_dict(), b.to_dict()
    return ", ".join(f"{k} {da[k]} != {db[k]}" for k in da if da[k] != db[k])


def check_state(state: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]], source: str) -> None:
    """Refuse a state dict with missing, unexpected or misshapen tensors, naming them and `source`."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CourseError(f"{source} does not fit this model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    for k, shape in expected.items():
        if tuple(state[k].shape) != tuple(shape):
            raise CourseError(f"{source}: {k} has shape {tuple(state[k].shape)}, the model expects {tuple(shape)}")


def load_weights(model: GPT, path: str | Path) -> None:
    """Load a safetensors file into `model`; refuse missing, unexpected or misshapen tensors by name."""
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise CourseError(f"cannot read weights from {path}: {e}") from None
    check_state(state, {k: tuple(v.shape) for k, v in model_state(model).items()}, str(path))
    model.load_state_dict(state, strict=False)  # strict=False: lm_head.weight is tied, not stored


def load_checkpoint(directory: str | Path, expect: GPTConfig | None = None,
                    device: str = "cpu") -> tuple[GPT, dict]:
    """The model saved in `directory` and its metadata. With `expect`, a checkpoint of
    another shape is refused with a message that names each difference."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CourseError(f"checkpoint directory not found: {directory}")
    meta = read_json(directory / CONFIG)
    cfg = config_of(meta, directory / CONFIG)
    if expect is not None and cfg != expect:
        raise CourseError(f"checkpoint {directory} has a different config: {config_difference(cfg, expect)}")
    model = build_from_file(cfg, directory / CONFIG)
    load_weights(model, directory / WEIGHTS)
    return model.to(device), meta


def config_of(meta: dict, source: str | Path) -> GPTConfig:
    """The model config in a checkpoint's config.json (`meta`, untrusted), or a one-line CourseError naming it."""
    if not isinstance(meta.get("model"), dict):
        raise CourseError(f"{source} has no 'model' section; is this a checkpoint of this course?")
    try:
        return GPTConfig.from_dict(meta["model"])
    except CourseError as e:
        raise CourseError(f"{source}: {e}") from None


def build_from_file(cfg: GPTConfig, source: str | Path) -> GPT:
    """GPT(cfg) for a config read from `source`: a shape too large for the machine is refused naming the file."""
    try:
        return GPT(cfg)
    except CourseError as e:
        raise CourseError(f"{source}: {e}") from None
