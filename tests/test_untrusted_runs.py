"""A run's own files are untrusted, a run owns its folder, and every stop is honest.

- config.json, latest.json, best.json, trainer.pt, model.safetensors and log.jsonl, damaged in generated ways
  (hypothesis), load or are refused in one line (`CourseError`), never with another exception;
- a model's size, from a flag or a file, is estimated before it is built and refused when it cannot fit;
- a second command on a run's folder is refused at once, naming the first; a lock left by a killed process
  is taken over;
- Ctrl-C ends `ch04_pretrain train` with status 130 after saving, and ends any command quietly while it imports.
"""

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

import coursekit.hardware
from ch03_gpt import GPT, GPTConfig, load_checkpoint, load_weights
from ch04_pretrain.data_pipeline.prepare import prepare
from ch04_pretrain.data_pipeline.sources import SourceOptions
from ch04_pretrain.pretraining.settings import TrainSettings
from ch04_pretrain.pretraining.trainer import pretrain, read_log
from ch04_pretrain.pretraining.training_state import find_checkpoint, load_training_state, read_pointer
from coursekit import CourseError, run_cli
from coursekit.files import LOCK, own_folder

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
TINY = TrainSettings(model=GPTConfig(vocab_size=50257, block_size=16, n_layer=1, n_head=1, n_embd=16),
                     batch_size=2, max_steps=3, warmup=1, eval_interval=3, eval_iters=1, log_interval=1)
QUIET = dict(progress=False, log=lambda message: None, peak_flops=1e12)
FEW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def assert_one_line(error: CourseError) -> None:
    text = str(error)
    assert text and "\n" not in text and len(text) < 500, text


def damage(path: Path, valid: bytes, kind: str, data, flip_below: int | None = None) -> None:
    """Write to `path` the bytes `valid` damaged the `kind` of way every file can be: "cut" short, other "bytes"
    altogether, or one bit flipped ("flip": in the first `flip_below` bytes; default anywhere)."""
    if kind == "cut":
        path.write_bytes(valid[:data.draw(st.integers(0, len(valid) - 1))])
    elif kind == "bytes":
        path.write_bytes(data.draw(st.binary(max_size=256)))
    else:
        assert kind == "flip", kind
        raw = bytearray(valid)
        raw[data.draw(st.integers(0, (flip_below or len(raw)) - 1))] ^= 1 << data.draw(st.integers(0, 7))
        path.write_bytes(bytes(raw))


def loads_or_refuses(load) -> object:
    """Call `load()`: it returns, or raises a one-line CourseError; any other exception fails the test."""
    try:
        return load()
    except CourseError as e:
        assert_one_line(e)
        return None


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shards")
    prepare("builtin", folder, options=SourceOptions(builtin_bytes=60_000), workers=0, progress=False,
            log=lambda message: None)
    return folder


@pytest.fixture(scope="module")
def run(shards, tmp_path_factory) -> Path:
    """A finished three-step run: the files every test here damages a copy of."""
    folder = tmp_path_factory.mktemp("run")
    pretrain(TINY, shards, folder, **QUIET)
    return folder


@pytest.fixture
def small_machine(monkeypatch):
    """A machine with 256 MB available: whatever a generated file asks for beyond that must be refused."""
    monkeypatch.setattr(coursekit.hardware, "memory_available", lambda device="cpu": 256 * 2**20)


def copy_checkpoint(run: Path, dest: Path) -> Path:
    import shutil
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(find_checkpoint(run), dest)
    return dest


# --------------------------------------------------------------------------- sizes

@pytest.mark.parametrize("change", [dict(n_layer=10**9), dict(n_embd=2**20, n_head=1), dict(vocab_size=10**12)])
def test_a_model_that_cannot_fit_is_refused_before_it_is_built(change):
    start = time.perf_counter()
    with pytest.raises(CourseError, match=r"needs about [\d,.]+ [MGT]B, and this machine has [\d,.]+ [MGT]B "
                                          r"available; choose a smaller model") as info:
        GPT(GPTConfig(**change))
    assert_one_line(info.value)
    assert time.perf_counter() - start < 5  # refused from the estimate, not after building layers


def test_the_estimate_is_the_model_that_gets_built():
    for cfg in (GPTConfig(), GPTConfig(bias=False, n_layer=2), GPTConfig(vocab_size=50257, n_embd=48, n_head=3)):
        assert cfg.num_params() == GPT(cfg).num_params()


