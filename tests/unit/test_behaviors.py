import numpy as np
import pytest

from interp.behaviors import MATCHING, NOT_MATCHING, UNPARSEABLE, answer_letter, parse_choice, score_generation


def test_answer_letter():
    assert answer_letter("(A)") == "A" and answer_letter(" B ") == "B" and answer_letter("( B )") == "B"
    with pytest.raises(ValueError, match="label='Yes'"):
        answer_letter("Yes")


@pytest.mark.parametrize(
    "text, want",
    [
        ("(A)", "A"),
        (" (B) Lost more than it has gained", "B"),
        ("B", "B"),
        ("A. Because trade helps.", "A"),
        ("My answer is B.", "B"),
        ("I choose (A), since the other option (B) is wrong", None),  # both named on the first line
        ("(A)\nThe option (B) would be harmful.", "A"),  # explanation lines after the choice do not count
        ("I cannot answer that.", None),  # the article "a"/"I" are not choices
        ("As an AI, I think", None),
        ("", None),
    ],
)
def test_parse_choice(text, want):
    assert parse_choice(text) == want


def test_score_generation():
    assert score_generation("(B) No", "(B)") == MATCHING
    assert score_generation("(B) No", "(A)") == NOT_MATCHING
    assert score_generation("Both (A) and (B)", "(A)") == UNPARSEABLE


def test_oriented_logit_diff():
    import torch

    from interp.behaviors import oriented_logit_diff

    logits = torch.tensor([[2.0, 0.5], [1.0, 3.0]])  # item 0: A > B; item 1: B > A
    torch.testing.assert_close(oriented_logit_diff(logits, ["(A)", "(A)"]), torch.tensor([1.5, -2.0]))
    torch.testing.assert_close(oriented_logit_diff(logits, ["(B)", "(A)"]), torch.tensor([-1.5, -2.0]))
    torch.testing.assert_close(
        oriented_logit_diff(logits[None].repeat(3, 1, 1), ["(B)", "(B)"]), torch.tensor([[-1.5, 2.0]] * 3)
    )
    with pytest.raises(ValueError, match="2 matching labels for 3 items"):
        oriented_logit_diff(torch.zeros(3, 2), ["(A)", "(B)"])


def test_behaviour_and_letter_shift_separates_planted_parts():
    import numpy as np

    from interp.behaviors import behaviour_and_letter_shift

    rng = np.random.default_rng(0)
    matching = ["(A)"] * 70 + ["(B)"] * 30  # unbalanced on purpose
    is_a = np.array([m == "(A)" for m in matching])
    # pure letter push of +2 towards "A": +2 on A-questions, -2 on B-questions, no behaviour
    b, let = behaviour_and_letter_shift(np.where(is_a, 2.0, -2.0), matching)
    assert abs(b) < 1e-12 and abs(let - 2.0) < 1e-12
    # the plain mean would report a behaviour shift of 0.8 here: the split must not
    assert abs(np.where(is_a, 2.0, -2.0).mean() - 0.8) < 1e-12
    # behaviour 0.5 plus letter -1 plus noise
    shift = 0.5 + np.where(is_a, -1.0, 1.0) + rng.normal(0, 0.01, 100)
    b, let = behaviour_and_letter_shift(shift, matching)
    assert abs(b - 0.5) < 0.01 and abs(let + 1.0) < 0.01
    assert all(np.isnan(behaviour_and_letter_shift(np.ones(3), ["(A)"] * 3)))  # one letter only: undefined
    with pytest.raises(ValueError, match="one value per question"):
        behaviour_and_letter_shift(np.ones(4), ["(A)", "(B)"])


def test_behaviour_and_letter_ci_covers_the_planted_parts():
    from interp.behaviors import behaviour_and_letter_ci

    rng = np.random.default_rng(0)
    matching = ["(A)"] * 30 + ["(B)"] * 10  # unbalanced: a plain mean would mix the parts
    b, l_ = 0.5, 2.0
    shift = np.array([b + l_ if m == "(A)" else b - l_ for m in matching]) + rng.normal(0, 0.3, 40)
    (bm, blo, bhi), (lm, llo, lhi) = behaviour_and_letter_ci(shift, matching)
    assert blo < b < bhi and llo < l_ < lhi and blo < bm < bhi and llo < lm < lhi
    assert all(np.isnan(x) for x in behaviour_and_letter_ci(shift, ["(A)"] * 40)[0])
