"""Chapter 5: fine-tuning a pretrained GPT as a classifier and as an instruction follower, LoRA, chat, on the
built-in data or real files as they come.

The names below are loaded when first asked for, so that the command line starts without torch."""

import coursekit  # noqa: F401  (first: a Ctrl-C while the rest imports then ends quietly)

# name -> the module that defines it
_EXPORTS = {
    "Instruction": "builtin", "Review": "builtin", "generate_instructions": "builtin", "generate_reviews": "builtin",
    "add_classifier_head": "classify", "bag_of_words_baseline": "classify", "choose_trainable": "classify",
    "class_logits": "classify", "evaluate_classifier": "classify", "finetune_classifier": "classify",
    "majority_baseline": "classify", "scores": "classify",
    "FitConfig": "config",
    "IGNORE": "instruct", "collate": "instruct", "exact_match": "instruct", "finetune_instructions": "instruct",
    "lm_loss": "instruct", "read_alpaca": "instruct", "score_answers": "instruct",
    "DATASETS": "labelled", "INSTRUCTION_DATASETS": "labelled", "LabelledData": "labelled",
    "load_labelled": "labelled", "make_splits": "labelled", "read_labelled": "labelled",
    "split_balanced": "labelled",
    "fit": "loop", "trainable_parameters": "loop",
    "LoRALinear": "lora", "apply_lora": "lora", "merge_lora": "lora",
    "TinyRecipe": "pretrained", "load_start": "pretrained", "pretrain_tiny": "pretrained",
    "rouge_l": "scoring", "token_f1": "scoring",
    "TEMPLATES": "template", "PromptTemplate": "template",
    "Codec": "vocab",
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
