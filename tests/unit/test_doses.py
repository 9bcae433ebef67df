"""Doses in residual-norm units (interp.steering.doses): a relative dose d adds a vector of
length d × the mean residual norm, in the vector's direction."""

import pytest
import torch

from interp.steering.doses import dose_vectors, geometric_doses, mean_residual_norm, raw_strength, residual_norm


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
