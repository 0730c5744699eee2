"""Chapter 5 on real files as they come: formats read from the content, fastText lines, folders of splits,
the SMS Spam and instruction downloads (served from file:// URLs the tests make), and the refusal of text a
trimmed vocabulary cannot read."""

import dataclasses
import hashlib
import json
import zipfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ch05_finetune import labelled
from ch05_finetune.classify import bag_of_words_baseline, text_words
from ch05_finetune.labelled import make_splits, read_labelled, sniff_format
from ch05_finetune.vocab import Codec, builtin_token_ids
from coursekit import CourseError

SMS = "ham\tGo until jurong point, crazy..\nspam\tFree entry in 2 a wkly comp to win FA Cup final\nham\tOk lar...\n"


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)


# --------------------------------------------------------------------------- formats from the content

def test_uci_file_without_an_extension_is_read_as_tsv(tmp_path):
    (tmp_path / "SMSSpamCollection").write_text(SMS)
    data = read_labelled(tmp_path / "SMSSpamCollection")
    assert data.label_names == ["ham", "spam"] and data.labels == [0, 1, 0]
    assert data.texts[1].startswith("Free entry")


@pytest.mark.parametrize("sep", [" ", "\t"])
def test_fasttext_and_flair_lines(tmp_path, sep):
    (tmp_path / "train.ft.txt").write_text(f"__label__2{sep}Great movie, loved it\n__label__1{sep}Awful. Boring.\n")
    data = read_labelled(tmp_path / "train.ft.txt")
    assert data.label_names == ["1", "2"] and data.labels == [1, 0] and data.texts == ["Great movie, loved it",
                                                                                      "Awful. Boring."]


def test_fasttext_errors_name_the_line(tmp_path):
    (tmp_path / "a.txt").write_text("__label__pos good\n__label__neg __label__pos both\n")
    with pytest.raises(CourseError, match="line 2: more than one label"):
        read_labelled(tmp_path / "a.txt")
    (tmp_path / "b").write_text("__label__pos good\nno label here\n")
    with pytest.raises(CourseError, match="line 2: does not start with __label__"):
        read_labelled(tmp_path / "b", fmt="fasttext")


def test_sniffing_each_format(tmp_path):
    assert sniff_format(b"PAR1....", "x") == "parquet"
    assert sniff_format(b"PK\x03\x04....", "x") == "zip"
    assert sniff_format(b'{"text": "a", "label": "b"}\n', "x") == "jsonl"
    assert sniff_format(b"review,sentiment\n\"a b\",positive\n", "x") == "csv"
    assert sniff_format(b"label\ttext\npos\tgood\n", "x") == "tsv-header"
    with pytest.raises(CourseError, match="cannot tell its format.*--format"):
        sniff_format(b"just some words\nand more\n", "x")


def test_kaggle_imdb_csv_columns_and_format_override(tmp_path):
    (tmp_path / "IMDB Dataset.csv").write_text('review,sentiment\n"A fine, fine film.",positive\nDull.,negative\n')
    data = read_labelled(tmp_path / "IMDB Dataset.csv")
    assert data.label_names == ["negative", "positive"] and data.labels == [1, 0]
    (tmp_path / "data.dat").write_text("text,label\nhello,ham\nwin now,spam\n")
    assert read_labelled(tmp_path / "data.dat", fmt="csv").labels == [0, 1]
    with pytest.raises(CourseError, match="unknown format 'xls'"):
        read_labelled(tmp_path / "data.dat", fmt="xls")


def test_tsv_with_a_header(tmp_path):
    (tmp_path / "a.tsv").write_text("text\tlabel\nhello\tham\nwin now\tspam\n")
    assert read_labelled(tmp_path / "a.tsv").labels == [0, 1]


# --------------------------------------------------------------------------- folders of splits

