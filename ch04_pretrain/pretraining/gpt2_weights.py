"""OpenAI's GPT-2 weights in Chapter 3's GPT, and one loader for every pretrained model of the course.

OpenAI's checkpoints are published on the Hugging Face Hub
(openai-community/gpt2, gpt2-medium, gpt2-large, gpt2-xl) as a
`model.safetensors` file in Hugging Face's GPT-2 layout. Chapter 3 named its
parameters after that layout, so loading is a matter of names and one twist:
GPT-2 was written with `Conv1D` layers, which store a weight as (in, out)
where `nn.Linear` stores (out, in). Those four matrices per block are
transposed; everything else is copied as is.

`load_pretrained(source)` is the one entry point later chapters use:

    model, encoding, meta = load_pretrained("gpt2")             # OpenAI's 124M (downloads once)
    model, encoding, meta = load_pretrained("runs/owt")         # a run of ours: its best checkpoint, with
                                                                # its tokenizer (GPT-2's, or our own BPE)
    model, encoding, meta = load_pretrained("runs/owt/step_000500")
    model, encoding, meta = load_pretrained("path/to/model.safetensors")  # Hugging Face format
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ch03_gpt import GPT, GPT2_CONFIGS, GPTConfig, load_checkpoint
from ch03_gpt.checkpoint import check_state
from ch04_pretrain.data_pipeline.bpe import VOCAB_SIZE, tokenizer_encoding
from coursekit import CourseError, read_json

from .training_state import BEST, LATEST, read_pointer

HUB_ORG = "openai-community"
# GPT-2's Conv1D layers: their weights are stored (in, out) and must be transposed for nn.Linear.
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# Buffers that older versions of `transformers` saved with the weights: the causal mask, not parameters.
MASK_BUFFERS = ("attn.bias", "attn.masked_bias")


def hf_to_ours(state: dict[str, torch.Tensor], cfg: GPTConfig) -> dict[str, torch.Tensor]:
    """Rename and transpose a Hugging Face GPT-2 state dict into Chapter 3's names (tied head left out)."""
    ours = {}
    for name, tensor in state.items():
        name = name.removeprefix("transformer.")
        parts = name.split(".")
        if parts[0] == "h" and ".".join(parts[2:]) in MASK_BUFFERS:
            continue
        if name == "lm_head.weight":
            continue  # tied to wte in GPT-2; checked below when both are present
        if parts[0] == "h" and ".".join(parts[2:]) in CONV1D:
            tensor = tensor.t()
        ours[f"transformer.{name}"] = tensor.contiguous()
    head = state.get("lm_head.weight")
    if head is not None and "transformer.wte.weight" in ours and not torch.equal(head, ours["transformer.wte.weight"]):
        raise CourseError("lm_head.weight differs from wte.weight; Chapter 3's GPT ties them, so it cannot hold "
                          "this checkpoint")
    check_state(ours, _expected_shapes(cfg), "the GPT-2 state dict")
    return ours


def _expected_shapes(cfg: GPTConfig) -> dict[str, tuple[int, ...]]:
    """The shapes of Chapter 3's GPT for `cfg`, built on the meta device (no memory, no time)."""
    with torch.device("meta"):
        model = GPT(cfg)
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if k != "lm_head.weight"}


