"""Progress bars that read well in a terminal, a notebook and a log file alike.

In a terminal or a notebook, `progress_bar` is tqdm's live bar. When the
output is a file or a pipe (a log, CI), redrawing a bar would write one line
per update, thousands in all, so it writes a plain line now and then instead:
at every tenth of the work, or every 30 seconds when no tenth has passed (or
the total is unknown), and once at the end.
"""

from __future__ import annotations

import math
import sys
import time

from tqdm import tqdm as tqdm_std
from tqdm.auto import tqdm as tqdm_auto

LOG_SECONDS = 30.0  # the longest silence in a log while work goes on


def _in_notebook() -> bool:
    """True inside a Jupyter kernel, whose output streams are not terminals but show live widgets."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    ipython = shell.get_ipython()
    return ipython is not None and hasattr(ipython, "kernel")


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class LogProgress:
    """The parts of tqdm's interface the course uses, written as occasional whole lines."""

    def __init__(self, iterable=None, total: int | None = None, desc: str | None = None, initial: int = 0,
                 unit: str = "it", file=None, seconds: float = LOG_SECONDS, **_ignored):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit.strip()
        self.file = file if file is not None else sys.stderr
        self.seconds = seconds
        self.n = self.start_n = self.shown_n = initial
        self.postfix = ""
        self.start = self.last_time = time.monotonic()
        self.tenth = max(1, math.ceil(total / 10)) if total else None
        self.last_tenth = initial // self.tenth if self.tenth else 0
        self.closed = False

    def __iter__(self):
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        return self.total or 0

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        tenth = self.n // self.tenth if self.tenth else 0
        if tenth > self.last_tenth or now - self.last_time >= self.seconds:
            self.last_tenth = tenth
            self._line(now)

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **kwargs) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc

    def refresh(self) -> None:
        pass  # lines come at their own pace

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.n != self.shown_n:  # the end, unless the last line already showed it
                self._line(time.monotonic())

    def _line(self, now: float) -> None:
        self.last_time, self.shown_n = now, self.n
        elapsed = now - self.start
        done = self.n - self.start_n
        rate = done / elapsed if elapsed > 0 else 0.0
        head = f"{self.desc}: " if self.desc else ""
        if self.total:
            left = (self.total - self.n) / rate if rate > 0 else float("nan")
            count = f"{self.n / self.total:4.0%} {self.n:,}/{self.total:,} {self.unit}"
            remaining = tqdm_std.format_interval(left) if rate else "?"
            timing = f"{tqdm_std.format_interval(elapsed)} elapsed, {remaining} left"
        else:
            count = f"{self.n:,} {self.unit}"
            timing = f"{tqdm_std.format_interval(elapsed)} elapsed"
        tail = f", {self.postfix}" if self.postfix else ""
        self.file.write(f"{head}{count} [{timing}, {rate:,.1f} {self.unit}/s{tail}]\n")
        self.file.flush()


def progress_bar(iterable=None, *, disable: bool = False, file=None, **kwargs):
    """tqdm's bar in a terminal or notebook; `LogProgress` when the output is a file or a pipe.

    Takes tqdm's arguments (`total`, `desc`, `initial`, `unit`, ...). With `disable`
    it is tqdm's silent bar, which still iterates and counts.
    """
    stream = file if file is not None else sys.stderr
    if disable or _in_notebook() or _is_terminal(stream):
        return tqdm_auto(iterable, disable=disable, file=file, **kwargs)
    return LogProgress(iterable, file=stream, **kwargs)


def progress_write(message: str) -> None:
    """Print a line without breaking a live progress bar (tqdm.write), or plainly in a log."""
    if _is_terminal(sys.stdout) or _in_notebook():
        tqdm_std.write(message)
    else:
        print(message, flush=True)
