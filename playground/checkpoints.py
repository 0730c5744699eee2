"""The course's checkpoints: found under runs/ by the files each chapter writes, and loaded by each chapter's loader.

What each chapter leaves in a folder, and how it is recognised here:

    Chapter 1  bigram      model.safetensors + config.json with a "bigram" entry (the main job's runs/course/bigram;
                           one made before that entry existed takes its vocabulary from ../corpus/corpus.txt)
    Chapter 3  char GPT    model.safetensors + config.json whose tokenizer is "char" (runs/course/gpt, runs/ch03)
    Chapter 4  pretrained  a run folder: step_NNNNNN/ checkpoints, best.json and latest.json (runs/course/pretrain)
    Chapter 5  tiny GPT    model.safetensors + config.json with a byte-pair tokenizer and a "pretrain" entry
    Chapter 5  instruct    config.json with {"finetune": {"type": "instruct", "template": ...}}
    Chapter 5  classifier  config.json with {"finetune": {"type": "classify", "labels": [...]}}

Every file is untrusted: the chapters' loaders check sizes, shapes and fields, and this module checks what it
reads itself (a bigram's vocabulary). The browser never names a folder: it names a model by the id the server
gave it, one of those found here when the server started.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from coursekit import CourseError, read_json

MAX_DEPTH = 3          # runs/course/gpt is depth 2; a run folder's step_ folders are never searched
MAX_CHECKPOINTS = 64   # more than any course run leaves; a folder holding thousands is not searched to the end
MAX_BIGRAM_VOCAB = 4096  # a vocabulary-squared table: 4,096 characters is 64 MB already

# kind -> (chapter, what it is, in words)
CHAT, CLASSIFIER = "instruct", "classifier"     # the two kinds that do not simply continue the text
CHARACTER_KINDS = ("bigram", "char-gpt")        # their tokens are characters
KINDS = {
    "bigram": (1, "bigram"),
    "char-gpt": (3, "character-level GPT"),
    "gpt": (4, "pretrained GPT"),
    "tiny-gpt": (5, "tiny pretrained GPT"),
    "instruct": (5, "instruction-tuned GPT"),
    "classifier": (5, "classifier"),
}


@dataclass(frozen=True)
class Found:
    """A checkpoint folder and what kind of model it holds, before anything is loaded."""

    path: Path
    kind: str
    shown: str  # the folder as the page shows it (relative to the current folder where it can be)

    @property
    def chapter(self) -> int:
        return KINDS[self.kind][0]

    @property
    def title(self) -> str:
        return f"Chapter {self.chapter} · {KINDS[self.kind][1]}"


def identify(folder: Path, files: set[str] | None = None) -> tuple[str | None, str]:
    """(the kind of model in `folder`, '') or (None, why it is not one), from its file names and config.json."""
    files = files if files is not None else {p.name for p in folder.iterdir() if p.is_file()}
    if "best.json" in files or "latest.json" in files:
        return "gpt", ""  # Chapter 4's run folder: its checkpoints are in step_ folders
    if "model.safetensors" not in files:
        return None, "no model.safetensors, best.json or latest.json"
    if "config.json" not in files:
        if folder.name == "bigram" and (folder.parent / "corpus" / "corpus.txt").is_file():
            return "bigram", ""  # the main job's bigram, from before it wrote a config.json
        return None, "model.safetensors without a config.json"
    meta = read_json(folder / "config.json")
    finetune = meta.get("finetune") if isinstance(meta.get("finetune"), dict) else {}
    tokenizer = meta.get("tokenizer") if isinstance(meta.get("tokenizer"), dict) else {}
    if "bigram" in meta:
        return "bigram", ""
    if finetune.get("type") == "classify":
        return "classifier", ""
    if finetune.get("type") == "instruct":
        return "instruct", ""
    if tokenizer.get("type") == "char":
        return "char-gpt", ""
    if tokenizer.get("type") in ("gpt2", "gpt2-subset", "bpe"):
        return ("tiny-gpt" if "pretrain" in meta else "gpt"), ""
    return None, "its config.json names no model this course makes"


def shown_path(path: Path, root: Path | None = None) -> str:
    """How the page names a folder: from the current folder ('runs/course/gpt'), else from the folder searched
    ('runs/course/gpt' for a search of /elsewhere/runs), else as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        pass
    if root is not None:
        return str(Path(root.resolve().name) / path.relative_to(root))
    return str(path)


