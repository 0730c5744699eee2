"""Texts longer than the model's context: which tokens the classifier reads.

A GPT reads at most `block_size` tokens. A movie review of 900 tokens does not fit a context of 128, so
something must go. Four ways, each a list of views (token sequences) of one text:

    head       the first tokens: where a text says what it is about
    tail       the last tokens: where a review gives its verdict (the cut the notebook uses)
    head-tail  half from each end, joined: the opening and the verdict
    windows    overlapping windows over the whole text, each classified, the class probabilities averaged

Training reads one view per text per epoch: the only one, or for `windows` one window at random, so every
part of a long text is seen over the epochs at the cost of one. A text that fits is read whole, by all four.
"""

from __future__ import annotations

import random

LONG_TEXT_CHOICES = ("windows", "head-tail", "head", "tail")
# The default, from the measurements on long movie reviews and spam mails (MEASUREMENTS.md#long-texts).
DEFAULT_LONG_TEXTS = "windows"
# At most this many windows per text, spread evenly over it (the stride grows past it), so a book-length
# text costs what 32 windows cost.
MAX_WINDOWS = 32


def views(ids: list[int], max_len: int, how: str = DEFAULT_LONG_TEXTS) -> list[list[int]]:
    """The token sequences the classifier reads for one text (`ids`), each at most `max_len` long."""
    if len(ids) <= max_len:
        return [ids]
    if how == "head":
        return [ids[:max_len]]
    if how == "tail":
        return [ids[-max_len:]]
    if how == "head-tail":
        first = max_len // 2
        return [ids[:first] + ids[len(ids) - (max_len - first):]]
    if how == "windows":
        return [ids[start:start + max_len] for start in window_starts(len(ids), max_len)]
    raise ValueError(f"unknown way to read long texts: {how!r}")


def window_starts(n_tokens: int, max_len: int) -> list[int]:
    """Where the windows of a text of `n_tokens` start: half a window apart, the last one ending at the end."""
    last = n_tokens - max_len
    stride = max(1, max_len // 2)
    count = min(MAX_WINDOWS, -(-last // stride) + 1)  # ceil(last / stride) windows, then one at the end
    if count == 1:
        return [0]
    return [round(i * last / (count - 1)) for i in range(count)]


def pick_view(text_views: list[list[int]], rng: random.Random) -> list[int]:
    """The view a training step reads: the only one, or one window chosen at random."""
    return text_views[0] if len(text_views) == 1 else rng.choice(text_views)


def describe(lengths: list[int], max_len: int, how: str) -> str | None:
    """One line on how many texts are longer than the context and what is done with them (None if none is)."""
    longer = sum(n > max_len for n in lengths)
    if not longer:
        return None
    done = {"head": f"each is cut to its first {max_len} tokens",
            "tail": f"each is cut to its last {max_len} tokens",
            "head-tail": f"each is read as its first {max_len // 2} and last {max_len - max_len // 2} tokens",
            "windows": f"each is read in windows of {max_len} tokens, half a window apart (at most {MAX_WINDOWS}), "
                       f"their class probabilities averaged"}[how]
    return (f"long texts: {longer:,} of {len(lengths):,} ({longer / len(lengths):.0%}) are longer than the "
            f"{max_len} tokens the model reads (the longest {max(lengths):,}); --long-texts {how}: {done}")
