"""Chatting with an instruction-tuned checkpoint: history within the context window, streamed answers.

Each turn is framed by the checkpoint's template; earlier turns (with their
answers and <|endoftext|>) go in front of the new one. When the conversation
no longer fits in the context window, the oldest turns are dropped first;
a single message that is too long on its own is cut from the left, and the
template frame is always kept.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from ch03_gpt import GPT, check_sampling, load_checkpoint, stream
from coursekit import CourseError
from coursekit.runtime import pick_device

from .template import TEMPLATES, PromptTemplate
from .vocab import Codec


def load_chat_model(path: str | Path, device: str = "cpu", err=sys.stderr) -> tuple[GPT, Codec, PromptTemplate]:
    """An instruction-tuned checkpoint with its tokenizer and the template it was tuned with.

    Any other checkpoint loads too, with a warning and the compact template: it will
    probably continue the message rather than answer it.
    """
    model, meta = load_checkpoint(path, device=device)
    codec = Codec.from_meta(meta.get("tokenizer"), path)
    finetune = meta.get("finetune") if isinstance(meta.get("finetune"), dict) else {}
    if finetune.get("type") != "instruct":
        print(f"warning: {path} is not instruction-tuned (config.json has no finetune type 'instruct'); "
              f"it will probably continue your text rather than answer it", file=err)
        return model, codec, TEMPLATES["compact"]
    return model, codec, PromptTemplate.from_meta(finetune.get("template"))


def chat_prompt(codec: Codec, template: PromptTemplate, history: list[tuple[str, str]], message: str,
                max_tokens: int) -> tuple[list[int], int, bool]:
    """Token ids for `message` after as much recent `history` as fits; (ids, turns dropped, message cut)."""
    ids, cut = template.encode(codec, message, max_tokens=max_tokens)
    kept = 0
    for user, reply in reversed(history):
        turn = template.encode(codec, user)[0] + codec.encode(reply) + [codec.eot]
        if len(turn) + len(ids) > max_tokens:
            break
        ids = turn + ids
        kept += 1
    return ids, len(history) - kept, cut


def reply_prompt(model: GPT, codec: Codec, template: PromptTemplate, history: list[tuple[str, str]], message: str,
                 max_new_tokens: int) -> tuple[list[int], int, int, bool]:
    """What `reply` feeds the model: `message` framed by the template after as much history as fits, with room
    left for the answer; (ids, the answer's budget in tokens, turns dropped, message cut). The playground too."""
    if not message.strip():
        raise CourseError("the prompt is empty; type a message")
    max_new_tokens = min(max_new_tokens, model.config.block_size - 8)
    ids, dropped, cut = chat_prompt(codec, template, history, message, model.config.block_size - max_new_tokens)
    return ids, max_new_tokens, dropped, cut


def reply(model: GPT, codec: Codec, template: PromptTemplate, history: list[tuple[str, str]], message: str,
          max_new_tokens: int = 32, temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
          generator: torch.Generator | None = None, out=sys.stdout, err=sys.stderr) -> str:
    """Stream the answer to `message` to `out` and return it."""
    ids, max_new_tokens, _dropped, cut = reply_prompt(model, codec, template, history, message, max_new_tokens)
    if cut:
        print(f"warning: the message is longer than the context of {model.config.block_size} tokens; "
              f"kept its end", file=err)
    if codec.unknown_count(ids):
        print(f"warning: {codec.unknown_count(ids)} token(s) of the prompt are unknown to this model", file=err)
    decode = codec.stream_decoder()
    pieces = []
    device = next(model.parameters()).device
    for token in stream(model, torch.tensor([ids], device=device), max_new_tokens, temperature=temperature,
                        top_k=top_k, top_p=top_p, stop_token=codec.eot, generator=generator):
        if token.item() == codec.eot:
            break
        pieces.append(decode(token.item()))
        out.write(pieces[-1])
        out.flush()
    out.write("\n")
    return "".join(pieces).strip()


def chat_loop(model: GPT, codec: Codec, template: PromptTemplate, lines, out=sys.stdout, err=sys.stderr,
              interactive: bool = False, **sampling) -> int:
    """Answer each line of `lines` (bytes), keeping the history; ends at EOF (Ctrl-D). Returns turns answered."""
    history: list[tuple[str, str]] = []
    while True:
        if interactive:
            out.write("you> ")
            out.flush()
        raw = lines.readline()
        if not raw:  # EOF: Ctrl-D on a terminal, or the end of piped input
            if interactive:
                out.write("\n")
            return len(history)
        try:
            message = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as e:
            print(f"error: that line is not UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start}); "
                  f"type it again", file=err)
            continue
        if not message.strip():
            continue
        if interactive:
            out.write("model> ")
        answer = reply(model, codec, template, history, message, out=out, err=err, **sampling)
        history.append((message, answer))


def chat_command(args) -> None:
    """`python -m ch05_finetune chat`: one answer to --prompt, or a conversation on stdin until its end."""
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
