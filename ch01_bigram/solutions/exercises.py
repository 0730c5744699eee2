"""Chapter 1 exercises, solved (for instructors).

Check them with `python -m ch01_bigram.exercises --solutions`. They are written
out in full, as a model answer to discuss in class, rather than calling the
chapter's own functions in bigram.py.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ch01_bigram.bigram import get_batch as course_get_batch

# Exercise 1 ------------------------------------------------------------------

class CharTokenizer:
    def __init__(self, text: str):
        self.chars = sorted(set(text))
        self.stoi = {ch: i for i, ch in enumerate(self.chars)}
        self.itos = {i: ch for i, ch in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        missing = sorted(set(text) - self.stoi.keys())
        if missing:
            raise ValueError(f"characters {missing} are not in the vocabulary")
        return [self.stoi[ch] for ch in text]

    def decode(self, ids) -> str:
        return "".join(self.itos[int(i)] for i in ids)


# Exercise 2 ------------------------------------------------------------------

def get_batch(data: torch.Tensor, batch_size: int, block_size: int,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    # The last start whose target window still fits is len(data) - block_size - 1;
    # randint's upper bound is exclusive.
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)  # (B,)
    x = torch.stack([data[i:i + block_size] for i in starts])          # (B, T)
    y = torch.stack([data[i + 1:i + block_size + 1] for i in starts])  # (B, T)
    return x, y


# Exercise 3 ------------------------------------------------------------------

class BigramLanguageModel(nn.Module):
    def __init__(self, vocab_size: int):
        super().__init__()
        self.token_embedding_table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        logits = self.token_embedding_table(idx)  # (B, T, V)
        if targets is None:
            return logits, None
        B, T, V = logits.shape
        # cross_entropy wants the class scores in the second dimension: one row per position.
        loss = F.cross_entropy(logits.reshape(B * T, V), targets.reshape(B * T))
        return logits, loss


# Exercise 4 ------------------------------------------------------------------

@torch.no_grad()
def estimate_loss(model: nn.Module, splits: dict[str, torch.Tensor], batch_size: int, block_size: int,
                  eval_iters: int = 200, generator: torch.Generator | None = None) -> dict[str, float]:
    was_training = model.training
    model.eval()
    means = {}
    for name, data in splits.items():
        total = 0.0
        for _ in range(eval_iters):
            x, y = course_get_batch(data, batch_size, block_size, generator)
            _, loss = model(x, y)
            total += loss.item()
        means[name] = total / eval_iters
    model.train(was_training)
    return means


# Exercise 5 ------------------------------------------------------------------

@torch.no_grad()
def sample_tokens(model: nn.Module, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
             generator: torch.Generator | None = None) -> torch.Tensor:
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0: always the most likely token), got {temperature}")
    for _ in range(max_new_tokens):
        logits, _ = model(idx)                                   # (B, T, V)
        if temperature == 0:
            next_id = logits[:, -1, :].argmax(dim=-1, keepdim=True)  # (B, 1): greedy
        else:
            last = logits[:, -1, :] / temperature                # (B, V)
            probs = F.softmax(last, dim=-1)                      # (B, V)
            next_id = torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)
        idx = torch.cat((idx, next_id), dim=1)                   # (B, T + 1)
    return idx
