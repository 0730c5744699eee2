"""Command line of Chapter 5: classify | instruct | chat | evaluate."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ch03_gpt import check_sampling
from coursekit import BUILTIN, CourseError, CourseParser, command_line, read_json
from coursekit.files import check_writable_dir, check_writable_file, own_folder
from coursekit.hardware import DTYPE_CHOICES
from coursekit.numbers import Number, learning_rate, nonnegative_float, nonnegative_int, positive_int, probability, seed
from coursekit.runtime import pick_device, set_seed

from .classify import (
    bag_of_words_baseline,
    encode_texts,
    evaluate_classifier,
    finetune_classifier,
    load_classifier,
    majority_baseline,
    plot_confusion,
    save_classifier,
)
from .instruct import (
    INSTRUCTION_DATASETS,
    format_scores,
    instruction_tune,
    load_instructions,
    score_answers,
    split_instructions,
)
from .labelled import DATASETS, FORMAT_CHOICES, SPLIT_CHOICES, load_labelled, make_splits
from .loop import CLASSIFY_FIT, INSTRUCT_FIT, FitConfig, trainable_parameters
from .lora import merge_lora
from .measure import measure
from .pretrained import TINY, load_start
from .template import TEMPLATES, get_template
from .vocab import MAX_UNKNOWN_SHARE, Codec, builtin_token_ids

AUTO = "auto"
SOURCES = f"'{AUTO}' (the default: '{TINY}' for the built-in data and for data in its vocabulary, else gpt2), " \
          f"'{TINY}' (a small GPT pretrained here on the built-in world, cached in runs/ch05/tiny; it knows only " \
          f"the 634 GPT-2 tokens of that world and refuses text it cannot read), a checkpoint directory from " \
          f"Chapter 3/4, or an OpenAI GPT-2 name such as gpt2 (downloaded once through Chapter 4's loader)"


def choose_start(source: str, data: str, texts) -> tuple[str, str]:
    """The starting model for `--from auto`, and why: the tiny model where it can read the data, else GPT-2.

    The tiny model keeps only the GPT-2 tokens of the built-in world; on other text most tokens would
    become one unknown id, so real data starts from a model with GPT-2's whole vocabulary."""
    if source != AUTO:
        return source, ""
    if data == BUILTIN:
        return TINY, "the built-in data"
    share, _ = Codec(list(builtin_token_ids())).unknown_share(texts)
    if share <= MAX_UNKNOWN_SHARE:
        return TINY, f"only {share:.1%} of the data's tokens are outside its vocabulary"
    return "gpt2", f"{share:.1%} of the data's tokens are outside the tiny model's vocabulary"


def load_chosen(source: str, reason: str, device: str, progress: bool):
    """`load_start`, saying which model `--from auto` chose; a GPT-2 that cannot be had offline is one line."""
    if reason:
        print(f"start: {source} (--from auto: {reason})")
    try:
        return load_start(source, device, progress=progress)
    except CourseError as e:
        if not reason or source == TINY:
            raise
        raise CourseError(f"{e}; --from auto needs a full-vocabulary model for this data: run once with network, "
                          f"or pass --from DIR (a Chapter 4 checkpoint or a downloaded model.safetensors)") from None


# --trainable: a number of blocks (0: only the final LayerNorm and the head) or 'all'
trainable_blocks = Number(int, 0, words={"all": "all"})


