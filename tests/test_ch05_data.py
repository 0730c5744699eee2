"""Chapter 5 without training: data formats and their errors, heads, freezing, masking, LoRA, templates."""

import copy
import functools
import http.server
import json
import threading
import zipfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F

from ch01_bigram.data import sha256_of
from ch03_gpt import GPT, GPTConfig
from ch05_finetune import labelled
from ch05_finetune.builtin import generate_instructions
from ch05_finetune.chat import chat_prompt
from ch05_finetune.classify import (
    add_classifier_head,
    bag_of_words_baseline,
    choose_trainable,
    class_logits,
    encode_texts,
    pad_batch,
    scores,
)
from ch05_finetune.instruct import IGNORE, Encoded, collate, lm_loss, read_alpaca
from ch05_finetune.labelled import builtin_reviews, read_labelled, split_balanced
from ch05_finetune.lora import LoRALinear, apply_lora, merge_lora
from ch05_finetune.template import TEMPLATES
from ch05_finetune.vocab import Codec, builtin_token_ids
from coursekit import CourseError
from coursekit.claims import claim


@pytest.fixture(scope="module")
def codec():
    return Codec(list(builtin_token_ids()))


def tiny_gpt(vocab=50, block=32):
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=vocab, block_size=block, n_layer=3, n_head=2, n_embd=16))


# --------------------------------------------------------------------------- classifier

def test_classifier_head_shapes_and_last_real_token():
    model = add_classifier_head(tiny_gpt(), 3)
    assert model.lm_head.weight.shape == (3, 16)
    seqs = [[1, 2, 3, 4, 5], [6, 7]]
    ids, lengths = pad_batch(seqs, pad_id=0)
    assert ids.shape == (2, 5) and lengths.tolist() == [5, 2]
    logits = class_logits(model, ids, lengths)
    assert logits.shape == (2, 3)
    alone = class_logits(model, torch.tensor([[6, 7]]), torch.tensor([2]))
    torch.testing.assert_close(logits[1], alone[0])  # padding after the last token changes nothing
    ids2 = ids.clone()
    ids2[1, 2:] = 9
    torch.testing.assert_close(class_logits(model, ids2, lengths), logits)


def test_truncation_keeps_the_true_last_token(codec):
    text = "The red ball was not bad. " * 20 + "The end."
    (ids,) = encode_texts(codec, [text], 10)
    assert len(ids) == 10 and ids[-1] == codec.encode(text)[-1]


@pytest.mark.parametrize("blocks", [0, 1, 3, "all"])
def test_only_the_chosen_parameters_train(blocks):
    model = add_classifier_head(tiny_gpt(), 2)
    choose_trainable(model, blocks)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    if blocks == "all":
        assert trainable == {n for n, _ in model.named_parameters()}
        return
    expected = {n for n, _ in model.named_parameters()
                if n.startswith(("lm_head", "transformer.ln_f"))
                or any(n.startswith(f"transformer.h.{i}.") for i in range(3 - blocks, 3))}
    assert trainable == expected
    x = torch.randint(0, 50, (2, 6))
    F.cross_entropy(class_logits(model, x, torch.tensor([6, 4])), torch.tensor([0, 1])).backward()
    for n, p in model.named_parameters():
        assert (p.grad is not None) == (n in expected), n


def test_choose_trainable_refuses_too_many_blocks():
    with pytest.raises(CourseError, match="between 0 and 3"):
        choose_trainable(add_classifier_head(tiny_gpt(), 2), 4)


def test_scores_and_confusion():
    s = scores([1, 1, 0, 0], [1, 0, 0, 1], 2)
    assert s["confusion"] == [[1, 1], [1, 1]]
    assert s["accuracy"] == 0.5 and s["precision"] == 0.5 and s["recall"] == 0.5 and s["f1"] == 0.5


