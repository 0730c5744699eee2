"""Chapter 4, pretraining: schedule, optimizer groups, accumulation, checkpoints (atomic, exact resume, safe
loading, config checks), NaN and Ctrl-C handling, memory estimates, DDP, the CLI."""

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from ch01_bigram import generate_corpus
from ch03_gpt import GPT, GPTConfig, configure_optimizer, cosine_lr, load_checkpoint
from ch04_pretrain.data_pipeline.bpe import RANKS_FILE, VOCAB_SIZE, train_bpe, write_ranks
from ch04_pretrain.data_pipeline.prepare import MANIFEST, prepare
from ch04_pretrain.data_pipeline.sources import SourceOptions
from ch04_pretrain.pretraining import training_state as checkpoints
from ch04_pretrain.pretraining.gpt2_weights import load_pretrained
from ch04_pretrain.pretraining.memory import estimate_memory, saved_activation_bytes
from ch04_pretrain.pretraining.settings import PRESETS, TrainSettings
from ch04_pretrain.pretraining.trainer import forward_backward, pretrain, read_log
from coursekit import CourseError
from coursekit.claims import claim
from coursekit.hardware import cpu_has_fast_bf16, resolve_dtype

ROOT = Path(__file__).resolve().parents[1]
# A model small enough for a step to take milliseconds; dropout on, so that resuming must restore torch's RNG.
SMALL = TrainSettings(model=GPTConfig(vocab_size=VOCAB_SIZE, block_size=16, n_layer=1, n_head=2, n_embd=32,
                                      dropout=0.1),
                      batch_size=4, grad_accum=2, max_steps=8, lr=1e-2, min_lr=1e-3, warmup=2, eval_interval=2,
                      eval_iters=2, log_interval=1, dtype="float32", keep=2)
QUIET = {"device": "cpu", "peak_flops": 1e11, "progress": False, "log": lambda *a: None}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    prepare("builtin", folder, options=SourceOptions(builtin_bytes=60_000), workers=0, progress=False,
            log=lambda *a: None)
    return folder


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """An uninterrupted run of SMALL: its log is what every resumed run must reproduce."""
    out = tmp_path_factory.mktemp("reference")
    summary = pretrain(SMALL, data, out, **QUIET)
    return out, summary


def numbers(log: list[dict]) -> list[tuple]:
    """The computed values of a log, without the timings."""
    return [(r["step"], r.get("loss"), r.get("lr"), r.get("grad_norm"), r.get("val_loss")) for r in log]


# --------------------------------------------------------------------------- schedule and optimizer

def test_schedule_values_at_chosen_steps():
    lr, floor, warm, total = 6e-4, 6e-5, 2000, 600_000
    assert cosine_lr(0, lr, floor, warm, total) == pytest.approx(lr / warm)
    assert cosine_lr(999, lr, floor, warm, total) == pytest.approx(lr / 2)
    assert cosine_lr(1999, lr, floor, warm, total) == pytest.approx(lr)
    assert cosine_lr(2000, lr, floor, warm, total) == pytest.approx(lr)
    assert cosine_lr(301_000, lr, floor, warm, total) == pytest.approx((lr + floor) / 2)  # half-way down
    assert cosine_lr(600_000, lr, floor, warm, total) == pytest.approx(floor)
    assert cosine_lr(700_000, lr, floor, warm, total) == pytest.approx(floor)


def test_trainer_follows_the_schedule(reference):
    out, _ = reference
    for r in read_log(out):
        if "lr" in r:  # the rate used for the step that ended at r["step"]
            assert r["lr"] == pytest.approx(cosine_lr(r["step"] - 1, SMALL.lr, SMALL.min_lr, SMALL.warmup,
                                                      SMALL.max_steps))


def test_gpt2_recipe_preset():
    p = PRESETS["gpt2-124m"]
    assert (p.model.n_layer, p.model.n_head, p.model.n_embd, p.model.block_size) == (12, 12, 768, 1024)
    assert p.model.vocab_size == VOCAB_SIZE
    assert p.tokens_per_step() == 524_288 and (p.lr, p.warmup, p.max_steps) == (6e-4, 2000, 600_000)


