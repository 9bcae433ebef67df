import math

import numpy as np
import torch

from interp.patching import logit_diff_metric, logprob_metric, prob_metric, recovery
from interp.stats import bootstrap_ci


def test_recovery_planted():
    m_clean, m_corr = torch.tensor([2.0, 4.0]), torch.tensor([0.0, 1.0])
    patched = torch.tensor([[1.0, 4.0], [0.0, 2.5]])  # [grid batch]
    r, undefined = recovery(patched, m_clean, m_corr)
    assert torch.allclose(r, torch.tensor([[0.5, 1.0], [0.0, 0.5]]))
    assert not undefined.any()


def test_recovery_undefined_is_nan_not_division():
    m_clean, m_corr = torch.tensor([1.0, 0.3]), torch.tensor([0.0, 0.3 + 1e-7])
    r, undefined = recovery(torch.tensor([0.5, 5.0]), m_clean, m_corr, tol=1e-3)
    assert undefined.tolist() == [False, True]
    assert r[0] == 0.5 and torch.isnan(r[1])


def test_metrics_planted():
    logits = torch.tensor([[1.0, 3.0, 0.0], [2.0, 0.0, 5.0]])
    assert logit_diff_metric(torch.tensor([1, 2]), torch.tensor([0, 0]))(logits).tolist() == [2.0, 3.0]
    lp = logprob_metric(torch.tensor([1, 2]))(logits)
    assert torch.allclose(lp, logits.log_softmax(-1)[[0, 1], [1, 2]])
    assert torch.allclose(prob_metric(torch.tensor([1, 2]))(logits), lp.exp())


def test_bootstrap_ci_excludes_nan_and_covers_mean():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(1.0, 1.0, 400), [np.nan] * 5])
    est = bootstrap_ci(x)
    assert est.n == 400 and est.n_undefined == 5
    assert est.ci_low < 1.0 < est.ci_high and est.ci_high - est.ci_low < 0.3


def test_bootstrap_all_undefined():
    est = bootstrap_ci([math.nan, math.nan])
    assert est.n == 0 and math.isnan(est.mean) and "undefined" in str(est)


def test_jaxtyping_shape_checks_are_active():
    # recovery() declares m_clean [batch] and m_patched [*grid batch]; a mismatch must be caught
    import jaxtyping
    import pytest

    with pytest.raises(jaxtyping.TypeCheckError):
        recovery(torch.zeros(3, 2), torch.zeros(5), torch.zeros(5))


def test_recovery_non_finite_gap_is_undefined():
    m_clean, m_corr = torch.tensor([float("nan"), float("inf"), 2.0]), torch.tensor([0.0, 1.0, 0.0])
    r, undefined = recovery(torch.tensor([1.0, 1.0, 1.0]), m_clean, m_corr)
    assert undefined.tolist() == [True, True, False]
    assert torch.isnan(r[:2]).all() and r[2] == 0.5


def test_logit_diff_metric_declares_columns():
    metric = logit_diff_metric(torch.tensor([4, 1]), torch.tensor([1, 7]))
    assert metric.columns.tolist() == [1, 4, 7]
    import pytest

    # our ValueError; under the test suite's runtime shape checks jaxtyping's TypeError comes first
    with pytest.raises((ValueError, TypeError)):
        logit_diff_metric(torch.tensor([1, 2]), torch.tensor([1]))
