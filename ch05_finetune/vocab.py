"""The tokenizer of fine-tuning: a byte-pair encoding, whole, or GPT-2's trimmed to the tokens a small model uses.

A checkpoint records its tokenizer in config.json, and `Codec` reads and writes
text with it. OpenAI's GPT-2 and Chapter 4's runs on GPT-2's tokens use GPT-2's
encoding; a Chapter 4 run on data prepared with a rank file of its own (its
byte-pair encoder trained on the stories) uses that one, whose rank file the
checkpoint keeps beside config.json. Both are byte-level: they read any text,
with no unknown token, so `check_coverage` always lets it pass.

OpenAI's GPT-2 reads and writes all 50,257 tokens. Our tiny practice model
lives in the built-in world, which uses a few hundred of them; scoring every
position against 50,257 outputs would make its training about a hundred times
slower on a CPU for nothing. So the tiny model keeps only the GPT-2 ids that
the built-in data uses (`builtin_token_ids`), numbered 0..K-1, plus one
"unknown" id for everything else. The text is still cut by GPT-2's BPE; only
the numbering differs. A checkpoint records which kind it was in config.json:
{"type": "gpt2"}, {"type": "gpt2-subset", "ids": [...]} or {"type": "bpe", ...}.

A trimmed model cannot read text from outside its world: every token it
does not know becomes the same "unknown" id, and the model learns from (and
answers in) a string of them while its loss looks healthy. `check_coverage`
refuses such text before any training, with the share it would lose and the
way out (a full-vocabulary model).
"""

from __future__ import annotations

import codecs
from functools import lru_cache
from pathlib import Path

import tiktoken

from ch01_bigram import generate_corpus
from ch04_pretrain.data_pipeline.bpe import EOT, RANKS_FILE, VOCAB_SIZE, gpt2_encoding, tokenizer_encoding, write_ranks
from coursekit import CourseError
from coursekit.settings import DEFAULT_SEED

from .builtin import BACKWARD_WORDS, generate_instructions, generate_reviews

UNKNOWN_TEXT = "\ufffd"  # how an unknown token prints: the replacement character
MAX_UNKNOWN_SHARE = 0.01  # a trimmed model refuses text of which more than this share would be unknown
FULL_VOCABULARY_HINT = ("start from a full-vocabulary model: --from gpt2 (OpenAI's GPT-2, downloaded once) "
                        "or --from DIR, a Chapter 4 checkpoint")


