"""GPT-2's byte-pair encoding, offline, and a tiny byte-pair encoder trained from scratch.

GPT-2 reads text as bytes, cuts it into word-like chunks with a regular
expression, and inside each chunk merges frequent pairs of symbols into new
tokens, in the order the merges were learned. The learned merges are its "rank
file": 50,256 byte strings, each with its rank (= token id). We keep a copy of
that file in `assets/` and check its sha256 on every load, so the tokenizer
never needs the network (tiktoken.get_encoding("gpt2") downloads it).

`train_bpe` learns merges the same way on a text of our own, small enough to
watch merge by merge (the notebook does).
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import regex
import tiktoken

from coursekit import CourseError

RANKS_PATH = Path(__file__).resolve().parent / "assets" / "gpt2.tiktoken"
RANKS_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
EOT_TEXT = "<|endoftext|>"
EOT = 50256          # GPT-2's end-of-text token, the last id
VOCAB_SIZE = 50257   # 50,256 merged byte strings + <|endoftext|>

# GPT-2's chunking rule: contractions, runs of letters, runs of digits, runs of
# other symbols (each optionally led by one space), and whitespace. Merges never
# cross a chunk boundary, so " dog." can become " dog" + "." but never "g.".
# This is GPT-2's original expression in the equivalent, faster form tiktoken uses.
GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""


# --------------------------------------------------------------------------- #
# GPT-2's encoding from the vendored rank file
# --------------------------------------------------------------------------- #

def load_ranks(path: str | Path = RANKS_PATH, sha256: str = RANKS_SHA256) -> dict[bytes, int]:
    """Read a tiktoken rank file (`base64-token rank` per line) after checking its sha256."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CourseError(f"cannot read the GPT-2 rank file {path}: {e.strerror}") from None
    actual = hashlib.sha256(raw).hexdigest()
    if actual != sha256:
        raise CourseError(f"{path} has sha256 {actual}, expected {sha256}; the rank file is damaged or not GPT-2's")
    ranks = {}
    for line in raw.splitlines():
        token, rank = line.split()
        ranks[base64.b64decode(token)] = int(rank)
    return ranks


def encoding_spec(path: str | Path = RANKS_PATH) -> dict:
    """The arguments of `tiktoken.Encoding` for GPT-2 (plain data, so it can be sent to worker processes)."""
    return {
        # Not "gpt2": tiktoken pickles an encoding with a registered name by name
        # alone, and the receiving process would then download it.
        "name": "gpt2-offline",
        "pat_str": GPT2_SPLIT_PATTERN,
        "mergeable_ranks": load_ranks(path),
        "special_tokens": {EOT_TEXT: EOT},
        "explicit_n_vocab": VOCAB_SIZE,
    }


@lru_cache(maxsize=4)
def gpt2_encoding(path: str | Path = RANKS_PATH) -> tiktoken.Encoding:
    """GPT-2's tokenizer, built from the vendored rank file: the same ids as tiktoken.get_encoding("gpt2")."""
    return tiktoken.Encoding(**encoding_spec(path))


# --------------------------------------------------------------------------- #
# A byte-pair encoder trained from scratch
# --------------------------------------------------------------------------- #

@dataclass
class TinyBPE:
    """Merges learned by `train_bpe`: token ids 0..255 are the bytes, id 256 + k is merge k."""

    merges: list[tuple[int, int]] = field(default_factory=list)
    tokens_after_merge: list[int] = field(default_factory=list)  # size of the training text after each merge

    @property
    def vocab_size(self) -> int:
        return 256 + len(self.merges)

    def vocab(self) -> dict[int, bytes]:
        table = {i: bytes([i]) for i in range(256)}
        for k, (a, b) in enumerate(self.merges):
            table[256 + k] = table[a] + table[b]
        return table

    def encode(self, text: str) -> list[int]:
        rank = {pair: k for k, pair in enumerate(self.merges)}
        ids = []
        for chunk in regex.findall(GPT2_SPLIT_PATTERN, text):
            piece = list(chunk.encode("utf-8"))
            while len(piece) > 1:
                # Apply the earliest-learned merge present, as GPT-2 does.
                pair = min(zip(piece, piece[1:]), key=lambda p: rank.get(p, len(rank)))
                if pair not in rank:
                    break
                piece = merge_pair(piece, pair, 256 + rank[pair])
            ids.extend(piece)
        return ids

    def decode(self, ids: list[int]) -> str:
        table = self.vocab()
        return b"".join(table[i] for i in ids).decode("utf-8", errors="replace")


def merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every non-overlapping occurrence of `pair` in `ids`, left to right, by `new_id`."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def train_bpe(text: str, num_merges: int) -> TinyBPE:
    """Learn `num_merges` merges on `text`: each time, merge the most frequent adjacent pair.

    Like GPT-2, the text is first cut into chunks with GPT2_SPLIT_PATTERN and
    pairs are counted inside chunks only. Identical chunks are counted once,
    with their frequency, which makes training fast.
    """
    if num_merges < 0:
        raise CourseError(f"number of merges must be >= 0, got {num_merges}")
    chunks = Counter(regex.findall(GPT2_SPLIT_PATTERN, text))
    words = [(list(chunk.encode("utf-8")), freq) for chunk, freq in chunks.items()]
    bpe = TinyBPE()
    for k in range(num_merges):
        pairs = Counter()
        for ids, freq in words:
            for pair in zip(ids, ids[1:]):
                pairs[pair] += freq
        if not pairs:
            break  # every chunk is a single token: nothing left to merge
        # Most frequent pair; ties go to the smaller pair, so the result never depends on dict order.
        best = min(pairs, key=lambda p: (-pairs[p], p))
        words = [(merge_pair(ids, best, 256 + k), freq) for ids, freq in words]
        bpe.merges.append(best)
        bpe.tokens_after_merge.append(sum(len(ids) * freq for ids, freq in words))
    return bpe
