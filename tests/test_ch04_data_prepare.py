"""Chapter 4, preparation: manifest, round trip, split, resume after SIGKILL, spawn workers, bad input."""

import hashlib
import json
import lzma
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from ch04_pretrain.cli import main
from ch04_pretrain.data_pipeline.bpe import (
    EOT,
    RANKS_FILE,
    RANKS_SHA256,
    gpt2_encoding,
    load_ranks,
    rank_file_encoding,
    train_bpe,
    write_ranks,
)
from ch04_pretrain.data_pipeline.loader import split_tokens
from ch04_pretrain.data_pipeline.prepare import (
    MANIFEST,
    VERIFIED,
    SplitRule,
    _summarize,
    prepare,
    prepared_tokenizer,
    read_manifest,
    verify,
)
from ch04_pretrain.data_pipeline.sources import SourceOptions, builtin_documents, parse_count
from coursekit import CourseError, run_cli

ROOT = Path(__file__).resolve().parents[1]
SMALL = SourceOptions(builtin_bytes=60_000)  # about 160 stories


def documents_of(tokens: np.ndarray, enc=None) -> list[str]:
    """Cut a split's tokens at <|endoftext|> (which precedes every document) and decode each piece."""
    enc = enc or gpt2_encoding()
    eot = enc.eot_token
    assert len(tokens) == 0 or tokens[0] == eot
    starts = np.flatnonzero(tokens == eot)
    return [enc.decode(tokens[a + 1:b].tolist()) for a, b in zip(starts, [*starts[1:], len(tokens)])]


