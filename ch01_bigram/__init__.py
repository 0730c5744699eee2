"""Chapter 1: the bigram language model, the built-in stories it learns from, and the long-range checker."""

import coursekit  # noqa: F401  (first: a Ctrl-C while the rest imports then ends quietly)

from .bigram import (
                     BigramLanguageModel,
                     CharData,
                     CharTokenizer,
                     History,
                     TrainConfig,
                     estimate_loss,
                     get_batch,
                     initial_loss,
                     prepare_char_data,
                     sample_text,
                     sample_tokens,
                     train,
                     train_val_split,
)
from .corpus import LongRangeScore, Story, generate_corpus, generate_stories, long_range_score
from .data import CORPORA, TINYSHAKESPEARE, RemoteFile, download, find_local, find_or_download, load_text

__all__ = [
    "CORPORA", "TINYSHAKESPEARE", "BigramLanguageModel", "CharData", "CharTokenizer", "History", "LongRangeScore",
    "RemoteFile", "Story", "TrainConfig", "download", "estimate_loss", "find_local", "find_or_download",
    "generate_corpus", "generate_stories", "get_batch", "initial_loss", "load_text", "long_range_score",
    "prepare_char_data", "sample_text", "sample_tokens", "train", "train_val_split",
]
