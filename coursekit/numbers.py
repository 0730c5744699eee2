"""Numbers from the user, checked where they come in: argparse `type=` functions that carry their range.

Every numeric option of every command takes one of these as its `type`, so a
value that makes no sense (nan, inf, a negative size, a probability of 2)
stops the command at once with one line naming the option and its allowed
range, before any work:

    error: argument --lr: must be a number > 0 and <= 1, got 'nan'

The same objects check the Python API's settings (Chapter 1's `TrainConfig`,
Chapter 3's `Recipe`, Chapter 4's `TrainSettings`, Chapter 5's `FitConfig`):
`learning_rate.check("lr", value)` raises a `CourseError` with the same words.
A settings class names each field's rule once, on the field (`coursekit.settings.setting`).

A `Number` knows its range (`contains`, `describe`), so a test can walk every
parser and check every numeric option without a list kept by hand.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from .errors import CourseError


class Number:
    """A whole number (`kind=int`) or a finite real number (`kind=float`) within a range.

    `lo`/`hi` are the bounds (None: unbounded); `lo_open`/`hi_open` leave the
    bound itself out. `words` maps words that are accepted as they are (such as
    'all') to the value they stand for; `parse` replaces the plain `int`/`float`
    conversion (Chapter 4's counts accept '10M'); `called` names the range in a word ('positive').
    """

    def __init__(self, kind: type, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
                 hi_open: bool = False, words: dict[str, object] | None = None,
                 parse: Callable[[str], int | float] | None = None, called: str | None = None):
        self.kind, self.lo, self.hi, self.lo_open, self.hi_open = kind, lo, hi, lo_open, hi_open
        self.called = called
        self.words = dict(words or {})
        self._parse = parse
        self.__name__ = self.describe()  # argparse names a type by its __name__

    def describe(self) -> str:
        """The allowed values in words: 'positive (a whole number >= 1)', 'a finite number > 0 and <= 1', ..."""
        what = "a whole number" if self.kind is int else "a finite number"
        bounds = []
        if self.lo is not None:
            bounds.append(f"{'>' if self.lo_open else '>='} {_fmt(self.lo)}")
        if self.hi is not None:
            bounds.append(f"{'<' if self.hi_open else '<='} {_fmt(self.hi)}")
        text = f"{what} {' and '.join(bounds)}" if bounds else what
        if self.words:
            text += " or " + " or ".join(repr(w) for w in self.words)
        return f"{self.called} ({text})" if self.called else text

    def contains(self, value) -> bool:
        """Whether `value` (already converted) is allowed."""
        if any(value == v for v in self.words.values()):
            return True
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        if self.lo is not None and (value < self.lo or (self.lo_open and value == self.lo)):
            return False
        return self.hi is None or not (value > self.hi or (self.hi_open and value == self.hi))

    def __call__(self, text: str):
        """Convert a command-line string; an `argparse.ArgumentTypeError` naming the range if it is not allowed."""
        key = text.strip().lower()
        if key in self.words:
            return self.words[key]
        try:
            value = self._parse(text) if self._parse else self.kind(text)
        except (ValueError, OverflowError, argparse.ArgumentTypeError):
            value = None
        if value is None or not self.contains(value):
            raise argparse.ArgumentTypeError(f"must be {self.describe()}, got {text!r}")
        return value

    def check(self, name: str, value):
        """The same rule for the Python API: return `value`, or raise a one-line `CourseError` naming `name`."""
        if not self.contains(value):
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."  # a value from a file
            raise CourseError(f"{name} must be {self.describe()}, got {shown}")
        return value

    def __repr__(self) -> str:
        return f"<Number: {self.describe()}>"


class NumberList:
    """A comma-separated list of numbers, each a `Number` (e.g. worker counts '1,2,4'); at least one."""

    def __init__(self, item: Number):
        self.item = item
        self.__name__ = f"comma-separated list of {item.describe()}"

    def describe(self) -> str:
        return f"{self.item.describe()}, or several separated by commas"

    def contains(self, value) -> bool:
        return isinstance(value, list) and bool(value) and all(self.item.contains(v) for v in value)

    def __call__(self, text: str) -> list:
        try:
            return [self.item(part) for part in text.split(",")]
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"must be {self.describe()}, got {text!r}") from None


def _fmt(x: float) -> str:
    return f"{x:,}" if isinstance(x, int) and abs(x) >= 10_000 else f"{x:g}"


def float_in(lo: float | None, hi: float | None, *, lo_open: bool = False, hi_open: bool = False) -> Number:
    """A finite number in the range [lo, hi] (`lo_open`/`hi_open` exclude a bound)."""
    return Number(float, lo, hi, lo_open=lo_open, hi_open=hi_open)


def int_in(lo: int | None, hi: int | None, **options) -> Number:
    """A whole number in [lo, hi] (`options`: `words`, `parse`, `called`, as for `Number`)."""
    return Number(int, lo, hi, **options)


positive_int = Number(int, 1, called="positive")                    # sizes, counts, steps
nonnegative_int = Number(int, 0)                                     # where 0 means "none" or "off"
positive_float = Number(float, 0, lo_open=True, called="positive")  # finite and > 0
nonnegative_float = Number(float, 0)                                 # finite and >= 0 (a temperature: 0 is greedy)
probability = Number(float, 0, 1, lo_open=True)                      # 0 < p <= 1 (top-p)
fraction = Number(float, 0, 1, hi_open=True)                         # 0 <= x < 1 (dropout, Adam's betas)
seed = Number(int, 0, 2**32 - 1)                                     # what every generator takes (NumPy's, narrowest)
learning_rate = Number(float, 0, 1, lo_open=True)                    # above 1, AdamW overshoots: the loss becomes nan
min_learning_rate = Number(float, 0, 1)                              # the floor of a schedule may be 0
weight_decay = Number(float, 0, 1)                                   # AdamW multiplies weights by 1 - lr * weight_decay


def check_lr_floor(lr: float, min_lr: float) -> None:
    """A schedule decays from `lr` down to `min_lr`; a floor above the peak is a mistake, not a schedule."""
    if min_lr > lr:
        raise CourseError(f"min_lr {min_lr:g} is above lr {lr:g}; the schedule decays from lr down to min_lr")