def folder_bytes(folder: Path) -> dict[str, bytes]:
    """Every file's bytes, but for the cache of sha256 checks (verified.json), which records modification times."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != VERIFIED}


def test_split_rule_is_deterministic_with_a_floor():
    rule = SplitRule()
    first = [rule.is_val(i) for i in range(1000)]
    assert sum(first) == 100  # small corpora: 1 in 10 of the first 1,000 documents
    later = [rule.is_val(i) for i in range(1000, 1000 + 20 * 2000)]
    assert sum(later) == 20   # then 1 in 2,000 = 0.05%, as in the published OpenWebText split
    assert first == [SplitRule().is_val(i) for i in range(1000)]
    assert first != [SplitRule(seed=1).is_val(i) for i in range(1000)]


def test_manifest_and_round_trip(tmp_path):
    manifest = prepare("builtin", tmp_path, options=SMALL, docs_per_shard=40, workers=2, progress=False)
    docs = list(builtin_documents(n_bytes=SMALL.builtin_bytes))
    assert manifest["complete"] and manifest["documents"] == len(docs) and manifest["skipped"] == 0
    assert len(manifest["shards"]) == -(-len(docs) // 40)
    assert manifest["settings"]["tokenizer"]["eot"] == 50256
    assert manifest == json.loads((tmp_path / MANIFEST).read_text())
    for shard in manifest["shards"]:
        for split in ("train", "val"):
            data = (tmp_path / shard[split]["file"]).read_bytes()
            assert len(data) == 2 * shard[split]["tokens"]
            assert hashlib.sha256(data).hexdigest() == shard[split]["sha256"]
    rule = SplitRule()
    for split, want_val in (("train", False), ("val", True)):
        tokens = split_tokens(tmp_path, split)
        assert len(tokens) == manifest["splits"][split]["tokens"]
        expected = [d for i, d in enumerate(docs) if rule.is_val(i) == want_val]
        assert documents_of(tokens) == expected
        assert manifest["splits"][split]["documents"] == len(expected)
    assert manifest["tokens"] == sum(len(gpt2_encoding().encode_ordinary(d)) + 1 for d in docs)
    assert verify(tmp_path) == manifest
    # GPT-2's tokenizer is recorded as it always was, and never copied: the course holds its rank file.
    assert manifest["settings"]["tokenizer"] == {"name": "gpt2", "ranks_sha256": RANKS_SHA256, "vocab_size": 50257,
                                                 "eot": 50256, "eot_position": "before each document",
                                                 "dtype": "uint16 little-endian"}
    assert not (tmp_path / RANKS_FILE).exists() and prepared_tokenizer(tmp_path) == (
        manifest["settings"]["tokenizer"], None)


def test_output_does_not_depend_on_workers_or_start_method(tmp_path):
    prepare("builtin", tmp_path / "inline", options=SMALL, docs_per_shard=50, workers=0, progress=False)
    prepare("builtin", tmp_path / "spawn", options=SMALL, docs_per_shard=50, workers=2, start_method="spawn",
            progress=False)
    assert folder_bytes(tmp_path / "inline") == folder_bytes(tmp_path / "spawn")


def test_output_does_not_depend_on_the_number_of_workers(tmp_path, monkeypatch):
    """Many small batches in flight at once, several shards: 0, 1 and 3 workers write the same bytes."""
    import ch04_pretrain.data_pipeline.prepare as P
    monkeypatch.setattr(P, "BATCH_DOCS", 7)  # about 20 batches, so results arrive out of order
    folders = []
    for workers in (0, 1, 3):
        prepare("builtin", tmp_path / str(workers), options=SMALL, docs_per_shard=45, workers=workers, progress=False)
        folders.append(folder_bytes(tmp_path / str(workers)))
    assert len(folders[0]) == 2 * 4 + 1  # four shards of train and val, and the manifest
    assert folders[0] == folders[1] == folders[2]


def test_worker_function_matches_encode_ordinary():
    """The worker's uint16 bytes are encode_ordinary's ids, <|endoftext|> first; bad bytes are skipped, not fatal."""
    from ch04_pretrain.data_pipeline.encode_workers import encode_documents
    enc = gpt2_encoding()
    docs = ["Once upon a time.", b"caf\xc3\xa9 <|endoftext|> inside", None, b"bad \xff", "surrogate \ud800 here", "x"]
    is_val = [False, True, False, False, False, True]
    train, val, lengths = encode_documents(docs, is_val, enc, EOT)
    texts = ["Once upon a time.", "caf\u00e9 <|endoftext|> inside", None, None, "surrogate \ud800 here", "x"]
    ids = [None if t is None else [EOT, *enc.encode_ordinary(t)] for t in texts]
    assert list(lengths) == [-1 if i is None else len(i) for i in ids]
    for got, want_val in ((train, False), (val, True)):
        want = [t for i, v in zip(ids, is_val) if i is not None and v == want_val for t in i]
        assert np.frombuffer(got, dtype="<u2").tolist() == want
    # "<|endoftext|>" inside a document is plain text: the only EOT ids are the ones put before each document.
    assert np.frombuffer(val, dtype="<u2").tolist().count(EOT) == 2

    class Wide:  # a tokenizer with ids beyond 16 bits must fail loudly, not wrap around
        def encode_ordinary(self, text):
            return [5, 70_000]
    with pytest.raises(OverflowError, match="token id 70000 does not fit in uint16"):
        encode_documents(["a"], [False], Wide(), EOT)


def test_max_docs_and_max_tokens_stop_at_a_document(tmp_path):
    m = prepare("builtin", tmp_path / "docs", options=SMALL, max_docs=25, docs_per_shard=10, workers=0,
                progress=False)
    assert m["documents"] == 25 and [s["documents"] for s in m["shards"]] == [10, 10, 5]
    m = prepare("builtin", tmp_path / "tokens", options=SMALL, max_tokens=3000, docs_per_shard=10, workers=0,
                progress=False)
    docs = list(builtin_documents(n_bytes=SMALL.builtin_bytes))
    sizes = np.cumsum([len(gpt2_encoding().encode_ordinary(d)) + 1 for d in docs])
    n = int(np.searchsorted(sizes, 3000)) + 1
    assert m["documents"] == n and m["tokens"] == sizes[n - 1] >= 3000 > sizes[n - 2]


def test_undecodable_document_is_skipped_and_counted(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("first document")
    (src / "b.txt").write_bytes(b"broken \xff\xfe bytes")
    (src / "c.txt").write_text("third document")
    m = prepare(str(src), tmp_path / "out", workers=0, progress=False)
    assert m["documents"] == 3 and m["skipped"] == 1
    kept = documents_of(split_tokens(tmp_path / "out", "train")) + documents_of(split_tokens(tmp_path / "out", "val"))
    assert sorted(kept) == ["first document", "third document"]


def test_resume_after_sigkill_is_byte_identical(tmp_path):
    """Kill a preparation (main process and workers) mid-shard, rerun it, compare with an uninterrupted run."""
    out, ready = tmp_path / "killed", tmp_path / "ready"
    options = "SourceOptions(builtin_bytes=200_000)"
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from ch04_pretrain.data_pipeline import prepare as P
        from ch04_pretrain.data_pipeline.sources import SourceOptions, iter_documents

        def stalling(source, options, start=0, cache_dir=None):
            for i, doc in enumerate(iter_documents(source, options, start, cache_dir), start):
                if i == 415:  # shards 0-11 are finished, shard 12 is half written, more are in flight
                    Path({str(ready)!r}).touch()
                    time.sleep(600)
                yield doc

        P.iter_documents = stalling
        P.BATCH_DOCS = 8  # several batches per shard, so that a shard can be caught half written
        P.prepare("builtin", {str(out)!r}, options={options}, docs_per_shard=30, workers=2, progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, "the preparation ended before it could be killed"
            assert time.monotonic() < deadline, "the preparation never reached document 415"
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole group: the main process and its workers
        proc.wait()
    partial = read_manifest(out)
    assert not partial["complete"] and 0 < len(partial["shards"]) < 14
    assert list(out.glob("*.tmp")), "the kill should have left a half-written shard"

    resumed = prepare("builtin", out, options=SourceOptions(builtin_bytes=200_000), docs_per_shard=30, workers=2,
                      progress=False, log=lambda *a: None)
    reference = prepare("builtin", tmp_path / "whole", options=SourceOptions(builtin_bytes=200_000),
                        docs_per_shard=30, workers=0, progress=False)
    assert resumed == reference
    assert folder_bytes(out) == folder_bytes(tmp_path / "whole")


def test_errors_keep_finished_shards_and_exit_2(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"{i}.txt").write_text(f"document {i}")
    (src / "9.xz").write_bytes(lzma.compress(b"x" * 1000)[:30])  # truncated archive, read last
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, ["prepare", "--source", str(src), "--out", str(out), "--docs-per-shard", "1",
                       "--workers", "0", "--no-progress"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: corrupt archive") and "Traceback" not in err
    kept = read_manifest(out)
    assert len(kept["shards"]) == 3 and not kept["complete"]
    assert verify(out) == kept
    (src / "9.xz").unlink()  # the user removes the bad file and reruns: the three shards are reused
    assert prepare(str(src), out, docs_per_shard=1, workers=0, progress=False)["documents"] == 3


@pytest.mark.parametrize("argv, message", [
    (["--source", "{empty}"], "no documents in folder"),
    (["--source", "builtin", "--max-docs", "0"], "argument --max-docs: must be positive"),
    (["--source", "builtin", "--max-tokens", "nan"], "argument --max-tokens: must be positive"),
    (["--source", "{parquet}"], "no column 'text'"),
    (["--source", "{jsonl}"], "line 2: not valid JSON"),
])
def test_bad_input_exits_2(tmp_path, capsys, argv, message):
    (tmp_path / "empty").mkdir()
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "t.parquet")
    (tmp_path / "t.jsonl").write_text('{"text": "ok"}\n{oops}\n')
    argv = [a.format(empty=tmp_path / "empty", parquet=tmp_path / "t.parquet", jsonl=tmp_path / "t.jsonl")
            for a in argv]
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, ["prepare", *argv, "--out", str(tmp_path / "out"), "--workers", "0", "--no-progress"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_unwritable_output_and_changed_settings(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    with pytest.raises(CourseError, match="cannot write to output folder"):
        prepare("builtin", blocker / "out", options=SMALL, workers=0, progress=False)
    out = tmp_path / "out"
    first = prepare("builtin", out, options=SMALL, max_docs=20, workers=0, progress=False)
    before = folder_bytes(out)
    with pytest.raises(CourseError, match="other settings"):
        prepare("builtin", out, options=SMALL, max_docs=30, workers=0, progress=False)
    assert folder_bytes(out) == before  # the refusal touched nothing
    assert prepare("builtin", out, options=SMALL, max_docs=20, workers=0, progress=False) == first
    assert prepare("builtin", out, options=SMALL, max_docs=30, workers=0, progress=False,
                   overwrite=True)["documents"] == 30


# --------------------------------------------------------------------------- a tokenizer of our own

@pytest.fixture(scope="module")
def rank_file(tmp_path_factory) -> tuple[Path, str]:
    """300 merges learned on the stories, as a rank file, and its sha256."""
    path = tmp_path_factory.mktemp("bpe") / "stories-300.tiktoken"
    return path, write_ranks(train_bpe("\n\n".join(builtin_documents()), 300).ranks(), path)


def test_prepare_with_a_rank_file_of_our_own(tmp_path, rank_file):
    path, sha256 = rank_file
    inline = prepare("builtin", tmp_path / "inline", options=SMALL, docs_per_shard=50, workers=0, progress=False,
                     tokenizer=path)
    assert inline["settings"]["tokenizer"] == {"name": "bpe-557", "ranks_sha256": sha256, "vocab_size": 557,
                                               "eot": 556, "eot_position": "before each document",
                                               "dtype": "uint16 little-endian"}
    assert (tmp_path / "inline" / RANKS_FILE).read_bytes() == path.read_bytes()  # the folder is self-contained
    record, ranks = prepared_tokenizer(tmp_path / "inline")
    assert record == inline["settings"]["tokenizer"] and ranks == load_ranks(path, sha256)
    enc = rank_file_encoding(path, sha256)
    docs = list(builtin_documents(n_bytes=SMALL.builtin_bytes))
    rule = SplitRule()
    assert documents_of(split_tokens(tmp_path / "inline", "val"), enc) == [d for i, d in enumerate(docs)
                                                                           if rule.is_val(i)]
    assert inline["tokens"] == sum(len(enc.encode_ordinary(d)) + 1 for d in docs)
    assert inline["tokens"] > 1.1 * prepare("builtin", tmp_path / "gpt2", options=SMALL, workers=0,
                                            progress=False)["tokens"]  # 556 tokens cut the text finer
    # Spawned workers get the tokenizer as plain data (its ranks), and write the same bytes.
    prepare("builtin", tmp_path / "spawn", options=SMALL, docs_per_shard=50, workers=2, progress=False,
            tokenizer=path)
    assert folder_bytes(tmp_path / "inline") == folder_bytes(tmp_path / "spawn")


def test_resuming_with_another_tokenizer_is_refused_in_one_line(tmp_path, rank_file, capsys):
    path, _ = rank_file
    out = tmp_path / "out"
    prepare("builtin", out, options=SMALL, docs_per_shard=40, workers=0, progress=False, tokenizer=path)
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["complete"] = False  # interrupted before its end, as prepare saves it after its second shard
    manifest["shards"] = manifest["shards"][:2]
    _summarize(manifest)
    (out / MANIFEST).write_text(json.dumps(manifest))
    before = folder_bytes(out)
    with pytest.raises(CourseError, match=r"was prepared with another tokenizer \(bpe-557, not gpt2\); choose "
                                          r"another --out, or pass --overwrite"):
        prepare("builtin", out, options=SMALL, docs_per_shard=40, workers=0, progress=False)
    assert folder_bytes(out) == before  # the refusal touched nothing
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, ["prepare", "--source", "builtin", "--builtin-bytes", "60000", "--docs-per-shard", "40",
                       "--out", str(out), "--workers", "0", "--no-progress"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    resumed = prepare("builtin", out, options=SMALL, docs_per_shard=40, workers=0, progress=False, tokenizer=path,
                      log=lambda *a: None)
    assert resumed["complete"] and len(resumed["shards"]) == 4
    # --overwrite with GPT-2's: the copy of the rank file goes too.
    prepare("builtin", out, options=SMALL, docs_per_shard=40, workers=0, progress=False, overwrite=True)
    assert not (out / RANKS_FILE).exists()
    with pytest.raises(CourseError, match=r"another tokenizer \(gpt2, not bpe-557\)"):
        prepare("builtin", out, options=SMALL, docs_per_shard=40, workers=0, progress=False, tokenizer=path)


def test_vocabulary_beyond_uint16_is_refused_before_any_work(tmp_path):
    """256 bytes + 65,279 two-byte tokens + <|endoftext|> = 65,536 ids fit uint16; one token more does not."""
    pairs = [bytes([a, b]) for a in range(256) for b in range(256)]
    ranks = {bytes([b]): b for b in range(256)}
    ranks.update({pair: 256 + k for k, pair in enumerate(pairs[:65_279])})
    write_ranks(ranks, tmp_path / "fits.tiktoken")
    fits = prepare("builtin", tmp_path / "fits", options=SMALL, max_docs=3, workers=0, progress=False,
                   tokenizer=tmp_path / "fits.tiktoken")
    assert fits["settings"]["tokenizer"]["eot"] == 65_535 and split_tokens(tmp_path / "fits", "train")[0] == 65_535
    ranks[pairs[65_279]] = 65_535
    write_ranks(ranks, tmp_path / "wide.tiktoken")
    with pytest.raises(CourseError, match=r"has 65,537 ids with <\|endoftext\|>; shards store ids as uint16, "
                                          r"which holds at most 65,536"):
        prepare("builtin", tmp_path / "wide", options=SMALL, workers=0, progress=False,
                tokenizer=tmp_path / "wide.tiktoken")
    assert not (tmp_path / "wide").exists()


def test_cli_bpe_then_prepare_with_it(tmp_path, capsys):
    ranks = tmp_path / "tok" / "stories-40.tiktoken"
    main(["bpe", "--source", "builtin", "--builtin-bytes", "20000", "--merges", "40", "--out", str(ranks)])
    out = capsys.readouterr().out
    assert f"{ranks}: 256 bytes + 40 merges + <|endoftext|> = 297 ids" in out and "bytes per token" in out
    assert len(load_ranks(ranks, None)) == 296
    main(["prepare", "--source", "builtin", "--builtin-bytes", "20000", "--tokenizer", str(ranks), "--out",
          str(tmp_path / "data"), "--workers", "0", "--no-progress"])
    assert "tokenizer bpe-297 (297 ids)" in capsys.readouterr().out
    main(["bpe", "--source", "builtin", "--builtin-bytes", "2000", "--merges", "5000", "--out", str(ranks)])
    assert "(of 5,000 asked: after" in capsys.readouterr().out  # every chunk became one token before 5,000
    for argv, message in ((["prepare", "--source", "builtin", "--tokenizer", str(tmp_path / "none.tiktoken")],
                           "error: cannot read the rank file"),
                          (["bpe", "--source", str(tmp_path / "none"), "--out", str(tmp_path / "x.tiktoken")],
                           "error: source not found"),
                          (["bpe", "--source", "builtin", "--merges", "65280", "--out", str(ranks)],
                           "error: argument --merges: must be a whole number >= 0 and <= 65,279")):
        with pytest.raises(SystemExit) as exit_info:
            run_cli(main, [*argv, *(["--out", str(tmp_path / "o")] if argv[0] == "prepare" else [])])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.startswith(message) and len(err.strip().splitlines()) == 1, err


def test_parse_count():
    assert parse_count("10M") == 10_000_000 and parse_count("1.5k") == 1500 and parse_count("2,000") == 2000
    assert parse_count("9B") == 9_000_000_000


@pytest.mark.slow
def test_cli_in_a_subprocess(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "ch04_pretrain", "prepare", "--source", "builtin", "--builtin-bytes",
                         "20000", "--out", str(tmp_path / "b"), "--no-progress"], cwd=ROOT, capture_output=True,
                        text=True, timeout=120, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "documents in 1 shard(s)" in ok.stdout and ok.stderr == ""
    bad = subprocess.run([sys.executable, "-m", "ch04_pretrain", "prepare", "--source", str(tmp_path / "none"),
                          "--out", str(tmp_path / "o")], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: source not found")


def test_resume_when_only_the_complete_flag_is_missing(tmp_path):
    """A crash between saving the last shard and marking the manifest complete must not add a document."""
    whole = prepare("builtin", tmp_path, options=SMALL, max_tokens=3000, docs_per_shard=10, workers=0, progress=False)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    manifest["complete"] = False
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    again = prepare("builtin", tmp_path, options=SMALL, max_tokens=3000, docs_per_shard=10, workers=0,
                    progress=False, log=lambda *a: None)
    assert again == whole


# --------------------------------------------------------------------------- damaged data, unusable input

def flip_byte(path: Path, offset: int = 10) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_prepare_redoes_damaged_shards_instead_of_saying_already_prepared(tmp_path):
    reference = prepare("builtin", tmp_path / "whole", options=SMALL, docs_per_shard=40, workers=0, progress=False)
    out = tmp_path / "out"
    prepare("builtin", out, options=SMALL, docs_per_shard=40, workers=0, progress=False)
    flip_byte(out / "train_00001.bin")
    with open(out / "val_00002.bin", "r+b") as f:
        f.truncate(4)
    (out / "train_00003.bin").unlink()
    lines = []
    again = prepare("builtin", out, options=SMALL, docs_per_shard=40, workers=0, progress=False, log=lines.append)
    assert again == reference
    assert folder_bytes(out) == folder_bytes(tmp_path / "whole")
    text = "\n".join(lines)
    assert "already prepared" not in text and "repaired (3 damaged shard(s) redone)" in text
    assert "train_00001.bin does not match the sha256" in text and "redoing shard 1" in text
    assert "val_00002.bin has 4 bytes" in text and "train_00003.bin is missing" in text
    lines.clear()
    prepare("builtin", out, options=SMALL, docs_per_shard=40, workers=0, progress=False, log=lines.append)
    assert lines and "already prepared" in lines[-1]


def test_prepare_refuses_a_shard_it_cannot_redo_to_the_manifest(tmp_path):
    """The manifest's sha256 was edited: redoing the shard gives the old bytes, which do not match it."""
    prepare("builtin", tmp_path, options=SMALL, docs_per_shard=40, workers=0, progress=False)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    manifest["shards"][1]["train"]["sha256"] = "0" * 64
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    before = folder_bytes(tmp_path)
    with pytest.raises(CourseError, match="no longer gives the tokens the manifest records.*--overwrite"):
        prepare("builtin", tmp_path, options=SMALL, docs_per_shard=40, workers=0, progress=False,
                log=lambda *a: None)
    assert folder_bytes(tmp_path) == before and not list(tmp_path.glob("*.tmp"))


def test_input_without_tokens_is_an_error_and_leaves_nothing(tmp_path, capsys):
    src = tmp_path / "utf16.txt"
    src.write_bytes("A whole story, saved as UTF-16.".encode("utf-16"))
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, ["prepare", "--source", str(src), "--out", str(out), "--workers", "0", "--no-progress"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the source") and "gave no tokens" in err and "UTF-16" in err
    assert len(err.strip().splitlines()) == 1
    assert not (out / MANIFEST).exists() and not list(out.glob("*.bin"))
    src.write_text("The same story, now in UTF-8.")  # corrected input is prepared from the start
    assert prepare(str(src), out, workers=0, progress=False)["tokens"] > 1


def test_empty_val_split_warns_and_names_separator(tmp_path, capsys):
    src = tmp_path / "one.txt"
    src.write_text("First paragraph of a book.\n\nSecond paragraph.\n\nThird one.\n")
    manifest = prepare(str(src), tmp_path / "out", workers=0, progress=False)
    assert manifest["splits"]["val"]["tokens"] == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: the val split") and "--separator" in err[0]