def test_a_million_layers_is_refused_on_a_machine_that_cannot_hold_them(small_machine):
    with pytest.raises(CourseError, match="1,000,000 layers.*needs about 50.8 GB, and this machine has 268.4 MB"):
        GPT(GPTConfig(vocab_size=50257, n_layer=10**6, n_embd=32, n_head=1))


def test_training_is_refused_when_its_state_cannot_fit(shards, tmp_path, monkeypatch):
    # The weights fit (about 3 MB) but a batch of 4,096 x 16 tokens' logits does not fit in 256 MB.
    monkeypatch.setattr(coursekit.hardware, "memory_available", lambda device="cpu": 256 * 2**20)
    from dataclasses import replace
    with pytest.raises(CourseError, match="training a GPT of .* micro-batches of 4096 x 16 tokens needs about"):
        pretrain(replace(TINY, batch_size=4096), shards, tmp_path / "run", **QUIET)
    assert not (tmp_path / "run").exists()  # refused before anything was written


@pytest.mark.parametrize("argv", [
    ["-m", "ch04_pretrain", "train", "--n-layer", "1000000000"],
    ["-m", "ch02_attention", "--n-embd", "1000000000", "--steps", "1"],
    ["-m", "ch03_gpt", "train", "--n-embd", "1000000000", "--n-head", "1"],
], ids=["ch04-n-layer", "ch02-n-embd", "ch03-n-embd"])
def test_huge_sizes_from_flags_are_one_line_and_status_2(argv, shards, tmp_path):
    if argv[1] == "ch04_pretrain":
        argv = argv + ["--data", str(shards), "--out", str(tmp_path / "run"), "--no-progress"]
    elif argv[1] == "ch03_gpt":
        argv = argv + ["--out", str(tmp_path / "run"), "--no-progress"]
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=ENV, cwd=tmp_path,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "choose a smaller model" in proc.stderr, proc.stderr


def test_a_lora_rank_above_the_layers_rank_is_refused():
    from ch05_finetune.lora import apply_lora
    model = GPT(GPTConfig(n_embd=32, n_head=2, n_layer=1))
    with pytest.raises(CourseError, match=r"LoRA rank 1,000,000,000 is above the rank of a 96 x 32 layer \(32\)"):
        apply_lora(model, rank=10**9)


# --------------------------------------------------------------------------- the run's files

@pytest.mark.parametrize("change, message", [
    (dict(n_layer=10**9), "config.json: a GPT of .* needs about"),
    (dict(n_embd=2**20, n_head=1), "config.json: a GPT of .* needs about"),
    (dict(vocab_size=10**9), "config.json: a GPT of .* needs about"),
    (dict(n_layer=2.5), r"config.json: n_layer must be positive \(a whole number >= 1\), got 2.5"),
    (dict(bias="yes"), "config.json: bias must be true or false"),
])
def test_a_damaged_config_is_refused_by_sample_evaluate_and_chapter_5(run, shards, tmp_path, capsys, change, message):
    from ch04_pretrain.cli import main as ch04
    from ch05_finetune.cli import main as ch05
    checkpoint = copy_checkpoint(run, tmp_path / "ckpt")
    meta = json.loads((checkpoint / "config.json").read_text())
    meta["model"].update(change)
    (checkpoint / "config.json").write_text(json.dumps(meta))
    for argv in (["sample", str(checkpoint), "--max-new-tokens", "2"],
                 ["evaluate", str(checkpoint), "--data", str(shards), "--iters", "1"]):
        with pytest.raises(SystemExit) as exit_info:
            run_cli(ch04, argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert __import__("re").search(message, err), err
    with pytest.raises(SystemExit) as exit_info:
        run_cli(ch05, ["classify", "--from", str(checkpoint), "--out", str(tmp_path / "out"), "--no-progress"])
    assert exit_info.value.code == 2
    assert __import__("re").search(message, capsys.readouterr().err)


@pytest.mark.parametrize("pointer, message", [
    ({"dir": "../../elsewhere", "step": 3}, r"its dir is '../../elsewhere', not 'step_000003'"),
    ({"dir": "/etc", "step": 3}, "its dir is '/etc'"),
    ({"dir": "step_000003", "step": "3"}, "its step is 3, not a whole number"),
    ({"dir": "step_000009", "step": 9}, "points to step_000009, which is missing"),
])
def test_latest_json_can_only_name_a_checkpoint_of_its_own_run(run, tmp_path, pointer, message):
    import shutil
    folder = tmp_path / "run"
    shutil.copytree(run, folder)
    (folder / "latest.json").write_text(json.dumps(pointer))
    with pytest.raises(CourseError, match=message) as info:
        find_checkpoint(folder)
    assert_one_line(info.value)


json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                         max_size=3), max_leaves=8)


