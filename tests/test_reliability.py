"""Reliability across chapters: files get the user's umask; Ctrl-C in Chapter 5's fine-tuning keeps the best
model so far; a classifier refuses data of other classes; error lines stay short."""

import os
import stat
from pathlib import Path

import pytest
import torch

from ch03_gpt import GPT, GPTConfig, load_checkpoint
from ch04_pretrain.data_pipeline.prepare import prepare
from ch04_pretrain.data_pipeline.sources import SourceOptions
from ch04_pretrain.pretraining.settings import TrainSettings
from ch04_pretrain.pretraining.trainer import pretrain
from ch05_finetune import instruct as instruct_module
from ch05_finetune.builtin import generate_instructions
from ch05_finetune.classify import (
    add_classifier_head,
    encode_texts,
    evaluate_classifier,
    finetune_classifier,
    load_classifier,
    predict,
    save_classifier,
)
from ch05_finetune.instruct import answer_loss, encode_example, instruction_tune, split_instructions
from ch05_finetune.labelled import LabelledData, builtin_reviews, split_balanced
from ch05_finetune.loop import FitConfig
from ch05_finetune.template import TEMPLATES
from ch05_finetune.vocab import Codec, builtin_token_ids
from coursekit import CourseError, run_cli

QUIET = dict(progress=False, log=None)


@pytest.fixture(scope="module")
def codec():
    return Codec(list(builtin_token_ids()))


def small_gpt(codec, block=64):
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=codec.vocab_size, block_size=block, n_layer=1, n_head=2, n_embd=16))


# --------------------------------------------------------------------------- file modes

def modes_under_umask_027(tmp_path, make) -> dict[str, str]:
    """Run `make(tmp_path)` under umask 027; the files (relative path -> mode) whose mode differs from that of
    an ordinary new file, which must be 0640."""
    old = os.umask(0o027)
    try:
        (tmp_path / "ordinary").write_text("x")
        make(tmp_path)
    finally:
        os.umask(old)
    expected = stat.S_IMODE((tmp_path / "ordinary").stat().st_mode)
    assert expected == 0o640
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) > 3
    return {str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files
            if stat.S_IMODE(p.stat().st_mode) != expected}


def prepared_data(folder: Path) -> Path:
    prepare("builtin", folder / "data", options=SourceOptions(builtin_bytes=30_000), workers=0, progress=False,
            log=lambda *a: None)
    return folder / "data"


def test_shards_manifest_and_classifier_files_get_the_users_umask(tmp_path, codec):
    def make(folder):
        from ch04_pretrain.data_pipeline.loader import load_splits
        load_splits(prepared_data(folder))  # writes verified.json too
        save_classifier(add_classifier_head(small_gpt(codec), 2), codec, ["a", "b"], folder / "cls")
    assert modes_under_umask_027(tmp_path, make) == {}
    names = {p.name for p in tmp_path.rglob("*")}
    assert {"manifest.json", "train_00000.bin", "val_00000.bin", "verified.json", "config.json",
            "model.safetensors"} <= names


