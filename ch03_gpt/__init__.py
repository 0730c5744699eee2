"""Chapter 3: the GPT block and model, generation with a KV cache, training at character level."""

from .checkpoint import atomic_path, config_difference, load_checkpoint, load_weights, read_json, save_checkpoint, write_json
from .generate import check_sampling, filter_logits, generate, sample_next, stream
from .model import GPT, GPT2_CONFIGS, Attention, Block, FeedForward, GPTConfig, KVCache, gpt2_config
from .train import RECIPES, Recipe, configure_optimizer, cosine_lr, train_gpt

__all__ = [
    "GPT", "GPT2_CONFIGS", "RECIPES", "Attention", "Block", "FeedForward", "GPTConfig", "KVCache", "Recipe",
    "atomic_path", "check_sampling", "config_difference", "configure_optimizer", "cosine_lr", "filter_logits",
    "generate", "gpt2_config", "load_checkpoint", "load_weights", "read_json", "sample_next", "save_checkpoint",
    "stream", "train_gpt", "write_json",
]
