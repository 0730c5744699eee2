"""Chapter 5's scores for open answers: token F1 (SQuAD-style) and ROUGE-L."""

import pytest

from ch05_finetune.scoring import lcs_length, mean_scores, normalize_answer, rouge_l, token_f1


def test_normalisation_drops_case_punctuation_and_articles():
    assert normalize_answer("The  Cat, sat on A mat!") == "cat sat on mat"
    assert normalize_answer("An apple.") == "apple"
    assert normalize_answer("") == ""


def test_identical_answers_score_one_and_disjoint_answers_zero():
    assert token_f1("Paris is the capital.", "paris is THE capital") == 1.0
    assert rouge_l("Paris is the capital.", "paris is THE capital") == 1.0
    assert token_f1("red", "blue") == 0.0
    assert rouge_l("red", "blue") == 0.0


def test_token_f1_by_hand():
    # prediction: [cat, sat] ; reference: [cat, sat, on, mat] -> precision 1, recall 1/2, F1 2/3
    assert token_f1("The cat sat", "the cat sat on the mat") == pytest.approx(2 / 3)
    # a repeated word counts only as often as it is in both: [yes x3] vs [yes x1] -> p 1/3, r 1
    assert token_f1("yes yes yes", "yes") == pytest.approx(0.5)


def test_token_f1_ignores_order_but_rouge_l_does_not():
    assert token_f1("paris is the capital", "capital is paris") == 1.0
    # words [paris, is, capital] vs [capital, is, paris]: the LCS is 1 word long -> F = 1/3
    assert rouge_l("paris is the capital", "capital is paris") == pytest.approx(1 / 3)


def test_rouge_l_by_hand():
    # [police, killed, gunman] vs [police, kill, gunman]: LCS = [police, gunman] = 2 -> p 2/3, r 2/3
    assert rouge_l("police killed the gunman", "the police kill the gunman") == pytest.approx(2 / 3)


def test_lcs_length():
    assert lcs_length(["a", "b", "c", "d"], ["b", "d"]) == 2
    assert lcs_length(["b", "d"], ["a", "b", "c", "d"]) == 2
    assert lcs_length([], ["x"]) == 0
    assert lcs_length(["x", "y", "z"], ["z", "y", "x"]) == 1


def test_empty_answers():
    assert token_f1("", "") == 1.0
    assert token_f1("The.", "") == 1.0  # both empty after normalisation
    assert token_f1("", "something") == 0.0
    assert rouge_l("", "something") == 0.0


def test_mean_scores():
    got = mean_scores(["Paris", "red"], ["paris.", "blue"])
    assert got == {"exact_match": 0.5, "token_f1": 0.5, "rouge_l": 0.5}
    with pytest.raises(ValueError):
        mean_scores(["a"], [])
