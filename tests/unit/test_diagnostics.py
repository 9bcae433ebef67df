"""Pooled vs within-group statistics: planted Simpson's paradox, dissociation cases, AUROC,
PC1 variance and the IID gate."""

import numpy as np
import pytest
from scipy import stats

from interp.stats import auroc, correlate, dissociation_cases, grouped_correlation, iid_gate, pc1_variance


def _groups(within_slope: float, offset_step: float, seed: int = 0):
    """Three groups; inside each y = within_slope * x + noise, and group g is shifted by
    g * offset_step in both x and y."""
    rng = np.random.default_rng(seed)
    xs, ys, gs = [], [], []
    for g in range(3):
        x = rng.normal(0, 1, 40)
        y = within_slope * x + rng.normal(0, 0.3, 40)
        xs.append(x + g * offset_step)
        ys.append(y + g * offset_step * 2)
        gs += [f"task{g}"] * 40
    return np.concatenate(xs), np.concatenate(ys), gs


def test_planted_simpsons_paradox_is_flagged():
    x, y, g = _groups(within_slope=-1.0, offset_step=5.0)
    res = grouped_correlation(x, y, g)
    assert res.pooled.r > 0.5  # groups drift up together
    assert all(c.r < -0.8 for c in res.groups.values())  # but inside each it goes down
    assert res.simpson.flagged and res.simpson.n_opposite == 3
    assert "SIMPSON" in str(res.simpson)


def test_no_paradox_is_not_flagged():
    x, y, g = _groups(within_slope=1.0, offset_step=5.0)
    res = grouped_correlation(x, y, g, method="spearman")
    assert res.pooled.r > 0.5 and not res.simpson.flagged and res.simpson.n_opposite == 0


def test_correlation_matches_scipy_and_marks_undefined():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=30), rng.normal(size=30)
    c = correlate(x, y)
    ref = stats.pearsonr(x, y)
    assert c.r == pytest.approx(ref[0]) and c.p == pytest.approx(ref[1])
    assert correlate(x, y, "spearman").r == pytest.approx(stats.spearmanr(x, y)[0])
    assert not correlate([1, 2], [3, 4]).defined  # too few pairs
    assert not correlate([1, 1, 1, 1], [1, 2, 3, 4]).defined  # constant side
    assert correlate([1, 2, np.nan, 4, 5], [2, 4, 9, 8, 10]).n == 4  # NaN pair dropped
    with pytest.raises(ValueError, match="method='kendall'"):
        correlate(x, y, "kendall")


def test_dissociation_cases_and_auroc():
    cos = [0.9, 0.95, 0.5, 0.85, np.nan]
    transfer = [0.1, 0.9, 0.1, 0.3, 0.0]
    out = dissociation_cases(cos, transfer, ["a", "a", "b", "b", "b"])
    assert out == {"a": 1, "b": 1, "total": 2}
    rng = np.random.default_rng(2)
    s = rng.normal(size=50)
    lab = rng.random(50) < 0.4
    u = stats.mannwhitneyu(s[lab], s[~lab]).statistic
    assert auroc(s, lab) == pytest.approx(u / (lab.sum() * (~lab).sum()))
    assert auroc([1, 2, 3, 4], [False, False, True, True]) == 1.0
    assert auroc([1, 1], [True, False]) == 0.5
    assert np.isnan(auroc([1, 2], [True, True]))


def test_pc1_variance_and_iid_gate():
    rng = np.random.default_rng(3)
    direction = rng.normal(size=64)
    planted = rng.normal(size=(8, 1)) * direction + 0.01 * rng.normal(size=(8, 64))
    assert pc1_variance(planted) > 0.99
    assert pc1_variance(rng.normal(size=(8, 64))) < 0.4
    assert np.isnan(pc1_variance(np.ones((1, 4))))
    kept, dropped = iid_gate({"antonym": 0.8, "capitalize": 0.2, "broken": float("nan")}, threshold=0.5)
    assert kept == ["antonym"] and dropped == ["capitalize", "broken"]


# ----------------------------------------------------------------------------- steering effects


def test_cohens_d_by_hand_and_undefined_cases():
    from interp.stats import cohens_d

    a, b = [2.0, 4.0, 6.0], [1.0, 2.0, 3.0]
    pooled = np.sqrt((2 * 4.0 + 2 * 1.0) / 4)  # variances 4 and 1 (ddof=1)
    e = cohens_d(a, b)
    assert e.d == pytest.approx(2.0 / pooled)
    se = np.sqrt(6 / 9 + e.d**2 / 12)
    assert e.ci_high - e.d == pytest.approx(1.959964 * se, rel=1e-5)
    rng = np.random.default_rng(0)
    planted = cohens_d(rng.normal(0.5, 1, 4000), rng.normal(0, 1, 4000))
    assert planted.ci_low < 0.5 < planted.ci_high
    assert np.isnan(cohens_d([1.0], [1.0, 2.0]).d)
    assert np.isnan(cohens_d([1.0, 1.0], [1.0, 1.0]).d)
    assert "undefined" in str(cohens_d([1.0, 1.0], [1.0, 1.0]))


def test_mcnemar_exact_and_min_detectable():
    from scipy.stats import binomtest

    from interp.stats import mcnemar_exact, mcnemar_min_detectable

    control = np.array([1, 1, 0, 0, 0, 0, 0, 0, 1, 0], dtype=bool)
    treat = np.array([1, 0, 1, 1, 1, 1, 1, 0, 1, 0], dtype=bool)
    m = mcnemar_exact(control, treat)
    assert (m.gained, m.lost, m.n) == (5, 1, 10)
    assert m.p == pytest.approx(binomtest(5, 6, 0.5).pvalue)
    assert mcnemar_exact(control, control).p == 1.0
    with pytest.raises(ValueError, match="same items"):
        mcnemar_exact(control, treat[:5])
    # 6 one-sided discordant pairs: p = 2/64 < .05; 5 give 2/32 > .05
    assert mcnemar_min_detectable(107) == pytest.approx(6 / 107)
    assert mcnemar_exact(np.zeros(107, bool), np.r_[np.ones(6, bool), np.zeros(101, bool)]).p < 0.05
    assert mcnemar_exact(np.zeros(107, bool), np.r_[np.ones(5, bool), np.zeros(102, bool)]).p > 0.05
    assert np.isnan(mcnemar_min_detectable(5))


def test_identical_outputs_flags_invariance():
    from interp.stats import identical_outputs

    assert identical_outputs({0.0: ["12", "7"], 1.0: ["12", "7"], -1.0: ["12", "7"]})
    assert not identical_outputs({0.0: ["12", "7"], 1.0: ["12", "8"]})
    with pytest.raises(ValueError, match="at least two settings"):
        identical_outputs({0.0: ["1"]})


def test_an_insignificant_pooled_correlation_is_not_a_paradox():
    """Pooled r ≈ 0 (p large) with most groups of the other sign: nothing to reverse."""
    from interp.stats import Correlation, simpson_check

    groups = {g: Correlation(-0.02, 0.6, 800, "pearson") for g in "abc"}
    weak = simpson_check(Correlation(0.016, 0.31, 4200, "pearson"), groups)
    assert not weak.flagged and not weak.pooled_significant and "not significant" in str(weak)
    strong = simpson_check(Correlation(0.3, 1e-9, 4200, "pearson"), groups)
    assert strong.flagged and strong.pooled_significant
