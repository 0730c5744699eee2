"""Command line of Chapter 5: classify | instruct | chat | evaluate."""

from __future__ import annotations

import argparse
from pathlib import Path

from ch03_gpt.cli import add_sampling_options
from coursekit import BUILTIN, CourseError, CourseParser, command_line, read_json, subcommand
from coursekit.files import check_writable_dir, own_folder
from coursekit.numbers import Number, nonnegative_int, positive_int
from coursekit.settings import add_flags, add_run_flags, from_args

from .config import AUTO, CLASSIFY_FIT, INSTRUCT_FIT, TINY, FitConfig
from .labelled import DATASETS, FORMAT_CHOICES, INSTRUCTION_DATASETS, SPLIT_CHOICES
from .long_texts import DEFAULT_LONG_TEXTS, LONG_TEXT_CHOICES
from .template import TEMPLATES

# The parser needs none of the training code: each command imports what it runs, so --help starts at once.

# The end of --help: one way through the chapter, command by command.
EXAMPLES = ["python -m ch05_finetune classify                     # built-in reviews, tiny model",
            "python -m ch05_finetune classify --data sms_spam --split balanced   # UCI download, GPT-2",
            "python -m ch05_finetune classify --data path/to/folder               # train/dev/test files",
            "python -m ch05_finetune texts --data my.csv --out runs/my_texts.jsonl # to pretrain on, offline",
            "python -m ch05_finetune classify --data my.csv --from runs/my_lm     # from that pretraining",
            "python -m ch05_finetune instruct --data alpaca_sample --from gpt2",
            "python -m ch05_finetune instruct --out runs/ch05/instruct",
            "python -m ch05_finetune chat --checkpoint runs/ch05/instruct",
            "python -m ch05_finetune evaluate --checkpoint runs/ch05/classify"]
SOURCES = f"'{AUTO}' (the default: '{TINY}' for the built-in data and for data in its vocabulary, else gpt2), " \
          f"'{TINY}' (a small GPT pretrained here on the built-in world, cached in runs/ch05/tiny; it knows only " \
          f"the 634 GPT-2 tokens of that world and refuses text it cannot read), a checkpoint directory from " \
          f"Chapter 3/4, or an OpenAI GPT-2 name such as gpt2 (downloaded once through Chapter 4's loader)"


SPLIT_HELP = ("auto (the default): the data's own train/dev/test files when it has them, else stratified; "
              "stratified: 80/10/10 with the classes as they are, every example used; balanced: every class cut "
              "to the smallest, then 70/10/20 (the split behind the published SMS Spam figure, to compare with "
              "it); given: the data's own files")

# --trainable: a number of blocks (0: only the final LayerNorm and the head) or 'all'
trainable_blocks = Number(int, 0, words={"all": "all"})


def add_fit_args(p: argparse.ArgumentParser, recipe: FitConfig) -> None:
    """The options `classify` and `instruct` share: the starting model and the fine-tuning recipe."""
    p.add_argument("--from", dest="source", default=AUTO, metavar="MODEL", help=f"starting point: {SOURCES}")
    add_flags(p, FitConfig, defaults=recipe)  # --epochs, --batch-size, --lr
    p.add_argument("--lora-rank", type=nonnegative_int, default=0, metavar="R",
                   help="train LoRA adapters of rank R on the attention and MLP projections instead of the "
                        "weights (0: no LoRA, the default)")
    add_run_flags(p, seed_help="seed of the split, the shuffling and the head")
    p.set_defaults(recipe=recipe)


def add_data_args(p: argparse.ArgumentParser, data_help: str, split_help: str) -> None:
    """The labelled data and how to read and split it: the options `classify` and `evaluate` share."""
    p.add_argument("--data", default=BUILTIN, metavar="NAME_OR_PATH", help=data_help)
    p.add_argument("--format", choices=FORMAT_CHOICES, help="the file's format, when its extension and its content "
                   "do not say (default: .tsv/.csv/.jsonl/.parquet/.zip by extension, otherwise read from the content)")
    p.add_argument("--split", choices=SPLIT_CHOICES, default="auto", help=split_help)
    p.add_argument("--data-dir", metavar="DIR", help="directory that already holds a downloaded dataset")
    p.add_argument("--sha256", help="expected sha256 of the dataset's file, for an entry the course has not pinned")
    p.add_argument("--trust-unverified", action="store_true",
                   help="use a local copy of an unpinned dataset without checking its hash (prints the hash)")