def damaged_json(valid: dict):
    """A JSON text made from `valid` with one kind of damage: a field's value replaced, a field removed or added,
    the text cut short, or no JSON at all."""
    def replace_value(data):
        key, value = data
        return json.dumps({**valid, key: value}, allow_nan=True)

    keys = st.sampled_from(sorted(valid))
    text = json.dumps(valid)
    return st.one_of(
        st.tuples(keys, json_values).map(replace_value),
        keys.map(lambda k: json.dumps({x: v for x, v in valid.items() if x != k})),
        st.tuples(st.text(max_size=8), json_values).map(lambda kv: json.dumps({**valid, kv[0]: kv[1]},
                                                                            allow_nan=True)),
        st.integers(0, len(text)).map(lambda n: text[:n]),
        st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
        json_values.map(lambda v: json.dumps(v, allow_nan=True)),
    )


@FEW
@given(data=st.data())
def test_generated_model_configs_load_or_are_refused_in_one_line(run, tmp_path, small_machine, data):
    checkpoint = copy_checkpoint(run, tmp_path / "ckpt")
    meta = json.loads((checkpoint / "config.json").read_text())
    model_part = data.draw(damaged_json(meta["model"]))
    try:
        meta["model"] = json.loads(model_part)
    except ValueError:
        meta["model"] = model_part
    (checkpoint / "config.json").write_text(json.dumps(meta, allow_nan=True))
    loads_or_refuses(lambda: load_checkpoint(checkpoint))
    (checkpoint / "config.json").write_text(data.draw(damaged_json(meta)))
    loads_or_refuses(lambda: load_checkpoint(checkpoint))


@FEW
@given(data=st.data())
def test_generated_pointers_and_config_steps_load_or_are_refused_in_one_line(run, tmp_path, data):
    import shutil
    folder = tmp_path / "run"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(run, folder)
    for name in ("latest.json", "best.json"):
        valid = json.loads((folder / name).read_text())
        (folder / name).write_text(data.draw(damaged_json(valid)))
        pointer = loads_or_refuses(lambda: read_pointer(folder, name))  # noqa: B023 (called at once)
        if pointer is not None:  # whatever it accepts is a checkpoint folder of this run
            assert (folder / pointer["dir"]).resolve().parent == folder.resolve()
    loads_or_refuses(lambda: load_training_state(find_checkpoint(folder)))


@FEW
@given(data=st.data())
def test_generated_trainer_states_load_or_are_refused_in_one_line(run, tmp_path, data):
    checkpoint = copy_checkpoint(run, tmp_path / "ckpt")
    trainer = checkpoint / "trainer.pt"
    valid = trainer.read_bytes()
    kind = data.draw(st.sampled_from(["cut", "bytes", "flip", "structure"]))
    if kind != "structure":
        damage(trainer, valid, kind, data)
    else:  # a well-formed file with one entry of the wrong kind
        state = torch.load(trainer, weights_only=True)
        key = data.draw(st.sampled_from(sorted(state)))
        state[key] = data.draw(st.none() | st.integers() | st.text(max_size=5) | st.just(torch.zeros(3))
                               | st.lists(st.integers(), max_size=3))
        torch.save(state, trainer)
    loads_or_refuses(lambda: load_training_state(checkpoint))


def test_a_damaged_trainer_state_stops_resume_in_one_line(run, shards, tmp_path):
    import shutil
    folder = tmp_path / "run"
    shutil.copytree(run, folder)
    trainer = find_checkpoint(folder) / "trainer.pt"
    state = torch.load(trainer, weights_only=True)
    state["ranks"][0]["data"] = torch.zeros(3, dtype=torch.uint8)  # a generator state of the wrong size
    torch.save(state, trainer)
    from dataclasses import replace
    with pytest.raises(CourseError, match="trainer.pt does not fit this run") as info:
        pretrain(replace(TINY, max_steps=5), shards, folder, resume=True, **QUIET)
    assert_one_line(info.value)


