"""The code that runs inside Chapter 4's tokenizing worker processes (its `prepare` starts them).

It imports only the standard library and tiktoken, on purpose. Under the
"spawn" start method (the default on macOS and Windows, and ours everywhere)
each worker is a fresh Python that imports the module holding its function,
and that start-up is paid again by every worker of every run: importing torch
there would cost each worker about 3 s and 500 MB, and even numpy about 0.1 s
of CPU, which on a 20 MB corpus and two cores is a tenth of the whole run. The
packages above it import nothing heavy either: Chapter 4's __init__.py loads
its lesson's modules only when a name is asked for.

Token ids leave a worker as uint16 bytes built with the standard `array`
module, not as lists of Python ints: pickling a list costs far more than the
two bytes a token takes, and `array("H")` checks on the way in that every id
fits in 16 bits.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from array import array

import tiktoken

_encoding: tiktoken.Encoding | None = None
_eot: int = -1


def init_worker(spec: dict, eot: int, parent_pid: int) -> None:
    """Build the tokenizer once per worker (not once per batch)."""
    global _encoding, _eot
    _encoding, _eot = tiktoken.Encoding(**spec), eot
    # Ctrl-C reaches every process of the terminal's group: let the parent alone
    # handle it, so it can stop the pool cleanly.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_if_orphaned, args=(parent_pid,), daemon=True).start()


def _exit_if_orphaned(parent_pid: int) -> None:
    # If the parent is killed outright (SIGKILL, power cut of the terminal), a
    # pool worker would otherwise wait for work forever.
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(1)


def encode_documents(docs: list, is_val: list[bool], encoding: tiktoken.Encoding | None = None,
                     eot: int | None = None) -> tuple[bytes, bytes, array]:
    """Tokenize a batch of documents, each one preceded by <|endoftext|>.

    `docs` holds str, bytes (decoded here as UTF-8) or None (a document the
    reader could not read). Returns (train tokens, val tokens, lengths): the
    tokens of the batch's train documents and of its val documents, each
    concatenated in order, as uint16 little-endian bytes; and each document's
    token count (an array of int64), -1 for a document skipped because its
    bytes are not UTF-8.
    """
    enc = encoding or _encoding
    eot = _eot if eot is None else eot
    train, val, lengths = array("H"), array("H"), array("q")
    for doc, to_val in zip(docs, is_val):
        if isinstance(doc, bytes):
            try:
                doc = doc.decode("utf-8")
            except UnicodeDecodeError:
                doc = None
        if doc is None:
            lengths.append(-1)
            continue
        # One encode_ordinary call per document: for short documents this is
        # about twice as fast as encode_ordinary_batch(num_threads=1), whose
        # thread pool costs a few microseconds per document. "Ordinary": a
        # document that happens to contain the text "<|endoftext|>" is tokenized
        # as plain text, so only we decide where documents end.
        ids = enc.encode_ordinary(doc)
        out = val if to_val else train
        out.append(eot)
        try:
            out.fromlist(ids)  # all or nothing: on an error the array is left as it was
        except OverflowError:
            # Never raised for GPT-2 (ids < 50,257), but a wrong tokenizer must not wrap around silently.
            bad = next(i for i in ids if not 0 <= i < 1 << 16)
            raise OverflowError(f"token id {bad} does not fit in uint16 (must be < 65,536)") from None
        lengths.append(len(ids) + 1)
    if sys.byteorder == "big":  # the shards are little-endian on every machine
        train.byteswap()
        val.byteswap()
    return train.tobytes(), val.tobytes(), lengths
