"""Training batches from prepared shards: random windows, the targets shifted by one token.

A batch depends only on the torch.Generator passed in. To resume a run
bitwise-exactly, save `generator.get_state()` in the checkpoint and restore it
with `generator.set_state(...)`: the next batches are the ones the interrupted
run would have drawn.

For distributed training, rank r of `world_size` draws its windows from its
own slice of every shard (the r-th of `world_size` equal, contiguous parts), so
no two ranks ever read the same token.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from coursekit import CourseError, check_positive

from .prepare import SPLITS, check_prepared


@dataclass(frozen=True)
class _Piece:
    path: Path
    start: int  # first token of this rank's part of the file
    stop: int


class ShardDataset:
    """One split (train or val) of a prepared folder, as seen by one rank."""

    def __init__(self, data_dir: str | Path, split: str = "train", rank: int = 0, world_size: int = 1):
        _check_split_name(split)
        check_positive("world size", world_size)
        if not 0 <= rank < world_size:
            raise CourseError(f"rank must be in 0..{world_size - 1}, got {rank}")
        data_dir = Path(data_dir)
        # Every shard of both splits against the manifest: sizes at every start, sha256 once (cached beside the
        # shards, see prepare.VERIFIED), so damaged data stops a run (or an evaluation) before it starts. After
        # this, every token count below is the size of a file on disk.
        manifest = check_prepared(data_dir)
        self.data_dir, self.split, self.rank, self.world_size = data_dir, split, rank, world_size
        self.pieces = []
        for shard in manifest["shards"]:
            entry = shard[split]
            n = entry["tokens"]
            path = data_dir / entry["file"]
            start, stop = n * rank // world_size, n * (rank + 1) // world_size
            if stop > start:
                self.pieces.append(_Piece(path, start, stop))
        self.tokens = sum(p.stop - p.start for p in self.pieces)

    def __repr__(self) -> str:
        return (f"ShardDataset({str(self.data_dir)!r}, {self.split!r}, rank {self.rank}/{self.world_size}: "
                f"{self.tokens:,} tokens in {len(self.pieces)} shard(s))")

    def check_block_size(self, block_size: int) -> None:
        """Refuse, in one line, a block size that no shard of this split has a window of."""
        check_positive("block size", block_size)
        if any(p.stop - p.start > block_size for p in self.pieces):
            return
        hint = ("prepare more documents, or split .txt/.xz files into documents with prepare's --separator "
                "(e.g. --separator '\\n\\n'; without it each file is one document, and about 1 in 10 "
                "documents goes to val), or use a smaller block size")
        raise CourseError(f"the {self.split} split of {self.data_dir} has no run of block size + 1 = {block_size + 1} "
                          f"tokens in one shard for rank {self.rank} ({self.tokens:,} tokens in all); {hint}")

    def get_batch(self, batch_size: int, block_size: int, generator: torch.Generator | None = None,
                  device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """`batch_size` random windows of `block_size` tokens (x) and the same windows shifted by one (y).

        A window never crosses the end of a shard (the shards are independent
        files); it may span several documents, separated by <|endoftext|>.
        """
        check_positive("batch size", batch_size)
        self.check_block_size(block_size)
        # A window starting at token p needs tokens p .. p + block_size (inclusive) for its targets.
        starts = np.array([max(p.stop - p.start - block_size, 0) for p in self.pieces], dtype=np.int64)
        total = int(starts.sum())
        ends = np.cumsum(starts)
        draws = torch.randint(total, (batch_size,), generator=generator).numpy()  # one number per window
        which = np.searchsorted(ends, draws, side="right")  # the piece each draw falls in
        x = np.empty((batch_size, block_size), dtype=np.int64)  # (B, T)
        y = np.empty((batch_size, block_size), dtype=np.int64)  # (B, T)
        for k in np.unique(which):
            piece = self.pieces[k]
            # A fresh memory map per batch: one kept open maps every page it has
            # touched into the process, so its resident size would creep up to the
            # size of the dataset over a long run. Unmapping releases those pages.
            tokens = _map(piece)
            for row in np.flatnonzero(which == k):
                p = piece.start + int(draws[row] - (ends[k] - starts[k]))
                window = tokens[p:p + block_size + 1].astype(np.int64)
                x[row], y[row] = window[:-1], window[1:]
            del tokens
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        if str(device).startswith("cuda"):
            # Page-locked memory lets the copy run asynchronously while the GPU works on the previous step.
            xt = xt.pin_memory().to(device, non_blocking=True)
            yt = yt.pin_memory().to(device, non_blocking=True)
        elif str(device) != "cpu":
            xt, yt = xt.to(device), yt.to(device)
        return xt, yt


def _check_split_name(split: str) -> None:
    if split not in SPLITS:
        raise CourseError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")


def _map(piece: _Piece) -> np.memmap:
    """The tokens of `piece`'s file, mapped: only the pages a window touches are read."""
    try:
        tokens = np.memmap(piece.path, dtype="<u2", mode="r")
    except (OSError, ValueError):  # deleted, or emptied (an empty file cannot be mapped)
        tokens = np.empty(0, dtype="<u2")
    if len(tokens) < piece.stop:
        raise CourseError(f"{piece.path} changed after it was checked (it no longer holds the {piece.stop:,} tokens "
                          f"recorded); rerun the prepare command, which redoes damaged shards")
    return tokens


def load_splits(data_dir: str | Path, rank: int = 0, world_size: int = 1) -> dict[str, ShardDataset]:
    """Both splits of a prepared folder: {"train": ..., "val": ...}."""
    return {split: ShardDataset(data_dir, split, rank, world_size) for split in SPLITS}


def split_tokens(data_dir: str | Path, split: str = "train") -> np.ndarray:
    """All tokens of a split, in document order, as one array (for inspection of small datasets).

    The split's shards are checked against the manifest first, as for training,
    so each file holds exactly the tokens recorded.
    """
    _check_split_name(split)
    data_dir = Path(data_dir)
    manifest = check_prepared(data_dir, (split,))
    parts = [np.fromfile(data_dir / s[split]["file"], dtype="<u2") for s in manifest["shards"]]
    return np.concatenate(parts) if parts else np.empty(0, dtype="<u2")