def config_from_hf(hf: dict, source: str = "the config") -> GPTConfig:
    """Chapter 3's config from a Hugging Face GPT-2 `config.json` (read from `source`, untrusted); refuses
    settings our GPT does not have, and anything that is not such a config, in one line naming `source`."""
    activation = hf.get("activation_function", "gelu_new")
    if activation not in ("gelu_new", "gelu_pytorch_tanh"):
        raise CourseError(f"{source}: activation {str(activation)[:40]!r} is not GPT-2's tanh GELU")
    epsilon = hf.get("layer_norm_epsilon", 1e-5)
    if not isinstance(epsilon, (int, float)) or not abs(epsilon - 1e-5) <= 1e-12:
        raise CourseError(f"{source}: layer_norm_epsilon {str(epsilon)[:40]} differs from GPT-2's 1e-5")
    if hf.get("scale_attn_by_inverse_layer_idx") or hf.get("reorder_and_upcast_attn"):
        raise CourseError(f"{source}: this GPT-2 variant scales attention differently from Chapter 3's GPT")
    missing = [k for k in ("vocab_size", "n_layer", "n_head", "n_embd") if k not in hf]
    if missing:
        raise CourseError(f"{source} has no {missing[0]}: it is not a GPT-2 config")
    try:
        return GPTConfig(vocab_size=hf["vocab_size"], block_size=hf.get("n_positions", 1024), n_layer=hf["n_layer"],
                         n_head=hf["n_head"], n_embd=hf["n_embd"], dropout=0.0, bias=True, activation="gelu_tanh")
    except CourseError as e:
        raise CourseError(f"{source}: {e}") from None


def _guess_config(state: dict[str, torch.Tensor]) -> GPTConfig:
    """Without a config.json, recognise one of OpenAI's four sizes from the tensor shapes."""
    strip = {k.removeprefix("transformer."): v for k, v in state.items()}
    if "wte.weight" not in strip or "wpe.weight" not in strip:
        raise CourseError("no wte.weight / wpe.weight tensors: not a GPT-2 checkpoint")
    if strip["wte.weight"].dim() != 2 or strip["wpe.weight"].dim() != 2:
        raise CourseError("wte.weight / wpe.weight are not matrices: not a GPT-2 checkpoint")
    vocab, width = strip["wte.weight"].shape
    block = strip["wpe.weight"].shape[0]
    layers = 1 + max((int(k.split(".")[1]) for k in strip if re.match(r"h\.\d+\.", k)), default=-1)
    for size in GPT2_CONFIGS.values():
        if size["n_layer"] == layers and size["n_embd"] == width:
            return GPTConfig(vocab_size=vocab, block_size=block, dropout=0.0, bias=True, activation="gelu_tanh", **size)
    raise CourseError(f"{layers} layers of width {width} is none of OpenAI's GPT-2 sizes, and the number of "
                      f"heads cannot be read from the weights; put the model's config.json beside the file")


def load_hf_gpt2(weights: str | Path, config: dict | None = None) -> GPT:
    """Chapter 3's GPT holding a Hugging Face GPT-2 `model.safetensors` (config: its config.json, if known)."""
    weights = Path(weights)
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as e:
        raise CourseError(f"cannot read weights from {weights}: {e}") from None
    source = "the config"
    if config is None and (weights.parent / "config.json").is_file():
        source = weights.parent / "config.json"
        config = read_json(source)
    cfg = config_from_hf(config, source) if config is not None else _guess_config(state)
    model = GPT(cfg)
    model.load_state_dict(hf_to_ours(state, cfg), strict=False)  # strict=False: the tied head is not stored
    return model.eval()


def hub_name(name: str) -> str | None:
    """'gpt2-medium' or 'openai-community/gpt2-medium' -> 'gpt2-medium'; None for anything else."""
    short = name.removeprefix(f"{HUB_ORG}/")
    return short if short in GPT2_CONFIGS else None


