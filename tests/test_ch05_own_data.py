"""Chapter 5 on a user's own labelled file: every example used, long texts read four ways, a strong baseline,
intervals and McNemar's test, the way forward offline, and an answer budget that never reads the test split."""

import itertools
import json
import math
import random
import subprocess
import sys

import pytest
import torch

from ch03_gpt import GPT, GPTConfig, save_checkpoint
from ch05_finetune import labelled, pretrained
from ch05_finetune.classify import add_classifier_head, class_logits, pad_batch, predict_proba
from ch05_finetune.compare import mcnemar, tfidf_baseline, verdict, wilson_interval
from ch05_finetune.labelled import LabelledData, make_splits
from ch05_finetune.long_texts import MAX_WINDOWS, describe, views, window_starts
from coursekit import CourseError

# --------------------------------------------------------------------------- long texts


def test_a_text_that_fits_is_read_whole_by_every_way():
    ids = list(range(10))
    for how in ("windows", "head-tail", "head", "tail"):
        assert views(ids, 10, how) == [ids]


def test_head_tail_and_head_tail_cut_where_they_say():
    ids = list(range(100))
    assert views(ids, 10, "head") == [list(range(10))]
    assert views(ids, 10, "tail") == [list(range(90, 100))]
    assert views(ids, 10, "head-tail") == [list(range(5)) + list(range(95, 100))]
    assert views(ids, 11, "head-tail") == [list(range(5)) + list(range(94, 100))]  # 5 + 6 = 11 tokens


