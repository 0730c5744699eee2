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

import random
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

from .compare import FEW_TEST_EXAMPLES, Z95, mcnemar, tfidf_baseline, verdict, wilson_interval
from .labelled import LabelledData, load_labelled, make_splits, resolve_split
from .long_texts import LONG_TEXT_CHOICES, pick_view, views
from .long_texts import describe as describe_long_texts
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


def token_ids(codec: Codec, texts: list[str], what: str = "the texts") -> list[list[int]]:
    """Token ids of each text, whole.

    A trimmed vocabulary refuses texts of which more than 1% of the tokens it does not know
    (`Codec.check_coverage`): they would reach the model as one "unknown" id."""
    out, unknown = [], 0
    for i, text in enumerate(texts):
        ids = codec.encode(text)
        if not ids:
            raise CourseError(f"text {i} is empty")
        unknown += codec.unknown_count(ids)
        out.append(ids)
    if unknown:
        codec.check_coverage(texts, what)
    return out


def encode_texts(codec: Codec, texts: list[str], max_len: int, what: str = "the texts") -> list[list[int]]:
    """Token ids of each text, cut from the left to `max_len` so the true last token stays."""
    return [ids[-max_len:] for ids in token_ids(codec, texts, what)]


def encode_views(codec: Codec, texts: list[str], max_len: int, long_texts: str = "tail",
                 what: str = "the texts") -> list[list[list[int]]]:
    """For each text, the token sequences the classifier reads (long_texts.py: one, or several windows)."""
    return [views(ids, max_len, long_texts) for ids in token_ids(codec, texts, what)]


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


def predict(model: GPT, seqs: list[list[int]], pad_id: int, batch_size: int = 128) -> torch.Tensor:
    """The class (N,) of each sequence of token ids, each read whole."""
    return predict_proba(model, [[s] for s in seqs], pad_id, batch_size).argmax(-1)


@torch.no_grad()
def predict_proba(model: GPT, text_views: list[list[list[int]]], pad_id: int, batch_size: int = 128) -> torch.Tensor:
    """(texts, classes) probabilities: each text's views classified, their probabilities averaged."""
    model.eval()
    flat = [v for vs in text_views for v in vs]
    probs = []
    for b in range(0, len(flat), batch_size):
        ids, lengths = pad_batch(flat[b:b + batch_size], pad_id)
        probs.append(F.softmax(class_logits(model, ids, lengths).float(), dim=-1))
    probs = torch.cat(probs)                                                # (views, classes)
    owner = torch.repeat_interleave(torch.arange(len(text_views)), torch.tensor([len(vs) for vs in text_views]))
    summed = torch.zeros(len(text_views), probs.shape[1]).index_add_(0, owner, probs)
    return summed / torch.bincount(owner, minlength=len(text_views)).unsqueeze(1)  # (texts, classes)


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
    return {**scores(pred, test_labels, num_classes), "train_accuracy": train_acc, "vocabulary": vocab_size - 1,
            "predictions": pred.tolist()}


# --------------------------------------------------------------------------- #
# Fine-tuning
# --------------------------------------------------------------------------- #