def find_checkpoints(roots: Iterable[Path], given: Iterable[Path] = (), warn: Callable[[str], None] = print,
                     ) -> list[Found]:
    """Every checkpoint under `roots` (a missing root is skipped) and each folder of `given`, which must be one,
    in the course's order (by kind as KINDS lists them, then folder).

    A folder that looks like a checkpoint but cannot be read is skipped with a line to `warn`; a `given` folder
    that is not a checkpoint is a one-line CourseError."""
    found: list[Found] = []
    seen: set[Path] = set()

    def add(folder: Path, kind: str, root: Path | None = None) -> None:
        key = folder.resolve()
        if key not in seen:
            seen.add(key)
            found.append(Found(folder, kind, shown_path(folder, root)))

    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root):  # symbolic links to folders are not followed
            folder = Path(dirpath)
            depth = len(folder.relative_to(root).parts)
            try:
                kind, _why = identify(folder, set(filenames))
            except CourseError as e:
                warn(f"skipped {shown_path(folder, root)}: {e}")
                kind = None
                dirnames.clear()
            if kind is not None:
                add(folder, kind, root)
                dirnames.clear()  # a checkpoint's own folders (a run's step_ folders) are not models of their own
            elif depth >= MAX_DEPTH or len(found) >= MAX_CHECKPOINTS:
                dirnames.clear()
            else:
                dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "step_", "__")))
    for folder in given:
        folder = Path(folder)
        if not folder.is_dir():
            raise CourseError(f"--model {folder}: not a folder; give a checkpoint folder the course wrote")
        kind, why = identify(folder)
        if kind is None:
            raise CourseError(f"--model {folder} is not a checkpoint of this course ({why})")
        add(folder, kind)
    order = list(KINDS)  # the course's order: the bigram first, the tuned models last
    return sorted(found, key=lambda f: (order.index(f.kind), f.shown))


def model_ids(found: list[Found]) -> list[str]:
    """A short, unique, URL-safe id for each checkpoint ('course-gpt'), made from its folder's last two names:
    the only name of a model the browser ever sends."""
    ids, used = [], set()
    for f in found:
        base = re.sub(r"[^a-z0-9]+", "-", "/".join(f.path.resolve().parts[-2:]).lower()).strip("-")[:40] or "model"
        name, n = base, 2
        while name in used:
            name, n = f"{base}-{n}", n + 1
        used.add(name)
        ids.append(name)
    return ids


# --------------------------------------------------------------------------- loading


@dataclass
class Loaded:
    """A model made ready to sample from or to classify with, whatever chapter it comes from.

    `model` runs in Chapter 3's sampling loop (`ch03_gpt.stream_with_probs`), the bigram too, behind
    `BigramForSampling`; a classifier's `model` returns class logits instead.
    """

    found: Found
    model: nn.Module
    encode: Callable[[str], list[int]]           # text -> ids; a CourseError for text the model cannot read
    token_text: Callable[[int], str]             # one id alone, as the top-5 list shows it
    new_decoder: Callable[[], Callable[[int], str]]  # a decoder for one reply: holds back a split character
    context: int                                 # tokens the model sees (its block size)
    vocab_size: int
    use_cache: bool = True
    eot: int | None = None                       # <|endoftext|>: ends a chat answer
    codec: object | None = None                  # Chapter 5's Codec, for chat framing and classifying
    template: object | None = None               # an instruction-tuned model's prompt template
    labels: list[str] = field(default_factory=list)  # a classifier's classes
    device: str = "cpu"

    @property
    def kind(self) -> str:
        return self.found.kind

    def describe(self) -> str:
        """'0.81M parameters · context 64 tokens · vocabulary 51' for the page."""
        params = sum(p.numel() for p in self.model.parameters())
        size = f"{params / 1e6:.2f}M" if params >= 10_000 else f"{params:,}"
        unit = ("character" if self.kind in CHARACTER_KINDS else "token") + ("" if self.context == 1 else "s")
        return f"{size} parameters · context {self.context:,} {unit} · vocabulary {self.vocab_size:,}"


class BigramForSampling(nn.Module):
    """Chapter 1's bigram behind the interface of Chapter 3's sampling loop.

    The loop needs `config.block_size`, `config.vocab_size` and `config.n_layer`, and a forward that takes a
    cache. A bigram sees one character, so its block size is 1, and it keeps no cache (the loop runs it with
    `use_cache=False`). Its logits are row `idx` of its table, as in Chapter 1: the loop draws from them exactly
    as `ch01_bigram.sample_tokens` does, so the same seed gives the same text.
    """

    def __init__(self, bigram: nn.Module):
        super().__init__()
        self.bigram = bigram
        vocab = bigram.token_embedding_table.num_embeddings
        self.config = SimpleNamespace(block_size=1, vocab_size=vocab, n_layer=0)

    def forward(self, idx: torch.Tensor, cache=None) -> tuple[torch.Tensor, None]:
        logits, _ = self.bigram(idx)  # (B, T, V)
        return logits, None


def char_vocabulary(chars, vocab_size: int | None, source: str | Path) -> list[str]:
    """A character vocabulary read from a file (untrusted): distinct single characters in sorted order, as
    `CharTokenizer` numbers them, and as many as the model's rows."""
    if not (isinstance(chars, list) and all(isinstance(c, str) and len(c) == 1 for c in chars)
            and chars == sorted(set(chars))):
        raise CourseError(f"{source}: its tokenizer's chars should be distinct single characters in sorted order")
    if vocab_size is not None and len(chars) != vocab_size:
        raise CourseError(f"{source}: the tokenizer has {len(chars)} characters, the model {vocab_size}")
    return chars


