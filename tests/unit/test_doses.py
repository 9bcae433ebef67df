"""Doses in residual-norm units (interp.steering.doses): a relative dose d adds a vector of
length d × the mean residual norm, in the vector's direction."""

import pytest
import torch

from interp.steering.doses import (
    dose_vectors,
    geometric_doses,
    mean_residual_norm,
    raw_strength,
    relative_push,
    residual_norm,
)


def test_relative_dose_has_the_planted_length_and_direction():
    v = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 2.0]])  # [layer d_model], norms 5 and 2
    norms = torch.tensor([10.0, 50.0])
    out = dose_vectors(v, norms, [0.1, 1.0, 2.0])
    assert out.shape == (3, 2, 3)
    lengths = out.norm(dim=-1)
    assert torch.allclose(lengths, torch.tensor([[1.0, 5.0], [10.0, 50.0], [20.0, 100.0]]))
    assert torch.allclose(out[1, 0] / lengths[1, 0], v[0] / 5)
    assert torch.allclose(raw_strength(v, norms), torch.tensor([2.0, 25.0]))  # α with α·v = dose 1


def test_residual_norm_of_a_model_matches_a_hand_computation(tiny_gpt2):
    import interp
    from interp.steering import last_token_residuals

    batch = interp.tokenize(tiny_gpt2, ["a b c", "d e", "f"], padding_side="left")
    norms = mean_residual_norm(tiny_gpt2, batch, [0, 1])
    res = last_token_residuals(tiny_gpt2, batch, [0, 1])
    assert torch.allclose(norms, res.norm(dim=-1).mean(0))
    assert residual_norm(res[:, 0]) == pytest.approx(float(norms[0]))


def test_dose_errors_name_the_argument():
    with pytest.raises(ValueError, match="zero vector at layer indices \\[1\\]"):
        raw_strength(torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([1.0, 1.0]))
    with pytest.raises(ValueError, match="doses is empty"):
        dose_vectors(torch.ones(1, 2), torch.ones(1), [])
    with pytest.raises(ValueError, match="residual norms contains NaN"):
        residual_norm(torch.tensor([[float("nan"), 1.0]]))
    with pytest.raises(ValueError, match="need 0 < low < high"):
        geometric_doses(1.0, 0.5, 3)
    assert geometric_doses(0.01, 1.0, 3) == pytest.approx([0.01, 0.1, 1.0])


def test_relative_push_of_a_planted_edit():
    before = torch.tensor([[3.0, 4.0], [0.0, 2.0]])  # norms 5 and 2
    after = before + torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # pushes of length 1
    assert torch.allclose(relative_push(before, after), torch.tensor([0.2, 0.5]))
    assert torch.equal(relative_push(before, before), torch.zeros(2))
    with pytest.raises((ValueError, TypeError), match="same shape|after"):  # jaxtyping's check runs first under pytest
        relative_push(before, after[:1])
    with pytest.raises(ValueError, match="zero row"):
        relative_push(torch.zeros(1, 2), torch.ones(1, 2))


def test_toy_bracket_reads_no_effect_and_positive_control():
    from interp.studies.toy_steering import bracket

    rows = [
        {
            "adapter": "caa",
            "n_pairs": 4,
            "repeat": r,
            "strength": s,
            "push": s / 10,
            "accuracy": acc,
            "disturbance": s / 1000,
        }
        for r in range(2)
        for s, acc in [(0.1, 0.13), (1.0, 0.5), (10.0, 0.95), (100.0, 1.0)]
    ]
    b = bracket(rows, "caa", 4, none_accuracy=0.125)
    assert b["no_effect"] and b["control_strength"] == 10.0 and b["control_push"] == pytest.approx(1.0)
    assert b["max_push"] == pytest.approx(10.0)
    short = bracket([r for r in rows if r["strength"] <= 1.0], "caa", 4, none_accuracy=0.125)
    assert short["control_strength"] is None  # the grid never reaches the positive control: no null may be claimed
    assert not bracket([r for r in rows if r["strength"] >= 1.0], "caa", 4, none_accuracy=0.125)["no_effect"]
    assert bracket(rows, "ace", 4, 0.125) == {"defined": False}