def add_fit_args(p: argparse.ArgumentParser, recipe: FitConfig) -> None:
    """The options `classify` and `instruct` share: the starting model and the fine-tuning recipe."""
    p.add_argument("--from", dest="source", default=AUTO, metavar="MODEL", help=f"starting point: {SOURCES}")
    p.add_argument("--epochs", type=positive_int, default=recipe.epochs,
                   help="passes over the training split (default: %(default)s)")
    p.add_argument("--lr", type=learning_rate, default=recipe.lr,
                   help="peak learning rate, above 0 and at most 1 (default: %(default)s)")
    p.add_argument("--batch-size", type=positive_int, default=recipe.batch_size,
                   help="examples per step (default: %(default)s)")
    p.add_argument("--lora-rank", type=nonnegative_int, default=0, metavar="R",
                   help="train LoRA adapters of rank R on the attention and MLP projections instead of the "
                        "weights (0: no LoRA, the default)")
    p.add_argument("--seed", type=seed, default=1337, help="seed of the split, the shuffling and the head")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto",
                   help="number format (default auto: bfloat16 autocast where the hardware runs it faster and the "
                        "model is wide enough, float16 on older GPUs, float32 otherwise)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = CourseParser(
        prog="python -m ch05_finetune",
        description="Chapter 5: fine-tune a pretrained GPT into a classifier or an instruction follower.",
        epilog="examples:\n"
               "  python -m ch05_finetune classify                     # built-in reviews, tiny model\n"
               "  python -m ch05_finetune classify --data sms_spam --split balanced   # UCI download, GPT-2\n"
               "  python -m ch05_finetune classify --data path/to/folder               # train/dev/test files\n"
               "  python -m ch05_finetune instruct --data alpaca_sample --from gpt2\n"
               "  python -m ch05_finetune instruct --out runs/ch05/instruct\n"
               "  python -m ch05_finetune chat --checkpoint runs/ch05/instruct\n"
               "  python -m ch05_finetune evaluate --checkpoint runs/ch05/classify",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{classify,instruct,chat,evaluate}")

    c = sub.add_parser("classify", help="fine-tune a classifier; print baselines, accuracy by epoch, test scores",
                       description="Replace the model's output head by a classifier read at the last real token, "
                                   "fine-tune it, and compare it with a majority-class guess and a bag-of-words "
                                   "logistic regression on the same test split.")
    c.set_defaults(run=cmd_classify)
    c.add_argument("--data", default="builtin", metavar="NAME_OR_PATH",
                   help=f"'builtin' (generated reviews where word order and negation decide), a dataset name "
                        f"({', '.join(DATASETS)}; downloaded and checked against a sha256), a file: label<TAB>text "
                        f"(e.g. the UCI SMSSpamCollection as it comes), fastText/flair '__label__X text' lines, "
                        f"CSV/TSV with a header (text and label columns), JSONL, Parquet, a .zip of one; or a "
                        f"folder of train/dev/test files (their splits are kept)")
    c.add_argument("--format", choices=FORMAT_CHOICES, help="the file's format, when its extension and its content "
                   "do not say (default: .tsv/.csv/.jsonl/.parquet/.zip by extension, otherwise read from the content)")
    c.add_argument("--split", choices=SPLIT_CHOICES, default="auto",
                   help="given: the data's own train/dev/test files; balanced: every class cut to the smallest, "
                        "then 70/10/20 (the split of the published SMS Spam figure); stratified: 70/10/20 with "
                        "the classes as they are; auto (default): given when the data has splits, else balanced")
    c.add_argument("--trainable", type=trainable_blocks, default="all", metavar="N|all",
                   help="train the last N transformer blocks, the final LayerNorm and the head; 'all' trains "
                        "every weight (default: %(default)s)")
    c.add_argument("--max-len", type=positive_int,
                   help="tokens per text, cut from the left, at most the context size (default: the context size)")
    c.add_argument("--no-balance", action="store_true", help="the same as --split stratified where the split would "
                   "be balanced: keep the class sizes as they are")
    c.add_argument("--out", default="runs/ch05/classify", help="checkpoint directory (default: %(default)s)")
    c.add_argument("--plot", metavar="PNG", help="save the test confusion matrix as a picture")
    c.add_argument("--data-dir", metavar="DIR", help="directory that already holds a downloaded dataset")
    c.add_argument("--sha256", help="expected sha256 of the dataset's file, for an entry the course has not pinned")
    c.add_argument("--trust-unverified", action="store_true",
                   help="use a local copy of an unpinned dataset without checking its hash (prints the hash)")
    add_fit_args(c, CLASSIFY_FIT)

    i = sub.add_parser("instruct", help="instruction-tune; print exact match before and after, save responses",
                       description="Fine-tune on instruction/input/output examples framed by a prompt template, "
                                   "with the loss masked on padding (and on the prompt, unless --no-mask-prompt). "
                                   "Test answers are generated up to <|endoftext|> (budget: the longest expected "
                                   "answer plus a margin) and scored by exact match, token F1 and ROUGE-L, beside "
                                   "the loss of the expected answers; answers cut by the budget are marked.")
    i.set_defaults(run=cmd_instruct)
    i.add_argument("--data", default="builtin", metavar="NAME_OR_PATH",
                   help=f"'builtin' (questions about the built-in world with exact answers, sums, words backwards), "
                        f"a name ({', '.join(INSTRUCTION_DATASETS)}: 1,100 Alpaca-style records with open answers, "
                        f"downloaded once and checked against a sha256), or an Alpaca-style .json list / .jsonl of "
                        f"{{instruction, input, output}}")
    i.add_argument("--data-dir", metavar="DIR", help="directory that already holds a downloaded data set")
    i.add_argument("--template", default="compact", choices=list(TEMPLATES),
                   help="prompt frame: compact (### Instruction/Input/Response) or alpaca (the same with "
                        "Alpaca's preamble)")
    i.add_argument("--no-mask-prompt", action="store_true", help="also train on the prompt tokens")
    i.add_argument("--out", default="runs/ch05/instruct", help="checkpoint directory (default: %(default)s)")
    i.add_argument("--responses", metavar="JSON", help="where to save test responses beside the expected answers "
                   "(default: OUT/responses.json)")
    add_fit_args(i, INSTRUCT_FIT)

    h = sub.add_parser("chat", help="talk to an instruction-tuned checkpoint (Ctrl-D to leave)",
                       description="Read messages from the terminal (or piped stdin, one per line) and stream "
                                   "the answers; the conversation is kept as far as the context window allows. "
                                   "Ctrl-D (end of input) leaves.")
    h.set_defaults(run=cmd_chat)
    h.add_argument("--checkpoint", required=True, help="checkpoint directory saved by `instruct`")
    h.add_argument("--prompt", help="answer this one message and exit (for scripts)")
    h.add_argument("--max-new-tokens", type=positive_int, default=32,
                   help="longest answer in tokens (default: %(default)s)")
    h.add_argument("--temperature", type=nonnegative_float, default=0.0,
                   help="0: always the most likely token (default); higher: more varied")
    h.add_argument("--top-k", type=positive_int, help="sample only among the k most likely tokens")
    h.add_argument("--top-p", type=probability,
                   help="sample only from the smallest set of tokens with probability p, 0 < p <= 1")
    h.add_argument("--seed", type=seed, default=1337)
    h.add_argument("--device", default="auto")

    e = sub.add_parser("evaluate", help="score a saved classifier or instruction-tuned checkpoint",
                       description="A classifier checkpoint: accuracy, precision, recall, F1 and the confusion "
                                   "matrix on the test split of --data. An instruction-tuned one: exact match, "
                                   "token F1, ROUGE-L and answer loss on the test split, responses saved as JSON.")
    e.set_defaults(run=cmd_evaluate)
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--data", default="builtin", help="as for classify / instruct (default: builtin)")
    e.add_argument("--seed", type=seed, default=1337, help="the seed the split was made with")
    e.add_argument("--format", choices=FORMAT_CHOICES, help="as for classify")
    e.add_argument("--split", choices=SPLIT_CHOICES, default="auto", help="the split classify used (default auto)")
    e.add_argument("--responses", metavar="JSON", help="instruct checkpoints: where to save the responses")
    e.add_argument("--plot", metavar="PNG", help="classifiers: save the confusion matrix")
    e.add_argument("--data-dir", metavar="DIR")
    e.add_argument("--sha256")
    e.add_argument("--trust-unverified", action="store_true")
    e.add_argument("--device", default="auto")
    return parser


