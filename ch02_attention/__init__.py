"""Chapter 2: self-attention, from averaging the past to multi-head attention."""

import coursekit  # noqa: F401  (first: a Ctrl-C while the rest imports then ends quietly)

from .attention import (
                        AttentionLanguageModel,
                        CausalSelfAttention,
                        Head,
                        MultiHeadAttention,
                        attend,
                        attention_weights,
                        average_past_loops,
                        average_past_matmul,
                        average_past_softmax,
                        causal_mask,
                        check_dropout,
                        check_heads,
                        check_length,
                        plot_attention,
)

__all__ = [
    "AttentionLanguageModel", "CausalSelfAttention", "Head", "MultiHeadAttention", "attend", "attention_weights",
    "average_past_loops", "average_past_matmul", "average_past_softmax", "causal_mask", "check_dropout",
    "check_heads", "check_length", "plot_attention",
]