@FEW
@given(data=st.data())
def test_generated_weight_files_load_or_are_refused_in_one_line(tmp_path, data):
    model = GPT(GPTConfig(vocab_size=11, block_size=4, n_layer=1, n_head=1, n_embd=4))
    weights = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}, str(weights))
    valid = weights.read_bytes()
    header_length = int.from_bytes(valid[:8], "little")
    kind = data.draw(st.sampled_from(["cut", "bytes", "flip", "header", "length"]))
    if kind in ("cut", "bytes", "flip"):
        damage(weights, valid, kind, data, flip_below=8 + header_length)  # a bit of the length or the header
    elif kind == "header":
        header = json.loads(valid[8:8 + header_length])
        name = data.draw(st.sampled_from(sorted(header)))
        header[name] = data.draw(json_values | st.fixed_dictionaries(
            {"dtype": st.sampled_from(["F32", "F16", "I64", "X"]),
             "shape": st.lists(st.integers(0, 2**40), max_size=3),
             "data_offsets": st.lists(st.integers(0, 2**40), min_size=2, max_size=2)}))
        text = json.dumps(header).encode()
        weights.write_bytes(len(text).to_bytes(8, "little") + text + valid[8 + header_length:])
    else:
        weights.write_bytes(data.draw(st.integers(0, 2**64 - 1)).to_bytes(8, "little") + valid[8:])
    loads_or_refuses(lambda: load_weights(model, weights))


@FEW
@given(lines=st.lists(st.binary(max_size=40) | json_values.map(lambda v: json.dumps(v, allow_nan=True).encode()),
                      max_size=6))
def test_any_log_reads_as_the_records_it_holds(tmp_path, lines):
    (tmp_path / "log.jsonl").write_bytes(b"\n".join(lines))
    for record in read_log(tmp_path):
        assert isinstance(record, dict) and isinstance(record["step"], int)


# --------------------------------------------------------------------------- a run owns its folder