def finetune_classifier(model: GPT, codec: Codec, train: LabelledData, val: LabelledData, cfg: FitConfig,
                        trainable_blocks: int | str = "all", lora_rank: int = 0, max_len: int | None = None,
                        progress: bool = True, log=print, out: str | Path | None = None,
                        meta: dict | None = None, long_texts: str = "tail") -> FitHistory:
    """Give `model` a classifier head, choose what trains, and fit it; val accuracy is recorded per epoch
    (epoch 0: before any training). With `lora_rank` > 0, LoRA adapters and the head train instead.
    `long_texts` says how a text longer than `max_len` tokens is read (long_texts.py; "tail": its end).

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
    train_views = encode_views(codec, train.texts, max_len, long_texts, "the training texts")
    val_views = encode_views(codec, val.texts, max_len, long_texts, "the validation texts")
    examples = list(zip(train_views, train.labels))
    rng = random.Random(cfg.seed)  # which window of a long text a step reads

    def loss_fn(batch):
        ids, lengths = pad_batch([pick_view(vs, rng) for vs, _ in batch], codec.eot)
        return F.cross_entropy(class_logits(model, ids, lengths), torch.tensor([y for _, y in batch]))

    def accuracy(text_views, labels) -> float:
        pred = predict_proba(model, text_views, codec.eot).argmax(-1)
        return (pred == torch.tensor(labels)).float().mean().item()

    def evaluate():
        n = len(val_views)
        return {"train_accuracy": accuracy(train_views[:n], train.labels[:n]),
                "val_accuracy": accuracy(val_views, val.labels)}

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


def evaluate_classifier(model: GPT, codec: Codec, data: LabelledData, long_texts: str | None = None,
                        max_len: int | None = None) -> dict:
    """Scores on `data` and the predictions; a classifier from `load_classifier` (which knows its class names)
    refuses other classes. `long_texts`: how a text longer than `max_len` tokens is read (long_texts.py; default:
    as the classifier was trained to read it, else its end); `max_len` defaults likewise, else the context."""
    check_labels(getattr(model, "label_names", None), data)
    long_texts = long_texts or getattr(model, "long_texts", "tail")
    max_len = min(max_len or getattr(model, "max_len", None) or model.config.block_size, model.config.block_size)
    text_views = encode_views(codec, data.texts, max_len, long_texts, "the texts to score")
    pred = predict_proba(model, text_views, codec.eot).argmax(-1)
    return {**scores(pred, data.labels, len(data.label_names)), "predictions": pred.tolist()}


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
    # and read long texts as it was trained to (a checkpoint from before --long-texts: their end)
    model.long_texts = meta.get("long_texts") if meta.get("long_texts") in LONG_TEXT_CHOICES else "tail"
    model.max_len = meta.get("max_len") if type(meta.get("max_len")) is int and meta["max_len"] > 0 else None
    return model.to(device).eval(), Codec.from_meta(meta.get("tokenizer"), directory), labels


# --------------------------------------------------------------------------- #
# The commands `classify` and `evaluate` run (cli.py parses their options)
# --------------------------------------------------------------------------- #

def format_class_scores(s: dict) -> str:
    """Accuracy with its 95% interval, then precision, recall and F1 (of class 1 for two classes)."""
    cm = torch.as_tensor(s["confusion"])
    low, high = wilson_interval(int(cm.diagonal().sum()), int(cm.sum()))
    return (f"accuracy {s['accuracy']:.3f} [{low:.2f}, {high:.2f}], precision {s['precision']:.3f}, "
            f"recall {s['recall']:.3f}, F1 {s['f1']:.3f}")


def counted(data: LabelledData) -> str:
    """'1,200 (negative 600, positive 600)': a split's size and its classes."""
    return f"{len(data):,} (" + ", ".join(f"{name} {n:,}" for name, n in zip(data.label_names, data.counts())) + ")"


def describe_split(how: str, seed: int, train: LabelledData, val: LabelledData, test: LabelledData) -> list[str]:
    """The lines that say how the data was split, and a warning when the test split is too small to tell much."""
    kind = {"given": "the data's own train/dev/test", "stratified": "stratified 80/10/10, every example",
            "balanced": "balanced: every class cut to the smallest, then 70/10/20"}[how]
    lines = [f"split ({kind}; seed {seed}): train {counted(train)} / val {counted(val)} / test {counted(test)}"]
    if len(test) < FEW_TEST_EXAMPLES:
        half = Z95 * (0.25 / len(test)) ** 0.5
        lines.append(f"warning: the test split has {len(test):,} examples (fewer than {FEW_TEST_EXAMPLES}): an "
                     f"accuracy on it is uncertain by up to +-{half:.0%}; read the intervals before comparing")
    return lines


