"""Chapter 1: the bigram language model, and the course's shared groundwork."""

from .bigram import (
    BigramLanguageModel,
    CharData,
    CharTokenizer,
    History,
    TrainConfig,
    estimate_loss,
    generate,
    get_batch,
    initial_loss,
    pick_device,
    prepare_char_data,
    sample_text,
    set_seed,
    train,
    train_val_split,
)
from .corpus import LongRangeScore, Story, generate_corpus, generate_stories, long_range_score
from .data import BUILTIN, CORPORA, TINYSHAKESPEARE, RemoteFile, download, find_or_download, load_text
from .errors import CourseError, check_positive, run_cli

__all__ = [
    "BUILTIN", "CORPORA", "TINYSHAKESPEARE", "BigramLanguageModel", "CharData", "CharTokenizer",
    "CourseError", "History", "LongRangeScore", "RemoteFile", "Story", "TrainConfig", "check_positive",
    "download", "estimate_loss", "find_or_download", "generate", "generate_corpus", "generate_stories",
    "get_batch", "initial_loss", "load_text", "long_range_score", "pick_device", "prepare_char_data",
    "run_cli", "sample_text", "set_seed", "train", "train_val_split",
]
