"""Specificity controls: planted expectations."""

import numpy as np
import pytest
import torch

from interp.steering.controls import compare_to_controls, match_norm, random_directions, shuffled_label_vectors


def test_random_directions_keep_each_rows_norm_and_are_seeded():
    v = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 2.0]])
    c = random_directions(v, 50, seed=1)
    assert c.shape == (50, 2, 3)
    torch.testing.assert_close(c.norm(dim=-1), v.norm(dim=-1).expand(50, 2))
    torch.testing.assert_close(c, random_directions(v, 50, seed=1))
    assert not torch.allclose(c, random_directions(v, 50, seed=2))
    # directions are spread out: their mean cosine with v is near zero
    cos = (c[:, 0] @ v[0]) / (c[:, 0].norm(dim=-1) * v[0].norm())
    assert abs(float(cos.mean())) < 0.3
    with pytest.raises(ValueError, match="zero row"):
        random_directions(torch.zeros(1, 3), 2)


def test_shuffled_labels_destroy_a_planted_direction():
    g = torch.Generator().manual_seed(0)
    neg = torch.randn(400, 8, generator=g)
    pos = neg + torch.tensor([5.0] + [0.0] * 7)  # planted: +5 along axis 0
    true = (pos - neg).mean(0)
    ctrl = shuffled_label_vectors(neg, pos, 20, seed=0)
    assert ctrl.shape == (20, 8) and float(ctrl[:, 0].abs().mean()) < 1.0 < float(true[0])
    same = match_norm(ctrl, true)
    torch.testing.assert_close(same.norm(dim=-1), true.norm().expand(20))


def test_compare_to_controls_separates_a_real_effect_from_a_push():
    rng = np.random.default_rng(0)
    controls = rng.binomial(1, 0.5, size=(10, 200)).astype(float)
    real = rng.binomial(1, 0.8, size=200).astype(float)
    cmp = compare_to_controls(real, controls)
    assert cmp.difference > 0.2 and cmp.ci[0] > 0 and cmp.p_extreme == pytest.approx(1 / 11)
    null = compare_to_controls(controls[0], controls[1:])
    assert null.ci[0] < 0 < null.ci[1] and null.p_extreme > 0.05
    assert "vs control" in str(cmp)
    with pytest.raises(ValueError, match="expected \\[items\\] and \\[n_controls >= 1, items\\]"):
        compare_to_controls(real, controls[:, :10])


def test_paired_d_uses_the_differences_not_pooled_groups():
    """Two conditions on the same items with a large shared spread and a small consistent
    difference: the paired d_z is large, a pooled-SD d would be small."""
    from interp.stats import cohens_d, paired_d

    rng = np.random.default_rng(0)
    base = rng.normal(0, 5.0, 60)
    a, b = base + 1.0 + rng.normal(0, 0.2, 60), base
    dz = paired_d(a, b)
    assert dz.d > 3 and dz.ci_low > 2 and dz.n_a == 60
    assert abs(cohens_d(a, b).d) < 0.5
    assert np.isnan(paired_d([1.0, 2.0], [0.0, 1.0]).d)  # constant difference: undefined
    with pytest.raises(ValueError, match="same items"):
        paired_d([1.0, 2.0], [1.0])