def classify_command(args, cfg: FitConfig) -> None:
    """`python -m ch05_finetune classify`: the baselines, fine-tuning with `cfg` (the recipe with what the command
    line gave), test scores with their intervals, the fine-tuned model compared with each baseline, the
    classifier saved to --out."""
    if args.plot:
        check_writable_file(args.plot, "--plot")
    device = pick_device(args.device)
    data = load_labelled(args.data, args.data_dir, args.sha256, args.trust_unverified, seed=args.seed,
                         progress=not args.no_progress, fmt=args.format)
    how = resolve_split(data, args.split)
    train, val, test = make_splits(data, args.seed, how)
    print(f"data: {args.data}, {counted(data)} examples")
    for line in describe_split(how, args.seed, train, val, test):
        print(line)
    source, reason = choose_start(args.source, args.data, train.texts)
    model, codec, _ = load_chosen(source, reason, device, not args.no_progress, args.data)
    max_len = min(args.max_len or model.config.block_size, model.config.block_size)
    lengths = [len(ids) for ids in token_ids(codec, train.texts + val.texts + test.texts, "the texts")]
    note = describe_long_texts(lengths, max_len, args.long_texts)
    if note:
        print(note)
    k = len(data.label_names)
    print(f"test scores on {len(test):,} texts (accuracy with its 95% interval):")
    name = "{:<30}".format  # the four rows line up
    print(f"  {name('majority class')}{format_class_scores(majority_baseline(train.labels, test.labels, k))}")
    bow = bag_of_words_baseline(train.texts, train.labels, test.texts, test.labels, num_classes=k)
    print(f"  {name('bag of words')}{format_class_scores(bow)}  ({bow['vocabulary']:,} words)")
    tfidf = tfidf_baseline(train.texts, train.labels, val.texts, val.labels, test.texts)
    tfidf.update(scores(tfidf["predictions"], test.labels, k))
    print(f"  {name('TF-IDF + logistic regression')}{format_class_scores(tfidf)}  ({tfidf['features']:,} words and "
          f"pairs, C {tfidf['C']:g} chosen on val)")
    set_seed(args.seed)
    # Ctrl-C during fine-tuning saves the best classifier so far to --out before the command ends.
    meta = {"data": args.data, "seed": args.seed, "split": how, "format": args.format, "long_texts": args.long_texts,
            "max_len": max_len}
    _history, cost = measure(lambda: finetune_classifier(model, codec, train, val, cfg, args.trainable,
                                                        args.lora_rank, max_len, progress=not args.no_progress,
                                                        out=args.out, meta=meta, long_texts=args.long_texts),
                             device)
    result = evaluate_classifier(model, codec, test, args.long_texts, max_len)
    print(f"  {name('fine-tuned GPT')}{format_class_scores(result)}  ({trainable_parameters(model):,} trainable "
          f"parameters, {cost['seconds']:.1f} s)")
    print(f"confusion matrix of the fine-tuned GPT (rows true, columns predicted): {result['confusion']}")
    comparisons = {name: mcnemar(result["predictions"], base["predictions"], test.labels)
                   for name, base in (("TF-IDF baseline", tfidf), ("bag of words", bow))}
    for name, test_result in comparisons.items():
        print(verdict("fine-tuned GPT", name, test_result))
    if args.lora_rank:
        merge_lora(model)
    kept = {k: v for k, v in result.items() if k != "predictions"}
    save_classifier(model, codec, data.label_names, args.out,
                    {**meta, "test": kept, "baselines": {"bag_of_words": bow["accuracy"], "tfidf": tfidf["accuracy"]},
                     "mcnemar": comparisons})
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
    result = evaluate_classifier(model, codec, test)  # long texts read as the classifier was trained to
    print(f"{args.checkpoint} on {args.data} ({len(test):,} examples, long texts read as {model.long_texts}): "
          f"{format_class_scores(result)}")
    print(f"confusion matrix (rows true, columns predicted): {result['confusion']}")
    if args.plot:
        plot_confusion(result["confusion"], labels).savefig(args.plot, dpi=120)
        print(f"saved {args.plot}")
