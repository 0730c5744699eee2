"""Chapter 1: the bigram language model, and the course's shared groundwork."""

from .corpus import LongRangeScore, Story, generate_corpus, generate_stories, long_range_score
from .data import BUILTIN, CORPORA, TINYSHAKESPEARE, RemoteFile, download, find_or_download, load_text
from coursekit import CourseError, check_positive, run_cli  # noqa: F401  (until every importer uses coursekit)

# The model and training code needs torch, which takes seconds and hundreds of MB to import.
# It is loaded on first use, so that tools that only need the corpus or the errors (such as
# Chapter 4's tokenizing worker processes) stay light.
_BIGRAM = {
    "BigramLanguageModel", "CharData", "CharTokenizer", "History", "TrainConfig", "estimate_loss", "generate",
    "get_batch", "initial_loss", "pick_device", "prepare_char_data", "sample_text", "set_seed", "train",
    "train_val_split",
}


def __getattr__(name: str):
    if name in _BIGRAM:
        from . import bigram
        return getattr(bigram, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BUILTIN", "CORPORA", "TINYSHAKESPEARE", "BigramLanguageModel", "CharData", "CharTokenizer",
    "CourseError", "History", "LongRangeScore", "RemoteFile", "Story", "TrainConfig", "check_positive",
    "download", "estimate_loss", "find_or_download", "generate", "generate_corpus", "generate_stories",
    "get_batch", "initial_loss", "load_text", "long_range_score", "pick_device", "prepare_char_data",
    "run_cli", "sample_text", "set_seed", "train", "train_val_split",
]
