"""Chapter 5: fine-tuning a pretrained GPT as a classifier and as an instruction follower, LoRA, chat, on the
built-in data or real files as they come."""

import coursekit  # noqa: F401  (first: a Ctrl-C while the rest imports then ends quietly)
from coursekit.lazy import lazy_exports

__all__ = [
    "DATASETS", "IGNORE", "INSTRUCTION_DATASETS", "TEMPLATES", "Codec", "FitConfig", "Instruction", "LabelledData",
    "LoRALinear", "PromptTemplate", "Review", "TinyRecipe", "add_classifier_head", "apply_lora",
    "bag_of_words_baseline", "choose_trainable", "class_logits", "collate", "evaluate_classifier", "exact_match",
    "finetune_classifier", "finetune_instructions", "fit", "generate_instructions", "generate_reviews", "lm_loss",
    "load_labelled", "load_start", "majority_baseline", "make_splits", "mcnemar", "merge_lora", "predict_proba",
    "pretrain_tiny", "read_alpaca", "read_labelled", "rouge_l", "score_answers", "scores", "split_balanced",
    "tfidf_baseline", "token_f1", "trainable_parameters", "views", "wilson_interval",
]

# Each name is imported from its module when first used, so `python -m ch05_finetune --help` imports no torch.
__getattr__, __dir__ = lazy_exports(__name__, {
    "builtin": ("Instruction", "Review", "generate_instructions", "generate_reviews"),
    "classify": ("add_classifier_head", "bag_of_words_baseline", "choose_trainable", "class_logits",
                 "evaluate_classifier", "finetune_classifier", "majority_baseline", "predict_proba", "scores"),
    "compare": ("mcnemar", "tfidf_baseline", "wilson_interval"),
    "config": ("FitConfig",),
    "instruct": ("IGNORE", "collate", "exact_match", "finetune_instructions", "lm_loss", "read_alpaca",
                 "score_answers"),
    "labelled": ("DATASETS", "INSTRUCTION_DATASETS", "LabelledData", "load_labelled", "make_splits",
                 "read_labelled", "split_balanced"),
    "long_texts": ("views",),
    "loop": ("fit", "trainable_parameters"),
    "lora": ("LoRALinear", "apply_lora", "merge_lora"),
    "pretrained": ("TinyRecipe", "load_start", "pretrain_tiny"),
    "scoring": ("rouge_l", "token_f1"),
    "template": ("TEMPLATES", "PromptTemplate"),
    "vocab": ("Codec",),
})