def test_folder_of_splits_keeps_them(tmp_path):
    d = tmp_path / "imdb"
    d.mkdir()
    (d / "train.txt").write_text("".join(f"__label__{'pos' if i % 2 else 'neg'} text {i}\n" for i in range(20)))
    (d / "dev.txt").write_text("__label__pos dev one\n__label__neg dev two\n")
    pq.write_table(pa.table({"text": ["test a", "test b", "test c"], "label": ["neg", "pos", "pos"]}),
                   d / "test-00000-of-00001.parquet")
    (d / "README").write_text("about")
    data = read_labelled(d)
    assert data.label_names == ["neg", "pos"] and len(data) == 25
    train, val, test = make_splits(data)  # auto: the given splits
    assert len(train) == 20 and val.texts == ["dev one", "dev two"] and test.texts == ["test a", "test b", "test c"]
    assert test.labels == [0, 1, 1]
    train, val, test = make_splits(data, how="balanced")  # or a split of its own
    assert len(train) + len(val) + len(test) <= 25 and "dev one" not in val.texts[:0]


def test_folder_without_dev_carves_it_from_train(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "train.tsv").write_text("".join(f"{'a' if i % 2 else 'b'}\tt{i}\n" for i in range(80)))
    (d / "test.tsv").write_text("a\tx\nb\ty\n")
    train, val, test = make_splits(read_labelled(d))
    assert len(test) == 2 and len(val) == 8 and len(train) == 72  # a ninth of the train file, class by class
    assert not set(val.texts) & set(train.texts)


def test_folder_without_train_and_missing_path(tmp_path):
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "notes.txt").write_text("x")
    with pytest.raises(CourseError, match="without a train file.*notes.txt"):
        read_labelled(tmp_path / "e")
    with pytest.raises(CourseError, match="not found"):
        read_labelled(tmp_path / "nothing")
    with pytest.raises(CourseError, match="without splits of its own"):
        make_splits(labelled.builtin_reviews(100), how="given")


def test_published_split_is_balanced_70_10_20():
    data = labelled.LabelledData([f"t{i}" for i in range(1000)], [0] * 870 + [1] * 130, ["ham", "spam"])
    train, val, test = make_splits(data, how="balanced")
    assert [len(train), len(val), len(test)] == [182, 26, 52]  # 130 of each class, 70/10/20
    assert train.counts() == [91, 91]
    train, val, test = make_splits(data, how="stratified")
    assert len(train) + len(val) + len(test) == 1000 and test.counts()[1] == 13  # 80/10/10, every example


# --------------------------------------------------------------------------- downloads, no network

def _zip(path, member_text):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("SMSSpamCollection", member_text)
        z.writestr("readme", "about")
    return path


def _serve_sms(monkeypatch, tmp_path, text=SMS):
    served = _zip(tmp_path / "served.zip", text)
    spec = labelled.DATASETS["sms_spam"]
    fake = labelled.RealDataset(dataclasses.replace(spec.remote, url=served.as_uri()),
                                spec.labels, spec.label_names, spec.member,
                                member_sha256=hashlib.sha256(SMS.encode()).hexdigest())
    monkeypatch.setitem(labelled.DATASETS, "sms_spam", fake)
    return fake


def test_sms_spam_pins_the_member_not_the_zip():
    spec = labelled.DATASETS["sms_spam"]
    assert spec.member == "SMSSpamCollection"
    assert spec.member_sha256 == "7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d"


def test_sms_spam_download_checks_the_member_and_caches_it(tmp_path, monkeypatch):
    _serve_sms(monkeypatch, tmp_path)
    data = labelled.load_labelled("sms_spam", progress=False)
    assert data.label_names == ["ham", "spam"] and data.labels == [0, 1, 0]
    cache = tmp_path / "xdg" / "gpt-course"
    assert (cache / "SMSSpamCollection").read_text() == SMS and (cache / "sms_spam_collection.zip").is_file()
    (tmp_path / "served.zip").unlink()  # the second time needs no download
    assert labelled.load_labelled("sms_spam", progress=False).labels == [0, 1, 0]


def test_sms_spam_download_of_another_version_is_refused_and_deleted(tmp_path, monkeypatch):
    _serve_sms(monkeypatch, tmp_path, text=SMS + "ham\tone more\n")
    with pytest.raises(CourseError, match="its SMSSpamCollection has sha256 .* expected"):
        labelled.load_labelled("sms_spam", progress=False)
    cache = tmp_path / "xdg" / "gpt-course"
    assert not (cache / "sms_spam_collection.zip").exists() and not (cache / "sms_spam_collection.zip.part").exists()


