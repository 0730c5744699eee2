"""Chapter 4: pretraining a GPT on OpenWebText, in two halves.

The data pipeline (`data_pipeline/`): GPT-2's byte-pair encoding, readers of
OpenWebText and local corpora, tokenization into shards, training windows.
Pretraining (`pretraining/`): the training loop with gradient accumulation,
mixed precision, clipping, a schedule and data parallelism; exact resume;
memory; evaluation; OpenAI's GPT-2 weights.
"""

import coursekit  # noqa: F401  (first: a Ctrl-C while the rest imports then ends quietly)
from coursekit.lazy import lazy_exports

__all__ = [
    "EOT", "PRESETS", "VOCAB_SIZE", "ShardDataset", "SourceOptions", "TinyBPE", "TrainSettings", "estimate_memory",
    "evaluate", "forward_backward", "gpt2_encoding", "load_pretrained", "load_splits", "measure_peak", "memory_table",
    "merge_pair", "optimizer_step", "prepare", "pretrain", "read_log", "read_manifest", "split_tokens", "train_bpe",
    "verify",
]

# Each name is imported from its module when first used: `from ch04_pretrain import prepare` loads the data
# pipeline, not torch, so the command line, `prepare` and its worker processes start without the training half.
__getattr__, __dir__ = lazy_exports(__name__, {
    "data_pipeline.bpe": ("EOT", "VOCAB_SIZE", "TinyBPE", "gpt2_encoding", "merge_pair", "train_bpe"),
    "data_pipeline.loader": ("ShardDataset", "load_splits", "split_tokens"),
    "data_pipeline.prepare": ("prepare", "read_manifest", "verify"),
    "data_pipeline.sources": ("SourceOptions",),
    "pretraining.evaluate": ("evaluate",),
    "pretraining.gpt2_weights": ("load_pretrained",),
    "pretraining.memory": ("estimate_memory", "measure_peak", "memory_table"),
    "pretraining.settings": ("PRESETS", "TrainSettings"),
    "pretraining.trainer": ("forward_backward", "optimizer_step", "pretrain", "read_log"),
})
