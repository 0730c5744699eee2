"""The floor package: progress that suits a log, the one number-format policy and the one mixed-precision set-up,
a peak that leaves RNG alone, the settings check every config class shares, the one file hash."""

import hashlib
import inspect
import io

import pytest
import torch

from coursekit import CourseError
from coursekit.files import sha256_of
from coursekit.hardware import (
    DTYPE_CHOICES,
    MixedPrecision,
    cpu_has_fast_bf16,
    matmul_peak_flops,
    mixed_precision,
    resolve_dtype,
)
from coursekit.numbers import check_lr_floor
from coursekit.progress import LogProgress, progress_bar


def test_progress_to_a_file_writes_a_line_per_tenth_not_a_redraw_per_step():
    out = io.StringIO()
    for _ in progress_bar(range(1000), desc="training", unit="step", file=out):
        pass
    text = out.getvalue()
    lines = text.splitlines()
    assert "\r" not in text
    assert 10 <= len(lines) <= 11, lines
    assert lines[-1].startswith("training: 100% 1,000/1,000 step")


def test_progress_to_a_file_also_speaks_after_a_silence():
    out = io.StringIO()
    bar = LogProgress(total=10**6, file=out, seconds=0.0)  # every update is "30 s later"
    for _ in range(5):
        bar.update()
    bar.close()
    assert len(out.getvalue().splitlines()) == 5  # no extra line at close: the last one showed the end


def test_progress_without_a_total_and_with_postfix():
    out = io.StringIO()
    with progress_bar(total=None, desc="preparing", unit=" docs", file=out) as bar:
        bar.update(7)
        bar.set_postfix_str("1,000 tokens/s")
    assert out.getvalue().startswith("preparing: 7 docs [") and "1,000 tokens/s" in out.getvalue()


def test_progress_disabled_still_iterates_silently():
    out = io.StringIO()
    assert list(progress_bar(range(3), disable=True, file=out)) == [0, 1, 2]
    assert out.getvalue() == ""


def test_dtype_policy_is_one_function():
    assert DTYPE_CHOICES == ("auto", "float32", "bfloat16", "float16")
    fast = cpu_has_fast_bf16()
    assert resolve_dtype("auto", "cpu", 256) == ("bfloat16" if fast else "float32")
    assert resolve_dtype("auto", "cpu", 128) == "float32"  # too narrow for bfloat16 to pay on a CPU
    assert resolve_dtype("auto", "cpu", 64) == "float32"  # too narrow for bfloat16 to pay on a CPU
    assert resolve_dtype("auto", "mps", 768) == "float32"
    assert resolve_dtype("float32", "cpu", 768) == "float32"
    with pytest.raises(CourseError, match="unknown dtype"):
        resolve_dtype("fp8", "cpu", 128)
    with pytest.raises(CourseError, match="CUDA"):
        resolve_dtype("float16", "cpu", 128)


def test_every_recipe_defaults_to_auto_and_the_run_reports_what_auto_chose():
    from ch01_bigram import prepare_char_data
    from ch03_gpt import RECIPES, GPTConfig, train_gpt

    assert {name: r.dtype for name, r in RECIPES.items()} == dict.fromkeys(RECIPES, "auto")
    data = prepare_char_data("hello world, hello there. " * 40, 8)
    cfg = GPTConfig(vocab_size=data.tokenizer.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=16)
    recipe = RECIPES["fast"].__class__(steps=2, batch_size=2, eval_interval=2, eval_iters=1, warmup=1)
    _, _, summary = train_gpt(data, cfg, recipe, progress=False, log=None)
    assert summary["dtype"] == resolve_dtype("auto", "cpu", 16) == "float32"


def test_measuring_the_peak_leaves_the_global_random_state_alone():
    torch.manual_seed(3)
    before = torch.get_rng_state()
    matmul_peak_flops(size=64, seconds=0.01)
    assert torch.equal(torch.get_rng_state(), before)


def test_the_lr_floor_refuses_a_floor_above_the_peak():
    check_lr_floor(1e-3, 1e-3)
    with pytest.raises(CourseError, match="min_lr 0.002 is above lr 0.001"):
        check_lr_floor(1e-3, 2e-3)


def test_mixed_precision_float32_is_no_autocast_and_no_scaler():
    precision = mixed_precision("cpu", "float32")
    assert precision.scaler is None
    with precision.autocast():
        assert not torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_mixed_precision_bfloat16_is_autocast_without_a_scaler():
    precision = mixed_precision("cpu", "bfloat16")
    assert precision.scaler is None
    with precision.autocast():
        assert torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    assert not torch.is_autocast_enabled("cpu")  # a context per forward pass, left behind each time


