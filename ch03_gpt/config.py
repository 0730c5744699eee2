"""The shape of a GPT (`GPTConfig`) and the allowed values of its numbers (`GPT_RULES`), by the name the later
chapters import them from. They are defined in model.py; the command lines of Chapter 4 and of the main job read
them from here."""

from .model import GPT_RULES, GPTConfig

__all__ = ["GPT_RULES", "GPTConfig"]
