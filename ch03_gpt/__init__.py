"""Chapter 3: the GPT block and model, generation with a KV cache, training at character level."""

import coursekit  # noqa: F401  (first: a Ctrl-C while the rest imports then ends quietly)

from .checkpoint import config_difference, load_checkpoint, load_weights, save_checkpoint
from .generate import check_sampling, filter_logits, generate, sample_next, stream
from .model import GPT, GPT2_CONFIGS, Attention, Block, FeedForward, GPTConfig, KVCache, gpt2_config
from .train import RECIPES, Recipe, configure_optimizer, cosine_lr, train_gpt, train_steps

__all__ = [
    "GPT", "GPT2_CONFIGS", "RECIPES", "Attention", "Block", "FeedForward", "GPTConfig", "KVCache", "Recipe",
    "check_sampling", "config_difference", "configure_optimizer", "cosine_lr", "filter_logits",
    "generate", "gpt2_config", "load_checkpoint", "load_weights", "sample_next", "save_checkpoint",
    "stream", "train_gpt", "train_steps",
]
