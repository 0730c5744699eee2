"""The checks behind `python -m ch05_finetune.exercises --check`.

Each check takes the module that holds the implementations (the student's
`ch05_finetune.exercises` or the instructor's `ch05_finetune.solutions.exercises`)
and raises AssertionError with a one-line message when something is wrong.
The answers are compared with the chapter's own code (template.py,
instruct.py, lora.py, classify.py) and, where it matters, with a tiny GPT.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ch03_gpt import GPT, GPTConfig
from ch05_finetune import classify, instruct, lora
from ch05_finetune.template import ALPACA_PREAMBLE, PromptTemplate
from coursekit.exercise_kit import ExerciseChecks

CHECKS = ExerciseChecks(hints=Path(__file__).with_name("hints.toml"))
IGNORE = instruct.IGNORE


def _tiny_gpt(vocab_size: int = 13) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=8)).eval()


@CHECKS.exercise("format_prompt")
def check_format_prompt(ex) -> None:
    cases = [("Add the numbers.", "2 3", ""), ("Name a colour.", "", ""),
             ("Reverse the words.", "the cat sat", ALPACA_PREAMBLE), ("Say hi.", "", ALPACA_PREAMBLE)]
    for instruction, input, preamble in cases:
        expected = PromptTemplate("check", preamble=preamble).format(instruction, input)
        got = ex.format_prompt(instruction, input, preamble)
        assert isinstance(got, str), f"format_prompt returned {type(got).__name__}, expected str"
        if not input:
            assert "### Input:" not in got, f"an empty input should add no '### Input:' section; got {got!r}"
        assert got == expected, f"format_prompt({instruction!r}, {input!r}) gave {got!r}, expected {expected!r}"
    assert ex.format_prompt("Say hi.") == PromptTemplate("check").format("Say hi."), \
        "input and preamble should default to empty"


def _collate_case():
    prompts = [[5, 6, 7], [5, 8], [9, 10, 11, 12]]
    answers = [[1, 2, 0], [3, 0], [4, 0]]  # 0 plays <|endoftext|> (and the padding)
    return prompts, answers


@CHECKS.exercise("collate")
def check_collate(ex) -> None:
    prompts, answers = _collate_case()
    for mask_prompt in (True, False):
        ids, targets = ex.collate(prompts, answers, 0, mask_prompt)
        ref_ids, ref_targets = instruct.collate([instruct.Encoded(p, a) for p, a in zip(prompts, answers)],
                                                0, mask_prompt)
        assert tuple(ids.shape) == tuple(ref_ids.shape) and tuple(targets.shape) == tuple(ref_targets.shape), \
            f"shapes are ids {tuple(ids.shape)}, targets {tuple(targets.shape)}; expected {tuple(ref_ids.shape)} " \
            "each (B, longest sequence - 1)"
        assert ids.dtype == torch.long and targets.dtype == torch.long, "ids and targets should be long tensors"
        assert torch.equal(ids, ref_ids), \
            (f"ids {ids.tolist()} differ from {ref_ids.tolist()} "
             "(each row: prompt and answer but the last token, then padding)")
        if not mask_prompt:
            assert targets[0, 0].item() != IGNORE, "mask_prompt=False should keep the prompt's targets"
        assert (targets[1, 4:] == IGNORE).all(), f"padded targets should be {IGNORE}; row 1 is {targets[1].tolist()}"
        if mask_prompt:
            assert targets[2, 3].item() == 4, \
                "the target at the last prompt token (the answer's first token) must stay: mask only len(prompt) - 1"
            assert (targets[2, :3] == IGNORE).all(), \
                f"the prompt's targets should be {IGNORE} with mask_prompt; row 2 is {targets[2].tolist()}"
        assert torch.equal(targets, ref_targets), \
            f"targets {targets.tolist()} differ from {ref_targets.tolist()} (mask_prompt={mask_prompt})"

    # The mask really keeps padding out: the batched loss equals the loss of each example alone,
    # weighted by its number of kept targets.
    model = _tiny_gpt()
    ids, targets = ex.collate(prompts, answers, 0, True)
    batched = instruct.lm_loss(model, ids, targets).item()
    total = count = 0.0
    for p, a in zip(prompts, answers):
        one_ids, one_targets = ex.collate([p], [a], 0, True)
        n = (one_targets != IGNORE).sum().item()
        total += instruct.lm_loss(model, one_ids, one_targets).item() * n
        count += n
    assert math.isclose(batched, total / count, rel_tol=1e-5), \
        f"the batch's loss {batched:.5f} differs from its examples' alone {total / count:.5f}: padding leaks in"


@CHECKS.exercise("masked_lm_loss")
def check_masked_lm_loss(ex) -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 7, generator=g, requires_grad=True)  # (B, T, V)
    targets = torch.randint(7, (2, 5), generator=g)
    targets[0, :2] = IGNORE
    targets[1, 3:] = IGNORE
    keep = targets != IGNORE
    loss = ex.masked_lm_loss(logits, targets)
    assert isinstance(loss, torch.Tensor) and loss.dim() == 0, "the loss should be a 0-d tensor"
    expected = -F.log_softmax(logits[keep], -1).gather(-1, targets[keep][:, None]).mean()
    assert math.isclose(loss.item(), expected.item(), rel_tol=1e-5), \
        f"loss is {loss.item():.5f}, expected {expected.item():.5f}, the mean over the {int(keep.sum())} kept positions"
    loss.backward()
    masked_grad = logits.grad[~keep].abs().max().item()
    assert masked_grad == 0.0, f"masked positions got a gradient (largest {masked_grad:.3g}); they must get none"
    assert logits.grad[keep].abs().sum() > 0, "the kept positions got no gradient"

    one = torch.full((2, 5), IGNORE)
    one[1, 2] = 3
    single = ex.masked_lm_loss(logits.detach(), one).item()
    alone = F.cross_entropy(logits.detach()[1, 2][None], torch.tensor([3])).item()
    assert math.isclose(single, alone, rel_tol=1e-5), \
        f"with one kept position the loss is {single:.5f}, expected that position's own loss {alone:.5f}"

    # The chapter's lm_loss on a tiny GPT gives the same figure.
    model = _tiny_gpt()
    prompts, answers = _collate_case()
    ids, tgt = instruct.collate([instruct.Encoded(p, a) for p, a in zip(prompts, answers)], 0, True)
    with torch.no_grad():
        mine = ex.masked_lm_loss(model(ids)[0], tgt).item()
        ref = instruct.lm_loss(model, ids, tgt).item()
    assert math.isclose(mine, ref, rel_tol=1e-5), f"on a tiny GPT the loss is {mine:.5f}, the chapter's {ref:.5f}"


@CHECKS.exercise("lora_linear")
def check_lora_linear(ex) -> None:
    torch.manual_seed(0)
    base = nn.Linear(6, 5)
    layer = ex.LoRALinear(base, rank=2, alpha=8.0)
    assert layer.base is base, "keep the given Linear as self.base"
    assert not any(p.requires_grad for p in base.parameters()), "the base Linear's weight and bias must be frozen"
    assert tuple(layer.lora_A.shape) == (2, 6) and tuple(layer.lora_B.shape) == (5, 2), \
        f"lora_A is {tuple(layer.lora_A.shape)}, lora_B {tuple(layer.lora_B.shape)}; expected (r, in) = (2, 6) " \
        "and (out, r) = (5, 2)"
    assert isinstance(layer.lora_A, nn.Parameter) and isinstance(layer.lora_B, nn.Parameter), \
        "lora_A and lora_B should be nn.Parameter"
    trainable = sum(p.numel() for p in layer.parameters() if p.requires_grad)
    assert trainable == 2 * (6 + 5), f"{trainable} numbers train, expected r * (in + out) = {2 * (6 + 5)}"
    assert math.isclose(layer.scale, 4.0), f"scale is {layer.scale}, expected alpha / rank = 8 / 2 = 4"
    assert torch.count_nonzero(layer.lora_B) == 0, "lora_B should start at zero"
    assert torch.count_nonzero(layer.lora_A) > 0, "lora_A should start random (with B = 0 too, nothing would learn)"

    x = torch.randn(3, 4, 6)  # (..., in)
    y = layer(x)
    assert tuple(y.shape) == (3, 4, 5), f"output shape {tuple(y.shape)}, expected (3, 4, 5)"
    assert torch.allclose(y, base(x), atol=1e-6), "before training the layer should give exactly the base's output"
    y.square().sum().backward()
    assert layer.lora_B.grad is not None and layer.lora_B.grad.abs().sum() > 0, "no gradient reached lora_B"
    assert base.weight.grad is None, "a gradient reached the frozen base weight"

    with torch.no_grad():
        layer.lora_B.normal_()
    ref = lora.LoRALinear(nn.Linear(6, 5), rank=2, alpha=8.0)
    with torch.no_grad():
        ref.base.load_state_dict(base.state_dict())
        ref.lora_A.copy_(layer.lora_A)
        ref.lora_B.copy_(layer.lora_B)
        y, y_ref = layer(x), ref(x)
    assert torch.allclose(y, y_ref, atol=1e-5), \
        f"with B != 0 the output differs from the chapter's LoRALinear by {(y - y_ref).abs().max():.3g} " \
        "(is the update scaled by alpha / rank?)"

    merged = layer.merged()
    assert type(merged) is nn.Linear, f"merged() returned {type(merged).__name__}, expected a plain nn.Linear"
    with torch.no_grad():
        assert torch.allclose(merged(x), y, atol=1e-5), "the merged Linear gives different outputs from the layer"

    no_bias = ex.LoRALinear(nn.Linear(6, 5, bias=False), rank=3, alpha=3.0)
    with torch.no_grad():
        no_bias.lora_B.normal_()
        merged = no_bias.merged()
        assert merged.bias is None, "a base without bias should merge into a Linear without bias"
        assert torch.allclose(merged(x), no_bias(x), atol=1e-5), "merging a layer without bias changed its outputs"


@CHECKS.exercise("pad_right")
def check_pad_right(ex) -> None:
    seqs = [[4, 5, 6], [7], [8, 9, 1, 2, 3]]
    ids, lengths = ex.pad_right(seqs, 0)
    ref_ids, ref_lengths = classify.pad_batch(seqs, 0)
    assert tuple(ids.shape) == (3, 5), f"ids have shape {tuple(ids.shape)}, expected (B, longest) = (3, 5)"
    assert ids.dtype == torch.long and lengths.dtype == torch.long, "ids and lengths should be long tensors"
    assert torch.equal(lengths, ref_lengths), f"lengths are {lengths.tolist()}, expected {ref_lengths.tolist()}"
    assert ids[1, 0].item() == 7, f"row 1 is {ids[1].tolist()}: pad on the right, after the tokens"
    assert torch.equal(ids, ref_ids), f"ids are {ids.tolist()}, expected {ref_ids.tolist()}"
    ids, _ = ex.pad_right(seqs, 12)
    assert ids[1, 1:].eq(12).all(), f"padding should use pad_id 12; row 1 is {ids[1].tolist()}"


@CHECKS.exercise("last_token")
def check_last_token(ex) -> None:
    logits = torch.arange(2 * 4 * 3, dtype=torch.float).view(2, 4, 3)  # (B, T, C)
    picked = ex.last_token(logits, torch.tensor([2, 4]))
    assert tuple(picked.shape) == (2, 3), f"shape {tuple(picked.shape)}, expected (B, C) = (2, 3)"
    assert torch.equal(picked, torch.stack([logits[0, 1], logits[1, 3]])), \
        f"got {picked.tolist()}; expected row 0 at position 1 (length 2) and row 1 at position 3 (length 4)"

    # A classifier on a tiny GPT reads the same logits for a text alone and inside a right-padded batch.
    model = classify.add_classifier_head(_tiny_gpt(), 3)
    seqs = [[4, 5, 6], [7], [8, 9, 1, 2, 3]]
    ids, lengths = classify.pad_batch(seqs, 0)
    with torch.no_grad():
        batched = ex.last_token(model(ids)[0], lengths)
        alone = torch.cat([model(torch.tensor([s]))[0][:, -1] for s in seqs])
        ref = classify.class_logits(model, ids, lengths)
    assert torch.allclose(batched, alone, atol=1e-5), \
        "a padded text's class logits differ from the same text alone: they must be read at its last real token"
    assert torch.allclose(batched, ref, atol=1e-6), "the class logits differ from the chapter's class_logits"


@CHECKS.exercise("scores")
def check_scores(ex) -> None:
    cases = [
        ([1, 0, 1, 1, 0, 0, 1, 0], [1, 0, 0, 1, 1, 0, 1, 1], 2),  # binary, mistakes both ways
        ([0, 0, 0, 0], [1, 0, 1, 0], 2),                          # class 1 never predicted: precision 0, not nan
        ([0, 1, 2, 2, 1, 0, 2], [0, 2, 2, 1, 1, 0, 0], 3),        # three classes: the macro average
        ([0, 1, 1, 0], [1, 1, 1, 1], 3),                          # class 2 neither predicted nor present
        ([2, 1, 0], [2, 1, 0], 3),                                # perfect
    ]
    for pred, true, k in cases:
        got = ex.scores(pred, true, k)
        ref = classify.scores(pred, true, k)
        for key in ("accuracy", "precision", "recall", "f1"):
            assert key in got, f"the result has no {key!r} (keys {sorted(got)})"
            value = got[key]
            assert isinstance(value, float), f"{key} is a {type(value).__name__}, expected a Python float"
            assert not math.isnan(value), f"{key} is nan for pred={pred}, true={true}: use 0.0 where nothing is counted"
            assert math.isclose(value, ref[key], abs_tol=1e-6), \
                f"{key} is {value:.4f} for pred={pred}, true={true}, {k} classes; expected {ref[key]:.4f}"
    got = ex.scores(torch.tensor([1, 0]), torch.tensor([1, 1]), 2)
    assert math.isclose(got["recall"], 0.5), "scores should accept 1-D tensors too"
