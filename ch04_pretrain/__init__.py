"""Chapter 4: pretraining a GPT on OpenWebText, in two halves.

The data pipeline (`data_pipeline/`): GPT-2's byte-pair encoding, readers of
OpenWebText and local corpora, tokenization into shards, training windows.
Pretraining (`pretraining/`): the training loop with gradient accumulation,
mixed precision, clipping, a schedule and data parallelism; exact resume;
memory; evaluation; OpenAI's GPT-2 weights.
"""

import coursekit  # noqa: F401  (first: a Ctrl-C while the rest imports then ends quietly)

from .data_pipeline.bpe import EOT, VOCAB_SIZE, TinyBPE, gpt2_encoding, merge_pair, train_bpe
from .data_pipeline.loader import ShardDataset, load_splits, split_tokens
from .data_pipeline.prepare import prepare, read_manifest, verify
from .data_pipeline.sources import SourceOptions
from .pretraining.evaluate import evaluate
from .pretraining.gpt2_weights import load_pretrained
from .pretraining.memory import estimate_memory, measure_peak, memory_table
from .pretraining.settings import PRESETS, TrainSettings
from .pretraining.trainer import forward_backward, optimizer_step, pretrain, read_log

__all__ = [
    "EOT", "PRESETS", "VOCAB_SIZE", "ShardDataset", "SourceOptions", "TinyBPE", "TrainSettings", "estimate_memory",
    "evaluate", "forward_backward", "gpt2_encoding", "load_pretrained", "load_splits", "measure_peak", "memory_table",
    "merge_pair", "optimizer_step", "prepare", "pretrain", "read_log", "read_manifest", "split_tokens", "train_bpe",
    "verify",
]
