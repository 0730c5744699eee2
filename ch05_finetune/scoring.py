"""Scores for open answers: token F1 and ROUGE-L.

Exact match asks for the whole answer, character for character. That suits a
one-word answer ("positive", "Paris") and fails an open one: "The capital is
Paris." and "Paris is the capital." mean the same and share no exact match.
Two softer scores are standard for such answers, and both work on words:

* **Token F1**, as in SQuAD (Rajpurkar et al., 2016,
  https://arxiv.org/abs/1606.05250): normalise both strings (lowercase, drop
  punctuation and the articles a/an/the, collapse spaces), treat each as a bag
  of words, and take the harmonic mean of precision (how many predicted words
  are in the reference) and recall (how many reference words were predicted).
  Word order does not count.
* **ROUGE-L** (Lin, 2004, https://aclanthology.org/W04-1013/): the longest
  common subsequence (LCS) of the two word lists, i.e. the longest run of
  words both contain in the same order, gaps allowed. Precision is LCS over the
  prediction's length, recall LCS over the reference's; the F-measure combines
  them. Word order counts, but only as far as it agrees.

Both are 1.0 for identical answers after normalisation and 0.0 for answers
with no word in common. The same normalisation is used for both, so the two
differ only in whether order matters.
"""

from __future__ import annotations

import re
import string
from collections import Counter

__all__ = ["answer_tokens", "lcs_length", "mean_scores", "normalize_answer", "rouge_l", "token_f1"]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lowercase, drop ASCII punctuation and the articles a/an/the, collapse whitespace (SQuAD's normalisation)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def answer_tokens(text: str) -> list[str]:
    """The words of `text` after `normalize_answer`."""
    return normalize_answer(text).split()


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style token F1 between two answers: the bag-of-words overlap of their normalised words.

    common = the number of words both contain (a word counted as often as it occurs in both)
    precision = common / words in the prediction, recall = common / words in the reference
    F1 = 2 * precision * recall / (precision + recall)

    Two answers that are both empty after normalisation (e.g. "The." and "") score 1.0; one empty
    and one not score 0.0.
    """
    pred, ref = answer_tokens(prediction), answer_tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two word lists (dynamic programming, one row at a time).

    row[j] holds the LCS of the words of `a` seen so far and b[:j]. On a match the LCS grows by one from the
    diagonal (both words used); otherwise it is the better of dropping the word from `a` or from `b`.
    """
    if len(a) < len(b):
        a, b = b, a  # keep the row as short as possible
    row = [0] * (len(b) + 1)
    for word in a:
        diagonal = 0  # row[j - 1] of the previous pass
        for j, other in enumerate(b, start=1):
            above = row[j]
            row[j] = diagonal + 1 if word == other else max(above, row[j - 1])
            diagonal = above
    return row[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure between two answers, from the longest common subsequence of their normalised words.

    precision = LCS / words in the prediction, recall = LCS / words in the reference,
    F = 2 * precision * recall / (precision + recall) (the balanced F-measure, beta = 1).

    Empty answers are handled as in `token_f1`.
    """
    pred, ref = answer_tokens(prediction), answer_tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    lcs = lcs_length(pred, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def mean_scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean exact match (after normalisation), token F1 and ROUGE-L over pairs of answers."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    n = max(len(references), 1)
    return {
        "exact_match": sum(normalize_answer(p) == normalize_answer(r) for p, r in zip(predictions, references)) / n,
        "token_f1": sum(token_f1(p, r) for p, r in zip(predictions, references)) / n,
        "rouge_l": sum(rouge_l(p, r) for p, r in zip(predictions, references)) / n,
    }
