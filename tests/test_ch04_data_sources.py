"""Chapter 4, readers: every source format, on fixtures written by the tests; the Hub is mocked."""

import io
import json
import lzma
import tarfile
import types

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ch01_bigram import generate_stories
from ch04_pretrain.data_pipeline import sources
from ch04_pretrain.data_pipeline.sources import SourceOptions, builtin_documents, iter_documents, split_stream
from coursekit import CourseError


def docs_of(path, **options):
    return list(iter_documents(str(path), SourceOptions(**options)))


def tar_bytes(members: dict[str, bytes], mode="w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write_parquet(path, texts, column="text"):
    pq.write_table(pa.table({column: pa.array(texts, type=pa.string())}), path, row_group_size=3)


def test_builtin_source_is_chapter_1s_stories():
    docs = list(builtin_documents(n_bytes=5_000))
    stories = generate_stories(len(docs))
    assert docs == [s.text for s in stories]
    assert list(iter_documents("builtin", SourceOptions(builtin_bytes=5_000), start=3)) == docs[3:]


def test_txt_folder_one_document_per_file_in_sorted_order(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.txt").write_text("second")
    (tmp_path / "a.txt").write_text("first")
    (tmp_path / "c.txt").write_text("")  # empty: no document
    (tmp_path / "notes.md").write_text("ignored")
    assert docs_of(tmp_path) == [b"first", b"second"]


def test_separator_splits_across_chunk_boundaries():
    text = "<|endoftext|>".join(f"document number {i}" for i in range(50)) + "<|endoftext|>"
    pieces = list(split_stream(io.BytesIO(text.encode()), "<|endoftext|>", chunk_size=7))
    assert pieces == [f"document number {i}".encode() for i in range(50)]


def test_openwebtext_xz_layout_plain_xz_and_nested_tar_xz(tmp_path):
    docs = {f"0{i}-abc.txt": f"web page {i}\n".encode() for i in range(3)}
    (tmp_path / "urlsf_subset00-1_data.xz").write_bytes(tar_bytes(docs, "w:xz"))
    (tmp_path / "zplain.xz").write_bytes(lzma.compress(b"one plain text"))
    assert docs_of(tmp_path) == [*docs.values(), b"one plain text"]
    # The full release: an .tar.xz of .xz subsets, each a tar of .txt documents.
    inner = {f"subset{k}.xz": tar_bytes({f"{k}-{i}.txt": f"doc {k}.{i}".encode() for i in range(2)}, "w:xz")
             for k in range(2)}
    whole = tmp_path / "full" / "openwebtext.tar.xz"
    whole.parent.mkdir()
    whole.write_bytes(tar_bytes(inner, "w:xz"))
    assert docs_of(whole) == [b"doc 0.0", b"doc 0.1", b"doc 1.0", b"doc 1.1"]


def test_corrupt_xz_is_a_clear_error(tmp_path):
    good = lzma.compress(b"x" * 10_000)
    bad = tmp_path / "broken.xz"
    bad.write_bytes(good[:40] + b"\0" * 20 + good[60:])
    with pytest.raises(CourseError, match="corrupt archive .*broken.xz"):
        docs_of(bad)
    (tmp_path / "broken.xz").write_bytes(b"not xz at all")
    with pytest.raises(CourseError, match="corrupt archive"):
        docs_of(bad)


def test_jsonl_text_field_bad_bytes_and_malformed_line(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(b'{"text": "one"}\n\n{"text": "two", "url": "x"}\n{"text": "\xff\xfe"}\n{"body": "b"}\n')
    with pytest.raises(CourseError, match=r"data.jsonl, line 5: expected an object with a string field 'text'"):
        docs_of(path)
    path.write_bytes(b'{"text": "one"}\n{"text": "two"}\n{"text": \n')
    with pytest.raises(CourseError, match=r"line 3: not valid JSON"):
        docs_of(path)
    path.write_bytes(b'{"text": "one"}\n{"text": "\xff"}\n')
    assert docs_of(path) == ["one", None]  # None: undecodable, skipped and counted by prepare


def test_parquet_text_column_and_missing_column(tmp_path):
    path = tmp_path / "part.parquet"
    write_parquet(path, ["a", None, "c", "d", "e"])
    assert docs_of(path) == ["a", None, "c", "d", "e"]
    assert list(sources.parquet_documents(path, "text", start=4)) == ["e"]
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"content": ["x"], "id": [1]}), other)
    with pytest.raises(CourseError, match=r"no column 'text' \(its columns: content, id\)"):
        docs_of(other)
    assert docs_of(other, text_field="content") == ["x"]