@pytest.mark.parametrize("n", [11, 64, 65, 129, 300, 1000, 10_000])
def test_windows_cover_the_whole_text_half_a_window_apart(n):
    ids, size = list(range(n)), 64
    windows = views(ids, size, "windows")
    starts = window_starts(n, size)
    assert all(len(w) == min(n, size) for w in windows) and windows[0][0] == 0 and windows[-1][-1] == n - 1
    assert starts == sorted(set(starts))
    assert len(windows) <= MAX_WINDOWS
    if len(windows) < MAX_WINDOWS:  # below the cap, consecutive windows overlap by at least half a window
        assert all(b - a <= size // 2 for a, b in itertools.pairwise(starts))
        covered = {i for w in windows for i in w}
        assert covered == set(ids)


def test_the_long_text_line_says_how_many_and_what_is_done():
    assert describe([10, 20], 32, "windows") is None
    line = describe([10, 50, 900], 32, "head-tail")
    assert "2 of 3 (67%)" in line and "the longest 900" in line and "first 16 and last 16 tokens" in line


def test_window_probabilities_are_averaged():
    torch.manual_seed(0)
    model = add_classifier_head(GPT(GPTConfig(vocab_size=40, block_size=8, n_layer=1, n_head=2, n_embd=16)), 3)
    model.eval()
    text_views = [[[1, 2, 3]], [[4, 5, 6, 7], [8, 9]]]
    probs = predict_proba(model, text_views, pad_id=0)
    assert probs.shape == (2, 3) and torch.allclose(probs.sum(1), torch.ones(2))
    with torch.no_grad():
        each = [torch.softmax(class_logits(model, *pad_batch([v], 0)), -1)[0] for v in text_views[1]]
        first = torch.softmax(class_logits(model, *pad_batch(text_views[0], 0)), -1)[0]
    assert torch.allclose(probs[1], (each[0] + each[1]) / 2, atol=1e-6)
    assert torch.allclose(probs[0], first, atol=1e-6)


# --------------------------------------------------------------------------- intervals, McNemar, TF-IDF


def test_wilson_interval_known_values():
    low, high = wilson_interval(8, 10)
    assert math.isclose(low, 0.4902, abs_tol=1e-4) and math.isclose(high, 0.9433, abs_tol=1e-4)
    low, high = wilson_interval(0, 10)
    assert low == 0 and math.isclose(high, 0.2775, abs_tol=1e-4)
    assert math.isclose(wilson_interval(10, 10)[1], 1)
    low, high = wilson_interval(150, 300)  # half right on 300: about +-5.6 points
    assert math.isclose(high - 0.5, 0.0557, abs_tol=1e-3)
    with pytest.raises(CourseError):
        wilson_interval(0, 0)


def test_mcnemar_counts_only_the_disagreements():
    true = [1] * 30
    a = [1] * 30                  # right everywhere
    b = [0] * 10 + [1] * 20       # wrong on the first ten
    test = mcnemar(a, b, true)
    assert (test["a_only"], test["b_only"]) == (10, 0)
    assert math.isclose(test["p"], 2 * 0.5 ** 10)  # the exact two-sided binomial tail
    assert "the A beats the B" in verdict("A", "B", test)
    level = mcnemar(b, list(reversed(b)), true)  # each right where the other is wrong, as often
    assert level["a_only"] == level["b_only"] == 10 and level["p"] == 1
    assert "are level" in verdict("A", "B", level)
    assert mcnemar(a, a, true)["p"] == 1  # no disagreement at all
    assert "are level" in verdict("A", "B", mcnemar([1] * 6 + [0], [0] * 6 + [1], [1] * 7))  # 6 to 1: p 0.125
    with pytest.raises(CourseError):
        mcnemar([1], [1, 0], [1, 0])


def test_tfidf_baseline_learns_words_and_word_pairs():
    rng = random.Random(0)
    filler = ["the", "film", "was", "a", "plot", "story", "it", "and"]

    def text(label):  # the label lives in a word pair only: "not good" is negative, "really good" positive
        words = [rng.choice(filler) for _ in range(8)] + (["really", "good"] if label else ["not", "good"])
        rng.shuffle(words[:8])
        return " ".join(words[:4] + words[8:] + words[4:8])

    labels = [i % 2 for i in range(200)]
    texts = [text(y) for y in labels]
    result = tfidf_baseline(texts[:150], labels[:150], texts[150:175], labels[150:175], texts[175:])
    assert result["predictions"] == labels[175:]
    assert result["C"] in (0.1, 1.0, 10.0, 100.0) and result["features"] > 0


# --------------------------------------------------------------------------- splits


def test_a_file_of_ones_own_keeps_every_example_80_10_10():
    data = LabelledData([f"t{i}" for i in range(1000)], [0] * 870 + [1] * 130, ["ham", "spam"])
    train, val, test = make_splits(data)  # auto: no splits of its own, so stratified
    assert [len(train), len(val), len(test)] == [800, 100, 100]
    assert [train.counts(), val.counts(), test.counts()] == [[696, 104], [87, 13], [87, 13]]
    assert set(train.texts) | set(val.texts) | set(test.texts) == set(data.texts)


# --------------------------------------------------------------------------- the command line


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ch05_finetune", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def gpt2_vocab_start(tmp_path_factory):
    """A small untrained GPT with GPT-2's vocabulary: what `--from DIR` reads any text with."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("start")
    save_checkpoint(GPT(GPTConfig(vocab_size=50257, block_size=32, n_layer=1, n_head=2, n_embd=16)), folder,
                    {"tokenizer": {"type": "gpt2"}})
    return folder


def spam_file(path, n=120, long_every=3):
    rng = random.Random(1)
    words = ["meeting", "tomorrow", "lunch", "report", "call", "thanks", "see", "you"]
    lines = ["label,text"]
    for i in range(n):
        label = "spam" if i % 2 else "ham"
        text = " ".join(rng.choice(words) for _ in range(6)) + (" win a free prize now" if i % 2 else " ok")
        if i % long_every == 0:
            text = " ".join([text] * 12)  # longer than the 32-token context
        lines.append(f"{label},{text}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_classify_reports_splits_long_texts_intervals_and_mcnemar(gpt2_vocab_start, tmp_path):
    data = spam_file(tmp_path / "mine.csv")
    r = run("classify", "--data", str(data), "--from", str(gpt2_vocab_start), "--epochs", "1",
            "--out", str(tmp_path / "c"), "--no-progress")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "120 (ham 60, spam 60) examples" in out
    assert "split (stratified 80/10/10, every example; seed 1337): train 96 (ham 48, spam 48) / val 12 " \
           "(ham 6, spam 6) / test 12 (ham 6, spam 6)" in out
    assert "warning: the test split has 12 examples (fewer than 200)" in out
    assert "long texts: 40 of 120 (33%) are longer than the 32 tokens" in out and "--long-texts windows" in out
    for row in ("majority class", "bag of words", "TF-IDF + logistic regression", "fine-tuned GPT"):
        assert any(line.startswith(f"  {row}") and "accuracy" in line and "[" in line for line in out.splitlines())
    assert out.count("McNemar p = ") == 2
    meta = json.loads((tmp_path / "c" / "config.json").read_text())
    assert meta["long_texts"] == "windows" and meta["split"] == "stratified"
    assert set(meta["mcnemar"]) == {"TF-IDF baseline", "bag of words"}
    r = run("evaluate", "--checkpoint", str(tmp_path / "c"), "--data", str(data))
    assert r.returncode == 0 and "12 examples, long texts read as windows" in r.stdout, r.stderr


def test_texts_writes_the_training_split_only(gpt2_vocab_start, tmp_path):
    data = spam_file(tmp_path / "mine.csv", long_every=1000)
    r = run("texts", "--data", str(data), "--out", str(tmp_path / "t.jsonl"))
    assert r.returncode == 0, r.stderr
    written = [json.loads(line)["text"] for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    train = make_splits(labelled.read_labelled(data))[0]
    assert written == train.texts and "python -m ch04_pretrain prepare" in r.stdout
    assert all(set(line) == {"text"} for line in map(json.loads, (tmp_path / "t.jsonl").read_text().splitlines()))


def test_from_tiny_refuses_unreadable_text_before_pretraining(tmp_path):
    (tmp_path / "mine.tsv").write_text("".join(f"{'a' if i % 2 else 'b'}\tZyxwv qwrtp {i} ążę\n" for i in range(40)))
    r = run("classify", "--data", "mine.tsv", "--from", "tiny", "--no-progress", "--out", "c", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--from tiny cannot read this data" in r.stderr and "python -m ch05_finetune texts" in r.stderr
    assert not (tmp_path / "runs" / "ch05" / "tiny").exists()  # refused before it pretrained


def test_offline_gpt2_says_three_ways_on(monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise CourseError("could not download gpt2 (no network)")

    monkeypatch.setattr(pretrained, "load_start", offline)
    with pytest.raises(CourseError) as info:
        pretrained.load_chosen("gpt2", "99% of the data's tokens are outside", "cpu", False, "mine.csv")
    lines = str(info.value).splitlines()
    assert lines[0] == "could not download gpt2 (no network)"
    assert [line[:5] for line in lines[2:]] == ["  1. ", "  2. ", "  3. "]
    assert "python -m ch05_finetune texts --data mine.csv" in lines[2] and "--from DIR" in lines[3]
    with pytest.raises(CourseError) as info:  # an instruction file has no labelled split to take texts from
        pretrained.load_chosen("gpt2", "no reason", "cpu", False, "mine.json", labelled=False)
    assert "ch05_finetune texts" not in str(info.value) and "ch04_pretrain prepare" in str(info.value)


# --------------------------------------------------------------------------- no peeking


def test_the_answer_budget_comes_from_the_training_answers(monkeypatch, tmp_path):
    from ch05_finetune import instruct
    from ch05_finetune.builtin import Instruction
    from ch05_finetune.config import FitConfig
    from ch05_finetune.template import TEMPLATES
    from ch05_finetune.vocab import Codec

    codec = Codec()
    train = [Instruction("Say it.", "", "one two three four five six seven eight nine ten", "say")] * 4
    test = [Instruction("Say it.", "", "one", "say")] * 2
    budgets = []

    def fake_score(model, codec, template, examples, max_new_tokens=None, out_path=None):
        budgets.append(max_new_tokens)
        return dict.fromkeys(("exact_match", "token_f1", "rouge_l", "answer_loss"), 0.0) | {"budget": max_new_tokens,
                                                                                           "cut": 0}

    monkeypatch.setattr(instruct, "score_answers", fake_score)
    monkeypatch.setattr(instruct, "finetune_instructions", lambda *a, **k: None)
    model = GPT(GPTConfig(vocab_size=codec.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16))
    instruct.instruction_tune(model, codec, TEMPLATES["compact"], (train, train, test), FitConfig(epochs=1),
                              tmp_path / "out", "x", log=None)
    assert budgets == [instruct.answer_budget(codec, train)] * 2
    assert budgets[0] > instruct.answer_budget(codec, test)
    assert instruct.meta_budget(tmp_path / "out") == budgets[0]