def test_settings_hold_the_model_as_a_gptconfig():
    assert TrainSettings().model == GPTConfig(vocab_size=VOCAB_SIZE, block_size=64, n_layer=4, n_head=4, n_embd=128)
    assert TrainSettings().tokens_per_step() == 8 * 64
    # a dict (as read back from JSON) becomes a GPTConfig, with GPT-2's vocabulary unless it says otherwise
    assert TrainSettings(**asdict(SMALL)) == SMALL
    assert TrainSettings(model={"n_layer": 2}).model == GPTConfig(vocab_size=VOCAB_SIZE, n_layer=2)
    with pytest.raises(CourseError, match="unknown GPTConfig fields: n_layers"):
        TrainSettings(model={"n_layers": 2})
    with pytest.raises(CourseError, match=r"^n_layer must be positive \(a whole number >= 1\), got 2.0$"):
        TrainSettings(model=replace(SMALL.model, n_layer=2.0))
    with pytest.raises(CourseError, match=r"dropout must be a finite number >= 0 and < 1"):
        TrainSettings(model={"dropout": 1.0})


def test_settings_difference_names_the_model_field():
    saved, now = asdict_of(SMALL), asdict_of(replace(SMALL, lr=0.02, model=replace(SMALL.model, n_embd=64)))
    assert checkpoints.settings_difference(saved, now, set()) == "lr 0.01 != 0.02, model.n_embd 32 != 64"
    assert checkpoints.settings_difference(saved, now, {"lr", "model.n_embd"}) == ""


def asdict_of(settings: TrainSettings) -> dict:
    return json.loads(json.dumps(asdict(settings)))  # as config.json holds it


def test_weight_decay_on_matrices_only():
    model = GPT(GPTConfig(vocab_size=50, block_size=8, n_layer=2, n_head=2, n_embd=16))
    opt = configure_optimizer(model, lr=1e-3, weight_decay=0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    decayed = {names[id(p)] for p in decay["params"]}
    kept = {names[id(p)] for p in no_decay["params"]}
    assert decayed == {n for n, p in model.named_parameters() if p.dim() == 2}
    assert all(n.endswith(".bias") or ".ln_" in n or n.startswith("transformer.ln_f") for n in kept)
    assert "transformer.h.0.ln_1.weight" in kept and "transformer.h.0.attn.c_attn.bias" in kept
    assert "transformer.wte.weight" in decayed  # the tied head, counted once
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == model.num_params()


def test_accumulation_equals_one_big_batch():
    cfg = GPTConfig(vocab_size=50, block_size=8, n_layer=2, n_head=2, n_embd=16)
    torch.manual_seed(0)
    a = GPT(cfg)
    b = GPT(cfg)
    b.load_state_dict(a.state_dict())
    xy = torch.randint(50, (12, 9))
    x, y = xy[:, :-1].contiguous(), xy[:, 1:].contiguous()
    k = 3
    small = [(x[i::k].contiguous(), y[i::k].contiguous()) for i in range(k)]  # 3 micro-batches of 4
    loss_a = forward_backward(a, small, "cpu", "float32")
    loss_b = forward_backward(b, [(x, y)], "cpu", "float32")
    assert loss_a.item() == pytest.approx(loss_b.item(), abs=1e-6)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, atol=1e-6, rtol=1e-5, msg=name)


# --------------------------------------------------------------------------- checkpoints

