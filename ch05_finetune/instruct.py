"""Instruction fine-tuning: teach a pretrained model to answer after "### Response:" and stop.

Each example becomes one sequence: prompt (the template around instruction
and input), then the answer, then <|endoftext|>. Training is next-token
prediction on that sequence, with two kinds of positions masked out of the
loss (their target set to IGNORE):

* padding, always: a batch is padded to its longest sequence;
* the prompt, optionally: the model then learns only to answer, not to
  reproduce questions. `mask_prompt=False` trains on both, for comparison.

Evaluation (`score_answers`): the loss and perplexity of the expected
answers, and greedy answers scored three ways: exact match, token F1 and
ROUGE-L (scoring.py), the last two for open answers that can be right in
other words. Generation runs until <|endoftext|>, with a budget taken from
the training answers: the longest in tokens plus a margin, so a long answer
is not cut by a fixed small limit, and nothing the evaluation uses comes from
the test split. An answer that hits the budget anyway is marked "cut" in the
saved responses.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ch03_gpt import GPT, generate, save_checkpoint
from coursekit import BUILTIN, CourseError, read_json, write_json
from coursekit.download import find_or_download
from coursekit.files import check_writable_file
from coursekit.readers import decode_utf8, json_lines, parse_json, read_bytes, text_lines
from coursekit.runtime import pick_device, set_seed
from coursekit.settings import DEFAULT_SEED

from .builtin import Instruction, generate_instructions
from .labelled import INSTRUCTION_DATASETS
from .loop import FitConfig, FitHistory, Interrupted, fit, interrupted_save
from .measure import measure
from .pretrained import choose_start, load_chosen
from .scoring import normalize_answer, rouge_l, token_f1
from .template import PromptTemplate, get_template
from .vocab import Codec

IGNORE = -100  # cross_entropy's ignore_index: a target that adds nothing to the loss


# --------------------------------------------------------------------------- #
# Data
# --------------------------------------------------------------------------- #

def read_alpaca(path: str | Path) -> list[Instruction]:
    """Alpaca-style data: a JSON list of {"instruction", "input" (optional), "output"}, or JSONL of the same."""
    path = Path(path)
    if not path.is_file():
        raise CourseError(f"instruction file not found: {path}")
    text = decode_utf8(read_bytes(path), str(path))  # refused by its size before it is read
    if path.suffix.lower() == ".jsonl":
        items = [(f"line {n}", obj) for n, obj in json_lines(text_lines(text), str(path))]
    else:
        data = parse_json(text, str(path))
        if not isinstance(data, list):
            raise CourseError(f"{path}: expected a JSON list of objects with instruction, input and output")
        items = [(f"item {i}", obj) for i, obj in enumerate(data)]
    out = []
    for where, obj in items:
        if not isinstance(obj, dict):
            raise CourseError(f"{path}, {where}: expected an object with instruction, input and output")
        for key in ("instruction", "output"):
            if not isinstance(obj.get(key), str) or not obj[key].strip():
                raise CourseError(f"{path}, {where}: missing or empty {key!r}")
        for key in ("input", "task"):
            if obj.get(key) is not None and not isinstance(obj[key], str):
                raise CourseError(f"{path}, {where}: {key!r} is a {type(obj[key]).__name__}, not text")
        out.append(Instruction(obj["instruction"], obj.get("input") or "", obj["output"], obj.get("task") or "custom"))
    if not out:
        raise CourseError(f"{path} has no examples")
    return out


def load_instructions(source: str, n_builtin: int = 1400, seed: int = DEFAULT_SEED, data_dir: str | Path | None = None,
                      progress: bool = True) -> list[Instruction]:
    """`builtin`, a name from INSTRUCTION_DATASETS (downloaded once, sha256-checked), or an Alpaca-style file."""
    if source == BUILTIN:
        return generate_instructions(n_builtin, seed)
    if source in INSTRUCTION_DATASETS:
        return read_alpaca(find_or_download(INSTRUCTION_DATASETS[source], data_dir, progress=progress))
    return read_alpaca(source)


def split_instructions(examples: list, seed: int = DEFAULT_SEED, fractions=(0.8, 0.1, 0.1)) -> tuple[list, list, list]:
    if len(examples) < 3:
        raise CourseError(f"need at least 3 examples for train/val/test splits, got {len(examples)}")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_train = max(1, int(len(order) * fractions[0]))
    n_val = max(1, int(len(order) * fractions[1]))
    parts = order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]
    return tuple([examples[i] for i in part] for part in parts)


@dataclass
class Encoded:
    prompt: list[int]
    answer: list[int]   # ends with <|endoftext|>


def encode_example(codec: Codec, template: PromptTemplate, ex: Instruction, block_size: int) -> Encoded:
    answer = codec.encode(ex.output) + [codec.eot]
    prompt, _ = template.encode(codec, ex.instruction, ex.input, max_tokens=block_size + 1 - len(answer))
    return Encoded(prompt, answer)


def collate(batch: list[Encoded], pad_id: int, mask_prompt: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (B, T) and targets (B, T): targets are the inputs shifted by one, IGNORE where masked."""
    T = max(len(e.prompt) + len(e.answer) for e in batch) - 1
    ids = torch.full((len(batch), T), pad_id, dtype=torch.long)
    targets = torch.full((len(batch), T), IGNORE, dtype=torch.long)
    for i, e in enumerate(batch):
        seq = torch.tensor(e.prompt + e.answer)
        n = len(seq) - 1
        ids[i, :n] = seq[:-1]
        targets[i, :n] = seq[1:]
        if mask_prompt:
            targets[i, :len(e.prompt) - 1] = IGNORE  # keep the target at the last prompt token: the answer's first
    return ids, targets


