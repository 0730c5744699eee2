"""Chapter 4, loader: shifted windows, disjoint ranks, resumable sampling, no memory growth."""

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from ch04_pretrain.data_pipeline import prepare as P
from ch04_pretrain.data_pipeline.loader import ShardDataset, load_splits, split_tokens
from ch04_pretrain.data_pipeline.prepare import MANIFEST, prepare, save_as_prepared
from ch04_pretrain.data_pipeline.sources import SourceOptions
from coursekit import CourseError


def synthetic(folder: Path, sizes: list[int], val: int = 0) -> Path:
    """Shards whose token at position p of shard k is (k * 20,000 + p): a window tells where it came from."""
    save_as_prepared(folder, [(np.arange(k * 20_000, k * 20_000 + n), np.arange(val)) for k, n in enumerate(sizes)])
    return folder


def test_targets_are_inputs_shifted_by_one(tmp_path):
    prepare("builtin", tmp_path, options=SourceOptions(builtin_bytes=30_000), workers=0, progress=False)
    splits = load_splits(tmp_path)
    tokens = split_tokens(tmp_path, "train").astype(np.int64)
    x, y = splits["train"].get_batch(4, 32, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 32) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    text = tokens.tobytes()
    for row in range(4):  # each window is a run of the split's tokens
        assert np.concatenate([x[row].numpy(), y[row, -1:].numpy()]).tobytes() in text
    assert splits["val"].tokens == len(split_tokens(tmp_path, "val"))


def test_windows_stay_inside_one_shard_and_cover_it(tmp_path):
    data = ShardDataset(synthetic(tmp_path, [1000, 300]), "train")
    x, y = data.get_batch(4000, 16, torch.Generator().manual_seed(1))
    starts = x[:, 0].numpy()
    shard = starts // 20_000
    offset = starts % 20_000
    assert set(shard) == {0, 1}
    assert ((shard == 0) & (offset <= 1000 - 17) | (shard == 1) & (offset <= 300 - 17)).all()
    assert torch.equal(y[:, -1] - x[:, 0], torch.full((4000,), 16))  # no window crosses into the next shard
    assert offset[shard == 0].max() == 1000 - 17 and offset.min() == 0  # the ends are reachable
    # Shards are drawn in proportion to their windows: 984 vs 284.
    assert abs((shard == 1).mean() - 284 / 1268) < 0.03


def test_ranks_read_disjoint_tokens(tmp_path):
    synthetic(tmp_path, [1000, 999])
    seen, counts = [], []
    for rank in range(3):
        data = ShardDataset(tmp_path, "train", rank=rank, world_size=3)
        x, y = data.get_batch(2000, 8, torch.Generator().manual_seed(0))
        windows = torch.cat([x, y[:, -1:]], dim=1).numpy()
        seen.append(set(windows.ravel().tolist()))
        counts.append(data.tokens)
    assert sum(counts) == 1999 and max(counts) - min(counts) <= 2  # a third of every shard each
    assert not (seen[0] & seen[1]) and not (seen[1] & seen[2]) and not (seen[0] & seen[2])
    with pytest.raises(CourseError, match="rank must be in 0..2"):
        ShardDataset(tmp_path, "train", rank=3, world_size=3)


def test_saved_generator_state_resumes_the_same_batches(tmp_path):
    data = ShardDataset(synthetic(tmp_path, [5000]), "train")
    gen = torch.Generator().manual_seed(42)
    for _ in range(3):
        data.get_batch(8, 64, gen)
    state = gen.get_state()  # what a checkpoint stores
    expected = [data.get_batch(8, 64, gen) for _ in range(3)]
    resumed = torch.Generator()
    resumed.set_state(state)
    for x, y in expected:
        x2, y2 = data.get_batch(8, 64, resumed)
        assert torch.equal(x, x2) and torch.equal(y, y2)


def test_too_short_split_and_incomplete_folder(tmp_path):
    data = ShardDataset(synthetic(tmp_path, [100, 100], val=5), "val")
    with pytest.raises(CourseError, match="no run of block size \\+ 1 = 9 tokens"):
        data.get_batch(2, 8)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    manifest["complete"] = False
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CourseError, match="only partly prepared"):
        ShardDataset(tmp_path, "train")


def rss_mb() -> float:
    status = Path("/proc/self/status")
    if not status.exists():
        pytest.skip("reading the resident set size needs Linux's /proc")
    return int(re.search(r"VmRSS:\s+(\d+) kB", status.read_text()).group(1)) / 1024


