"""The code that runs inside the tokenizing worker processes.

It imports only numpy and tiktoken, on purpose. Under the "spawn" start method
(the default on macOS and Windows, and ours everywhere) each worker is a fresh
Python that imports the module holding its function; importing torch there
would cost every worker about 3 s and 500 MB. That is also why this package's
__init__.py imports nothing.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
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
                     eot: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tokenize a batch of documents, each one preceded by <|endoftext|>.

    `docs` holds str, bytes (decoded here as UTF-8) or None (a document the
    reader could not read). Returns (train tokens, val tokens, lengths):
    the tokens of the batch's train documents and of its val documents, each
    concatenated in order, as uint16; and each document's token count, -1 for a
    document skipped because its bytes are not UTF-8.
    """
    enc = encoding or _encoding
    eot = _eot if eot is None else eot
    texts, keep = [], []
    for doc in docs:
        if isinstance(doc, bytes):
            try:
                doc = doc.decode("utf-8")
            except UnicodeDecodeError:
                doc = None
        keep.append(doc is not None)
        if doc is not None:
            texts.append(doc)
    # One encode_ordinary call per document: for short documents this is about
    # twice as fast as encode_ordinary_batch(num_threads=1), whose thread pool
    # costs a few microseconds per document. "Ordinary": a document that happens
    # to contain the text "<|endoftext|>" is tokenized as plain text, so only we
    # decide where documents end.
    encoded = iter([enc.encode_ordinary(t) for t in texts])
    lengths = np.full(len(docs), -1, dtype=np.int64)
    train_ids: list[int] = []
    val_ids: list[int] = []
    for i, (ok, val) in enumerate(zip(keep, is_val)):
        if not ok:
            continue
        ids = next(encoded)
        out = val_ids if val else train_ids
        out.append(eot)
        out.extend(ids)
        lengths[i] = len(ids) + 1
    return _to_uint16(train_ids), _to_uint16(val_ids), lengths


def _to_uint16(ids: list[int]) -> np.ndarray:
    arr = np.array(ids, dtype=np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= 1 << 16):
        # Never true for GPT-2 (ids < 50,257), but a wrong tokenizer must not wrap around silently.
        raise OverflowError(f"token id {int(arr.max())} does not fit in uint16 (must be < 65,536)")
    return arr.astype("<u2")