def build_parser() -> argparse.ArgumentParser:
    parser = CourseParser(
        prog="python -m ch05_finetune",
        description="Chapter 5: fine-tune a pretrained GPT into a classifier or an instruction follower.",
        examples=EXAMPLES)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{classify,texts,instruct,chat,evaluate}")

    c = subcommand(sub, "classify", cmd_classify, "fine-tune a classifier; print baselines, accuracy by epoch, "
                   "test scores", "Replace the model's output head by a classifier read at the last real token, "
                   "fine-tune it, and compare it on the same test split with a majority-class guess, a bag of words "
                   "and TF-IDF with logistic regression. Every accuracy comes with its 95% interval; McNemar's test "
                   "on the test texts says whether the fine-tuned model beats a baseline or is level with it.")
    add_data_args(c, f"'builtin' (generated reviews where word order and negation decide), a dataset name "
                     f"({', '.join(DATASETS)}; downloaded and checked against a sha256), a file: label<TAB>text "
                     f"(e.g. the UCI SMSSpamCollection as it comes), fastText/flair '__label__X text' lines, "
                     f"CSV/TSV with a header (text and label columns), JSONL, Parquet, a .zip of one; or a "
                     f"folder of train/dev/test files (their splits are kept)",
                  SPLIT_HELP)
    c.add_argument("--trainable", type=trainable_blocks, default="all", metavar="N|all",
                   help="train the last N transformer blocks, the final LayerNorm and the head; 'all' trains "
                        "every weight (default: %(default)s)")
    c.add_argument("--max-len", type=positive_int,
                   help="tokens the model reads at a time, at most its context size (default: the context size)")
    c.add_argument("--long-texts", choices=LONG_TEXT_CHOICES, default=DEFAULT_LONG_TEXTS,
                   help="how a text longer than --max-len is read: windows (overlapping windows, their predictions "
                        "averaged; the default), head-tail (its first and last tokens), head (its first tokens), "
                        "tail (its last tokens)")
    c.add_argument("--out", default="runs/ch05/classify", help="checkpoint directory (default: %(default)s)")
    c.add_argument("--plot", metavar="PNG", help="save the test confusion matrix as a picture")
    add_fit_args(c, CLASSIFY_FIT)

    t = subcommand(sub, "texts", cmd_texts, "write the training texts of labelled data, for pretraining",
                   "Write the texts of the training split of --data (the split classify makes with the same --split "
                   "and --seed), one JSON line each and without labels, for `python -m ch04_pretrain prepare "
                   "--source FILE`: a model pretrained on your own text, offline, that has never read a test text.")
    add_data_args(t, "labelled data, as for classify", SPLIT_HELP)
    t.add_argument("--out", required=True, metavar="FILE", help="the JSONL file to write ({\"text\": ...} lines)")
    add_run_flags(t, device=False, dtype=False, progress=False, seed_help="the seed classify's split is made with")

    i = subcommand(sub, "instruct", cmd_instruct, "instruction-tune; print exact match before and after, save "
                   "responses", "Fine-tune on instruction/input/output examples framed by a prompt template, with "
                   "the loss masked on padding (and on the prompt, unless --no-mask-prompt). Test answers are "
                   "generated up to <|endoftext|> (budget: the longest training answer plus a margin) and scored by "
                   "exact match, token F1 and ROUGE-L, beside the loss of the expected answers; answers cut by the "
                   "budget are marked.")
    i.add_argument("--data", default=BUILTIN, metavar="NAME_OR_PATH",
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

    h = subcommand(sub, "chat", cmd_chat, "talk to an instruction-tuned checkpoint (Ctrl-D to leave)",
                   "Read messages from the terminal (or piped stdin, one per line) and stream the answers; the "
                   "conversation is kept as far as the context window allows. Ctrl-D (end of input) leaves.")
    h.add_argument("--checkpoint", required=True, help="checkpoint directory saved by `instruct`")
    h.add_argument("--prompt", help="answer this one message and exit (for scripts)")
    add_sampling_options(h, "token", max_new_tokens=32, temperature=0.0, tokens=positive_int)
    add_run_flags(h, dtype=False, progress=False, seed_help="the same seed gives the same answers")

    e = subcommand(sub, "evaluate", cmd_evaluate, "score a saved classifier or instruction-tuned checkpoint",
                   "A classifier checkpoint: accuracy, precision, recall, F1 and the confusion matrix on the test "
                   "split of --data. An instruction-tuned one: exact match, token F1, ROUGE-L and answer loss on "
                   "the test split, responses saved as JSON.")
    e.add_argument("--checkpoint", required=True)
    add_data_args(e, "as for classify / instruct (default: builtin)", "the split classify used (default: auto, "
                  "the one it recorded)")
    e.add_argument("--responses", metavar="JSON", help="instruct checkpoints: where to save the responses")
    e.add_argument("--plot", metavar="PNG", help="classifiers: save the confusion matrix")
    add_run_flags(e, dtype=False, progress=False, seed_help="the seed the split was made with")
    return parser


def _fit_config(args) -> FitConfig:
    return from_args(args, args.recipe)  # the command's recipe with what was given: --epochs ... --seed, --dtype


def cmd_classify(args) -> None:
    from .classify import classify_command

    with own_folder(check_writable_dir(args.out, "--out"), f"--out {args.out}"):  # one command per folder
        classify_command(args, _fit_config(args))


def cmd_instruct(args) -> None:
    from .instruct import instruct_command

    with own_folder(check_writable_dir(args.out, "--out"), f"--out {args.out}"):  # one command per folder
        instruct_command(args, _fit_config(args))


def cmd_texts(args) -> None:
    from .labelled import write_training_texts

    write_training_texts(args)


def cmd_chat(args) -> None:
    from .chat import chat_command

    chat_command(args)


def cmd_evaluate(args) -> None:
    """A classifier or an instruction-tuned checkpoint, as its config.json says, scored by its own module."""
    from coursekit.runtime import pick_device

    from . import classify, instruct

    device = pick_device(args.device)
    meta = read_json(Path(args.checkpoint) / "config.json")
    kind = meta["finetune"].get("type") if isinstance(meta.get("finetune"), dict) else None
    if kind == "classify":
        classify.evaluate_command(args, meta, device)
    elif kind == "instruct":
        instruct.evaluate_command(args, device)
    else:
        raise CourseError(f"{args.checkpoint} is not a fine-tuned checkpoint of this chapter "
                          f"(config.json finetune type {kind!r})")


main = command_line(build_parser)  # parse, then run the command chosen