@pytest.mark.slow
def test_no_memory_growth_over_many_batches(tmp_path):
    """A map kept open would grow by up to the 64 MB file as random windows touch it; ours stays flat."""
    n = 32 * 1024 * 1024
    save_as_prepared(tmp_path, [(np.zeros(n), np.zeros(10))])
    data = ShardDataset(tmp_path, "train")
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        data.get_batch(16, 256, gen)
    before = rss_mb()
    for _ in range(2000):  # 32,000 random windows: a kept-open map would touch most of the 64 MB
        data.get_batch(16, 256, gen)
    assert rss_mb() - before < 8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batches_are_copied_asynchronously(tmp_path):
    data = ShardDataset(synthetic(tmp_path, [5000]), "train")
    x, y = data.get_batch(4, 16, torch.Generator().manual_seed(0), device="cuda")
    assert x.is_cuda and y.is_cuda
    cpu_x, _ = data.get_batch(4, 16, torch.Generator().manual_seed(0))
    assert torch.equal(x.cpu(), cpu_x)


# --------------------------------------------------------------------------- damaged shards are refused at start

@pytest.fixture
def prepared(tmp_path):
    out = tmp_path / "data"
    prepare("builtin", out, options=SourceOptions(builtin_bytes=30_000), docs_per_shard=40, workers=0,
            progress=False, log=lambda *a: None)
    P._VERIFIED_HERE.clear()  # each test starts without this process's memory of checked files
    return out


def test_a_changed_byte_is_refused_in_one_line_naming_the_shard(prepared):
    data = bytearray((prepared / "train_00001.bin").read_bytes())
    data[3] ^= 1
    (prepared / "train_00001.bin").write_bytes(bytes(data))
    for split in ("train", "val"):  # either split refuses a folder with a damaged shard
        with pytest.raises(CourseError) as info:
            ShardDataset(prepared, split)
        message = str(info.value)
        assert "train_00001.bin does not match the sha256" in message and "rerun" in message
        assert "prepare" in message and "\n" not in message


def test_a_truncated_shard_or_an_edited_manifest_is_refused(prepared):
    with open(prepared / "val_00000.bin", "r+b") as f:
        f.truncate(2)
    with pytest.raises(CourseError, match="val_00000.bin has 2 bytes"):
        ShardDataset(prepared, "train")
    P._VERIFIED_HERE.clear()
    other = prepared.parent / "other"
    prepare("builtin", other, options=SourceOptions(builtin_bytes=30_000), workers=0, progress=False)
    manifest = json.loads((other / MANIFEST).read_text())
    manifest["shards"][0]["train"]["sha256"] = "f" * 64
    (other / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CourseError, match="train_00000.bin does not match the sha256 in the manifest"):
        load_splits(other)


def test_sha256_is_computed_once_and_cached_by_size_and_mtime(prepared, monkeypatch):
    hashed = []
    real = P.sha256_of
    monkeypatch.setattr(P, "sha256_of", lambda path, progress=None: hashed.append(path.name) or real(path, progress))
    files = sorted(p.name for p in prepared.glob("*.bin"))
    load_splits(prepared)
    assert sorted(hashed) == files                      # every shard hashed once, though two splits were loaded
    assert set(json.loads((prepared / P.VERIFIED).read_text())["files"]) == set(files)
    hashed.clear()
    P._VERIFIED_HERE.clear()                            # a new process: only the file beside the shards remembers
    load_splits(prepared)
    assert hashed == []
    stat = (prepared / "train_00000.bin").stat()       # the same size, another modification time: hashed again
    os.utime(prepared / "train_00000.bin", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    P._VERIFIED_HERE.clear()
    load_splits(prepared)
    assert hashed == ["train_00000.bin"]


def test_a_read_only_folder_is_checked_without_a_cache(prepared, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(P, "write_json", refuse)         # what a read-only folder does (tests may run as root)
    data = ShardDataset(prepared, "train")
    assert data.tokens > 0 and not (prepared / P.VERIFIED).exists()
    P._VERIFIED_HERE.clear()
    (prepared / P.VERIFIED).write_text("{not json")      # a damaged cache is ignored, never trusted
    assert ShardDataset(prepared, "val").tokens > 0


def test_too_short_val_split_names_separator(tmp_path):
    data = ShardDataset(synthetic(tmp_path, [100], val=5), "val")
    with pytest.raises(CourseError, match="--separator"):
        data.check_block_size(8)
    data.check_block_size(4)
