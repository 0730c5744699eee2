"""Chapter 2: self-attention, from averaging the past to multi-head attention."""

import coursekit  # noqa: F401  (first: a Ctrl-C while the rest imports then ends quietly)
from coursekit.lazy import lazy_exports

__all__ = [
    "AttentionLanguageModel", "CausalSelfAttention", "Head", "MultiHeadAttention", "attend", "attention_weights",
    "average_past_loops", "average_past_matmul", "average_past_softmax", "causal_mask", "check_dropout",
    "check_heads", "check_length", "plot_attention",
]

# Each name is imported from its module when first used, so `python -m ch02_attention --help` imports no torch.
__getattr__, __dir__ = lazy_exports(__name__, {
    "attention": ("AttentionLanguageModel", "CausalSelfAttention", "Head", "MultiHeadAttention", "attend",
                  "attention_weights", "average_past_loops", "average_past_matmul", "average_past_softmax",
                  "causal_mask", "plot_attention"),
    "config": ("check_dropout", "check_heads", "check_length"),
})