@pytest.mark.trained
def test_bag_of_words_cannot_solve_the_builtin_reviews(codec):
    train, _, test = split_balanced(builtin_reviews(2000))
    result = bag_of_words_baseline(encode_texts(codec, train.texts, 64), train.labels,
                                   encode_texts(codec, test.texts, 64), test.labels, codec.vocab_size, 2)
    claim("test: bag of words' accuracy on 2,000 built-in reviews", result["accuracy"], high=0.6)


def test_builtin_reviews_are_balanced_word_by_word():
    data = builtin_reviews(4000)
    assert abs(sum(data.labels) / len(data) - 0.5) < 0.03
    for word in ["not", "good", "bad", "great", "awful", "but"]:
        has = [y for t, y in zip(data.texts, data.labels) if f" {word} " in f" {t[:-1]} ".replace(",", " ")]
        assert abs(sum(has) / len(has) - 0.5) < 0.06, word


# --------------------------------------------------------------------------- instruction masking

def test_collate_masks_padding_and_optionally_the_prompt():
    batch = [Encoded([1, 2, 3], [4, 5, 0]), Encoded([1, 2], [6, 0])]
    ids, targets = collate(batch, pad_id=0, mask_prompt=True)
    assert ids.tolist() == [[1, 2, 3, 4, 5], [1, 2, 6, 0, 0]]
    assert targets.tolist() == [[IGNORE, IGNORE, 4, 5, 0], [IGNORE, 6, 0, IGNORE, IGNORE]]
    _, unmasked = collate(batch, pad_id=0, mask_prompt=False)
    assert unmasked.tolist() == [[2, 3, 4, 5, 0], [2, 6, 0, IGNORE, IGNORE]]


def test_masked_positions_contribute_nothing_to_the_gradient():
    model = tiny_gpt()
    batch = [Encoded([1, 2, 3, 4], [7, 8, 0]), Encoded([5, 6], [9, 0])]
    ids, targets = collate(batch, pad_id=0)
    # lm_loss equals the full cross-entropy with ignore_index, and the gradient reaching the
    # logits of every masked position is exactly zero.
    logits, _ = model(ids)
    logits.retain_grad()
    full = F.cross_entropy(logits.view(-1, 50), targets.view(-1), ignore_index=IGNORE)
    full.backward()
    masked = targets == IGNORE
    assert masked.any() and logits.grad[masked].abs().max() == 0
    assert logits.grad[~masked].abs().sum() > 0
    torch.testing.assert_close(lm_loss(model, ids, targets), full)
    # Whatever sits in the padding, the loss and every gradient are the same.
    grads = []
    for pad in (0, 33):
        model.zero_grad()
        ids_p = ids.clone()
        ids_p[1, 3:] = pad
        lm_loss(model, ids_p, targets).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


# --------------------------------------------------------------------------- LoRA

