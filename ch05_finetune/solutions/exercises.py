"""Chapter 5 exercises, solved (for instructors).

Check them with `python -m ch05_finetune.exercises --solutions`. They are
written out in full, as a model answer to discuss in class, rather than
calling the chapter's own functions in template.py, instruct.py, lora.py and
classify.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

IGNORE = -100


# Exercise 1 ------------------------------------------------------------------

def format_prompt(instruction: str, input: str = "", preamble: str = "") -> str:
    prompt = preamble + "### Instruction:\n" + instruction
    if input:  # an empty input gets no section: the model should not learn to expect one
        prompt += "\n\n### Input:\n" + input
    return prompt + "\n\n### Response:\n"


# Exercise 2 ------------------------------------------------------------------

def collate(prompts: list[list[int]], answers: list[list[int]], pad_id: int,
            mask_prompt: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    seqs = [p + a for p, a in zip(prompts, answers)]
    T = max(len(s) for s in seqs) - 1
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)       # (B, T)
    targets = torch.full((len(seqs), T), IGNORE, dtype=torch.long)  # (B, T)
    for i, (prompt, seq) in enumerate(zip(prompts, seqs)):
        n = len(seq) - 1
        ids[i, :n] = torch.tensor(seq[:-1])
        targets[i, :n] = torch.tensor(seq[1:])
        if mask_prompt:
            # Targets 0 .. len(prompt) - 2 are prompt tokens; target len(prompt) - 1 is the answer's first.
            targets[i, :len(prompt) - 1] = IGNORE
    return ids, targets


# Exercise 3 ------------------------------------------------------------------

def masked_lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    keep = targets != IGNORE                               # (B, T)
    return F.cross_entropy(logits[keep], targets[keep])    # (N, V) against (N,): the mean over kept positions


# Exercise 4 ------------------------------------------------------------------

class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int = 8, alpha: float = 16.0):
        super().__init__()
        if rank < 1:
            raise ValueError(f"rank must be positive, got {rank}")
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.scale = alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))   # (r, in)
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))  # (out, r): zero, so B @ A starts at 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = (x @ self.lora_A.T) @ self.lora_B.T  # (..., r) then (..., out): never builds the (out, in) matrix
        return self.base(x) + self.scale * update

    def merged(self) -> nn.Linear:
        out = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None)
        with torch.no_grad():
            out.weight.copy_(self.base.weight + self.scale * (self.lora_B @ self.lora_A))  # (out, in)
            if self.base.bias is not None:
                out.bias.copy_(self.base.bias)
        return out


# Exercise 5 ------------------------------------------------------------------

def pad_right(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)     # (B,)
    ids = torch.full((len(seqs), int(lengths.max())), pad_id, dtype=torch.long)  # (B, T)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s, dtype=torch.long)
    return ids, lengths


# Exercise 6 ------------------------------------------------------------------

def last_token(logits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    rows = torch.arange(logits.shape[0], device=logits.device)  # (B,)
    return logits[rows, lengths - 1]                            # (B, C)


# Exercise 7 ------------------------------------------------------------------

def scores(pred, true, num_classes: int) -> dict[str, float]:
    pred, true = torch.as_tensor(pred).long(), torch.as_tensor(true).long()
    precision, recall, f1 = [], [], []
    for c in range(num_classes):
        tp = ((pred == c) & (true == c)).sum().item()
        predicted, actual = (pred == c).sum().item(), (true == c).sum().item()
        p = tp / predicted if predicted else 0.0
        r = tp / actual if actual else 0.0
        precision.append(p)
        recall.append(r)
        f1.append(2 * p * r / (p + r) if p + r else 0.0)
    if num_classes == 2:
        pick = lambda values: values[1]  # noqa: E731  (class 1 is the positive class)
    else:
        pick = lambda values: sum(values) / len(values)  # noqa: E731  (macro average)
    return {"accuracy": (pred == true).float().mean().item(), "precision": pick(precision),
            "recall": pick(recall), "f1": pick(f1)}