def test_empty_folder_and_missing_path(tmp_path):
    with pytest.raises(CourseError, match="no documents in folder"):
        docs_of(tmp_path)
    with pytest.raises(CourseError, match="source not found"):
        docs_of(tmp_path / "nope")


class FakeHub:
    """Stands in for huggingface_hub: a repository of parquet files written by the test; no network."""

    def __init__(self, folder, files_by_revision):
        self.folder, self.files_by_revision, self.downloads = folder, files_by_revision, []

    def list_repo_files(self, repo, repo_type, revision):
        assert (repo, repo_type) == ("Skylion007/openwebtext", "dataset")
        return self.files_by_revision.get(revision, [".gitattributes", "README.md"])

    def hf_hub_download(self, repo, filename, repo_type, revision, cache_dir=None):
        self.downloads.append((revision, filename))
        return str(self.folder / filename.replace("/", "_"))


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    names = [f"plain_text/train-0000{k}-of-00003.parquet" for k in range(3)]
    for k, name in enumerate(names):
        write_parquet(tmp_path / name.replace("/", "_"), [f"hub doc {k}.{i}" for i in range(10)])
    hub = FakeHub(tmp_path, {"refs/convert/parquet": ["README.md", *reversed(names)]})
    monkeypatch.setattr(sources, "_hub", lambda: hub)
    return hub


def test_hub_reads_parquet_shards_lazily(fake_hub):
    docs = iter_documents("openwebtext")
    first = [next(docs) for _ in range(12)]
    assert first == [f"hub doc 0.{i}" for i in range(10)] + ["hub doc 1.0", "hub doc 1.1"]
    # main had no parquet files, so the parquet conversion was used; the third shard was never fetched.
    assert fake_hub.downloads == [("refs/convert/parquet", "plain_text/train-00000-of-00003.parquet"),
                                  ("refs/convert/parquet", "plain_text/train-00001-of-00003.parquet")]
    resumed = list(iter_documents("openwebtext", start=25))
    assert resumed == [f"hub doc 2.{i}" for i in range(5, 10)]


def test_hub_without_optional_packages_names_the_install(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "huggingface_hub":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(CourseError, match="pip install huggingface_hub pyarrow"):
        next(iter_documents("openwebtext"))


def test_hub_failure_is_a_clear_error(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network unreachable")
    monkeypatch.setattr(sources, "_hub", lambda: types.SimpleNamespace(list_repo_files=offline))
    with pytest.raises(CourseError, match="cannot list Skylion007/openwebtext.*network unreachable"):
        next(iter_documents("openwebtext"))


def test_json_round_trip_of_options():
    # The manifest stores the source description as JSON; it must survive the trip unchanged.
    described = sources.describe("builtin", SourceOptions())
    assert json.loads(json.dumps(described)) == described


def test_prepare_from_the_hub_downloads_only_what_it_needs(fake_hub, tmp_path):
    from ch04_pretrain.data_pipeline.bpe import gpt2_encoding
    from ch04_pretrain.data_pipeline.loader import split_tokens
    from ch04_pretrain.data_pipeline.prepare import prepare

    m = prepare("openwebtext", tmp_path / "owt", max_docs=12, workers=0, progress=False)
    assert m["documents"] == 12 and m["settings"]["source"]["kind"] == "hub"
    assert len(fake_hub.downloads) == 2
    text = gpt2_encoding().decode(split_tokens(tmp_path / "owt", "train").tolist())
    assert text.startswith("<|endoftext|>hub doc 0.") and "hub doc 2." not in text