def _fit_config(args) -> FitConfig:
    return FitConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, dtype=args.dtype)


def _fmt(s: dict) -> str:
    return f"accuracy {s['accuracy']:.3f}, precision {s['precision']:.3f}, recall {s['recall']:.3f}, F1 {s['f1']:.3f}"


def cmd_classify(args) -> None:
    with own_folder(check_writable_dir(args.out, "--out"), f"--out {args.out}"):  # one command per folder
        _classify(args)


def _classify(args) -> None:
    cfg = _fit_config(args)
    trainable = args.trainable
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
    print(f"majority class:  {_fmt(majority_baseline(train.labels, test.labels, k))}")
    bow = bag_of_words_baseline(train.texts, train.labels, test.texts, test.labels, num_classes=k)
    print(f"bag of words:    {_fmt(bow)}  ({bow['vocabulary']:,} words)")
    set_seed(args.seed)
    # Ctrl-C during fine-tuning saves the best classifier so far to --out before the command ends.
    meta = {"data": args.data, "seed": args.seed, "split": how, "format": args.format}
    _history, cost = measure(lambda: finetune_classifier(model, codec, train, val, cfg, trainable, args.lora_rank,
                                                        max_len, progress=not args.no_progress, out=args.out,
                                                        meta=meta), device)
    result = evaluate_classifier(model, codec, test)
    print(f"fine-tuned GPT:  {_fmt(result)}  ({trainable_parameters(model):,} trainable parameters, "
          f"{cost['seconds']:.1f} s)")
    print(f"confusion matrix (rows true, columns predicted): {result['confusion']}")
    if args.lora_rank:
        merge_lora(model)
    save_classifier(model, codec, data.label_names, args.out, {**meta, "test": dict(result.items())})
    print(f"saved {args.out}")
    if args.plot:
        plot_confusion(result["confusion"], data.label_names).savefig(args.plot, dpi=120)
        print(f"saved {args.plot}")


def cmd_instruct(args) -> None:
    with own_folder(check_writable_dir(args.out, "--out"), f"--out {args.out}"):  # one command per folder
        _instruct(args)