class Codec:
    """encode/decode between text and model ids, through a tiktoken encoding.

    `Codec()` is GPT-2's; `Codec(keep)` GPT-2's trimmed to the ids `keep` (a small
    model's); `Codec(encoding=..., tokenizer=...)` any other byte-level BPE, with
    `tokenizer` the record config.json keeps of it (Chapter 4's {"type": "bpe", ...}).
    """

    def __init__(self, keep: list[int] | None = None, encoding: tiktoken.Encoding | None = None,
                 tokenizer: dict | None = None):
        if (encoding is None) != (tokenizer is None) or (keep is not None and encoding is not None):
            raise ValueError("give an encoding with its tokenizer record, and trim only GPT-2's")
        self.encoding = encoding or gpt2_encoding()
        self.tokenizer = tokenizer  # the record of a BPE other than GPT-2's, None for GPT-2's
        self.keep = None if keep is None else sorted(set(keep) | {EOT})
        if self.keep is not None:
            if self.keep[0] < 0 or self.keep[-1] >= VOCAB_SIZE:
                raise CourseError(f"token ids must be in 0..{VOCAB_SIZE - 1}")
            self.local = {g: i for i, g in enumerate(self.keep)}
            self.unknown = len(self.keep)

    @property
    def vocab_size(self) -> int:
        return self.encoding.n_vocab if self.keep is None else len(self.keep) + 1

    @property
    def eot(self) -> int:
        """<|endoftext|>: ends a response, and pads batches."""
        return self.encoding.eot_token if self.keep is None else self.local[EOT]

    def encode(self, text: str) -> list[int]:
        ids = self.encoding.encode_ordinary(text)  # special-token text in user input stays plain text
        if self.keep is None:
            return ids
        return [self.local.get(i, self.unknown) for i in ids]

    def unknown_count(self, ids: list[int]) -> int:
        return 0 if self.keep is None else sum(i == self.unknown for i in ids)

    def unknown_share(self, texts) -> tuple[float, int]:
        """(share of the tokens of `texts` that become the unknown id, number of tokens); (0.0, n) untrimmed."""
        unknown = total = 0
        for text in texts:
            ids = self.encode(text)
            total += len(ids)
            unknown += self.unknown_count(ids)
        return (unknown / total if total else 0.0), total

    def check_coverage(self, texts, what: str = "the data", limit: float = MAX_UNKNOWN_SHARE) -> None:
        """Refuse `texts` when more than `limit` of their tokens are outside a trimmed vocabulary."""
        if self.keep is None:
            return
        share, total = self.unknown_share(texts)
        if share > limit:
            raise CourseError(f"{what}: {share:.1%} of its {total:,} tokens are outside this model's trimmed "
                              f"vocabulary ({len(self.keep):,} GPT-2 tokens of the built-in world) and would all "
                              f"become one unknown token; {FULL_VOCABULARY_HINT}")

    def token_bytes(self, i: int) -> bytes:
        if self.keep is not None:
            if i == self.unknown:
                return UNKNOWN_TEXT.encode()
            i = self.keep[i]
        return self.encoding.decode_single_token_bytes(i)

    def decode(self, ids) -> str:
        return b"".join(self.token_bytes(int(i)) for i in ids).decode("utf-8", errors="replace")

    def stream_decoder(self):
        """A function id -> text that holds back the bytes of a character split across tokens."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        return lambda i: decoder.decode(self.token_bytes(int(i)))

    def to_meta(self) -> dict:
        """What config.json records of this tokenizer (`save` writes the file it may refer to)."""
        if self.tokenizer is not None:
            return self.tokenizer
        return {"type": "gpt2"} if self.keep is None else {"type": "gpt2-subset", "ids": self.keep}

    def save(self, directory: str | Path) -> None:
        """Write into a checkpoint's folder the file its tokenizer needs beside config.json: a BPE of our own's
        rank file (GPT-2's is in the course, and a trimmed vocabulary is all in config.json)."""
        if self.tokenizer is not None:
            ranks = {self.encoding.decode_single_token_bytes(i): i for i in range(self.encoding.eot_token)}
            write_ranks(ranks, Path(directory) / RANKS_FILE)

    @classmethod
    def from_meta(cls, meta: dict | None, directory: str | Path | None = None,
                  encoding: tiktoken.Encoding | None = None) -> Codec:
        """The codec a checkpoint's config.json records (`meta`, its "tokenizer" entry). A BPE of our own is read
        from the rank file in the checkpoint's `directory`, unless its `encoding` is already at hand."""
        kind = (meta if isinstance(meta, dict) else {}).get("type")
        if kind == "gpt2":
            return cls()
        if kind == "gpt2-subset":
            ids = meta.get("ids")  # from a file: checked before it sizes anything
            if not (isinstance(ids, list) and len(ids) <= VOCAB_SIZE
                    and all(isinstance(i, int) and not isinstance(i, bool) for i in ids)):
                raise CourseError(f"the tokenizer in {directory or 'this checkpoint'}'s config.json is damaged: its "
                                  f"ids should be a list of GPT-2 token ids")
            return cls(ids)
        if kind == "bpe":
            if encoding is None:
                if directory is None:
                    raise CourseError("this checkpoint's tokenizer is a rank file kept in its folder; load it "
                                      "from the folder")
                encoding = tokenizer_encoding(meta, directory)
            return cls(encoding=encoding, tokenizer=meta)
        raise CourseError(f"fine-tuning needs a byte-pair encoding checkpoint; this one has tokenizer {kind!r} "
                          f"(character-level models from Chapter 3 cannot be fine-tuned here)")


@lru_cache(maxsize=2)
def builtin_token_ids(seed: int = DEFAULT_SEED) -> tuple[int, ...]:
    """Every GPT-2 id in the built-in stories, reviews and instructions (and the prompt templates)."""
    from .template import TEMPLATES

    enc = gpt2_encoding()
    texts = [generate_corpus(seed, 300_000)]
    texts += [r.text for r in generate_reviews(3000, seed)]
    for ex in generate_instructions(700, seed):
        texts += [ex.instruction, ex.output, " " + ex.output]
    texts += [" ".join(str(i) for i in range(100)), " ".join(BACKWARD_WORDS), " ".join(w[::-1] for w in BACKWARD_WORDS)]
    texts += [w[::-1] for w in BACKWARD_WORDS] + [str(i) for i in range(100)]
    for t in TEMPLATES.values():
        texts += t.pieces()
    ids = set()
    for text in texts:
        ids.update(enc.encode_ordinary(text))
    return tuple(sorted(ids | {EOT}))
