"""The floor package: progress that suits a log, the one number-format policy, a peak that leaves RNG alone, the
settings check every config class shares."""

import io

import pytest
import torch

from coursekit import CourseError
from coursekit.hardware import DTYPE_CHOICES, cpu_has_fast_bf16, matmul_peak_flops, resolve_dtype
from coursekit.numbers import check_lr_floor, check_settings, learning_rate, positive_int
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


def test_check_settings_names_the_first_field_out_of_range_and_the_lr_floor_refuses_a_floor_above_the_peak():
    from types import SimpleNamespace
    rules = {"steps": positive_int, "lr": learning_rate}
    check_settings(SimpleNamespace(steps=3, lr=1e-3), rules)
    with pytest.raises(CourseError, match="lr.*nan"):
        check_settings(SimpleNamespace(steps=3, lr=float("nan")), rules)
    with pytest.raises(CourseError, match="steps"):
        check_settings(SimpleNamespace(steps=0, lr=float("nan")), rules)
    check_lr_floor(1e-3, 1e-3)
    with pytest.raises(CourseError, match="min_lr 0.002 is above lr 0.001"):
        check_lr_floor(1e-3, 2e-3)