KILLER = textwrap.dedent("""
    import os, signal, sys, torch
    from ch04_pretrain.pretraining import trainer, training_state as checkpoints
    from ch04_pretrain.pretraining.settings import TrainSettings
    settings = TrainSettings(**{settings})
    mode, at = sys.argv[1], int(sys.argv[2])
    def die(step, model):
        if mode == "step" and step == at:
            os.kill(os.getpid(), signal.SIGKILL)
    real_save = torch.save
    def save_then_die(obj, path):  # dies with the new checkpoint half-written, before it is renamed into place
        real_save(obj, path)
        if mode == "save" and obj["step"] == at:
            os.kill(os.getpid(), signal.SIGKILL)
    checkpoints.torch.save = save_then_die
    trainer.pretrain(settings, sys.argv[3], sys.argv[4], device="cpu", peak_flops={peak}, progress=False,
                  on_step=die)
""")


def run_python(code: str, *args, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.fixture(scope="module")
def reference_measured_peak(data, tmp_path_factory):
    """SMALL uninterrupted, with the MFU denominator measured as it is by default (a timed matrix product)."""
    out = tmp_path_factory.mktemp("reference_measured_peak")
    return out, pretrain(SMALL, data, out, **{**QUIET, "peak_flops": None})


@pytest.mark.slow
@pytest.mark.parametrize("mode,at,saved,peak", [("step", 5, 4, 1e11), ("save", 6, 4, 1e11), ("step", 5, 4, None)])
def test_resume_after_sigkill_is_bitwise_exact(data, reference, reference_measured_peak, tmp_path, mode, at, saved,
                                               peak):
    # With dropout and gradient accumulation: nothing after the RNG restore may draw from the generators
    # but training itself (peak None: the default peak measurement runs on resume too).
    from dataclasses import asdict
    proc = run_python(KILLER.replace("{settings}", repr(asdict(SMALL))).replace("{peak}", repr(peak)),
                      mode, at, data, tmp_path)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err
    assert json.loads((tmp_path / "latest.json").read_text())["step"] == saved
    summary = pretrain(SMALL, data, tmp_path, resume=True, **{**QUIET, "peak_flops": peak})
    assert summary["start_step"] == saved and summary["steps"] == SMALL.max_steps
    out, ref = reference if peak else reference_measured_peak
    assert numbers(read_log(tmp_path)) == numbers(read_log(out))  # exact equality of every float
    assert summary["val_loss"] == ref["val_loss"]
    assert not list(tmp_path.glob(".step_*"))  # the half-written checkpoint was cleaned up


def test_interrupted_write_keeps_the_previous_checkpoint(data, tmp_path, monkeypatch):
    pretrain(replace(SMALL, max_steps=2), data, tmp_path, **QUIET)
    before = (tmp_path / "latest.json").read_text()
    weights = (tmp_path / "step_000002" / "model.safetensors").read_bytes()

    def broken_save(obj, path):
        Path(path).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoints.torch, "save", broken_save)
    with pytest.raises(OSError):
        pretrain(replace(SMALL, max_steps=4), data, tmp_path, resume=True, **QUIET)
    monkeypatch.undo()
    assert (tmp_path / "latest.json").read_text() == before
    assert (tmp_path / "step_000002" / "model.safetensors").read_bytes() == weights
    assert not (tmp_path / "step_000004").exists()
    _, meta = load_checkpoint(tmp_path / "step_000002")  # Chapter 3 reads our checkpoints
    assert meta["step"] == 2 and meta["tokenizer"] == {"type": "gpt2"}
    summary = pretrain(replace(SMALL, max_steps=4), data, tmp_path, resume=True, **QUIET)
    assert summary["start_step"] == 2 and summary["steps"] == 4


class RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = Path("/tmp/ch04_pickle_ran_code")


def test_pickle_that_would_run_code_is_refused(data, tmp_path):
    pretrain(replace(SMALL, max_steps=2), data, tmp_path, **QUIET)
    MARKER.unlink(missing_ok=True)
    state = tmp_path / "step_000002" / "trainer.pt"
    state.write_bytes(pickle.dumps({"step": 2, "optimizer": RunsCode()}, protocol=2))
    with pytest.raises(CourseError, match="refused to load"):
        pretrain(replace(SMALL, max_steps=4), data, tmp_path, resume=True, **QUIET)
    assert not MARKER.exists()


