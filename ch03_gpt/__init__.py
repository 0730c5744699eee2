"""Chapter 3: the GPT block and model, generation with a KV cache, training at character level."""

import coursekit  # noqa: F401  (first: a Ctrl-C while the rest imports then ends quietly)
from coursekit.lazy import lazy_exports

__all__ = [
    "GPT", "GPT2_CONFIGS", "RECIPES", "Attention", "Block", "FeedForward", "GPTConfig", "KVCache", "Recipe",
    "check_sampling", "config_difference", "configure_optimizer", "cosine_lr", "filter_logits",
    "generate", "gpt2_config", "load_checkpoint", "load_weights", "sample_next", "sampling_probs", "save_checkpoint",
    "stream", "stream_with_probs", "train_gpt", "train_steps",
]

# Each name is imported from its module when first used, so `python -m ch03_gpt --help` imports no torch.
# (`ch03_gpt.generate` is the function, as it always was, though generate.py is a module of the same name.)
__getattr__, __dir__ = lazy_exports(__name__, {
    "checkpoint": ("config_difference", "load_checkpoint", "load_weights", "save_checkpoint"),
    "config": ("RECIPES", "GPTConfig", "Recipe"),
    "generate": ("check_sampling", "filter_logits", "generate", "sample_next", "sampling_probs", "stream",
                 "stream_with_probs"),
    "model": ("GPT", "GPT2_CONFIGS", "Attention", "Block", "FeedForward", "KVCache", "gpt2_config"),
    "train": ("configure_optimizer", "cosine_lr", "train_gpt", "train_steps"),
})