def test_lora_starts_as_the_identity_and_merges_exactly():
    model = tiny_gpt()
    x = torch.randint(0, 50, (2, 12))
    before, _ = model(x)
    lora = apply_lora(copy.deepcopy(model), rank=4)
    wrapped = [m for m in lora.modules() if isinstance(m, LoRALinear)]
    assert len(wrapped) == 3 * 4  # c_attn, attn.c_proj, c_fc, mlp.c_proj in each of 3 blocks
    torch.testing.assert_close(lora(x)[0], before, rtol=0, atol=0)  # B = 0: exactly the pretrained model
    trainable = {n for n, p in lora.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    torch.manual_seed(1)
    for m in wrapped:
        torch.nn.init.normal_(m.lora_B, std=0.5)
    adapted, _ = lora(x)
    assert (adapted - before).abs().max() > 1e-3
    merged = merge_lora(lora)
    assert not any(isinstance(m, LoRALinear) for m in merged.modules())
    torch.testing.assert_close(merged(x)[0], adapted, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- templates and chat history

def test_long_prompt_is_cut_from_the_left_keeping_the_template(codec):
    t = TEMPLATES["compact"]
    ids, cut = t.encode(codec, "What did they find?", " ".join(["Mia had a red ball."] * 40), max_tokens=40)
    assert cut and len(ids) == 40
    text = codec.decode(ids)
    assert text.startswith("### Instruction:\nWhat did they find?\n\n### Input:\n")
    assert text.endswith("a red ball.\n\n### Response:\n")
    short, cut = t.encode(codec, "Who is the story about?", max_tokens=40)
    assert not cut and codec.decode(short) == t.format("Who is the story about?")


def test_chat_history_drops_the_oldest_turns_first(codec):
    t = TEMPLATES["compact"]
    history = [("Who is the story about?", "Mia"), ("What is 2 plus 2?", "4"), ("What is 3 plus 3?", "6")]
    ids, dropped, cut = chat_prompt(codec, t, history, "What is 1 plus 1?", max_tokens=45)
    assert dropped >= 1 and not cut and len(ids) <= 45
    text = codec.decode(ids)
    assert "3 plus 3" in text and "story" not in text and text.endswith("1 plus 1?\n\n### Response:\n")


def test_instruction_set_has_every_task_with_exact_answers():
    data = generate_instructions(70)
    assert {d.task for d in data} == {"who", "found", "colour", "place", "animal", "add", "backwards"}
    for d in data:
        if d.task == "who":
            assert d.input.startswith(d.output)
        if d.task == "add":
            x, y = [int(w.rstrip("?")) for w in d.instruction.split() if w.rstrip("?").isdigit()]
            assert d.output == str(x + y)
        if d.task == "backwards":
            assert d.output == d.input[::-1]


# --------------------------------------------------------------------------- data formats and bad rows

def test_each_format_parses(tmp_path):
    rows = [("spam", "WIN a prize now"), ("ham", "see you at 5")]
    (tmp_path / "a.tsv").write_text("".join(f"{label}\t{t}\n" for label, t in rows))
    (tmp_path / "a.csv").write_text("text,label\n" + "".join(f'"{t}",{label}\n' for label, t in rows))
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"text": t, "label": label}) + "\n" for label, t in rows))
    pq.write_table(pa.table({"text": [t for _, t in rows], "label": [1, 0]}), tmp_path / "a.parquet")
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as z:
        z.writestr("SMSSpamCollection", "".join(f"{label}\t{t}\n" for label, t in rows))
        z.writestr("readme", "about")
    for name in ("a.tsv", "a.csv", "a.jsonl"):
        data = read_labelled(tmp_path / name)
        assert data.label_names == ["ham", "spam"] and data.labels == [1, 0] and data.texts[1] == "see you at 5"
    assert read_labelled(tmp_path / "a.parquet").labels == [1, 0]
    zipped = read_labelled(tmp_path / "a.zip", ["ham", "spam"], member="SMSSpamCollection")
    assert zipped.labels == [1, 0] and zipped.texts[0] == "WIN a prize now"