def lm_loss(model: GPT, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token loss over the unmasked positions only.

    The output head is applied to those positions alone: masked positions
    cost nothing, and they cannot contribute to the gradient.
    """
    h = model.hidden_states(ids)               # (B, T, C): the head runs only where the loss needs it
    keep = targets != IGNORE                   # (B, T)
    logits = model.lm_head(h[keep])            # (N, V), N = unmasked positions
    return F.cross_entropy(logits, targets[keep])


# --------------------------------------------------------------------------- #
# Training and evaluation
# --------------------------------------------------------------------------- #

@torch.no_grad()
def answer_loss(model: GPT, encoded: list[Encoded], pad_id: int, batch_size: int = 64) -> float:
    """Mean loss per answer token (prompts masked), the same figure whatever the training masked."""
    model.eval()
    total = count = 0.0
    for b in range(0, len(encoded), batch_size):
        ids, targets = collate(encoded[b:b + batch_size], pad_id, mask_prompt=True)
        n = (targets != IGNORE).sum().item()
        total += lm_loss(model, ids, targets).item() * n
        count += n
    return total / count


def finetune_instructions(model: GPT, codec: Codec, template: PromptTemplate, train: list[Instruction],
                          val: list[Instruction], cfg: FitConfig, mask_prompt: bool = True,
                          progress: bool = True, log=print, on_interrupt=None) -> FitHistory:
    """Fit on `train`, the answer loss on `val` evaluated per epoch; `on_interrupt` as for `fit` (the model
    then holds the weights of the lowest val loss so far)."""
    block = model.config.block_size
    for name, part in (("the training instructions", train), ("the validation instructions", val)):
        codec.check_coverage([t for ex in part for t in (ex.instruction, ex.input, ex.output)], name)
    train_enc = [encode_example(codec, template, ex, block) for ex in train]
    val_enc = [encode_example(codec, template, ex, block) for ex in val]

    def loss_fn(batch):
        return lm_loss(model, *collate(batch, codec.eot, mask_prompt))

    return fit(model, train_enc, loss_fn, cfg, lambda: {"val_loss": answer_loss(model, val_enc, codec.eot)},
               progress, log, best=("val_loss", "min"), on_interrupt=on_interrupt)


def answer_budget(codec: Codec, examples: list[Instruction], margin: float = 0.25, at_least: int = 4) -> int:
    """New tokens to allow a generated answer: the longest expected answer (with its <|endoftext|>) plus a
    margin (a quarter of it, and at least `at_least` tokens)."""
    if not examples:
        raise CourseError("no examples to take an answer budget from")
    longest = max(len(codec.encode(ex.output)) + 1 for ex in examples)
    return longest + max(at_least, int(longest * margin))


def meta_budget(checkpoint: str | Path) -> int | None:
    """The answer budget an instruction-tuned checkpoint recorded (from its training answers), if it has one."""
    meta = read_json(Path(checkpoint) / "config.json")
    finetune = meta.get("finetune") if isinstance(meta.get("finetune"), dict) else {}
    budget = finetune.get("budget")
    return budget if type(budget) is int and 0 < budget <= 100_000 else None


def generate_answer(model: GPT, codec: Codec, template: PromptTemplate, instruction: str, input: str = "",
                    max_new_tokens: int = 16) -> tuple[str, bool]:
    """The model's greedy answer, up to <|endoftext|>, and whether the budget cut it (no <|endoftext|> came).

    The prompt keeps room for the answer within the context (at most half of it); a longer answer
    goes on with the context sliding, as `generate` does."""
    block = model.config.block_size
    prompt, _ = template.encode(codec, instruction, input, max_tokens=block - min(max_new_tokens, block // 2))
    device = next(model.parameters()).device
    out = generate(model, torch.tensor([prompt], device=device), max_new_tokens, temperature=0.0,
                   stop_token=codec.eot)[0, len(prompt):].tolist()
    cut = codec.eot not in out
    if not cut:
        out = out[:out.index(codec.eot)]
    return codec.decode(out).strip(), cut


def respond(model: GPT, codec: Codec, template: PromptTemplate, instruction: str, input: str = "",
            max_new_tokens: int = 16) -> str:
    """The model's greedy answer, up to <|endoftext|> (at most `max_new_tokens` tokens)."""
    return generate_answer(model, codec, template, instruction, input, max_new_tokens)[0]


def score_answers(model: GPT, codec: Codec, template: PromptTemplate, examples: list[Instruction],
                  max_new_tokens: int | None = None, out_path: str | Path | None = None) -> dict:
    """Greedy answers to `examples`, scored against the expected outputs.

    exact_match: the share of answers equal to the expected output (spaces at the ends stripped);
    token_f1, rouge_l: their means (scoring.py), which give credit for an open answer that is partly
    right or right in other words; answer_loss and perplexity (its exp): how likely the model finds the
    expected answers, without generating; by_task: exact match per task; budget: the new tokens allowed
    (give `answer_budget` of the training examples; the default, `answer_budget` of `examples`, reads the
    answers it scores); cut: how many answers the budget stopped.
    With `out_path`, every response is saved as JSON beside its expected answer, its scores and "cut".
    """
    if not examples:
        raise CourseError("no examples to score")
    codec.check_coverage([t for ex in examples for t in (ex.instruction, ex.input, ex.output)],
                         "the instructions to score")
    budget = max_new_tokens or answer_budget(codec, examples)
    records, by_task = [], defaultdict(list)
    for ex in examples:
        response, cut = generate_answer(model, codec, template, ex.instruction, ex.input, budget)
        correct = response == ex.output.strip()
        by_task[ex.task].append(correct)
        records.append({**ex.to_dict(), "response": response, "correct": correct,
                        "token_f1": round(token_f1(response, ex.output), 4),
                        "rouge_l": round(rouge_l(response, ex.output), 4), "cut": cut})
    if out_path is not None:
        write_json(out_path, records)
    n = len(records)
    block = model.config.block_size
    loss = answer_loss(model, [encode_example(codec, template, ex, block) for ex in examples], codec.eot)
    return {"exact_match": sum(r["correct"] for r in records) / n,
            "normalized_match": sum(normalize_answer(r["response"]) == normalize_answer(r["output"])
                                    for r in records) / n,
            "token_f1": sum(r["token_f1"] for r in records) / n, "rouge_l": sum(r["rouge_l"] for r in records) / n,
            "answer_loss": loss, "perplexity": math.exp(min(loss, 50.0)),
            "by_task": {t: sum(v) / len(v) for t, v in sorted(by_task.items())},
            "budget": budget, "cut": sum(r["cut"] for r in records), "responses": records}


def exact_match(model: GPT, codec: Codec, template: PromptTemplate, examples: list[Instruction],
                max_new_tokens: int | None = None, out_path: str | Path | None = None) -> dict:
    """`score_answers` under its first score's name: ["exact_match"] is the share of greedy answers equal to
    the expected output; the other scores come with it."""
    return score_answers(model, codec, template, examples, max_new_tokens, out_path)


def format_scores(result: dict) -> str:
    """One line of the scores of `score_answers`."""
    cut = f"; {result['cut']} cut at the budget of {result['budget']} tokens" if result["cut"] else ""
    return (f"exact match {result['exact_match']:.3f}, token F1 {result['token_f1']:.3f}, "
            f"ROUGE-L {result['rouge_l']:.3f}, answer loss {result['answer_loss']:.3f} "
            f"(perplexity {result['perplexity']:.1f}){cut}")


def instruction_tune(model: GPT, codec: Codec, template: PromptTemplate, splits: tuple[list, list, list],
                     cfg: FitConfig, out: str | Path, data_name: str, mask_prompt: bool = True, lora_rank: int = 0,
                     responses: str | Path | None = None, progress: bool = True, log=print) -> dict:
    """The whole instruction-tuning run: score, fine-tune, score again, save.

    The scores of `score_answers` on the test split before and after; fine-tuning on train
    (LoRA adapters of `lora_rank`, merged afterwards, when it is above 0); the
    test responses saved as JSON (default OUT/responses.json) and the model as a
    checkpoint whose config.json records the template, so `chat` frames
    messages the same way. Returns the scores, the loss history and the cost.
    """
    train_split, val_split, test_split = splits
    # the answer budget comes from the training answers: nothing the evaluation uses is taken from the test split
    budget = answer_budget(codec, train_split)
    before = score_answers(model, codec, template, test_split, budget)
    if log:
        log(f"before tuning: {format_scores(before)}")
    if lora_rank:
        from .lora import apply_lora
        apply_lora(model, lora_rank)
    set_seed(cfg.seed)
    device = str(next(model.parameters()).device)
    out = Path(out)
    finetune = {"type": "instruct", "template": template.to_meta(), "data": data_name, "mask_prompt": mask_prompt,
                "lora_rank": lora_rank, "seed": cfg.seed}

    def merged() -> GPT:
        if lora_rank:
            from .lora import merge_lora
            merge_lora(model)
        return model

    def save(tuned: GPT, meta: dict) -> None:
        codec.save(out)  # the file its tokenizer needs (a rank file of our own), before config.json names it
        save_checkpoint(tuned, out, {"tokenizer": codec.to_meta(), "finetune": meta})

    def on_interrupt(stop: Interrupted) -> None:  # Ctrl-C: the best model so far goes where this run saves
        interrupted_save(stop, "val_loss", out, lambda note: save(merged(), {**finetune, "interrupted": note}))

    history, cost = measure(lambda: finetune_instructions(model, codec, template, train_split, val_split, cfg,
                                                          mask_prompt, progress=progress, log=log,
                                                          on_interrupt=on_interrupt), device)
    merged()
    responses = Path(responses) if responses else out / "responses.json"
    after = score_answers(model, codec, template, test_split, budget, out_path=responses)
    save(model, {**finetune, **{k: after[k] for k in ("exact_match", "token_f1", "rouge_l", "answer_loss", "budget",
                                                        "cut")}})
    return {"before": before, "after": after, "history": history, "cost": cost, "responses": responses}


# --------------------------------------------------------------------------- #
# The commands `instruct` and `evaluate` run (cli.py parses their options)
# --------------------------------------------------------------------------- #

def instruct_command(args, cfg: FitConfig) -> None:
    """`python -m ch05_finetune instruct`: load the data and the start, `instruction_tune` them with `cfg` (the
    recipe with what the command line gave), and report."""
    check_writable_file(args.responses or Path(args.out) / "responses.json", "--responses")
    device = pick_device(args.device)
    template = get_template(args.template)
    examples = load_instructions(args.data, seed=args.seed, data_dir=args.data_dir, progress=not args.no_progress)
    splits = split_instructions(examples, args.seed)
    texts = [t for ex in splits[0] for t in (ex.instruction, ex.input, ex.output)]
    source, reason = choose_start(args.source, args.data, texts, labelled=False)
    model, codec, _meta = load_chosen(source, reason, device, not args.no_progress, args.data,
                                      labelled=False)
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


def evaluate_command(args, device: str) -> None:
    """`python -m ch05_finetune evaluate` on an instruction-tuned checkpoint: the scores of `score_answers` on
    the test split of --data, the responses saved."""
    from .chat import load_chat_model

    out = Path(args.responses) if args.responses else Path(args.checkpoint) / "responses.json"
    check_writable_file(out, "--responses")
    model, codec, template = load_chat_model(args.checkpoint, device)
    examples = load_instructions(args.data, seed=args.seed, data_dir=args.data_dir)
    train, _, test = split_instructions(examples, args.seed)
    # the budget tuning recorded (from its training answers), else this data's training answers: never the test's
    recorded = meta_budget(args.checkpoint)
    result = score_answers(model, codec, template, test, recorded or answer_budget(codec, train), out_path=out)
    print(f"{args.checkpoint} on {args.data} ({len(test):,} test examples): {format_scores(result)}")
    print("exact match by task: " + ", ".join(f"{t} {v:.2f}" for t, v in result["by_task"].items()))
    print(f"saved {out}")