def test_the_gradient_scaler_is_float16s_and_float16_trains_only_on_cuda():
    with pytest.raises(CourseError, match="float16 training needs a CUDA GPU"):
        mixed_precision("cpu", "float16")
    if torch.cuda.is_available():
        assert isinstance(mixed_precision("cuda", "float16").scaler, torch.amp.GradScaler)
        assert mixed_precision("cuda", "bfloat16").scaler is None


def test_mixed_precision_float16_scales_the_loss_and_steps_with_the_true_gradient():
    # What mixed_precision("cuda", "float16") holds, with the scaler on the CPU: it works the same way there.
    precision = MixedPrecision("cpu", "float16", torch.amp.GradScaler("cpu"))
    assert precision.scaler.is_enabled()
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    optimizer = torch.optim.SGD([w], lr=0.5)
    precision.backward((w * w).sum())
    assert torch.equal(w.grad, torch.tensor([2.0, 4.0]) * precision.scaler.get_scale())  # scaled for backward
    precision.unscale_(optimizer)
    assert torch.equal(w.grad, torch.tensor([2.0, 4.0]))  # the true gradient, as clipping needs it
    precision.step(optimizer)
    assert torch.equal(w.detach(), torch.tensor([0.0, 0.0]))
    with pytest.raises(CourseError, match="unknown dtype"):
        mixed_precision("cpu", "auto")  # a resolved name only (resolve_dtype first)


def test_without_a_scaler_backward_and_step_are_the_plain_ones_bit_for_bit():
    def losses(use_precision):
        torch.manual_seed(0)
        model = torch.nn.Linear(8, 1)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        precision, out = mixed_precision("cpu", "float32"), []
        for step in range(5):
            x = torch.randn(4, 8, generator=torch.Generator().manual_seed(step))
            with precision.autocast():
                loss = model(x).pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            if use_precision:
                precision.backward(loss)
                precision.unscale_(optimizer)
                precision.step(optimizer)
            else:
                loss.backward()
                optimizer.step()
            out.append(loss.item())
        return out
    assert losses(True) == losses(False)


def test_sha256_of_streams_in_1_mb_blocks_and_reports_each_one(tmp_path):
    data = bytes(range(256)) * (10 * 1024 + 3)  # 2.5 MiB and 768 bytes: two whole blocks and a part
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    seen = []
    assert sha256_of(path, seen.append) == hashlib.sha256(data).hexdigest() == sha256_of(str(path))
    assert seen == [1 << 20, 1 << 20, len(data) - 2 * (1 << 20)]
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    seen.clear()
    assert sha256_of(empty, seen.append) == hashlib.sha256(b"").hexdigest() and seen == []


def test_each_mechanism_is_defined_once_and_the_chapters_use_that_one():
    """Chapter 1's downloading names are coursekit.download's; Chapter 5 measures memory with Chapter 4's
    counter; every model.safetensors goes through Chapter 3's write_weights."""
    import ch01_bigram.data
    import ch04_pretrain.data_pipeline.prepare
    import ch04_pretrain.pretraining.ddp_check
    import ch05_finetune.classify
    import ch05_finetune.labelled
    import ch05_finetune.measure
    import course
    from ch03_gpt import checkpoint
    from ch04_pretrain.pretraining import peak_memory
    from coursekit import download, files

    for name in ("RemoteFile", "cache_dir", "find_local", "find_or_download", "DATA_DIR_ENV", "sha256_of"):
        assert getattr(ch01_bigram.data, name) is getattr(download, name)
    assert ch01_bigram.data.download is download.fetch
    assert download.sha256_of is files.sha256_of is ch04_pretrain.data_pipeline.prepare.sha256_of
    assert ch05_finetune.labelled.cache_dir is download.cache_dir
    assert ch05_finetune.measure.peak_memory_bytes is peak_memory.peak_memory_bytes
    for user in (ch05_finetune.classify, ch04_pretrain.pretraining.ddp_check):
        assert user.write_weights is checkpoint.write_weights
    # The main job imports it in the stage that writes a model, so that `python -m course --help` needs no torch.
    assert "from ch03_gpt.checkpoint import write_weights" in inspect.getsource(course.bigram_stage)
    assert "save_file" not in inspect.getsource(course)
