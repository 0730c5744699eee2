"""Chapter 5 fine-tunes what Chapter 4 pretrained with a byte-pair encoder of its own, end to end.

The path the course takes: learn 300 merges on the stories, prepare the stories with them, pretrain a GPT
(here a tiny one, 2 steps), then load that run in Chapter 5 and fine-tune it, a classifier and an
instruction follower, each saved and loaded back with its tokenizer. Nothing here measures quality:
two steps of pretraining teach nothing; what is checked is that every piece reads the same tokens.
"""

import io
import json

from ch01_bigram import generate_corpus
from ch03_gpt import GPTConfig
from ch04_pretrain.data_pipeline.bpe import RANKS_FILE, VOCAB_SIZE, train_bpe, write_ranks
from ch04_pretrain.data_pipeline.prepare import prepare
from ch04_pretrain.data_pipeline.sources import SourceOptions
from ch04_pretrain.pretraining.gpt2_weights import load_pretrained
from ch04_pretrain.pretraining.settings import TrainSettings
from ch04_pretrain.pretraining.trainer import pretrain
from ch05_finetune.builtin import generate_instructions, generate_reviews
from ch05_finetune.chat import load_chat_model, reply
from ch05_finetune.classify import evaluate_classifier, finetune_classifier, load_classifier, save_classifier
from ch05_finetune.instruct import instruction_tune, load_instructions, split_instructions
from ch05_finetune.labelled import builtin_reviews, split_balanced
from ch05_finetune.loop import FitConfig
from ch05_finetune.pretrained import load_start
from ch05_finetune.template import TEMPLATES

QUIET = {"progress": False, "log": None}


def test_chapter_5_fine_tunes_a_chapter_4_run_with_its_own_tokenizer(tmp_path):
    ranks = tmp_path / "stories-300.tiktoken"
    write_ranks(train_bpe(generate_corpus(), 300).ranks(), ranks)
    prepare("builtin", tmp_path / "data", options=SourceOptions(builtin_bytes=60_000), workers=0, progress=False,
            log=lambda *a: None, tokenizer=ranks)
    # Block 96: the compact template and an instruction, in 556 tokens, must fit with room for an answer.
    settings = TrainSettings(model=GPTConfig(vocab_size=VOCAB_SIZE, block_size=96, n_layer=1, n_head=2, n_embd=32),
                             batch_size=4, max_steps=2, warmup=1, eval_interval=2, eval_iters=1, dtype="float32")
    run = tmp_path / "run"
    pretrain(settings, tmp_path / "data", run, device="cpu", peak_flops=1e11, progress=False, log=lambda *a: None)

    model, encoding, meta = load_pretrained(run)
    assert model.config.vocab_size == encoding.n_vocab == 557 and meta["tokenizer"]["name"] == "bpe-557"

    model, codec, meta = load_start(run)
    assert (codec.vocab_size, codec.eot) == (557, 556) and codec.to_meta() == meta["tokenizer"]
    # Byte-level: Chapter 5's texts, and text far from the stories, have no unknown token.
    texts = [r.text for r in generate_reviews(300)]
    texts += [t for ex in generate_instructions(140) for t in (ex.instruction, ex.input, ex.output)]
    texts += ["Free entry in 2 a wkly comp to win FA Cup final tkts 21st May 2005 🙂", "東京 — naïve"]
    assert codec.unknown_share(texts)[0] == 0.0
    codec.check_coverage(texts)  # passes
    assert all(codec.decode(codec.encode(t)) == t for t in texts)

    # A classifier: fine-tuned one epoch, saved with the rank file, loaded back with the same tokenizer.
    train, val, test = split_balanced(builtin_reviews(60))
    history = finetune_classifier(model, codec, train, val, FitConfig(epochs=1, batch_size=16), "all", **QUIET)
    assert len(history.epochs) == 2  # the estimate before training and after the epoch
    save_classifier(model, codec, train.label_names, tmp_path / "classifier")
    assert (tmp_path / "classifier" / RANKS_FILE).read_bytes() == (run / "step_000002" / RANKS_FILE).read_bytes()
    loaded, loaded_codec, labels = load_classifier(tmp_path / "classifier")
    assert loaded_codec.encode(texts[0]) == codec.encode(texts[0]) and labels == train.label_names
    assert 0 <= evaluate_classifier(loaded, loaded_codec, test)["accuracy"] <= 1

    # An instruction follower: tuned one epoch, saved as `instruct` saves it, and chatted with.
    model, codec, _ = load_start(run)
    splits = split_instructions(load_instructions("builtin", 30))
    instruction_tune(model, codec, TEMPLATES["compact"], splits, FitConfig(epochs=1, batch_size=8),
                     tmp_path / "instruct", "builtin", **QUIET)
    saved = json.loads((tmp_path / "instruct" / "config.json").read_text())
    assert saved["tokenizer"] == codec.to_meta() and (tmp_path / "instruct" / RANKS_FILE).is_file()
    chat_model, chat_codec, template = load_chat_model(tmp_path / "instruct", err=io.StringIO())
    assert chat_codec.vocab_size == 557 and template.name == "compact"
    answer = reply(chat_model, chat_codec, template, [], "What is 2 plus 3?", max_new_tokens=4, out=io.StringIO())
    assert isinstance(answer, str)
