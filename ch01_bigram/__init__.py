"""Chapter 1: the bigram language model, the built-in stories it learns from, and the long-range checker."""

import coursekit  # noqa: F401  (first: a Ctrl-C while the rest imports then ends quietly)
from coursekit.lazy import lazy_exports

__all__ = [
    "CORPORA", "TINYSHAKESPEARE", "BigramLanguageModel", "CharData", "CharTokenizer", "History", "LongRangeScore",
    "RemoteFile", "Story", "TrainConfig", "download", "estimate_loss", "find_local", "find_or_download",
    "generate_corpus", "generate_stories", "get_batch", "initial_loss", "load_text", "long_range_score",
    "prepare_char_data", "sample_text", "sample_tokens", "train", "train_val_split",
]

# Each name is imported from its module when first used, so `python -m ch01_bigram --help` imports no torch.
__getattr__, __dir__ = lazy_exports(__name__, {
    "bigram": ("BigramLanguageModel", "CharData", "CharTokenizer", "History", "estimate_loss", "get_batch",
               "initial_loss", "prepare_char_data", "sample_text", "sample_tokens", "train", "train_val_split"),
    "config": ("TrainConfig",),
    "corpus": ("LongRangeScore", "Story", "generate_corpus", "generate_stories", "long_range_score"),
    "data": ("CORPORA", "TINYSHAKESPEARE", "RemoteFile", "download", "find_local", "find_or_download", "load_text"),
})
