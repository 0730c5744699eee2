"""Chapter 4: a prepared folder's manifest.json is untrusted input.

Damaged manifests, made from a real preparation by hand and by hypothesis,
go through every reader of the folder: each one accepts the folder (and then
reads exactly the tokens on disk) or refuses it with a one-line CourseError,
never another exception. And the cache of checked shards notices a changed
byte even when the file's modification time was set back.
"""

import copy
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ch04_pretrain.data_pipeline import prepare as P
from ch04_pretrain.data_pipeline.loader import ShardDataset, split_tokens
from ch04_pretrain.data_pipeline.prepare import (
    MANIFEST,
    VERIFIED,
    check_prepared,
    prepare,
    prepared_tokenizer,
    read_manifest,
    verify,
)
from ch04_pretrain.data_pipeline.sources import SourceOptions
from coursekit import CourseError

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"options": SourceOptions(builtin_bytes=30_000), "docs_per_shard": 40, "workers": 0, "progress": False,
         "log": lambda *a: None}
HUGE = [10**30, 2**63, 2**32, -1]

# Every reader of a prepared folder, as training, evaluation and the lessons call them.
ENTRY_POINTS = {
    "read_manifest": read_manifest,
    "check_prepared": check_prepared,
    "verify": verify,
    "prepared_tokenizer": prepared_tokenizer,
    "ShardDataset": lambda folder: ShardDataset(folder, "train"),
    "split_tokens": lambda folder: split_tokens(folder, "val"),
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """A real preparation of the built-in stories: three shards, both splits."""
    folder = tmp_path_factory.mktemp("prepared") / "data"
    prepare("builtin", folder, **SMALL)
    return folder


@pytest.fixture(scope="module")
def original(prepared) -> dict:
    return json.loads((prepared / MANIFEST).read_text())


@pytest.fixture(scope="module")
def scratch(prepared, tmp_path_factory) -> Path:
    """A copy of the preparation whose manifest each example replaces (the shards are never written to)."""
    folder = tmp_path_factory.mktemp("scratch") / "data"
    shutil.copytree(prepared, folder)
    return folder


def shard_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.bin"))}


def tokens_on_disk(folder: Path, split: str | None = None) -> int:
    return sum(p.stat().st_size for p in folder.glob(f"{split or '*'}_*.bin")) // 2


def load_everywhere(folder: Path) -> dict[str, str | None]:
    """Each entry point's one-line refusal, or None where it accepted the folder. Any other exception propagates
    (and fails the test), and whatever is accepted must agree with the files on disk."""
    results = {}
    for name, load in ENTRY_POINTS.items():
        try:
            value = load(folder)
        except CourseError as e:
            message = str(e)
            assert message and "\n" not in message and "Traceback" not in message, f"{name}: {message!r}"
            results[name] = message
            continue
        results[name] = None
        if name in ("check_prepared", "verify"):
            assert value["tokens"] == tokens_on_disk(folder), name
        elif name == "ShardDataset":
            assert value.tokens == tokens_on_disk(folder, "train")
        elif name == "split_tokens":
            assert len(value) == tokens_on_disk(folder, "val")
    if results["read_manifest"] is not None:  # every reader goes through it, so a refusal there is everyone's
        assert all(message is not None for message in results.values()), results
    return results


def write_manifest(folder: Path, manifest) -> None:
    (folder / MANIFEST).write_text(json.dumps(manifest))


def refused_by_all(folder: Path) -> str:
    """The one message all entry points refuse the folder with (asserted to be the same)."""
    results = load_everywhere(folder)
    assert None not in results.values(), results
    messages = set(results.values())
    assert len(messages) == 1, messages
    return messages.pop()


# --------------------------------------------------------------------------- the cases that used to slip through

def test_shards_null_is_refused_in_one_line_by_every_reader(scratch, original, restore):
    manifest = copy.deepcopy(original)
    manifest["shards"] = None
    write_manifest(scratch, manifest)
    message = refused_by_all(scratch)
    assert message == (f"{scratch / MANIFEST} is damaged (shards is null, expected a list); prepare again with "
                       f"--overwrite")


@pytest.mark.parametrize("edit, problem", [
    (lambda m: m.update(documents=m["documents"] + 1),
     "documents is 82, but the shards add up to 81"),
    (lambda m: m["shards"][1].update(documents=41),
     "shards[1].documents is 41, more than 40 documents per shard"),
    (lambda m: m["shards"][0].update(documents=39),
     "shards[0] has 39 documents, but its splits hold 36 + 4 and 0 were skipped"),
    (lambda m: m["splits"]["val"].update(documents=m["splits"]["val"]["documents"] - 1),
     "splits.val.documents is 7, but the shards add up to 8"),
])
def test_a_document_count_off_by_one_is_refused(scratch, original, restore, edit, problem):
    manifest = copy.deepcopy(original)
    edit(manifest)
    write_manifest(scratch, manifest)
    assert f"is damaged ({problem}); prepare again with --overwrite" in refused_by_all(scratch)


def test_a_consistent_manifest_with_huge_counts_is_refused_before_any_read(scratch, original, restore):
    """10**30 tokens, with every total made to agree: only the file sizes can refuse it, and they do, before any
    allocation the count would size."""
    manifest = copy.deepcopy(original)
    manifest["shards"][0]["train"]["tokens"] = 10**30
    P._summarize(manifest)
    write_manifest(scratch, manifest)
    read_manifest(scratch)  # a well-formed manifest, as far as the manifest alone can tell
    results = load_everywhere(scratch)
    # split_tokens of val checks only the val shards, which are whole
    assert results["read_manifest"] is results["prepared_tokenizer"] is results["split_tokens"] is None
    for name in ("check_prepared", "verify", "ShardDataset"):
        assert f"train_00000.bin has 7,046 bytes, the manifest says {10**30:,} tokens" in results[name], name


@pytest.mark.parametrize("name", ["../train_00000.bin", "/etc/passwd", "sub/train_00000.bin", "manifest.json"])
def test_a_file_name_outside_the_shard_names_is_refused(scratch, original, restore, name):
    outside = scratch.parent / "train_00000.bin"  # a file that a '../' name would reach, the right size even
    shutil.copy(scratch / "train_00000.bin", outside)
    manifest = copy.deepcopy(original)
    manifest["shards"][0]["train"]["file"] = name
    write_manifest(scratch, manifest)
    assert f'(shards[0].train.file is {json.dumps(name)}, expected "train_00000.bin")' in refused_by_all(scratch)
    outside.unlink()


def test_a_hostile_cache_file_is_ignored(scratch, original, restore):
    write_manifest(scratch, original)
    for text in ("[" * 100_000, '{"files": {"train_00000.bin": ' + "1" * 5000 + "}}", "null"):
        (scratch / VERIFIED).write_text(text)
        P._VERIFIED_HERE.clear()
        assert set(load_everywhere(scratch).values()) == {None}


def test_prepare_replaces_a_damaged_manifest_only_with_overwrite(tmp_path, original):
    out = tmp_path / "data"
    prepare("builtin", out, **SMALL)
    (out / MANIFEST).write_text('{"format": "ch04_pretrain shards, version 1", "shards": nu')
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    damaged = r"manifest.json is damaged \(line 1: not valid JSON .*\); prepare again with --overwrite"
    with pytest.raises(CourseError, match=damaged):
        prepare("builtin", out, **SMALL)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the refusal touched nothing
    assert prepare("builtin", out, overwrite=True, **SMALL) == original


# --------------------------------------------------------------------------- bit rot behind a restored mtime

def test_a_flipped_byte_with_its_modification_time_restored_is_refused(tmp_path):
    folder = tmp_path / "data"
    prepare("builtin", folder, **SMALL)
    P._VERIFIED_HERE.clear()
    ShardDataset(folder, "train")  # every shard hashed once, and remembered here and in verified.json
    shard = folder / "train_00001.bin"
    assert shard.name in json.loads((folder / VERIFIED).read_text())["files"]
    before = shard.stat()
    # A change within the same tick of the file system's clock as the shard's writing would keep its ctime (the
    # cache's stated limit): let the clock move on first.
    time.sleep(0.05)
    data = bytearray(shard.read_bytes())
    data[7] ^= 0x10
    shard.write_bytes(bytes(data))
    os.utime(shard, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = shard.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    for new_process in (False, True):  # the process's own memory, then only verified.json
        if new_process:
            P._VERIFIED_HERE.clear()
        with pytest.raises(CourseError) as info:
            ShardDataset(folder, "train")
        message = str(info.value)
        assert f"{shard} does not match the sha256 in the manifest" in message and "\n" not in message


# --------------------------------------------------------------------------- generated damage

def paths(value, prefix=()) -> list[tuple]:
    """The path (keys and list positions) of every value inside `value`, containers included."""
    found = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        found.append(prefix + (key,))
        found += paths(child, prefix + (key,))
    return found


def at(manifest, path: tuple):
    """The value at `path` in `manifest`."""
    for key in path:
        manifest = manifest[key]
    return manifest


def parent_of(manifest, path: tuple):
    return at(manifest, path[:-1])


def json_kind(value) -> str:
    return type(value).__name__  # bool and int are different kinds here, as in the checker


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)
# Values no checker looks at: the description of the source, besides its kind.
FREE = {("settings", "source", "seed"), ("settings", "source", "bytes")}
# Numbers that only prepare reads, to compare them with its own settings: any whole number is well-formed.
HARMLESS = FREE | {("settings", "split", key) for key in ("seed", "block", "small_block", "min_val_docs")}
EXAMPLES = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def restore(scratch, original):
    """Whatever a test (or each of its examples) does, the scratch folder ends with the real manifest, and its
    shards were never written to."""
    shards = shard_bytes(scratch)
    yield
    write_manifest(scratch, original)
    assert shard_bytes(scratch) == shards


@EXAMPLES
@given(data=st.data())
def test_a_removed_key_is_refused(scratch, original, restore, data):
    manifest = copy.deepcopy(original)
    path = data.draw(st.sampled_from([p for p in paths(manifest) if isinstance(parent_of(manifest, p), dict)]))
    del parent_of(manifest, path)[path[-1]]
    write_manifest(scratch, manifest)
    results = load_everywhere(scratch)
    if path not in FREE:
        assert None not in results.values(), path


@EXAMPLES
@given(data=st.data(), key=st.text(min_size=1, max_size=10), value=JSON_VALUES)
def test_an_extra_key_is_ignored(scratch, original, restore, data, key, value):
    manifest = copy.deepcopy(original)
    where = data.draw(st.sampled_from([()] + [p for p in paths(manifest) if isinstance(at(manifest, p), dict)]))
    record = at(manifest, where)
    assume(key not in record)
    record[key] = value
    write_manifest(scratch, manifest)
    assert set(load_everywhere(scratch).values()) == {None}


@EXAMPLES
@given(data=st.data(), value=JSON_VALUES)
def test_a_value_of_another_type_is_refused(scratch, original, restore, data, value):
    manifest = copy.deepcopy(original)
    path = data.draw(st.sampled_from([p for p in paths(manifest) if at(manifest, p) is not None]))
    assume(json_kind(value) != json_kind(at(manifest, path)))
    parent_of(manifest, path)[path[-1]] = value
    write_manifest(scratch, manifest)
    results = load_everywhere(scratch)
    if path not in FREE:
        assert None not in results.values(), path


@EXAMPLES
@given(data=st.data(), number=st.sampled_from(HUGE))
def test_a_huge_or_negative_number_is_refused_or_harmless(scratch, original, restore, data, number):
    manifest = copy.deepcopy(original)
    ints = [p for p in paths(manifest) if json_kind(at(manifest, p)) == "int"]
    path = data.draw(st.sampled_from(ints))
    parent_of(manifest, path)[path[-1]] = number
    write_manifest(scratch, manifest)
    results = load_everywhere(scratch)
    # Every count is checked against the others or against the files; only the settings that prepare alone
    # reads (and compares with its own) may be any whole number, and the source's description anything.
    if path not in FREE and (number < 0 or path not in HARMLESS):
        assert None not in results.values(), path


@EXAMPLES
@given(data=st.data())
def test_a_truncated_manifest_is_refused(scratch, original, restore, data):
    raw = (json.dumps(original, indent=1) + "\n").encode()
    cut = data.draw(st.integers(0, len(raw) - 1))
    (scratch / MANIFEST).write_bytes(raw[:cut])
    results = load_everywhere(scratch)
    if cut < len(raw) - 1:  # only the final newline may go
        assert None not in results.values(), cut


@EXAMPLES
@given(raw=st.binary(max_size=300))
def test_random_bytes_are_refused(scratch, restore, raw):
    (scratch / MANIFEST).write_bytes(raw)
    assert None not in load_everywhere(scratch).values()


@EXAMPLES
@given(data=st.data(), name=st.sampled_from(["../{}", "../../{}", "/tmp/{}", "./{}", "{}/..", "x/../{}"]))
def test_a_file_name_with_a_path_is_refused(scratch, original, restore, data, name):
    manifest = copy.deepcopy(original)
    shard = data.draw(st.integers(0, len(manifest["shards"]) - 1))
    split = data.draw(st.sampled_from(["train", "val"]))
    entry = manifest["shards"][shard][split]
    entry["file"] = name.format(entry["file"])
    write_manifest(scratch, manifest)
    assert f"shards[{shard}].{split}.file is " in refused_by_all(scratch)


# --------------------------------------------------------------------------- through the command line

@pytest.mark.parametrize("damage", ["shards null", "truncated"])
def test_train_refuses_a_damaged_manifest_in_one_line(tmp_path, prepared, original, damage):
    folder = tmp_path / "data"
    shutil.copytree(prepared, folder)
    if damage == "shards null":
        write_manifest(folder, {**original, "shards": None})
    else:
        (folder / MANIFEST).write_bytes((prepared / MANIFEST).read_bytes()[:500])
    proc = subprocess.run([sys.executable, "-m", "ch04_pretrain", "train", "--data", str(folder), "--out",
                           str(tmp_path / "run"), "--preset", "tiny", "--device", "cpu", "--no-progress"],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          timeout=120, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"error: {folder / MANIFEST} is damaged (") and len(proc.stderr.splitlines()) == 1
    assert "; prepare again with --overwrite" in proc.stderr
    assert not any((tmp_path / "run").iterdir())  # the command made its --out folder, and wrote nothing there