def test_sms_spam_from_a_data_dir_as_zip_or_member(tmp_path, monkeypatch):
    fake = _serve_sms(monkeypatch, tmp_path)
    d = tmp_path / "d"
    d.mkdir()
    _zip(d / "sms+spam+collection.zip", SMS)  # the name the UCI site gives it
    assert labelled.load_labelled("sms_spam", data_dir=d).labels == [0, 1, 0]
    e = tmp_path / "e"
    e.mkdir()
    (e / "SMSSpamCollection").write_text(SMS + "spam\tdifferent\n")
    with pytest.raises(CourseError, match="has sha256"):
        labelled.load_labelled("sms_spam", data_dir=e)
    with pytest.raises(CourseError, match=f"neither SMSSpamCollection nor {fake.remote.filename} found"):
        labelled.load_labelled("sms_spam", data_dir=tmp_path / "xdg")


def test_offline_download_is_one_line(tmp_path, monkeypatch):
    _serve_sms(monkeypatch, tmp_path)
    (tmp_path / "served.zip").unlink()
    with pytest.raises(CourseError, match="could not download .*--data-dir DIR"):
        labelled.load_labelled("sms_spam", progress=False)


def test_instruction_sample_by_name(tmp_path, monkeypatch):
    from ch05_finetune import instruct

    records = [{"instruction": f"Say {i}", "input": "", "output": f"{i}"} for i in range(5)]
    served = tmp_path / "instruction-data.json"
    served.write_text(json.dumps(records))
    spec = instruct.INSTRUCTION_DATASETS["alpaca_sample"]
    assert spec.sha256 == "7e09a9af353722ca15c18bc580f093f9c39d3178335a75177319cb1e1d163944"
    monkeypatch.setitem(instruct.INSTRUCTION_DATASETS, "alpaca_sample", labelled.RemoteFile(
        served.as_uri(), hashlib.sha256(served.read_bytes()).hexdigest(), spec.filename))
    examples = instruct.load_instructions("alpaca_sample", progress=False)
    assert [e.output for e in examples] == ["0", "1", "2", "3", "4"]
    assert (tmp_path / "xdg" / "gpt-course" / spec.filename).is_file()


# --------------------------------------------------------------------------- unknown tokens, words

def test_trimmed_vocabulary_refuses_real_text():
    codec = Codec(list(builtin_token_ids()))
    codec.check_coverage(labelled.builtin_reviews(200).texts)  # the built-in world: nothing unknown
    with pytest.raises(CourseError, match=r"\d+\.\d% of its \d+ tokens .*--from gpt2"):
        codec.check_coverage(["Free entry in 2 a wkly comp to win FA Cup final tkts 21st May 2005"], "sms")
    Codec().check_coverage(["Free entry in 2 a wkly comp"])  # the whole vocabulary reads anything


def test_bag_of_words_reads_words_not_model_ids():
    assert text_words("Don't STOP, won't stop!") == ["don't", "stop", "won't", "stop"]
    train = ["free prize now", "win a free prize", "see you soon", "ok see you"] * 5
    labels = [1, 1, 0, 0] * 5
    result = bag_of_words_baseline(train, labels, ["free prize", "see you later"], [1, 0])
    assert result["accuracy"] == 1.0 and result["vocabulary"] == 9


def test_the_downloader_never_lands_an_unverified_file(tmp_path):
    from coursekit.download import fetch, write_verified

    src = tmp_path / "src.bin"
    src.write_bytes(b"payload")
    with pytest.raises(CourseError, match="without a sha256 or a check"):
        fetch(src.as_uri(), tmp_path / "a.bin", progress=False)
    with pytest.raises(CourseError, match="sha256 is .* expected 0+; deleted it"):
        fetch(src.as_uri(), tmp_path / "b.bin", sha256="0" * 64, progress=False)
    assert not (tmp_path / "b.bin").exists() and not (tmp_path / "b.bin.part").exists()
    good = hashlib.sha256(b"payload").hexdigest()
    assert fetch(src.as_uri(), tmp_path / "c.bin", sha256=good, progress=False).read_bytes() == b"payload"
    with pytest.raises(CourseError, match="has sha256"):
        write_verified(b"other", tmp_path / "d.bin", good, "member")
    assert not (tmp_path / "d.bin").exists()
