"""Chapter 4: OpenAI's GPT-2 format loads into Chapter 3's GPT (a small random GPT-2 built by transformers,
no download): the same logits and the same greedy generations."""

import json

import pytest
import torch
from safetensors.torch import save_file

from ch03_gpt import generate
from ch04_pretrain.pretraining.gpt2_weights import hub_name, load_pretrained
from coursekit import CourseError

transformers = pytest.importorskip("transformers")  # a test-only dependency


@pytest.fixture(scope="module")
def hf_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf_gpt2")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=50257, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                                  bos_token_id=50256, eos_token_id=50256)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    model.save_pretrained(folder)
    return model, folder


def greedy_hf(model, prompt: torch.Tensor, n: int) -> torch.Tensor:
    idx = prompt
    with torch.no_grad():
        for _ in range(n):
            next_id = model(idx).logits[:, -1].argmax(-1, keepdim=True)
            idx = torch.cat([idx, next_id], dim=1)
    return idx


def test_logits_and_greedy_generations_match(hf_model):
    hf, folder = hf_model
    ours, encoding, meta = load_pretrained(folder / "model.safetensors")
    assert meta["model"]["n_head"] == 4 and meta["tokenizer"] == {"type": "gpt2"} and encoding.n_vocab == 50257
    # GPT-2 was trained with the tanh approximation of GELU; small random weights alone would not show the difference
    assert ours.config.activation == "gelu_tanh"
    x = torch.randint(50257, (3, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = hf(x).logits
        got, _ = ours(x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    prompt = x[:1, :5]
    assert torch.equal(generate(ours, prompt, 20, temperature=0), greedy_hf(hf, prompt, 20))


def test_hub_layout_without_prefix_and_with_mask_buffers(hf_model, tmp_path):
    """The files on the Hub (saved by an older transformers) name tensors `h.0...` and include the causal mask."""
    hf, _ = hf_model
    state = {k.removeprefix("transformer."): v.contiguous() for k, v in hf.state_dict().items()
             if k != "lm_head.weight"}
    for i in range(2):
        state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(1, 1, 64, 64))
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    save_file(state, tmp_path / "model.safetensors")
    hf_config = json.loads((hf_model[1] / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(hf_config))
    ours, _, _ = load_pretrained(tmp_path)  # a folder in Hugging Face's layout
    assert ours.config.activation == "gelu_tanh"
    x = torch.randint(50257, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(ours(x)[0], hf(x).logits, atol=1e-5, rtol=0)
    (tmp_path / "config.json").unlink()
    with pytest.raises(CourseError, match="none of OpenAI's GPT-2 sizes"):
        load_pretrained(tmp_path / "model.safetensors")  # no config.json: 2 x 32 is not a published size


def test_names_and_bad_sources(tmp_path):
    assert hub_name("gpt2") == "gpt2" and hub_name("openai-community/gpt2-xl") == "gpt2-xl"
    assert hub_name("gpt3") is None
    with pytest.raises(CourseError, match="neither a checkpoint directory"):
        load_pretrained("gpt3")
    (tmp_path / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CourseError, match="cannot read weights"):
        load_pretrained(tmp_path / "model.safetensors")