HOLD = """
import sys, time
from coursekit.files import own_folder
with own_folder(sys.argv[1], "the folder"):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_held_folder_is_refused_naming_its_holder_and_taken_over_once_it_is_killed(tmp_path, capsys):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              env=ENV)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(CourseError, match=rf"the folder is in use by another command \(pid {holder.pid} on "
                                              rf".*-c .*\); wait for it to end, or choose another folder") as info, \
                own_folder(tmp_path, "the folder"):
            pass
        assert_one_line(info.value)
    finally:
        holder.kill()  # SIGKILL: no chance to release the lock
        holder.wait()
    # one process may enter a folder it holds again
    with own_folder(tmp_path, "the folder"), own_folder(tmp_path, "the folder"):
        pass
    assert f"taking over {tmp_path} from pid {holder.pid}" in capsys.readouterr().err
    assert not (tmp_path / LOCK).exists()  # released properly: nothing left in the folder, nobody to name
    with own_folder(tmp_path, "the folder"):
        pass
    assert "taking over" not in capsys.readouterr().err


@FEW
@given(content=st.binary(max_size=200))
def test_any_lock_file_content_is_taken_over(tmp_path, content):
    (tmp_path / LOCK).write_bytes(content)
    with own_folder(tmp_path, "the folder"):
        assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()


def test_a_refused_command_leaves_no_folder_behind(tmp_path):
    with pytest.raises(CourseError), own_folder(tmp_path / "new", "the folder"):
        raise CourseError("refused")
    assert not (tmp_path / "new").exists()


def train_command(shards: Path, out: Path, *more: str) -> list[str]:
    return [sys.executable, "-m", "ch04_pretrain", "train", "--data", str(shards), "--out", str(out),
            "--n-layer", "1", "--n-embd", "16", "--n-head", "1", "--block-size", "16", "--batch-size", "2",
            "--peak-flops", "1e12", "--no-progress", *more]


@pytest.mark.slow
def test_two_trainings_on_one_folder_and_ctrl_c(shards, tmp_path):
    """The second run on a folder is refused at once; Ctrl-C saves the first and exits 130; its log is its own."""
    out = tmp_path / "run"
    first = subprocess.Popen(train_command(shards, out, "--max-steps", "100000", "--eval-interval", "100000",
                                           "--log-interval", "1"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=tmp_path)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(read_log(out)) < 3:
            time.sleep(0.1)
        second = subprocess.run(train_command(shards, out, "--max-steps", "5", "--seed", "2"), capture_output=True,
                                text=True, env=ENV, cwd=tmp_path, timeout=120)
        assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
        assert second.stderr.startswith(f"error: the run folder {out} is in use by another command "
                                        f"(pid {first.pid} on {os.uname().nodename}: "
                                        "python -m ch04_pretrain train --data "), second.stderr
        first.send_signal(signal.SIGINT)
        stdout, stderr = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 130, stderr
    assert "interrupted: saved step" in stdout and stderr.strip().endswith("interrupted"), (stdout, stderr)
    assert "Traceback" not in stderr
    saved = json.loads((out / "latest.json").read_text())["step"]
    assert [r["step"] for r in read_log(out) if "loss" in r] == list(range(1, saved + 1))  # one run's lines


def test_an_interrupt_while_importing_ends_quietly():
    """Once coursekit is imported, an interrupt nobody catches (as during `import torch`) prints one line."""
    code = "import coursekit, os, signal; os.kill(os.getpid(), signal.SIGINT); import time; time.sleep(5)"
    # started as from a terminal: a parent in the background (nohup, `&`) passes SIGINT on ignored
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.returncode in (130, -signal.SIGINT)  # a shell sees 130 either way
    assert proc.stderr == "interrupted\n"


@pytest.mark.parametrize("entry", ["ch01_bigram/__init__.py", "ch02_attention/__init__.py", "ch03_gpt/__init__.py",
                                   "ch04_pretrain/__init__.py", "ch05_finetune/__init__.py", "course.py"])
def test_every_command_imports_coursekit_before_anything_slow(entry):
    tree = ast.parse((ROOT / entry).read_text())
    imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
               and not (isinstance(node, ast.ImportFrom) and node.module == "__future__")]
    first_heavy = next(i for i, node in enumerate(imports)
                       if not (isinstance(node, ast.Import) and node.names[0].name in {"argparse", "json", "shutil",
                                                                                        "time"})
                       and not (isinstance(node, ast.ImportFrom) and node.module in {"collections.abc", "dataclasses",
                                                                                      "pathlib", "typing"}))
    node = imports[first_heavy]
    assert isinstance(node, ast.Import) and node.names[0].name == "coursekit", ast.dump(node)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> dict[str, Path]:
    """A classifier checkpoint and an instruction-tuned one of Chapter 5 (untrained: only their files matter)."""
    from ch03_gpt import save_checkpoint
    from ch05_finetune.classify import add_classifier_head, save_classifier
    from ch05_finetune.template import TEMPLATES
    from ch05_finetune.vocab import Codec

    codec, cfg = Codec(), GPTConfig(vocab_size=50257, block_size=16, n_layer=1, n_head=1, n_embd=8)
    folder = tmp_path_factory.mktemp("tuned")
    save_classifier(add_classifier_head(GPT(cfg), 2), codec, ["ham", "spam"], folder / "classify")
    save_checkpoint(GPT(cfg), folder / "instruct", {"tokenizer": codec.to_meta(), "finetune": {
        "type": "instruct", "template": TEMPLATES["compact"].to_meta()}})
    return {"classify": folder / "classify", "instruct": folder / "instruct"}


@FEW
@given(data=st.data())
def test_generated_chapter_5_checkpoints_load_or_are_refused_in_one_line(tuned, tmp_path, small_machine, data):
    import shutil

    from ch05_finetune.chat import load_chat_model
    from ch05_finetune.classify import load_classifier
    kind = data.draw(st.sampled_from(sorted(tuned)))
    checkpoint = tmp_path / kind
    if checkpoint.exists():
        shutil.rmtree(checkpoint)
    shutil.copytree(tuned[kind], checkpoint)
    meta = json.loads((checkpoint / "config.json").read_text())
    part = data.draw(st.sampled_from(["finetune", "tokenizer", "whole"]))
    if part == "whole":
        text = data.draw(damaged_json(meta))
    else:
        damaged = data.draw(damaged_json(meta[part]))
        try:
            meta[part] = json.loads(damaged)
        except ValueError:
            meta[part] = damaged
        text = json.dumps(meta, allow_nan=True)
    (checkpoint / "config.json").write_text(text)
    load = load_classifier if kind == "classify" else load_chat_model
    loads_or_refuses(lambda: load(checkpoint))


def test_a_corpus_larger_than_memory_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from ch01_bigram.data import read_text_file
    corpus = tmp_path / "big.txt"
    corpus.write_text("to be or not to be\n" * 1000)
    monkeypatch.setattr(coursekit.hardware, "memory_available", lambda device="cpu": 100_000)
    with pytest.raises(CourseError, match=r"big.txt \(19,000 bytes, then its text and its token ids\) needs about "
                                          r"190,000 bytes, and this machine has 100,000 bytes available; "
                                          "use a part of it"):
        read_text_file(corpus)