def download_gpt2(name: str) -> tuple[Path, dict]:
    """model.safetensors and config.json of OpenAI's GPT-2 `name`, from the local Hub cache or downloaded."""
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:
        raise CourseError("loading OpenAI's weights needs huggingface_hub: pip install huggingface_hub") from None
    repo = f"{HUB_ORG}/{name}"
    files = ("config.json", "model.safetensors")
    try:
        paths = [hf_hub_download(repo, f, local_files_only=True) for f in files]  # the cache first: no network
        return Path(paths[1]), read_json(paths[0])
    except LocalEntryNotFoundError:
        pass
    if not _hub_reachable():
        raise CourseError(f"{repo} is not in the Hugging Face cache and huggingface.co cannot be reached; connect "
                          f"to the network once, or pass the path of a downloaded model.safetensors")
    try:
        paths = [hf_hub_download(repo, f) for f in files]
    except LocalEntryNotFoundError:
        raise CourseError(f"{repo} is not in the Hugging Face cache and the Hub cannot be reached; connect to the "
                          f"network once, or pass the path of a downloaded model.safetensors") from None
    except Exception as e:
        raise CourseError(f"cannot download {repo}: {type(e).__name__}: {e}") from None
    return Path(paths[1]), read_json(paths[0])


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick check before downloading: offline, the Hub client would retry for half a minute before failing."""
    import socket
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def resolve_run(directory: Path) -> Path:
    """A checkpoint directory of ours: `directory` itself, or for a training run its best (else latest) checkpoint."""
    if (directory / "model.safetensors").is_file():
        return directory
    for pointer in (BEST, LATEST):
        if (directory / pointer).is_file():
            return directory / read_pointer(directory, pointer)["dir"]  # checked: a folder of this run
    raise CourseError(f"{directory} holds neither model.safetensors nor a training run (best.json / latest.json)")


def _hf_tokenizer(model: GPT) -> dict:
    """A Hugging Face GPT-2 file says nothing about its tokenizer; GPT-2's vocabulary size identifies GPT-2's."""
    return {"type": "gpt2"} if model.config.vocab_size == VOCAB_SIZE else {"type": "unknown"}


def load_pretrained(source: str | Path, device: str = "cpu") -> tuple[GPT, object | None, dict]:
    """A pretrained GPT, its tokenizer and a description of where it came from.

    `source` is one of: a GPT-2 name (gpt2, gpt2-medium, gpt2-large, gpt2-xl,
    optionally prefixed with openai-community/); a checkpoint directory of this
    course (Chapter 3's layout: model.safetensors + config.json), or a training
    run's directory (its best checkpoint is used); a `model.safetensors` file in
    Hugging Face's GPT-2 format (its config.json is read when it lies beside it).

    Returns (model in eval mode on `device`, its tiktoken encoding: GPT-2's, or
    for a run on data prepared with a rank file of our own, that BPE, read from
    the copy the checkpoint keeps (checked against the sha256 config.json
    records); None for a character-level model; metadata: the checkpoint's
    config.json, or for OpenAI's weights {"source", "model", "tokenizer"}).
    """
    name = hub_name(str(source))
    path = folder = Path(source)
    if name is not None and not path.exists():
        weights, hf_config = download_gpt2(name)
        model = load_hf_gpt2(weights, hf_config)
        meta = {"source": f"{HUB_ORG}/{name}", "model": model.config.to_dict(), "tokenizer": {"type": "gpt2"}}
    elif path.is_file():
        model = load_hf_gpt2(path)
        meta = {"source": str(path), "model": model.config.to_dict(), "tokenizer": _hf_tokenizer(model)}
    elif path.is_dir():
        checkpoint = folder = resolve_run(path)
        if not (checkpoint / "config.json").is_file():
            raise CourseError(f"{checkpoint} has no config.json")
        if "model" not in read_json(checkpoint / "config.json"):  # Hugging Face's own layout
            model = load_hf_gpt2(checkpoint / "model.safetensors")
            meta = {"source": str(checkpoint), "model": model.config.to_dict(), "tokenizer": _hf_tokenizer(model)}
        else:
            model, meta = load_checkpoint(checkpoint)
            meta = {**meta, "source": str(checkpoint)}
    else:
        raise CourseError(f"{source!r} is neither a checkpoint directory, a model.safetensors file, nor one of "
                          f"{', '.join(GPT2_CONFIGS)}")
    encoding = tokenizer_encoding(meta.get("tokenizer"), folder)
    if encoding is not None and model.config.vocab_size < encoding.n_vocab:
        raise CourseError(f"the model's vocabulary ({model.config.vocab_size}) is smaller than its tokenizer's "
                          f"({encoding.n_vocab}, {meta['tokenizer'].get('name') or meta['tokenizer']['type']})")
    return model.to(device).eval(), encoding, meta
