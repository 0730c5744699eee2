"""Classification fine-tuning: a GPT with a classifier for a head, read at the last real token.

The language-model head scores every token of the vocabulary at every
position. For classification we swap it for a small `Linear(n_embd, classes)`
and read it at the last real token of each text: in a causal model that is
the only position that has seen the whole text. Batches are right-padded, so
the padding comes after that token and cannot change it.

What to train is a choice: the new head must be trained; the rest can stay
as pretrained (`trainable_blocks=0`), or the last N blocks and the final
LayerNorm can adapt too, or everything (`"all"`).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from ch03_gpt import GPT
from ch03_gpt.checkpoint import WEIGHTS, build_from_file, config_of, write_weights
from coursekit import CourseError, read_json, write_json
from coursekit.files import check_writable_file
from coursekit.runtime import pick_device, set_seed
from coursekit.settings import DEFAULT_SEED

from .labelled import LabelledData, load_labelled, make_splits
from .loop import FitConfig, FitHistory, Interrupted, fit, interrupted_save, trainable_parameters
from .lora import merge_lora
from .measure import measure
from .pretrained import choose_start, load_chosen
from .vocab import Codec

# --------------------------------------------------------------------------- #
# Model
# --------------------------------------------------------------------------- #

def add_classifier_head(model: GPT, num_classes: int) -> GPT:
    """Replace the output head (n_embd -> vocabulary) by a classifier (n_embd -> classes), in place."""
    if num_classes < 2:
        raise CourseError(f"a classifier needs at least 2 classes, got {num_classes}")
    torch.manual_seed(0)  # the same head for the same model, whatever ran before
    model.lm_head = nn.Linear(model.config.n_embd, num_classes)  # unties it from the token embedding
    return model


def choose_trainable(model: GPT, trainable_blocks: int | str = 2) -> None:
    """Freeze everything, then unfreeze the head, the final LayerNorm and the last N blocks ("all": all)."""
    n_layer = len(model.transformer.h)
    if trainable_blocks == "all":
        for p in model.parameters():
            p.requires_grad_(True)
        return
    n = int(trainable_blocks)
    if not 0 <= n <= n_layer:
        raise CourseError(f"trainable blocks must be between 0 and {n_layer} (or 'all'), got {n}")
    for p in model.parameters():
        p.requires_grad_(False)
    for module in [model.lm_head, model.transformer.ln_f, *model.transformer.h[n_layer - n:]]:
        for p in module.parameters():
            p.requires_grad_(True)


def encode_texts(codec: Codec, texts: list[str], max_len: int, what: str = "the texts") -> list[list[int]]:
    """Token ids of each text, cut from the left to `max_len` so the true last token stays.

    A trimmed vocabulary refuses texts of which more than 1% of the tokens it does not know
    (`Codec.check_coverage`): they would reach the model as one "unknown" id."""
    out, unknown, total = [], 0, 0
    for i, text in enumerate(texts):
        ids = codec.encode(text)
        if not ids:
            raise CourseError(f"text {i} is empty")
        unknown += codec.unknown_count(ids)
        total += len(ids)
        out.append(ids[-max_len:])
    if unknown:
        codec.check_coverage(texts, what)
    return out


def pad_batch(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest: ids (B, T) and the true lengths (B,)."""
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
    return ids, torch.tensor([len(s) for s in seqs])


def class_logits(model: GPT, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, T) ids -> (B, classes) logits, read at each row's last real token."""
    logits, _ = model(ids)                                   # (B, T, classes)
    return logits[torch.arange(len(ids)), lengths - 1]       # (B, classes)


@torch.no_grad()
def predict(model: GPT, seqs: list[list[int]], pad_id: int, batch_size: int = 128) -> torch.Tensor:
    model.eval()
    preds = []
    for b in range(0, len(seqs), batch_size):
        ids, lengths = pad_batch(seqs[b:b + batch_size], pad_id)
        preds.append(class_logits(model, ids, lengths).argmax(-1))
    return torch.cat(preds)


# --------------------------------------------------------------------------- #
# Metrics
# --------------------------------------------------------------------------- #

def confusion_matrix(pred: torch.Tensor, true: torch.Tensor, num_classes: int) -> torch.Tensor:
    """cm[i, j] = how many examples of class i were predicted as class j."""
    return torch.bincount(true * num_classes + pred, minlength=num_classes ** 2).view(num_classes, num_classes)


