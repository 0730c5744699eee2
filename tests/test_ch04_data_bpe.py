"""Chapter 4, tokenizer: GPT-2's BPE from the vendored rank file, and the tiny BPE trained from scratch, as a
rank file of its own that tiktoken encodes with."""

import base64
import hashlib
import itertools
import random
import shutil
from collections import Counter

import pytest
import regex
import tiktoken
import tiktoken.load

from ch01_bigram import generate_corpus
from ch04_pretrain.data_pipeline.bpe import (
    EOT,
    EOT_TEXT,
    GPT2_SPLIT_PATTERN,
    MAX_RANKS,
    MAX_RANKS_BYTES,
    RANKS_PATH,
    RANKS_SHA256,
    VOCAB_SIZE,
    TinyBPE,
    format_ranks,
    gpt2_encoding,
    load_ranks,
    merge_pair,
    rank_file_encoding,
    tokenizer_record,
    train_bpe,
    write_ranks,
)
from ch05_finetune.builtin import generate_instructions, generate_reviews
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
    assert all(a > b for a, b in itertools.pairwise(sizes))  # every merge shortens the text
    ids = bpe.encode(text)
    assert len(ids) == sizes[-1] < len(text.encode()) * 0.6
    assert bpe.decode(ids) == text
    assert bpe.decode(bpe.encode("Zoe met a friendly fox. 🙂")) == "Zoe met a friendly fox. 🙂"
    assert train_bpe(text, 60).merges == bpe.merges  # deterministic


# --------------------------------------------------------------------------- a BPE of our own as a rank file

@pytest.fixture(scope="module")
def stories() -> str:
    return generate_corpus()


@pytest.fixture(scope="module")
def course_bpe(stories, tmp_path_factory):
    """300 merges learned on the stories (as the notebook learns them), written as a rank file."""
    bpe = train_bpe(stories, 300)
    path = tmp_path_factory.mktemp("bpe") / "stories-300.tiktoken"
    return bpe, path, write_ranks(bpe.ranks(), path)


def chunks_of(texts) -> list[str]:
    """The distinct chunks GPT-2's pattern cuts `texts` into: both encoders encode chunk by chunk."""
    return list(Counter(c for text in texts for c in regex.findall(GPT2_SPLIT_PATTERN, text)))


def test_rank_file_of_a_tiny_bpe_has_gpt2s_layout(course_bpe):
    bpe, path, sha256 = course_bpe
    raw = path.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == sha256
    lines = raw.decode().splitlines()
    assert len(lines) == 256 + 300
    assert [base64.b64decode(line.split()[0]) for line in lines[:256]] == [bytes([b]) for b in range(256)]
    vocab = bpe.vocab()
    assert lines[256 + 17] == f"{base64.b64encode(vocab[256 + 17]).decode()} {256 + 17}"  # merge k has id 256 + k
    assert load_ranks(path, sha256) == bpe.ranks() == {token: i for i, token in vocab.items()}
    assert format_ranks(load_ranks()) == RANKS_PATH.read_bytes()  # the writer's layout is GPT-2's file's
    assert tokenizer_record(bpe.ranks()) == {"name": "bpe-557", "ranks_sha256": sha256, "vocab_size": 557,
                                             "eot": 556}
    assert tokenizer_record(load_ranks())["name"] == "gpt2"


def test_tiktoken_gives_the_tiny_bpes_ids_on_the_stories_and_chapter_5s_texts(stories, course_bpe):
    """tiktoken merges the adjacent pair whose joined bytes have the lowest rank, TinyBPE the pair learned
    first: different rules, the same ids on every chunk of the stories, reviews and instructions."""
    bpe, path, sha256 = course_bpe
    enc = rank_file_encoding(path, sha256)
    assert (enc.n_vocab, enc.eot_token) == (557, 556)
    assert enc.encode(EOT_TEXT, allowed_special="all") == [556]
    reviews = [r.text for r in generate_reviews(3000)]
    instructions = [t for ex in generate_instructions(1400) for t in (ex.instruction, ex.input, ex.output)]
    for name, texts in (("stories", stories.split("\n\n")), ("reviews", reviews), ("instructions", instructions)):
        different = [c for c in chunks_of(texts) if enc.encode_ordinary(c) != bpe.encode(c)]
        assert different == [], name
    for story in stories.split("\n\n")[:50]:  # whole texts too: both cut them into the same chunks
        assert enc.encode_ordinary(story) == bpe.encode(story)
    assert len(enc.encode_ordinary(stories)) == bpe.tokens_after_merge[-1]


