"""Generation: temperature, top-k, top-p, a stop token, streaming, and a KV cache.

`stream` yields tokens one at a time as they are sampled; `generate` collects
them; `stream_with_probs` yields each token together with the distribution it
was drawn from (the playground shows its top 5). With `use_cache=True` (the default) each step feeds only the newest
token and reuses the keys and values of the earlier ones, which turns the cost
of a step from the whole context to one token.

Cropping: the model has learned positions 0..block_size-1 only, so it sees at
most the last `block_size` tokens, and a prompt longer than that is cropped
from the left. Every cached key was computed at its position in the window;
once the window slides, every position changes, so the cache is rebuilt from
the cropped window. That keeps cached generation identical to uncached
generation (at the cost of one full forward pass per step after the window
is full).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import closing

import torch
import torch.nn.functional as F

from coursekit import CourseError

from .model import GPT, KVCache


def check_sampling(vocab_size: int, max_new_tokens: int = 0, temperature: float = 1.0,
                   top_k: int | None = None, top_p: float | None = None) -> None:
    """One-line `CourseError`s for sampling settings that make no sense."""
    if max_new_tokens < 0:
        raise CourseError(f"max new tokens must be >= 0, got {max_new_tokens}")
    if temperature < 0:
        raise CourseError(f"temperature must be >= 0 (0 means greedy), got {temperature}")
    if top_k is not None and not 1 <= top_k <= vocab_size:
        raise CourseError(f"top-k must be between 1 and the vocabulary size {vocab_size}, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise CourseError(f"top-p must be in (0, 1], got {top_p}")


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Set to -inf every logit outside the top-k and outside the top-p nucleus (B, V) -> (B, V).

    Top-p keeps the smallest set of most likely tokens whose probabilities add
    up to at least p (the most likely token is always kept). The softmax that
    follows renormalises over what is left.
    """
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]   # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = F.softmax(sorted_logits, dim=-1)
        before = probs.cumsum(dim=-1) - probs  # probability mass of the tokens ranked above each one
        drop_sorted = before >= top_p           # already reached p without this token
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sampling_probs(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                   top_p: float | None = None) -> torch.Tensor:
    """The distribution `sample_next` draws from (B, V) -> (B, V): the softmax of the logits divided by the
    temperature, with every token outside top-k and top-p at 0.

    Temperature 0 draws nothing (greedy takes the argmax, and ignores top-k and top-p); what it returns then is
    the model's own distribution, the softmax at temperature 1, whose most likely token greedy picks.
    """
    if temperature == 0:
        return F.softmax(logits.float(), dim=-1)
    return F.softmax(filter_logits(logits.float() / temperature, top_k, top_p), dim=-1)


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pick the next token (B, 1) from last-position logits (B, V). Temperature 0 is greedy."""
    return _pick(logits, sampling_probs(logits, temperature, top_k, top_p), temperature, generator)


def _pick(logits: torch.Tensor, probs: torch.Tensor, temperature: float,
          generator: torch.Generator | None) -> torch.Tensor:
    """The next token (B, 1): the argmax of `logits` (B, V) at temperature 0, else a draw from `probs` (B, V)."""
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    return torch.multinomial(probs, num_samples=1, generator=generator)


def stream(model: GPT, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
           top_k: int | None = None, top_p: float | None = None, stop_token: int | None = None,
           use_cache: bool = True, generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """Yield each new token (B,) as soon as it is sampled; stop early once every row produced `stop_token`.

    `idx` (B, T) is the prompt; a prompt longer than the block size is cropped
    from the left (the model cannot see further back).
    """
    with closing(stream_with_probs(model, idx, max_new_tokens, temperature, top_k, top_p, stop_token, use_cache,
                                   generator)) as steps:
        for token, _probs in steps:
            yield token


@torch.no_grad()
def stream_with_probs(model: GPT, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                      top_k: int | None = None, top_p: float | None = None, stop_token: int | None = None,
                      use_cache: bool = True,
                      generator: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """`stream`, yielding with each token (B,) the distribution it was drawn from (B, V): after the temperature
    and the top-k/top-p filter, as `sample_next` sees it (`sampling_probs`; at temperature 0, the model's own).

    The same seed gives the same tokens as `stream`: this is the loop `stream` runs.
    Any model with `config.block_size`, `config.vocab_size`, `config.n_layer` and a
    forward `model(idx, cache=...) -> (logits, _)` can run in it; one without a KV
    cache runs with `use_cache=False`.
    """
    block_size = model.config.block_size
    check_sampling(model.config.vocab_size, max_new_tokens, temperature, top_k, top_p)
    if idx.shape[1] == 0:
        raise CourseError("the prompt is empty; give at least one token")
    was_training = model.training
    model.eval()
    try:
        finished = torch.zeros(idx.shape[0], dtype=torch.bool, device=idx.device)
        context = idx[:, -block_size:]
        cache = KVCache(model.config.n_layer) if use_cache else None
        feed = context  # what the next forward pass must process
        for _ in range(max_new_tokens):
            if use_cache and cache.length + feed.shape[1] > block_size:
                cache = KVCache(model.config.n_layer)  # the window slid: rebuild from it
                feed = context
            logits, _ = model(feed, cache=cache)
            last = logits[:, -1, :]                                          # (B, V)
            probs = sampling_probs(last, temperature, top_k, top_p)          # (B, V)
            next_id = _pick(last, probs, temperature, generator)             # (B, 1)
            yield next_id[:, 0], probs
            if stop_token is not None:
                finished |= next_id[:, 0] == stop_token
                if finished.all():
                    return
            context = torch.cat((context, next_id), dim=1)[:, -block_size:]
            feed = next_id if use_cache else context
    finally:
        model.train(was_training)


def generate(model: GPT, idx: torch.Tensor, max_new_tokens: int, **kwargs) -> torch.Tensor:
    """The prompt (B, T) followed by the generated tokens (B, T + n); see `stream` for the options."""
    new = list(stream(model, idx, max_new_tokens, **kwargs))
    if not new:
        return idx
    return torch.cat((idx, torch.stack(new, dim=1)), dim=1)


def print_stream(model: GPT, tokenizer, prompt: str, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, seed: int = 0, use_cache: bool = True,
                 device: str = "cpu") -> None:
    """Print `prompt`, then the text of each new token as soon as it is sampled (`python -m ch03_gpt sample`,
    and the sample `train` ends with)."""
    if not prompt:
        raise CourseError("the prompt is empty; give at least one character")
    idx = torch.tensor([tokenizer.encode(prompt)], dtype=torch.long, device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    sys.stdout.write(prompt)
    for token in stream(model, idx, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                        use_cache=use_cache, generator=gen):
        sys.stdout.write(tokenizer.decode(token.tolist()))
        sys.stdout.flush()
    sys.stdout.write("\n")
