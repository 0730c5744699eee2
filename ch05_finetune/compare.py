"""How sure a test score is, a strong baseline, and when one classifier beats another.

A test split is a sample: 150 test texts give an accuracy that a second sample of 150 could move by several
points. So every accuracy here comes with its 95% interval (Wilson's, which stays inside 0..1 and behaves at
0% and 100%), and "beats" is a claim about two classifiers scored on the same texts: McNemar's test looks only
at the texts where exactly one of them is right. If those split about evenly, the two are level, whatever
their accuracies say.

The strong baseline is the field's standard one for text: TF-IDF weights of words and word pairs, and a
logistic regression on them (scikit-learn), its regularization chosen on the validation split.
"""

from __future__ import annotations

import math

from coursekit import CourseError

Z95 = 1.959964  # the normal quantile of a two-sided 95% interval
FEW_TEST_EXAMPLES = 200  # below this, a test accuracy is uncertain by more than about +-7 points
SIGNIFICANCE = 0.05


def wilson_interval(correct: int, total: int, z: float = Z95) -> tuple[float, float]:
    """The 95% interval of an accuracy of `correct` / `total` (Wilson score interval)."""
    if total <= 0:
        raise CourseError("an interval needs at least one example")
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar(pred_a: list[int], pred_b: list[int], true: list[int]) -> dict:
    """McNemar's exact test of two classifiers on the same examples.

    a_only: examples only A got right; b_only: only B. Under "the two are equally good" each of those
    a_only + b_only disagreements goes either way with probability 1/2, so the two-sided p-value is a
    binomial tail (scipy's exact binomial test)."""
    from scipy.stats import binomtest

    if not len(pred_a) == len(pred_b) == len(true):
        raise CourseError("McNemar's test needs the two classifiers' predictions on the same examples")
    a_only = sum(a == t != b for a, b, t in zip(pred_a, pred_b, true))
    b_only = sum(b == t != a for a, b, t in zip(pred_a, pred_b, true))
    p = binomtest(a_only, a_only + b_only, 0.5).pvalue if a_only + b_only else 1.0
    return {"a_only": a_only, "b_only": b_only, "p": float(p)}


def verdict(name_a: str, name_b: str, test: dict, alpha: float = SIGNIFICANCE) -> str:
    """One sentence: which of A and B is better at the 5% level, or that they are level."""
    counts = f"{test['a_only']} texts only the {name_a} got right, {test['b_only']} only the {name_b}"
    if test["p"] < alpha:
        winner, loser = (name_a, name_b) if test["a_only"] > test["b_only"] else (name_b, name_a)
        return f"the {winner} beats the {loser} (McNemar p = {test['p']:.3g}; {counts})"
    return f"the {name_a} and the {name_b} are level (McNemar p = {test['p']:.2g}, not below {alpha}; {counts})"


# The regularization strengths tried (scikit-learn's C: larger fits the training set more closely).
TFIDF_C = (0.1, 1.0, 10.0, 100.0)


def tfidf_baseline(train_texts: list[str], train_labels: list[int], val_texts: list[str], val_labels: list[int],
                   test_texts: list[str]) -> dict:
    """TF-IDF of words and word pairs, then logistic regression; C chosen by validation accuracy.

    Returns the test predictions, the chosen C and its validation accuracy. A text's words are counted
    wherever they are, so a long text is read whole: the baseline has no context window."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    # sublinear_tf: a word said ten times is not ten times the evidence; min_df=2 drops one-off typos and names
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    try:
        x_train = vectorizer.fit_transform(train_texts)
    except ValueError:  # no word occurs twice: too little text for a vocabulary
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        x_train = vectorizer.fit_transform(train_texts)
    x_val, x_test = vectorizer.transform(val_texts), vectorizer.transform(test_texts)
    best = None
    for c in TFIDF_C:
        model = LogisticRegression(C=c, max_iter=2000).fit(x_train, train_labels)
        val_accuracy = float((model.predict(x_val) == val_labels).mean())
        if best is None or val_accuracy > best[0]:
            best = (val_accuracy, c, model)
    val_accuracy, c, model = best
    return {"predictions": model.predict(x_test).tolist(), "C": c, "val_accuracy": val_accuracy,
            "features": len(vectorizer.vocabulary_)}
