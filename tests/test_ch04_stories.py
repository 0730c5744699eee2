"""Chapter 4's story GPT, the model Chapter 5 fine-tunes: its recipe fits its tokenizer and the built-in data, and a
finished run is published whole (the notebooks of Chapters 4 and 5 may both write it, in parallel under the suite)."""

from ch04_pretrain.pretraining.stories import STORY_GPT, publish_run, train_story_bpe
from ch05_finetune.builtin import generate_instructions
from ch05_finetune.template import TEMPLATES


class StoryCodec:
    """Enough of a codec to count the story encoder's tokens."""

    def __init__(self):
        self.bpe = train_story_bpe()
        self.eot = self.bpe.vocab_size

    def encode(self, text):
        return self.bpe.encode(text)


def test_the_recipe_fits_its_tokenizer_and_every_builtin_instruction_example():
    codec = StoryCodec()
    assert STORY_GPT.model.vocab_size == codec.bpe.vocab_size + 1 == 557  # + <|endoftext|>
    tpl = TEMPLATES["compact"]
    longest = max(len(tpl.encode(codec, ex.instruction, ex.input)[0]) + len(codec.encode(ex.output)) + 1
                  for ex in generate_instructions(1400))
    assert longest <= STORY_GPT.model.block_size, f"an example of {longest} tokens does not fit the context"


def test_a_published_run_replaces_the_old_one_whole_or_is_kept(tmp_path):
    first, second, destination = tmp_path / "first", tmp_path / "second", tmp_path / "runs" / "story_gpt"
    for run, text in ((first, "one"), (second, "two")):
        (run / "step_000400").mkdir(parents=True)
        (run / "step_000400" / "model.safetensors").write_text(text)
    publish_run(first, destination)
    assert (destination / "step_000400" / "model.safetensors").read_text() == "one"
    publish_run(second, destination, replace=False)  # another process got there first: its run stays
    assert (destination / "step_000400" / "model.safetensors").read_text() == "one"
    publish_run(second, destination)
    assert (destination / "step_000400" / "model.safetensors").read_text() == "two"
    assert sorted(p.name for p in destination.parent.iterdir()) == ["story_gpt"]  # no staging folder left
    assert (first / "step_000400").is_dir()  # the source is copied, not moved