def _instruct(args) -> None:
    cfg = _fit_config(args)
    check_writable_file(args.responses or Path(args.out) / "responses.json", "--responses")
    device = pick_device(args.device)
    template = get_template(args.template)
    examples = load_instructions(args.data, seed=args.seed, data_dir=args.data_dir, progress=not args.no_progress)
    splits = split_instructions(examples, args.seed)
    source, reason = choose_start(args.source, args.data,
                                  [t for ex in splits[0] for t in (ex.instruction, ex.input, ex.output)])
    model, codec, _meta = load_chosen(source, reason, device, not args.no_progress)
    print(f"data: {args.data}, {len(examples):,} examples; split train {len(splits[0]):,} / val {len(splits[1]):,} / "
          f"test {len(splits[2]):,}; prompt {'masked' if not args.no_mask_prompt else 'trained on too'}")
    run = instruction_tune(model, codec, template, splits, cfg, args.out, args.data, not args.no_mask_prompt,
                           args.lora_rank, args.responses, progress=not args.no_progress)
    after, epochs = run["after"], run["history"].epochs
    print(f"after tuning:  {format_scores(after)}")
    print(f"({run['cost']['seconds']:.1f} s of training; exact match by task: " +
          ", ".join(f"{t} {v:.2f}" for t, v in after["by_task"].items()) + ")")
    print(f"val loss (answer tokens): {epochs[0]['val_loss']:.3f} -> {epochs[-1]['val_loss']:.3f}")
    print(f"saved {args.out} and {run['responses']}")


def cmd_chat(args) -> None:
    from .chat import chat_loop, load_chat_model, reply

    if args.prompt is not None:
        try:
            args.prompt.encode("utf-8")
        except UnicodeEncodeError:
            raise CourseError("--prompt is not valid UTF-8 text") from None
        if not args.prompt.strip():
            raise CourseError("the prompt is empty; give a message with --prompt")
    device = pick_device(args.device)
    model, codec, template = load_chat_model(args.checkpoint, device)
    check_sampling(model.config.vocab_size, args.max_new_tokens, args.temperature, args.top_k, args.top_p)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    sampling = dict(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                    top_p=args.top_p, generator=gen)
    if args.prompt is not None:
        reply(model, codec, template, [], args.prompt, **sampling)
        return
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"chatting with {args.checkpoint}; Ctrl-D to leave")
    chat_loop(model, codec, template, sys.stdin.buffer, interactive=interactive, **sampling)


def cmd_evaluate(args) -> None:
    device = pick_device(args.device)
    meta = read_json(Path(args.checkpoint) / "config.json")
    kind = meta["finetune"].get("type") if isinstance(meta.get("finetune"), dict) else None
    if kind == "classify" and args.plot:
        check_writable_file(args.plot, "--plot")
    if kind == "instruct":
        check_writable_file(args.responses or Path(args.checkpoint) / "responses.json", "--responses")
    if kind == "classify":
        model, codec, labels = load_classifier(args.checkpoint, device)
        data = load_labelled(args.data, args.data_dir, args.sha256, args.trust_unverified, seed=args.seed,
                             fmt=args.format)
        if len(data.label_names) != len(labels):
            raise CourseError(f"the checkpoint knows {len(labels)} classes ({', '.join(labels)}), "
                              f"the data has {len(data.label_names)}")
        how = meta.get("split", "auto") if args.split == "auto" else args.split
        test = make_splits(data, args.seed, how)[2] if args.data == meta.get("data") or data.given else data
        result = evaluate_classifier(model, codec, test)
        print(f"{args.checkpoint} on {args.data} ({len(test):,} examples): {_fmt(result)}")
        print(f"confusion matrix (rows true, columns predicted): {result['confusion']}")
        if args.plot:
            plot_confusion(result["confusion"], labels).savefig(args.plot, dpi=120)
            print(f"saved {args.plot}")
    elif kind == "instruct":
        from .chat import load_chat_model

        model, codec, template = load_chat_model(args.checkpoint, device)
        examples = load_instructions(args.data, seed=args.seed, data_dir=args.data_dir)
        test = split_instructions(examples, args.seed)[2]
        out = Path(args.responses) if args.responses else Path(args.checkpoint) / "responses.json"
        result = score_answers(model, codec, template, test, out_path=out)
        print(f"{args.checkpoint} on {args.data} ({len(test):,} test examples): {format_scores(result)}")
        print("exact match by task: " + ", ".join(f"{t} {v:.2f}" for t, v in result["by_task"].items()))
        print(f"saved {out}")
    else:
        raise CourseError(f"{args.checkpoint} is not a fine-tuned checkpoint of this chapter "
                          f"(config.json finetune type {kind!r})")


main = command_line(build_parser)  # parse, then run the command chosen