def test_the_two_rules_agree_on_learned_merges_and_differ_on_hand_made_ones():
    """Merges learned by train_bpe on random texts: the same ids from both rules. Merges made by hand that
    training could not learn ('ab' + 'c' after 'bc'): tiktoken joins 'a' + 'bc' into 'abc', TinyBPE does not."""
    rng = random.Random(0)
    for _ in range(200):
        alphabet = "abcde"[:rng.randint(2, 5)]
        text = " ".join("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 9))) for _ in range(6))
        bpe = train_bpe(text, rng.randint(2, 25))
        enc = tiktoken.Encoding(name="t", pat_str=GPT2_SPLIT_PATTERN, mergeable_ranks=bpe.ranks(),
                                special_tokens={})
        for _ in range(10):
            probe = "".join(rng.choice(alphabet) for _ in range(rng.randint(2, 12)))
            assert enc.encode_ordinary(probe) == bpe.encode(probe), (text, probe)
    a, b, c = b"abc"
    hand_made = TinyBPE(merges=[(b, c), (a, b), (257, c)])  # 256 'bc', 257 'ab', 258 'abc' = 'ab' + 'c'
    enc = tiktoken.Encoding(name="t", pat_str=GPT2_SPLIT_PATTERN, mergeable_ranks=hand_made.ranks(),
                            special_tokens={})
    assert hand_made.encode("abc") == [a, 256] and enc.encode_ordinary("abc") == [258]
    twice = TinyBPE(merges=[*hand_made.merges, (a, 256)])  # 259 'abc' = 'a' + 'bc' again
    with pytest.raises(CourseError, match=r"merge 3 makes b'abc', as token 258 does"):
        twice.ranks()


SAMPLES_ANY = [*SAMPLES, "Zoë's café — naïve façade, 東京, Ωμέγα, עברית, 🙂🚀 and \u0000 control", "\r\n\t \x0b"]


def test_decode_round_trips_any_text(course_bpe):
    """Byte-level: text the stories never had (accents, CJK, emoji) falls back to byte tokens, never to an
    unknown token, and decodes to itself."""
    bpe, path, sha256 = course_bpe
    enc = rank_file_encoding(path, sha256)
    for text in SAMPLES_ANY:
        ids = enc.encode_ordinary(text)
        assert enc.decode(ids) == text and bpe.decode(bpe.encode(text)) == text, text
        assert max(ids, default=0) < 556
    assert enc.encode_ordinary("🙂") == list("🙂".encode())  # four byte tokens


def good_lines(n: int = 300) -> list[bytes]:
    return [base64.b64encode(bytes([b])) + b" %d" % b for b in range(256)] + [
        base64.b64encode(bytes([97, 97 + k % 26, 98 + k // 26])) + b" %d" % (256 + k) for k in range(n - 256)]


def write_lines(path, lines) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


@pytest.mark.parametrize("damage, message", [
    (lambda ls: ls.__setitem__(270, b"not*base64 270"), r"line 271: b'not\*base64' is not a token in base64"),
    (lambda ls: ls.__setitem__(270, ls[270].split()[0] + b" 269"), r"line 271: rank 269 comes a second time"),
    (lambda ls: ls.__delitem__(270), r"line 271: rank 271 where 270 was expected, a gap"),
    (lambda ls: ls.__setitem__(270, ls[269]), r"line 271: rank 269 comes a second time"),
    (lambda ls: ls.__setitem__(270, ls[269].split()[0] + b" 270"), r"line 271: token b'anb' already has rank 269"),
    (lambda ls: ls.__setitem__(270, ls[270] + b" extra"), r"line 271: expected 'base64-token rank'"),
    (lambda ls: ls.__setitem__(270, ls[270].split()[0] + b" " + b"9" * 5000), r"line 271: expected 'base64-token"),
    (lambda ls: ls.__setitem__(65, b"QUFB 65"), r"1 of the 256 bytes have no rank \(byte 65"),
    (lambda ls: ls.extend([b"QQ== 0"] * MAX_RANKS), r"lines, more ranks than the 262,144"),
])
def test_damaged_rank_file_is_refused_in_one_line(tmp_path, damage, message):
    lines = good_lines()
    write_lines(tmp_path / "good.tiktoken", lines)
    assert len(load_ranks(tmp_path / "good.tiktoken", None)) == 300
    damage(lines)
    path = tmp_path / "bad.tiktoken"
    write_lines(path, lines)
    with pytest.raises(CourseError, match=message) as info:
        load_ranks(path, None)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_rank_file_with_another_sha256_or_too_large_is_refused(tmp_path, course_bpe):
    _, path, sha256 = course_bpe
    copy = tmp_path / "copy.tiktoken"
    shutil.copy(path, copy)
    assert load_ranks(copy, sha256) == load_ranks(path, sha256)
    copy.write_bytes(path.read_bytes().replace(b"IA== 32", b"IQ== 32"))  # one token changed
    with pytest.raises(CourseError, match=f"sha256 .*expected {sha256}; the rank file is damaged or not the one "
                                          f"recorded"):
        load_ranks(copy, sha256)
    with open(tmp_path / "huge.tiktoken", "wb") as f:
        f.truncate(MAX_RANKS_BYTES + 1)  # sparse: no disk used
    with pytest.raises(CourseError, match="larger than 16 MB"):
        load_ranks(tmp_path / "huge.tiktoken", None)