def _char_functions(chars: list[str]) -> dict:
    from ch01_bigram import CharTokenizer

    tokenizer = CharTokenizer(chars)
    return dict(encode=tokenizer.encode, token_text=lambda i: tokenizer.itos[int(i)],
                new_decoder=lambda: (lambda i: tokenizer.itos[int(i)]), vocab_size=tokenizer.vocab_size)


def _codec_functions(codec) -> dict:
    return dict(encode=codec.encode, token_text=lambda i: codec.decode([int(i)]), new_decoder=codec.stream_decoder,
                vocab_size=codec.vocab_size, eot=codec.eot, codec=codec)


def load_bigram(found: Found, device: str) -> Loaded:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ch01_bigram import BigramLanguageModel
    from ch01_bigram.data import read_text_file
    from ch03_gpt.checkpoint import check_state

    folder = found.path
    if (folder / "config.json").is_file():
        meta = read_json(folder / "config.json")
        tokenizer = meta.get("tokenizer") if isinstance(meta.get("tokenizer"), dict) else {}
        bigram = meta.get("bigram") if isinstance(meta.get("bigram"), dict) else {}
        vocab = bigram.get("vocab_size")
        if not (isinstance(vocab, int) and not isinstance(vocab, bool) and 1 <= vocab <= MAX_BIGRAM_VOCAB):
            raise CourseError(f"{folder / 'config.json'}: its bigram vocab_size should be a whole number from 1 to "
                              f"{MAX_BIGRAM_VOCAB}")
        chars = char_vocabulary(tokenizer.get("chars"), vocab, folder / "config.json")
    else:  # the main job's corpus, from which its bigram's vocabulary was made (`prepare_char_data`)
        chars = sorted(set(read_text_file(folder.parent / "corpus" / "corpus.txt")))
        if len(chars) > MAX_BIGRAM_VOCAB:
            raise CourseError(f"{folder}: its corpus has {len(chars):,} distinct characters, more than a bigram "
                              f"here may have ({MAX_BIGRAM_VOCAB:,})")
    weights = folder / "model.safetensors"
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as e:
        raise CourseError(f"cannot read weights from {weights}: {e}") from None
    check_state(state, {"token_embedding_table.weight": (len(chars), len(chars))}, str(weights))
    bigram = BigramLanguageModel(len(chars))
    bigram.load_state_dict(state)
    model = BigramForSampling(bigram).to(device).eval()
    return Loaded(found, model, context=1, use_cache=False, device=device, **_char_functions(chars))


def load_char_gpt(found: Found, device: str) -> Loaded:
    from ch03_gpt import load_checkpoint

    model, meta = load_checkpoint(found.path, device=device)
    tokenizer = meta.get("tokenizer") if isinstance(meta.get("tokenizer"), dict) else {}
    chars = char_vocabulary(tokenizer.get("chars"), model.config.vocab_size, found.path / "config.json")
    return Loaded(found, model.eval(), context=model.config.block_size, device=device, **_char_functions(chars))


def load_gpt(found: Found, device: str) -> Loaded:
    from ch05_finetune.pretrained import load_start

    # Chapter 5's loader of a starting point reads Chapter 4's runs (best, else latest checkpoint) and the tiny
    # model, each with its tokenizer. The path is made absolute so that it is never taken for a name ('tiny',
    # 'gpt2') that would train or download a model.
    model, codec, _meta = load_start(found.path.resolve(), device, progress=False, log=None)
    return Loaded(found, model.eval(), context=model.config.block_size, device=device, **_codec_functions(codec))


def load_instruct(found: Found, device: str) -> Loaded:
    from ch05_finetune.chat import load_chat_model

    model, codec, template = load_chat_model(found.path, device)
    return Loaded(found, model.eval(), context=model.config.block_size, template=template, device=device,
                  **_codec_functions(codec))


def load_classifier_model(found: Found, device: str) -> Loaded:
    from ch05_finetune.classify import load_classifier

    model, codec, labels = load_classifier(found.path, device)
    return Loaded(found, model.eval(), context=model.config.block_size, labels=list(labels), device=device,
                  **_codec_functions(codec))


LOADERS = {"bigram": load_bigram, "char-gpt": load_char_gpt, "gpt": load_gpt, "tiny-gpt": load_gpt,
           "instruct": load_instruct, "classifier": load_classifier_model}


def load(found: Found, device: str = "cpu") -> Loaded:
    """The model in `found`, loaded by its chapter's loader; a one-line CourseError naming the folder if it is
    damaged."""
    try:
        return LOADERS[found.kind](found, device)
    except CourseError as e:
        message = str(e)
        raise CourseError(message if found.shown in message else f"{found.shown}: {message}") from None