def scores(pred, true, num_classes: int) -> dict:
    """Accuracy, precision, recall and F1 (of class 1 for two classes, else averaged over classes)."""
    pred, true = torch.as_tensor(pred), torch.as_tensor(true)
    cm = confusion_matrix(pred, true, num_classes).double()
    tp = cm.diagonal()
    precision = torch.where(cm.sum(0) > 0, tp / cm.sum(0).clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(cm.sum(1) > 0, tp / cm.sum(1).clamp(min=1), torch.zeros_like(tp))
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12),
                     torch.zeros_like(tp))
    pick = (lambda v: v[1].item()) if num_classes == 2 else (lambda v: v.mean().item())
    return {"accuracy": (tp.sum() / cm.sum()).item(), "precision": pick(precision), "recall": pick(recall),
            "f1": pick(f1), "confusion": cm.long().tolist()}


def plot_confusion(cm, label_names: list[str], title: str = "confusion matrix"):
    import matplotlib.pyplot as plt

    cm = torch.as_tensor(cm)
    fig, ax = plt.subplots(figsize=(3.6, 3.2))
    ax.imshow(cm, cmap="Blues")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xticks(range(len(label_names)), label_names)
    ax.set_yticks(range(len(label_names)), label_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- #
# Baselines
# --------------------------------------------------------------------------- #

def majority_baseline(train_labels: list[int], test_labels: list[int], num_classes: int) -> dict:
    """Always predict the most common training class."""
    guess = max(range(num_classes), key=train_labels.count)
    return scores([guess] * len(test_labels), test_labels, num_classes)


class BagOfWords(nn.Module):
    """Logistic regression on word counts: one weight per (word, class), blind to order."""

    def __init__(self, vocab_size: int, num_classes: int):
        super().__init__()
        self.weights = nn.EmbeddingBag(vocab_size, num_classes, mode="sum")  # sums the rows of a text's words
        nn.init.zeros_(self.weights.weight)
        self.bias = nn.Parameter(torch.zeros(num_classes))

    def forward(self, flat_ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.weights(flat_ids, offsets) + self.bias  # (B, classes)


def _flat(seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    offsets = torch.tensor([0] + [len(s) for s in seqs[:-1]]).cumsum(0)
    return torch.tensor([i for s in seqs for i in s], dtype=torch.long), offsets


WORD = re.compile(r"\w+(?:'\w+)*")


def text_words(text: str) -> list[str]:
    """The words of a text, lowercased (a word: letters and digits, with inner apostrophes)."""
    return WORD.findall(text.lower())


def words_to_ids(train_texts: list[str], test_texts: list[str]) -> tuple[list[list[int]], list[list[int]], int]:
    """Number the training texts' words 1..V (0: a word seen only in the test texts); ids of both, and V + 1."""
    vocab: dict[str, int] = {}
    for text in train_texts:
        for w in text_words(text):
            vocab.setdefault(w, len(vocab) + 1)

    def ids(texts):
        return [[vocab.get(w, 0) for w in text_words(t)] for t in texts]

    return ids(train_texts), ids(test_texts), len(vocab) + 1


def bag_of_words_baseline(train_seqs, train_labels, test_seqs, test_labels, vocab_size: int | None = None,
                          num_classes: int | None = None, steps: int = 300, lr: float = 0.1,
                          weight_decay: float = 1e-3, seed: int = DEFAULT_SEED) -> dict:
    """Fit `BagOfWords` on the training set (full batch, AdamW) and score it on the test set.

    Give it the texts (strings): it counts their words, whatever model is fine-tuned beside it,
    so a model's trimmed vocabulary cannot blind it. (Lists of token ids, with `vocab_size`,
    still work: a bag of tokens.) The result has `vocabulary`, the number of ids it weighed."""
    if train_seqs and isinstance(train_seqs[0], str):
        train_seqs, test_seqs, vocab_size = words_to_ids(train_seqs, test_seqs)
    if vocab_size is None:
        raise CourseError("bag_of_words_baseline needs vocab_size for token ids (or give it the texts)")
    num_classes = num_classes or max([*train_labels, *test_labels]) + 1
    torch.manual_seed(seed)
    model = BagOfWords(vocab_size, num_classes)
    x, off = _flat(train_seqs)
    y = torch.tensor(train_labels)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(steps):
        loss = F.cross_entropy(model(x, off), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        tx, toff = _flat(test_seqs)
        pred = model(tx, toff).argmax(-1)
        train_acc = (model(x, off).argmax(-1) == y).float().mean().item()
    return {**scores(pred, test_labels, num_classes), "train_accuracy": train_acc, "vocabulary": vocab_size - 1}


# --------------------------------------------------------------------------- #
# Fine-tuning
# --------------------------------------------------------------------------- #

def finetune_classifier(model: GPT, codec: Codec, train: LabelledData, val: LabelledData, cfg: FitConfig,
                        trainable_blocks: int | str = "all", lora_rank: int = 0, max_len: int | None = None,
                        progress: bool = True, log=print, out: str | Path | None = None,
                        meta: dict | None = None) -> FitHistory:
    """Give `model` a classifier head, choose what trains, and fit it; val accuracy is recorded per epoch
    (epoch 0: before any training). With `lora_rank` > 0, LoRA adapters and the head train instead.

    With `out`, Ctrl-C during fine-tuning saves the best classifier so far there (`save_classifier`, with
    `meta`; LoRA merged), says so on stderr, and lets the KeyboardInterrupt go on."""
    from .lora import apply_lora, merge_lora

    max_len = min(max_len or model.config.block_size, model.config.block_size)
    num_classes = len(train.label_names)
    add_classifier_head(model, num_classes)
    if lora_rank:
        apply_lora(model, lora_rank, train_also=("lm_head",))
    else:
        choose_trainable(model, trainable_blocks)
    train_seqs = encode_texts(codec, train.texts, max_len, "the training texts")
    val_seqs = encode_texts(codec, val.texts, max_len, "the validation texts")
    examples = list(zip(train_seqs, train.labels))

    def loss_fn(batch):
        ids, lengths = pad_batch([s for s, _ in batch], codec.eot)
        return F.cross_entropy(class_logits(model, ids, lengths), torch.tensor([y for _, y in batch]))

    def evaluate():
        pred = predict(model, val_seqs, codec.eot)
        train_pred = predict(model, train_seqs[:len(val_seqs)], codec.eot)
        return {"train_accuracy": (train_pred == torch.tensor(train.labels[:len(val_seqs)])).float().mean().item(),
                "val_accuracy": (pred == torch.tensor(val.labels)).float().mean().item()}

    def on_interrupt(stop: Interrupted) -> None:
        def save(note: dict) -> None:
            if lora_rank:
                merge_lora(model)
            save_classifier(model, codec, train.label_names, out, {**(meta or {}), "interrupted": note})
        interrupted_save(stop, "val_accuracy", out, save)

    return fit(model, examples, loss_fn, cfg, evaluate, progress, log, best=("val_accuracy", "max"),
               on_interrupt=on_interrupt if out is not None else None)


def check_labels(classifier_labels: list[str] | None, data: LabelledData) -> None:
    """Refuse data whose classes are not the classifier's, in the same order: a spam filter scored on
    sentiment data would otherwise report a number that means nothing."""
    if classifier_labels is None or list(classifier_labels) == list(data.label_names):
        return
    raise CourseError(f"the classifier's classes are {', '.join(classifier_labels)}; the data's are "
                      f"{', '.join(data.label_names)}: score it on data with the classes it was trained on")


def evaluate_classifier(model: GPT, codec: Codec, data: LabelledData) -> dict:
    """Scores on `data`; a classifier from `load_classifier` (which knows its class names) refuses other classes."""
    check_labels(getattr(model, "label_names", None), data)
    seqs = encode_texts(codec, data.texts, model.config.block_size, "the texts to score")
    return scores(predict(model, seqs, codec.eot), data.labels, len(data.label_names))


# --------------------------------------------------------------------------- #
# Saving and loading (the head is not tied to the embedding, so it is stored)
# --------------------------------------------------------------------------- #

def save_classifier(model: GPT, codec: Codec, label_names: list[str], directory: str | Path, meta: dict | None = None):
    directory = Path(directory)
    write_weights({k: v.detach() for k, v in model.state_dict().items()}, directory / WEIGHTS)
    codec.save(directory)  # the file its tokenizer needs (a rank file of our own), before config.json names it
    write_json(directory / "config.json", {"model": model.config.to_dict(), "tokenizer": codec.to_meta(),
                                           "finetune": {"type": "classify", "labels": list(label_names)},
                                           **(meta or {})})
    return directory


# A saved classifier's classes, as its config.json may claim them: a bound, since the file is untrusted.
MAX_CLASSES = 1000


def load_classifier(directory: str | Path, device: str = "cpu") -> tuple[GPT, Codec, list[str]]:
    directory = Path(directory)
    config = directory / "config.json"
    meta = read_json(config)
    finetune = meta.get("finetune")
    kind = finetune.get("type") if isinstance(finetune, dict) else None
    if kind != "classify":
        raise CourseError(f"{directory} is not a classifier checkpoint (finetune type {str(kind)[:40]!r})")
    labels = finetune.get("labels")
    if not (isinstance(labels, list) and 2 <= len(labels) <= MAX_CLASSES and all(isinstance(x, str) for x in labels)):
        raise CourseError(f"{config} is damaged: its finetune labels should be 2 to {MAX_CLASSES} names")
    model = add_classifier_head(build_from_file(config_of(meta, config), config), len(labels))
    try:
        model.load_state_dict(load_file(str(directory / "model.safetensors")))
    except (RuntimeError, OSError, SafetensorError) as e:
        raise CourseError(f"cannot load {directory / 'model.safetensors'}: {str(e).splitlines()[0][:200]}") from None
    model.label_names = list(labels)  # so that `evaluate_classifier` can refuse data of other classes
    return model.to(device).eval(), Codec.from_meta(meta.get("tokenizer"), directory), labels


# --------------------------------------------------------------------------- #
# The commands `classify` and `evaluate` run (cli.py parses their options)
# --------------------------------------------------------------------------- #

def format_class_scores(s: dict) -> str:
    return f"accuracy {s['accuracy']:.3f}, precision {s['precision']:.3f}, recall {s['recall']:.3f}, F1 {s['f1']:.3f}"


def classify_command(args, cfg: FitConfig) -> None:
    """`python -m ch05_finetune classify`: the two baselines, fine-tuning with `cfg` (the recipe with what the
    command line gave), test scores, the classifier saved to --out."""
    if args.plot:
        check_writable_file(args.plot, "--plot")
    device = pick_device(args.device)
    data = load_labelled(args.data, args.data_dir, args.sha256, args.trust_unverified, seed=args.seed,
                         progress=not args.no_progress, fmt=args.format)
    how = args.split
    if how == "auto":
        how = "given" if data.given else "stratified" if args.no_balance else "balanced"
    train, val, test = make_splits(data, args.seed, how)
    source, reason = choose_start(args.source, args.data, train.texts)
    model, codec, _ = load_chosen(source, reason, device, not args.no_progress)
    max_len = min(args.max_len or model.config.block_size, model.config.block_size)
    kind = "its own train/dev/test" if how == "given" else how
    print(f"data: {args.data}, {len(data):,} examples; split ({kind}) train {len(train):,} / val {len(val):,} / "
          f"test {len(test):,}; classes {', '.join(data.label_names)}")
    k = len(data.label_names)
    encode_texts(codec, train.texts, max_len, "the training texts")  # refuses text the model cannot read
    encode_texts(codec, test.texts, max_len, "the test texts")
    print(f"majority class:  {format_class_scores(majority_baseline(train.labels, test.labels, k))}")
    bow = bag_of_words_baseline(train.texts, train.labels, test.texts, test.labels, num_classes=k)
    print(f"bag of words:    {format_class_scores(bow)}  ({bow['vocabulary']:,} words)")
    set_seed(args.seed)
    # Ctrl-C during fine-tuning saves the best classifier so far to --out before the command ends.
    meta = {"data": args.data, "seed": args.seed, "split": how, "format": args.format}
    _history, cost = measure(lambda: finetune_classifier(model, codec, train, val, cfg, args.trainable,
                                                        args.lora_rank, max_len, progress=not args.no_progress,
                                                        out=args.out, meta=meta), device)
    result = evaluate_classifier(model, codec, test)
    print(f"fine-tuned GPT:  {format_class_scores(result)}  ({trainable_parameters(model):,} trainable parameters, "
          f"{cost['seconds']:.1f} s)")
    print(f"confusion matrix (rows true, columns predicted): {result['confusion']}")
    if args.lora_rank:
        merge_lora(model)
    save_classifier(model, codec, data.label_names, args.out, {**meta, "test": dict(result.items())})
    print(f"saved {args.out}")
    if args.plot:
        plot_confusion(result["confusion"], data.label_names).savefig(args.plot, dpi=120)
        print(f"saved {args.plot}")


def evaluate_command(args, meta: dict, device: str) -> None:
    """`python -m ch05_finetune evaluate` on a classifier (`meta`: its config.json): scores on --data's test
    split, the split it was trained with when it is the same data."""
    if args.plot:
        check_writable_file(args.plot, "--plot")
    model, codec, labels = load_classifier(args.checkpoint, device)
    data = load_labelled(args.data, args.data_dir, args.sha256, args.trust_unverified, seed=args.seed,
                         fmt=args.format)
    if len(data.label_names) != len(labels):
        raise CourseError(f"the checkpoint knows {len(labels)} classes ({', '.join(labels)}), "
                          f"the data has {len(data.label_names)}")
    how = meta.get("split", "auto") if args.split == "auto" else args.split
    test = make_splits(data, args.seed, how)[2] if args.data == meta.get("data") or data.given else data
    result = evaluate_classifier(model, codec, test)
    print(f"{args.checkpoint} on {args.data} ({len(test):,} examples): {format_class_scores(result)}")
    print(f"confusion matrix (rows true, columns predicted): {result['confusion']}")
    if args.plot:
        plot_confusion(result["confusion"], labels).savefig(args.plot, dpi=120)
        print(f"saved {args.plot}")
