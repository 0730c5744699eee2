"""Chapter 5's answers to open instructions: a generation budget from the references, answers cut by it
marked, and the scores beside exact match (no training: a small random GPT)."""

import json

import pytest
import torch

from ch03_gpt import GPT, GPTConfig
from ch05_finetune.builtin import Instruction
from ch05_finetune.instruct import answer_budget, exact_match, format_scores, score_answers
from ch05_finetune.template import TEMPLATES
from ch05_finetune.vocab import Codec, builtin_token_ids
from coursekit import CourseError


@pytest.fixture(scope="module")
def codec():
    return Codec(list(builtin_token_ids()))


def small_gpt(codec, block=64):
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=codec.vocab_size, block_size=block, n_layer=1, n_head=2, n_embd=16)).eval()


LONG = "Mia went to the park and met a dog and she found a red ball and a shiny key there"
EXAMPLES = [Instruction("Who is the story about?", "", "Mia", "who"),
            Instruction("Where did they go?", "", LONG, "custom")]


def test_budget_is_the_longest_reference_plus_a_margin(codec):
    longest = len(codec.encode(LONG)) + 1  # with <|endoftext|>
    assert longest > 8  # the old fixed budget would have cut it
    assert answer_budget(codec, EXAMPLES) == longest + max(4, longest // 4)
    assert answer_budget(codec, EXAMPLES[:1]) == len(codec.encode("Mia")) + 1 + 4


def test_answers_cut_by_the_budget_are_marked_and_scored(codec, tmp_path):
    model = small_gpt(codec)
    out = tmp_path / "responses.json"
    result = score_answers(model, codec, TEMPLATES["compact"], EXAMPLES, out_path=out)
    saved = json.loads(out.read_text())
    assert result["budget"] == answer_budget(codec, EXAMPLES)
    assert result["cut"] == sum(r["cut"] for r in saved) and all(isinstance(r["cut"], bool) for r in saved)
    assert result["cut"] >= 1  # an untrained model seldom says <|endoftext|>: its answers run to the budget
    for r in saved:
        assert {"response", "correct", "token_f1", "rouge_l", "cut"} <= set(r)
        assert 0 <= r["token_f1"] <= 1 and 0 <= r["rouge_l"] <= 1
    assert result["answer_loss"] > 0 and result["perplexity"] == pytest.approx(torch.tensor(
        result["answer_loss"]).exp().item(), rel=1e-5)
    assert "token F1" in format_scores(result) and "ROUGE-L" in format_scores(result)
    assert exact_match(model, codec, TEMPLATES["compact"], EXAMPLES)["exact_match"] == result["exact_match"]


def test_an_answer_that_ends_is_not_cut(codec, monkeypatch):
    model = small_gpt(codec)
    from ch05_finetune import instruct

    def ends_at_once(model, idx, max_new_tokens, **kw):  # a model that answers "Mia" and stops
        answer = torch.tensor([codec.encode("Mia") + [codec.eot]])
        return torch.cat([idx, answer], dim=1)
    monkeypatch.setattr(instruct, "generate", ends_at_once)
    result = score_answers(model, codec, TEMPLATES["compact"], EXAMPLES)
    assert [r["cut"] for r in result["responses"]] == [False, False] and result["cut"] == 0
    assert result["exact_match"] == 0.5 and result["responses"][0]["token_f1"] == 1.0
    assert 0 < result["responses"][1]["token_f1"] < 1  # "Mia" is one word of the long answer


def test_instructions_a_trimmed_model_cannot_read_are_refused(codec):
    model = small_gpt(codec)
    odd = [Instruction("Summarise the quarterly EBITDA reconciliation", "", "Revenue rose 4% year-on-year", "x")]
    with pytest.raises(CourseError, match="outside this model's trimmed vocabulary.*--from gpt2"):
        score_answers(model, codec, TEMPLATES["compact"], odd)