def test_other_config_is_refused_by_name(data, tmp_path):
    pretrain(replace(SMALL, max_steps=2), data, tmp_path, **QUIET)
    with pytest.raises(CourseError, match=r"n_embd 32 != 64"):
        pretrain(replace(SMALL, model=replace(SMALL.model, n_embd=64)), data, tmp_path, resume=True, **QUIET)
    with pytest.raises(CourseError, match=r"lr 0.01 != 0.02"):
        pretrain(replace(SMALL, lr=0.02), data, tmp_path, resume=True, **QUIET)
    with pytest.raises(CourseError, match="no checkpoint to resume"):
        pretrain(SMALL, data, tmp_path / "empty", resume=True, **QUIET)


def test_last_k_and_best_are_kept(reference):
    out, _ = reference
    best = json.loads((out / "best.json").read_text())
    steps = sorted(d.name for d in out.glob("step_*"))
    expected = {"step_000006", "step_000008", best["dir"]}
    assert set(steps) == expected
    vals = {r["step"]: r["val_loss"] for r in read_log(out) if "val_loss" in r}
    assert best["val_loss"] == min(vals.values())


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(data, tmp_path):
    def poison(step, model):
        if step == 3:
            with torch.no_grad():
                model.transformer.ln_f.weight.fill_(float("nan"))

    with pytest.raises(CourseError, match=r"loss became nan at step 3.*step_000002"):
        pretrain(SMALL, data, tmp_path, on_step=poison, **QUIET)
    assert json.loads((tmp_path / "latest.json").read_text())["step"] == 2
    model, _ = load_checkpoint(tmp_path / "step_000002")
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.slow
def test_sigint_saves_and_exits_cleanly(data, tmp_path):
    settings = replace(SMALL, max_steps=100_000, eval_interval=100_000,
                       model=replace(SMALL.model, n_embd=64, block_size=32))
    from dataclasses import asdict
    code = KILLER.replace("{settings}", repr(asdict(settings))).replace("{peak}", "1e11")
    proc = run_python(code, "none", -1, data, tmp_path)
    log = tmp_path / "log.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and (not log.is_file() or len(log.read_text().splitlines()) < 4):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "interrupted: saved step" in out
    step = json.loads((tmp_path / "latest.json").read_text())["step"]
    assert 3 <= step < 100_000 and (tmp_path / checkpoints.step_dir_name(step) / "trainer.pt").is_file()


# --------------------------------------------------------------------------- memory, dtype, loading

