"""Chapter 4, tokenizer: GPT-2's BPE from the vendored rank file, and the tiny BPE trained from scratch."""

import hashlib
import shutil

import pytest
import tiktoken
import tiktoken.load

from ch01_bigram import generate_corpus
from ch04_pretrain.data_pipeline.bpe import (
    EOT,
    EOT_TEXT,
    RANKS_PATH,
    RANKS_SHA256,
    VOCAB_SIZE,
    gpt2_encoding,
    load_ranks,
    merge_pair,
    train_bpe,
)
from coursekit import CourseError

SAMPLES = [
    "Hello world", "Hello, world!", "hello world", " the", "It's 2024: we're testing GPT-2's tokenizer.",
    "   leading spaces and trailing   ", "numbers 1234567 and 3.14159", "tabs\tand\nnewlines\n\n\n",
    "Ünïcödé — emoji 🙂 and 中文 text", "<|endoftext|> as plain text", "", "a" * 300,
]


def test_vendored_rank_file_is_gpt2s(gpt2_ranks):
    assert hashlib.sha256(RANKS_PATH.read_bytes()).hexdigest() == RANKS_SHA256
    assert RANKS_PATH.read_bytes() == gpt2_ranks.read_bytes()


def test_encoding_has_gpt2s_vocabulary_and_known_ids():
    enc = gpt2_encoding()
    assert enc.n_vocab == VOCAB_SIZE and enc.eot_token == EOT == 50256
    # Ids published with GPT-2 and in tiktoken's own documentation.
    assert enc.encode_ordinary("Hello world") == [15496, 995]
    assert enc.encode_ordinary("Hello, world!") == [15496, 11, 995, 0]
    assert enc.encode_ordinary("hello world") == [31373, 995]
    assert enc.encode_ordinary(" the") == [262]
    assert enc.encode(EOT_TEXT, allowed_special="all") == [EOT]
    for text in SAMPLES:
        assert enc.decode(enc.encode_ordinary(text)) == text


def test_same_ids_as_tiktokens_gpt2_when_cached(monkeypatch):
    """tiktoken builds "gpt2" from two other files (vocab.bpe, encoder.json); compare where they are cached."""
    def no_network(path):
        raise OSError(f"test refuses to download {path}")
    monkeypatch.setattr(tiktoken.load, "read_file", no_network)
    try:
        reference = tiktoken.get_encoding("gpt2")
    except Exception as e:
        pytest.skip(f"tiktoken's gpt2 files are not in its cache, and tests stay offline ({e})")
    enc = gpt2_encoding()
    for text in SAMPLES:
        assert enc.encode_ordinary(text) == reference.encode_ordinary(text), text


def test_rank_file_with_wrong_hash_is_refused(tmp_path):
    bad = tmp_path / "gpt2.tiktoken"
    shutil.copy(RANKS_PATH, bad)
    with open(bad, "ab") as f:
        f.write(b"IQ== 50256\n")
    with pytest.raises(CourseError, match="sha256"):
        load_ranks(bad)
    with pytest.raises(CourseError, match="cannot read"):
        load_ranks(tmp_path / "missing.tiktoken")


def test_merge_pair_replaces_left_to_right():
    assert merge_pair([1, 1, 1, 2, 1, 1], (1, 1), 9) == [9, 1, 2, 9]


def test_tiny_bpe_compresses_and_round_trips():
    text = generate_corpus(n_bytes=20_000)
    bpe = train_bpe(text, 60)
    assert bpe.vocab_size == 256 + 60
    sizes = bpe.tokens_after_merge
    assert all(a > b for a, b in zip(sizes, sizes[1:]))  # every merge shortens the text
    ids = bpe.encode(text)
    assert len(ids) == sizes[-1] < len(text.encode()) * 0.6
    assert bpe.decode(ids) == text
    assert bpe.decode(bpe.encode("Zoe met a friendly fox. 🙂")) == "Zoe met a friendly fox. 🙂"
    assert train_bpe(text, 60).merges == bpe.merges  # deterministic