@pytest.mark.parametrize("name, content, message", [
    ("b.tsv", "ham\thello\n\tno label here\n", "line 2: missing label"),
    ("b.tsv", "ham\thello\nhma\ttypo\n", "line 2: unknown label 'hma'"),
    ("b.tsv", "ham\thello\nspam\t   \n", "line 2: empty text"),
    ("b.tsv", "ham\thello\nspam no tab\n", "line 2: no tab"),
    ("b.csv", "text,label\nhello,ham\n,spam\n", "line 3: empty text"),
    ("b.csv", "body,label\nhello,ham\n", "no text column"),
    ("b.jsonl", '{"text": "hi", "label": "ham"}\n{"text": "oops", "label": "spam"\n', "line 2: not valid JSON"),
    ("b.jsonl", '{"text": "hi", "label": "ham"}\n{"text": "no label"}\n', "line 2: missing label"),
    ("b.tsv", "ham\thello\nham\tbye\n", "one class only"),
])
def test_each_bad_row_is_named(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    labels = ["ham", "spam"] if "hma" in content else None
    with pytest.raises(CourseError, match=message):
        read_labelled(tmp_path / name, labels)


def test_non_utf8_names_the_line(tmp_path):
    (tmp_path / "c.tsv").write_bytes(b"ham\thello\nspam\tcaf\xe9\n")
    with pytest.raises(CourseError, match=r"line 2: not UTF-8 \(byte 0xe9\)"):
        read_labelled(tmp_path / "c.tsv")


def test_alpaca_json_and_its_errors(tmp_path):
    good = [{"instruction": "Say hi", "input": "", "output": "hi"},
            {"instruction": "Add", "input": "1 2", "output": "3"}]
    (tmp_path / "a.json").write_text(json.dumps(good))
    assert [e.output for e in read_alpaca(tmp_path / "a.json")] == ["hi", "3"]
    (tmp_path / "b.json").write_text('[{"instruction": "x", "output": "y"},\n {"instruction": "x" "output": "y"}]')
    with pytest.raises(CourseError, match="line 2: not valid JSON"):
        read_alpaca(tmp_path / "b.json")
    (tmp_path / "c.json").write_text(json.dumps([{"instruction": "x", "output": "y"}, {"instruction": "x"}]))
    with pytest.raises(CourseError, match="item 1: missing or empty 'output'"):
        read_alpaca(tmp_path / "c.json")
    (tmp_path / "d.jsonl").write_text('{"instruction": "x", "output": "y"}\nnot json\n')
    with pytest.raises(CourseError, match="line 2: not valid JSON"):
        read_alpaca(tmp_path / "d.jsonl")


def test_balanced_split():
    data = labelled.LabelledData([f"t{i}" for i in range(130)], [0] * 100 + [1] * 30, ["a", "b"])
    train, val, test = split_balanced(data, seed=1)
    for part in (train, val, test):
        assert part.counts()[0] == part.counts()[1]
    assert len(set(train.texts) | set(val.texts) | set(test.texts)) == len(train) + len(val) + len(test) == 60


# --------------------------------------------------------------------------- real datasets: hashes and downloads

def test_unpinned_dataset_is_refused_then_trusted_on_request(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    spec = labelled.DATASETS["imdb"]
    assert spec.remote.sha256 == labelled.UNPINNED and not spec.member_sha256  # nothing made up
    with pytest.raises(CourseError, match="no verified sha256 for imdb"):
        labelled.load_labelled("imdb", data_dir=tmp_path)
    local = tmp_path / spec.remote.filename
    pq.write_table(pa.table({"text": ["great film", "dull film", "fine"], "label": [1, 0, 1]}), local)
    with pytest.raises(CourseError, match="--trust-unverified to use it"):
        labelled.load_labelled("imdb", data_dir=tmp_path)
    logs = []
    data = labelled.load_labelled("imdb", data_dir=tmp_path, trust_unverified=True, log=logs.append)
    assert data.label_names == ["negative", "positive"] and data.labels == [1, 0, 1]
    assert sha256_of(local) in logs[0]
    with pytest.raises(CourseError, match="has sha256"):
        labelled.load_labelled("imdb", data_dir=tmp_path, sha256="0" * 64)


def test_download_with_a_given_sha256_over_loopback(tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    pq.write_table(pa.table({"text": ["great film", "dull film", "fine"], "label": [1, 0, 1]}),
                   served / "imdb.parquet")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        spec = labelled.DATASETS["imdb"]
        url = f"http://127.0.0.1:{server.server_address[1]}/imdb.parquet"
        monkeypatch.setitem(labelled.DATASETS, "imdb", labelled.RealDataset(
            labelled.RemoteFile(url, labelled.UNPINNED, spec.remote.filename), spec.labels, spec.label_names))
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
        with pytest.raises(CourseError, match="no verified sha256"):
            labelled.load_labelled("imdb", progress=False)
        data = labelled.load_labelled("imdb", sha256=sha256_of(served / "imdb.parquet"), progress=False)
        assert data.label_names == ["negative", "positive"] and data.labels == [1, 0, 1]
        assert (tmp_path / "cache" / "gpt-course" / spec.remote.filename).is_file()
    finally:
        server.shutdown()