def test_memory_estimates_match_what_autograd_keeps():
    cfg = GPTConfig(vocab_size=300, block_size=32, n_layer=2, n_head=2, n_embd=64)
    torch.manual_seed(0)
    model = GPT(cfg)
    x = torch.randint(300, (4, 32))
    for dtype in ("float32", "bfloat16"):
        est = estimate_memory(cfg, 4, dtype)
        assert est["parameters"] == 4 * model.num_params() and est["optimizer"] == 2 * est["gradients"]
        kept = saved_activation_bytes(model, x, x, dtype)
        assert est["activations"] == pytest.approx(kept, rel=0.1), dtype
    assert estimate_memory(cfg, 8)["activations"] > 1.9 * estimate_memory(cfg, 4)["activations"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the measured peak is the resident size on Linux")
def test_measured_peaks_follow_the_lessons_when_freed_memory_is_returned_at_once():
    """Activations dominate (the notebook's model: small vocabulary, block 256): accumulation, bfloat16 and
    activation checkpointing each lower the measured peak, by the margins the notebook's check cell asserts."""
    code = textwrap.dedent("""
        from ch03_gpt import GPTConfig
        from ch04_pretrain.pretraining.memory import memory_table, return_freed_memory_at_once
        assert return_freed_memory_at_once()
        cfg = GPTConfig(vocab_size=556, block_size=256, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=True)
        exps = [dict(batch_size=8), dict(batch_size=2, grad_accum=4), dict(batch_size=8, dtype="bfloat16"),
                dict(batch_size=8, activation_checkpointing=True)]
        big, accum, bf16, ckpt = (r["measured_peak_mb"] for r in memory_table(cfg, exps, steps=1))
        assert accum < 0.5 * big and bf16 < 0.85 * big and ckpt < 0.6 * big, (big, accum, bf16, ckpt)
    """)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the measured peak is the resident size on Linux")
def test_chapter_5s_cost_is_chapter_4s_peak_memory_of_the_run_alone():
    """`ch05_finetune.measure` reads Chapter 4's counter: reset before the run, so an earlier, larger
    allocation does not count; what the run itself touched does."""
    code = textwrap.dedent("""
        import torch
        from ch05_finetune.measure import measure
        big = torch.ones(64 * 2**20 // 4)  # 64 MB, then freed: the process's peak so far
        del big
        _, cost = measure(lambda: float(torch.ones(16 * 2**20 // 4).sum()))  # 16 MB
        assert 15 <= cost["peak_mb"] < 40, cost
    """)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_bf16_probe_without_proc_cpuinfo_agrees_with_the_cpu_flags(monkeypatch):
    """Off Linux there is no /proc/cpuinfo; the fallback (torch's own probes) must give the same answer."""
    from pathlib import Path

    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        pytest.skip("no /proc/cpuinfo here to compare the fallback with")
    expected = "avx512_bf16" in flags or "amx_bf16" in flags
    assert cpu_has_fast_bf16() == expected

    def unreadable(self, *args, **kwargs):
        raise OSError("no such file")
    monkeypatch.setattr(Path, "read_text", unreadable)
    assert cpu_has_fast_bf16() == expected


def test_dtype_auto_is_honest():
    assert resolve_dtype("auto", "cpu", 64) == "float32"  # too narrow for bfloat16 to pay on a CPU
    # From 256 wide (BF16_MIN_WIDTH_CPU), bfloat16 wherever the CPU multiplies it in hardware.
    assert resolve_dtype("auto", "cpu", 256) == ("bfloat16" if cpu_has_fast_bf16() else "float32")
    assert resolve_dtype("bfloat16", "cpu", 128) == "bfloat16"
    with pytest.raises(CourseError, match="float16 training needs a CUDA GPU"):
        resolve_dtype("float16", "cpu", 128)
    with pytest.raises(CourseError, match="unknown dtype"):
        resolve_dtype("fp8", "cpu", 128)


@pytest.mark.trained
def test_bfloat16_and_activation_checkpointing_train(data, tmp_path):
    summary = pretrain(replace(SMALL, dtype="bfloat16", activation_checkpointing=True, max_steps=4), data, tmp_path,
                    **QUIET)
    assert summary["dtype"] == "bfloat16" and summary["steps"] == 4
    losses = [r["loss"] for r in read_log(tmp_path) if "loss" in r]
    assert all(l == l for l in losses)  # noqa: E741 (l == l is False only for NaN)
    claim("test: 4 bfloat16 steps with checkpointing lower the training loss by", losses[0] - losses[-1], low=0)


def test_load_pretrained_reads_our_runs(reference):
    out, _ = reference
    model, encoding, meta = load_pretrained(out)  # the run folder: its best checkpoint
    best = json.loads((out / "best.json").read_text())
    assert meta["step"] == best["step"] and encoding.n_vocab == 50257 and not model.training
    with pytest.raises(CourseError, match="neither"):
        load_pretrained(out / "nothing-here")


@pytest.mark.slow
def test_ddp_two_processes_equal_one_process_on_the_whole_batch(data, tmp_path):
    from ch04_pretrain.pretraining.ddp_check import ACCUM, check
    r = check(2, data, tmp_path)
    assert r["max_update"] > 1e-3  # the step did move the weights
    assert r["max_difference"] < 1e-5
    assert set(r["exchanges_at_micro_batch"]) == {ACCUM - 1}  # gradients exchanged on the last micro-batch only
    assert r["train_steps"] == 3
    state = torch.load(r["run"] / "step_000003" / "trainer.pt", weights_only=True)
    assert len(state["ranks"]) == 2 and not torch.equal(state["ranks"][0]["data"], state["ranks"][1]["data"])
    with pytest.raises(CourseError, match="written by 2 process"):
        pretrain(TrainSettings(model=replace(SMALL.model, dropout=0.0), batch_size=2, grad_accum=4, max_steps=4,
                               eval_interval=2, eval_iters=2, log_interval=1, dtype="float32", warmup=1),
              data, r["run"], resume=True, **QUIET)


def test_cli_resume_of_a_finished_run_reports_it_and_trains_nothing(data, tmp_path, capsys):
    """The README's command run again with --resume, once the run is done (or with a lower --max-steps)."""
    from ch04_pretrain.cli import main
    args = ["train", "--data", str(data), "--out", str(tmp_path), "--n-layer", "1", "--n-embd", "32", "--n-head", "1",
            "--block-size", "16", "--batch-size", "2", "--max-steps", "3", "--eval-interval", "3", "--eval-iters", "1",
            "--dtype", "float32", "--peak-flops", "1e12", "--no-progress"]
    main(args)
    first = capsys.readouterr().out
    log_before = (tmp_path / "log.jsonl").read_text()
    lower = list(args)
    lower[lower.index("--max-steps") + 1] = "2"
    for again in (args + ["--resume"], lower + ["--resume"]):
        main(again)
        out = capsys.readouterr().out
        assert "nothing to train" in out and "3 steps, val loss" in out
        summary_line = next(line for line in out.splitlines() if line.startswith(f"{tmp_path}:"))
        assert summary_line in first.splitlines()  # the same steps, val loss and best as the run reported
    assert (tmp_path / "log.jsonl").read_text() == log_before  # nothing trained, nothing logged


# --------------------------------------------------------------------------- command line

def test_cli_train_plot_evaluate(data, tmp_path, capsys):
    from ch04_pretrain.cli import main
    main(["train", "--data", str(data), "--out", str(tmp_path), "--n-layer", "1", "--n-embd", "32", "--n-head",
          "2", "--block-size", "16", "--batch-size", "2", "--max-steps", "3", "--eval-interval", "3",
          "--eval-iters", "1", "--dtype", "float32", "--peak-flops", "1e11", "--no-progress"])
    out = capsys.readouterr().out
    assert "3 steps, val loss" in out and "MFU" in out
    main(["plot", str(tmp_path)])
    assert (tmp_path / "curves.png").stat().st_size > 10_000
    main(["evaluate", str(tmp_path), "--data", str(data), "--iters", "2", "--batch-size", "2", "--device", "cpu"])
    out = capsys.readouterr().out
    assert "val loss" in out and "perplexity" in out
    proc = subprocess.run([sys.executable, "-m", "ch04_pretrain", "train", "--data", str(tmp_path / "missing")],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("error:") and "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- damaged or unusable data

def test_train_and_evaluate_refuse_a_damaged_shard_alike(data, reference, tmp_path):
    import shutil

    from ch04_pretrain.data_pipeline import prepare as P
    from ch04_pretrain.pretraining.evaluate import evaluate

    damaged = tmp_path / "damaged"
    shutil.copytree(data, damaged)
    (damaged / P.VERIFIED).unlink(missing_ok=True)
    P._VERIFIED_HERE.clear()
    raw = bytearray((damaged / "train_00000.bin").read_bytes())
    raw[100] ^= 1
    (damaged / "train_00000.bin").write_bytes(bytes(raw))
    with pytest.raises(CourseError, match="train_00000.bin does not match the sha256.*rerun"):
        pretrain(SMALL, damaged, tmp_path / "run", **QUIET)
    assert not (tmp_path / "run").exists()             # refused before anything was written
    with pytest.raises(CourseError, match="train_00000.bin does not match the sha256.*rerun"):
        evaluate(str(reference[0]), damaged, "val", batch_size=2, iters=1, device="cpu")
    shutil.copy(data / "train_00000.bin", damaged / "train_00000.bin")
    with open(damaged / "train_00000.bin", "r+b") as f:  # truncated: evaluate (of val) refuses it as train does
        f.truncate(10)
    for run in (lambda: pretrain(SMALL, damaged, tmp_path / "run", **QUIET),
                lambda: evaluate(str(reference[0]), damaged, "val", batch_size=2, iters=1, device="cpu")):
        with pytest.raises(CourseError, match="train_00000.bin has 10 bytes"):
            run()


def test_empty_val_split_is_refused_at_start_naming_separator(tmp_path):
    src = tmp_path / "book.txt"
    src.write_text("A long book without separators. " * 200)
    prepare(str(src), tmp_path / "data", workers=0, progress=False, log=lambda *a: None)
    with pytest.raises(CourseError, match="the val split .* --separator"):
        pretrain(SMALL, tmp_path / "data", tmp_path / "run", **QUIET)


def test_evaluate_names_a_foreign_tokenizer_briefly(data, tmp_path):
    from ch03_gpt import save_checkpoint
    from ch04_pretrain.pretraining.evaluate import evaluate

    model = GPT(GPTConfig(vocab_size=700, block_size=16, n_layer=1, n_head=2, n_embd=16))
    save_checkpoint(model, tmp_path, {"tokenizer": {"type": "gpt2-subset", "ids": list(range(699))}})
    with pytest.raises(CourseError) as info:
        evaluate(str(tmp_path), data, device="cpu")
    message = str(info.value)
    assert "gpt2-subset" in message and "699 of GPT-2's ids" in message and len(message) < 250


# --------------------------------------------------------------------------- a tokenizer of our own

@pytest.fixture(scope="module")
def bpe_data(tmp_path_factory):
    """The stories prepared with 300 merges learned on them: 557 ids."""
    folder = tmp_path_factory.mktemp("bpe_shards")
    ranks = folder.parent / "stories-300.tiktoken"
    write_ranks(train_bpe(generate_corpus(), 300).ranks(), ranks)
    prepare("builtin", folder, options=SourceOptions(builtin_bytes=60_000), workers=0, progress=False,
            log=lambda *a: None, tokenizer=ranks)
    return folder


def test_pretrain_takes_the_datas_vocabulary_and_keeps_its_rank_file(bpe_data, tmp_path, capsys):
    summary = pretrain(replace(SMALL, max_steps=2), bpe_data, tmp_path, **QUIET)
    assert summary["parameters"] < GPT(SMALL.model).num_params() / 10  # 557 rows of embedding, not 50,257
    model, meta = load_checkpoint(tmp_path / "step_000002")
    sha256 = json.loads((bpe_data / MANIFEST).read_text())["settings"]["tokenizer"]["ranks_sha256"]
    assert model.config.vocab_size == 557 and meta["settings"]["model"]["vocab_size"] == 557
    assert meta["tokenizer"] == {"type": "bpe", "name": "bpe-557", "ranks_sha256": sha256, "vocab_size": 557,
                                 "eot": 556}
    for step in ("step_000000", "step_000002"):  # every checkpoint is self-contained
        assert (tmp_path / step / RANKS_FILE).read_bytes() == (bpe_data / RANKS_FILE).read_bytes()
    loaded, encoding, meta = load_pretrained(tmp_path)
    assert loaded.config.vocab_size == encoding.n_vocab == 557 and encoding.eot_token == 556
    assert encoding.decode(encoding.encode_ordinary("Mia found a key. 🙂")) == "Mia found a key. 🙂"
    # Resumed with the same settings (vocab_size left at GPT-2's, taken from the data again): it continues.
    resumed = pretrain(replace(SMALL, max_steps=4), bpe_data, tmp_path, resume=True, **QUIET)
    assert resumed["start_step"] == 2 and resumed["steps"] == 4
    # Sampling and evaluation read the run's tokenizer.
    from ch04_pretrain.cli import main
    main(["sample", str(tmp_path), "--prompt", "Once upon a time", "--max-new-tokens", "5", "--device", "cpu"])
    assert capsys.readouterr().out.startswith("Once upon a time")
    main(["evaluate", str(tmp_path), "--data", str(bpe_data), "--iters", "1", "--batch-size", "2", "--device", "cpu"])
    assert "perplexity" in capsys.readouterr().out


def test_a_vocabulary_that_is_not_the_datas_is_refused(data, bpe_data, tmp_path):
    with pytest.raises(CourseError, match=r"^the model's vocab_size 1,000 does not match the tokenizer of .* "
                                          r"\(bpe-557, 557 ids\); set it to 557, or leave it at GPT-2's 50,257"):
        pretrain(replace(SMALL, model=replace(SMALL.model, vocab_size=1000)), bpe_data, tmp_path / "a", **QUIET)
    with pytest.raises(CourseError, match=r"vocab_size 557 does not match the tokenizer of .* \(gpt2, 50,257 ids\)"):
        pretrain(replace(SMALL, model=replace(SMALL.model, vocab_size=557)), data, tmp_path / "b", **QUIET)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # refused before anything was written


def test_resuming_on_data_of_another_tokenizer_is_refused(data, bpe_data, tmp_path):
    pretrain(replace(SMALL, max_steps=2), data, tmp_path, **QUIET)
    with pytest.raises(CourseError, match=r"trained on data of another tokenizer \(gpt2, the data now bpe-557\)"):
        pretrain(replace(SMALL, max_steps=4), bpe_data, tmp_path, resume=True, **QUIET)


def test_damaged_rank_file_copies_and_records_are_refused(data, bpe_data, reference, tmp_path):
    import shutil

    from ch04_pretrain.pretraining.evaluate import evaluate

    damaged = tmp_path / "data"
    shutil.copytree(bpe_data, damaged)
    raw = bytearray((damaged / RANKS_FILE).read_bytes())
    raw[5] ^= 1
    (damaged / RANKS_FILE).write_bytes(bytes(raw))
    with pytest.raises(CourseError, match=r"tokenizer.tiktoken has sha256 .* the rank file is damaged or not the one "
                                          r"recorded"):
        pretrain(SMALL, damaged, tmp_path / "run", **QUIET)
    shutil.copy(bpe_data / RANKS_FILE, damaged / RANKS_FILE)
    manifest = json.loads((damaged / MANIFEST).read_text())
    manifest["settings"]["tokenizer"]["vocab_size"] = 50_257  # a model this wide would train 49,700 dead rows
    (damaged / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CourseError, match=r"does not describe the rank file .*; the manifest is damaged"):
        pretrain(SMALL, damaged, tmp_path / "run", **QUIET)
    manifest["settings"]["tokenizer"]["ranks_sha256"] = "f" * 10_000
    (damaged / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CourseError, match=r"^the sha256 recorded for .* is not 64 hexadecimal digits") as info:
        pretrain(SMALL, damaged, tmp_path / "run", **QUIET)
    assert len(str(info.value)) < 300  # a hostile record is not printed back
    run = tmp_path / "run"
    pretrain(replace(SMALL, max_steps=2), bpe_data, run, **QUIET)
    (run / "step_000002" / RANKS_FILE).write_bytes(bytes(raw))
    with pytest.raises(CourseError, match=r"step_000002/tokenizer.tiktoken has sha256"):
        load_pretrained(run)
    # A model and shards of different tokenizers: refused by name, both ways.
    with pytest.raises(CourseError, match=r"does not use the shards' tokenizer, gpt2 \(its tokenizer: 'bpe', "
                                          r"'bpe-557'"):
        evaluate(str(run / "step_000000"), data, device="cpu")
    with pytest.raises(CourseError, match=r"does not use the shards' tokenizer, bpe-557 \(its tokenizer: 'gpt2'\)"):
        evaluate(str(reference[0]), bpe_data, device="cpu")