def test_pretraining_checkpoints_get_the_users_umask(tmp_path):
    settings = TrainSettings(model={"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16}, batch_size=2,
                             grad_accum=1, max_steps=2, eval_interval=2, eval_iters=1, log_interval=1, dtype="float32")

    def make(folder):
        pretrain(settings, prepared_data(folder), folder / "run", device="cpu", peak_flops=1e11, progress=False,
                 log=lambda *a: None)
    assert modes_under_umask_027(tmp_path, make) == {}


def test_the_one_weights_writer_is_atomic_and_gets_the_users_umask(tmp_path):
    """`write_weights` writes every model.safetensors: Chapter 3's checkpoints, Chapter 5's classifiers (above)
    and the main job's bigram model, each with the mode of any new file and nothing left beside it."""
    from safetensors.torch import load_file, save

    import course
    from ch01_bigram import generate_corpus
    from ch03_gpt import save_checkpoint
    from ch03_gpt.checkpoint import write_weights

    state = {"a": torch.arange(6.0).reshape(2, 3).t(), "b": torch.ones(2)}  # "a" is not contiguous
    plan = course.Plan.quick()

    def make(folder):
        write_weights(state, folder / "w" / "model.safetensors")
        write_weights(state, folder / "w" / "model.safetensors")  # replacing a file keeps the mode too
        save_checkpoint(GPT(GPTConfig(vocab_size=8, block_size=4, n_layer=1, n_head=1, n_embd=4)), folder / "gpt")
        (folder / "corpus.txt").write_text(generate_corpus(plan.seed, plan.corpus_bytes), encoding="utf-8")
        _settings, work = course.bigram_stage(plan, folder / "corpus.txt", "cpu", progress=False)
        work((folder / "bigram").resolve())
    assert modes_under_umask_027(tmp_path, make) == {}
    assert (tmp_path / "w" / "model.safetensors").read_bytes() == save({k: v.contiguous() for k, v in state.items()})
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["model.safetensors"]  # no temporary file left
    assert set(load_file(str(tmp_path / "bigram" / "model.safetensors"))) == {"token_embedding_table.weight"}


def test_the_weights_writer_gives_0644_under_umask_022(tmp_path):
    from ch03_gpt.checkpoint import write_weights

    old = os.umask(0o022)
    try:
        path = write_weights({"w": torch.ones(3)}, tmp_path / "model.safetensors")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not safetensors' own 0600


def test_a_weights_write_that_fails_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    """A crash or a full disk halfway through writing: the old weights stay, and no partial file is left."""
    from safetensors.torch import load_file

    from ch03_gpt import checkpoint
    from ch03_gpt.checkpoint import write_weights

    path = write_weights({"w": torch.ones(3)}, tmp_path / "model.safetensors")
    before = path.read_bytes()

    def half_then_full_disk(tensors, filename):
        Path(filename).write_bytes(b"\x08\x00\x00\x00")  # the start of a header, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", half_then_full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_weights({"w": torch.zeros(3)}, path)
    assert path.read_bytes() == before and torch.equal(load_file(str(path))["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]  # the temporary file is gone
    with pytest.raises(OSError):
        write_weights({"w": torch.zeros(3)}, tmp_path / "new" / "model.safetensors")
    assert list((tmp_path / "new").iterdir()) == []  # a first write that fails leaves nothing at all


# --------------------------------------------------------------------------- Ctrl-C in fine-tuning

class StopAt:
    """A loss function wrapper that raises KeyboardInterrupt at the n-th training step (counted from 1)."""

    def __init__(self, loss_fn, n):
        self.loss_fn, self.n, self.calls = loss_fn, n, 0

    def __call__(self, *args):
        if torch.is_grad_enabled():  # training steps only; evaluation runs under no_grad
            self.calls += 1
            if self.calls == self.n:
                raise KeyboardInterrupt
        return self.loss_fn(*args)


def instruction_splits():
    return split_instructions(generate_instructions(80))


@pytest.mark.parametrize("stop_step, saved_epoch", [(9, 1), (3, None)])
def test_ctrl_c_in_instruct_saves_the_best_model_so_far(tmp_path, codec, monkeypatch, capsys, stop_step,
                                                        saved_epoch):
    """Four steps an epoch: stopping in epoch 3 keeps epoch 1 or 2 (the lower val loss); in epoch 1, the current
    weights. Then the interrupt goes on, and run_cli turns it into exit status 130."""
    monkeypatch.setattr(instruct_module, "lm_loss", StopAt(instruct_module.lm_loss, stop_step))
    model, template = small_gpt(codec), TEMPLATES["compact"]
    splits = instruction_splits()
    epochs = []
    cfg = FitConfig(epochs=4, batch_size=16, lr=5e-3, warmup=2)

    def command(argv):
        instruction_tune(model, codec, template, splits, cfg, tmp_path, "builtin", progress=False,
                         log=epochs.append)

    with pytest.raises(SystemExit) as exit_info:
        run_cli(command, [])
    assert exit_info.value.code == 130
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == "interrupted" and err[-2].startswith("interrupted in epoch")
    saved, meta = load_checkpoint(tmp_path)
    note = meta["finetune"]["interrupted"]
    assert (meta["finetune"]["type"] == "instruct" and note["saved_epoch"] is not None) or saved_epoch is None
    monkeypatch.undo()
    val = [encode_example(codec, template, ex, 64) for ex in splits[1]]
    if saved_epoch is None:
        assert note == {"epoch": 1, "steps": 2, "saved_epoch": None} and "the current model" in err[-2]
        assert torch.equal(saved.transformer.wte.weight, model.transformer.wte.weight)
    else:
        losses = {int(line.split()[1].rstrip(":")): float(line.split()[-1]) for line in epochs
                  if line.startswith("epoch ")}
        best = min((1, 2), key=losses.get)
        assert note == {"epoch": 3, "steps": 8, "saved_epoch": best}
        assert f"the best model so far (epoch {best}, val loss {losses[best]:.3f})" in err[-2]
        assert answer_loss(saved, val, codec.eot) == pytest.approx(losses[best], abs=6e-4)  # logged to 3 places


def test_ctrl_c_before_any_step_saves_nothing(tmp_path, codec, monkeypatch, capsys):
    monkeypatch.setattr(instruct_module, "lm_loss", StopAt(instruct_module.lm_loss, 1))
    with pytest.raises(KeyboardInterrupt):
        instruction_tune(small_gpt(codec), codec, TEMPLATES["compact"], instruction_splits(),
                         FitConfig(epochs=2, batch_size=16), tmp_path / "out", "builtin", **QUIET)
    assert not (tmp_path / "out").exists()
    assert "nothing saved" in capsys.readouterr().err


def test_ctrl_c_in_classify_saves_the_best_classifier_with_lora_merged(tmp_path, codec, monkeypatch, capsys):
    from ch05_finetune import classify as classify_module

    train, val, _ = split_balanced(builtin_reviews(200))
    model = small_gpt(codec)
    real = classify_module.class_logits
    calls = []

    def interrupting(*args):
        if torch.is_grad_enabled():
            calls.append(1)
            if len(calls) == 2 * 3 + 1:  # the first step of epoch 3 (three steps an epoch)
                raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(classify_module, "class_logits", interrupting)
    epochs = []
    with pytest.raises(KeyboardInterrupt):
        finetune_classifier(model, codec, train, val, FitConfig(epochs=4, batch_size=64, lr=3e-3), lora_rank=2,
                            progress=False, log=epochs.append, out=tmp_path, meta={"data": "builtin"})
    monkeypatch.undo()
    loaded, _, labels = load_classifier(tmp_path)
    assert labels == train.label_names
    accuracies = {int(line.split()[1].rstrip(":")): float(line.split()[-1]) for line in epochs
                  if line.startswith("epoch ")}
    best = max((1, 2), key=accuracies.get)
    assert f"saved the best model so far (epoch {best}, val accuracy" in capsys.readouterr().err
    seqs = encode_texts(codec, val.texts, 64)
    accuracy = (predict(loaded, seqs, codec.eot) == torch.tensor(val.labels)).float().mean().item()
    assert accuracy == pytest.approx(accuracies[best], abs=1e-3)
    assert not any("lora" in k for k in loaded.state_dict())


# --------------------------------------------------------------------------- classes and short error lines

def test_a_classifier_refuses_data_of_other_classes(tmp_path, codec):
    model = add_classifier_head(small_gpt(codec), 2)
    save_classifier(model, codec, ["ham", "spam"], tmp_path)
    loaded, _, _ = load_classifier(tmp_path)
    reviews = builtin_reviews(20)
    with pytest.raises(CourseError, match="classifier's classes are ham, spam; the data's are negative, positive"):
        evaluate_classifier(loaded, codec, reviews)
    spam = LabelledData(reviews.texts, reviews.labels, ["ham", "spam"])
    assert 0 <= evaluate_classifier(loaded, codec, spam)["accuracy"] <= 1


def test_ch05_evaluate_cli_refuses_other_classes_with_status_2(tmp_path, codec, capsys):
    from ch05_finetune.cli import main

    save_classifier(add_classifier_head(small_gpt(codec), 2), codec, ["ham", "spam"], tmp_path,
                    {"data": "sms_spam"})
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, ["evaluate", "--checkpoint", str(tmp_path), "--data", "builtin", "--device", "cpu"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: the classifier's classes are ham, spam")


def test_no_error_line_prints_a_vocabulary(tmp_path, codec):
    """A trimmed-vocabulary checkpoint given where GPT-2's tokenizer is needed: the message names the kind."""
    from ch03_gpt import save_checkpoint
    from ch04_pretrain.pretraining.evaluate import describe_tokenizer

    save_checkpoint(small_gpt(codec), tmp_path, {"tokenizer": codec.to_meta()})
    assert len(describe_tokenizer(codec.to_meta())) < 100
    assert describe_tokenizer({"type": "char", "chars": "abc" * 1000}) == "'char', 3,000 characters"
    assert Path(tmp_path / "config.json").stat().st_size > 3000  # what the old message printed on one line


def test_ctrl_c_in_the_classify_command_saves_the_best_classifier_and_exits_130(tmp_path, codec, monkeypatch,
                                                                                capsys):
    from ch03_gpt import save_checkpoint
    from ch05_finetune import classify as classify_module
    from ch05_finetune import cli as ch05_cli

    start = tmp_path / "start"
    save_checkpoint(small_gpt(codec), start, {"tokenizer": codec.to_meta()})
    real, calls = classify_module.class_logits, []

    def interrupting(*args):
        if torch.is_grad_enabled():
            calls.append(1)
            if len(calls) == 3:  # the third training step of the first epoch
                raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(classify_module, "class_logits", interrupting)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(ch05_cli.main, ["classify", "--from", str(start), "--epochs", "2", "--batch-size", "64",
                                "--out", str(tmp_path / "out"), "--no-progress"])
    assert exit_info.value.code == 130
    assert "interrupted in epoch 1" in capsys.readouterr().err
    monkeypatch.undo()
    _, _, labels = load_classifier(tmp_path / "out")
    assert labels == ["negative", "positive"]
