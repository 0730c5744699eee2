"""Chapter 4: pretraining a GPT on OpenWebText, in two halves.

The data pipeline (`data_pipeline/`): GPT-2's byte-pair encoding, readers of
OpenWebText and local corpora, tokenization into shards, training windows.
Pretraining (`pretraining/`): the training loop with gradient accumulation,
mixed precision, clipping, a schedule and data parallelism; exact resume;
memory; evaluation; OpenAI's GPT-2 weights.

The names below are loaded when first asked for (`from ch04_pretrain import prepare`
imports the data pipeline, not torch), so that the command line, `prepare` and its
worker processes start without the training half.
"""

import coursekit  # noqa: F401  (first: a Ctrl-C while the rest imports then ends quietly)

# name -> the module that defines it
_EXPORTS = {
    "EOT": "data_pipeline.bpe", "VOCAB_SIZE": "data_pipeline.bpe", "TinyBPE": "data_pipeline.bpe",
    "gpt2_encoding": "data_pipeline.bpe", "merge_pair": "data_pipeline.bpe", "train_bpe": "data_pipeline.bpe",
    "ShardDataset": "data_pipeline.loader", "load_splits": "data_pipeline.loader",
    "split_tokens": "data_pipeline.loader",
    "prepare": "data_pipeline.prepare", "read_manifest": "data_pipeline.prepare", "verify": "data_pipeline.prepare",
    "SourceOptions": "data_pipeline.sources",
    "evaluate": "pretraining.evaluate",
    "load_pretrained": "pretraining.gpt2_weights",
    "estimate_memory": "pretraining.memory", "measure_peak": "pretraining.memory", "memory_table": "pretraining.memory",
    "PRESETS": "pretraining.settings", "TrainSettings": "pretraining.settings",
    "forward_backward": "pretraining.trainer", "optimizer_step": "pretraining.trainer",
    "pretrain": "pretraining.trainer", "read_log": "pretraining.trainer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value  # the next lookup finds it without this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
