"""Planted-signal tests for the steering adapters (seed 002 §2.3)."""

import pytest
import torch

from interp.steering import ACE, CAA, ACEConfig, CAAConfig, LoReFT, LoReFTConfig, LoReST, LoReSTConfig, make_adapter

D = 16


def _cos(a, b):
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def _shift_pairs(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(D, generator=g) * 2
    neg = torch.randn(n, D, generator=g)
    return neg, neg + v, v


@pytest.mark.parametrize("cls", [CAA, ACE])
def test_additive_adapters_recover_a_planted_shift(cls):
    neg, pos, v = _shift_pairs()
    adapter = cls().fit(neg, pos)
    assert _cos(adapter.direction, v) > 0.99


def test_caa_maps_negatives_onto_positives_for_a_pure_shift():
    neg, pos, v = _shift_pairs()
    torch.testing.assert_close(CAA().fit(neg, pos)(neg), pos)
    half = CAA(CAAConfig(strength=0.5)).fit(neg, pos)
    torch.testing.assert_close(half(neg), neg + 0.5 * v)


def test_ace_sets_every_input_to_the_same_projection():
    neg, pos, v = _shift_pairs()
    ace = ACE().fit(neg, pos)
    g = torch.Generator().manual_seed(5)
    far = torch.randn(50, D, generator=g) * 10 + 3  # inputs far from the training data
    out = ace(far)
    unit = ace.r / ace.r.norm()
    proj = out @ unit
    assert proj.std() < 1e-4  # same projection on r wherever the input started
    assert torch.allclose(proj, torch.full_like(proj, float(pos.mean(0) @ unit)), atol=1e-4)  # = the positive mean's
    orth = lambda x: x - (x @ unit)[:, None] * unit  # noqa: E731
    torch.testing.assert_close(orth(out), orth(far), atol=1e-4, rtol=1e-4)  # orthogonal parts untouched
    pooled = ACE(ACEConfig(reference="pooled")).fit(neg, pos)
    shift = float((pooled(far) @ unit).mean() - proj.mean())
    assert shift == pytest.approx(0.5 * float(ace.r.norm()), rel=1e-3)  # the pooled reference shifts α by ½


def _rank_r_pairs(n=256, r=2, seed=1):
    """pos = neg + U (A neg): an input-dependent change inside a rank-r subspace."""
    g = torch.Generator().manual_seed(seed)
    U = torch.linalg.qr(torch.randn(D, r, generator=g))[0]  # [d, r]
    A = torch.randn(r, D, generator=g)
    neg = torch.randn(n, D, generator=g)
    return neg, neg + (neg @ A.T) @ U.T


def test_loreft_fits_an_input_dependent_low_rank_change_caa_cannot():
    neg, pos = _rank_r_pairs()
    base = (pos - neg).pow(2).sum(-1).mean()
    caa_err = (CAA().fit(neg, pos)(neg) - pos).pow(2).sum(-1).mean()
    reft = LoReFT(LoReFTConfig(rank=2, steps=800, lr=2e-2)).fit(neg, pos)
    reft_err = (reft(neg) - pos).pow(2).sum(-1).mean()
    assert caa_err > 0.9 * base  # a constant shift cannot follow an input-dependent change
    assert reft_err < 0.02 * base
    rows = reft.R.weight
    torch.testing.assert_close(rows @ rows.T, torch.eye(2), atol=1e-5, rtol=0)  # orthonormal rows


def test_trained_adapters_are_deterministic_under_a_seed():
    neg, pos = _rank_r_pairs(n=32)
    for cls, cfg in [(LoReFT, LoReFTConfig(steps=50)), (LoReST, LoReSTConfig(steps=50))]:
        a, b = cls(cfg).fit(neg, pos), cls(cfg).fit(neg, pos)
        assert torch.equal(a(neg), b(neg)), cls.__name__
        assert a.losses[-1] < a.losses[0]


def test_lorest_is_a_bias_for_a_shift_and_a_projection_for_a_reset():
    # a pure shift: nothing to remove, so the gates close and the bias carries the change.
    # (With fewer pairs than dimensions the gates are not identifiable: Q can sit where the
    # training activations have no variance, so this is checked with n > d.)
    neg, pos, v = _shift_pairs(n=64)
    shift = LoReST(LoReSTConfig(rank=2, steps=600, lr=3e-2)).fit(neg, pos)
    assert shift.gates.max() < 0.2
    assert _cos(shift.bias.detach(), v) > 0.99
    held_out = torch.randn(20, D, generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(shift(held_out), held_out + v, atol=0.3, rtol=0)  # generalises like CAA
    # a reset: every input's component along u is set to 2 (ACE-like); with many pairs the
    # gate on that direction opens and span(Q) finds u
    g = torch.Generator().manual_seed(3)
    u = torch.nn.functional.normalize(torch.randn(D, generator=g), dim=0)
    neg = torch.randn(512, D, generator=g) * 2
    pos = neg - (neg @ u)[:, None] * u + 2 * u
    reset = LoReST(LoReSTConfig(rank=1, steps=800, lr=3e-2)).fit(neg, pos)
    assert reset.gates.max() > 0.9
    assert abs(_cos(reset.Q.weight[:, 0].detach(), u)) > 0.95
    err = (reset(neg) - pos).pow(2).sum(-1).mean()
    caa_err = (CAA().fit(neg, pos)(neg) - pos).pow(2).sum(-1).mean()
    assert err < 0.1 * caa_err


def test_bad_input_errors():
    neg, pos, _ = _shift_pairs(n=4)
    with pytest.raises(ValueError, match="pairs must match"):
        CAA().fit(neg, pos[:3])
    with pytest.raises(ValueError, match="empty"):
        CAA().fit(neg[:0], pos[:0])
    bad = pos.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        ACE().fit(neg, bad)
    with pytest.raises(RuntimeError, match="not fitted"):
        CAA()(neg)
    with pytest.raises(ValueError, match="last dimension"):
        CAA().fit(neg, pos)(torch.zeros(2, D + 1))
    with pytest.raises(ValueError, match="adapter='lora'"):
        make_adapter("lora")
    with pytest.raises(ValueError, match="rank=32 exceeds"):
        LoReFT(LoReFTConfig(rank=32)).fit(neg, pos)
    with pytest.raises(ValueError, match="mean\\(pos - neg\\) is zero"):
        ACE().fit(neg, neg)
