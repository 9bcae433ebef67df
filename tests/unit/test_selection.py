"""Held-out selection (interp.selection) on planted scores: choosing on noise shows an optimism
gap that the test part removes; a real effect survives the split."""

import numpy as np
import pytest

from interp.selection import Split, select, split_items


def test_split_is_seeded_disjoint_and_stratified():
    groups = ["a"] * 30 + ["b"] * 10
    s = split_items(40, 0.5, seed=3, groups=groups)
    assert np.intersect1d(s.selection, s.test).size == 0 and len(s.selection) + len(s.test) == 40
    assert sum(groups[i] == "b" for i in s.test) == 5 and sum(groups[i] == "a" for i in s.test) == 15
    again = split_items(40, 0.5, seed=3, groups=groups)
    assert (again.test == s.test).all()
    assert not (split_items(40, 0.5, seed=4, groups=groups).test == s.test).all()


def test_choosing_among_noise_configs_has_a_positive_optimism_gap():
    gaps, tests = [], []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        # 50 configurations that are all the same coin (p = 0.3): any "best" one is luck
        scores = {k: rng.binomial(1, 0.3, 60).astype(float) for k in range(50)}
        sel = select(scores, split_items(60, 0.5, seed=seed), n_boot=200)
        gaps.append(sel.optimism_gap)
        tests.append(sel.test.mean)
    assert np.mean(gaps) > 0.1  # the luckiest of 50 on 30 items looks far better than it is
    assert abs(np.mean(tests) - 0.3) < 0.04  # the held-out items give the truth back
    assert "chosen on 30 items, reported on 30" in sel.describe() and "best-on-test, labelled" in sel.describe()


def test_a_planted_better_config_is_chosen_and_holds_on_test():
    rng = np.random.default_rng(1)
    scores = {"weak": rng.binomial(1, 0.2, 200).astype(float), "strong": rng.binomial(1, 0.8, 200).astype(float)}
    sel = select(scores, split_items(200, 0.5, seed=1))
    assert sel.config == "strong" and abs(sel.optimism_gap) < 0.1 and sel.test.ci_low > 0.65
    lower = select({"a": np.full(10, 2.0), "b": np.full(10, 1.0)}, split_items(10), higher_is_better=False)
    assert lower.config == "b"
    tie = select({"small": np.ones(10), "large": np.ones(10)}, split_items(10))
    assert tie.config == "small"  # ties go to the first (most conservative) candidate


def test_undefined_scores_and_bad_input_are_named():
    with pytest.raises(ValueError, match="all NaN"):
        select({"a": np.full(6, np.nan)}, split_items(6))
    nan_some = select({"a": np.array([1, np.nan, 1, 0, np.nan, 1.0])}, split_items(6))
    assert nan_some.test.n + nan_some.test.n_undefined == 3
    with pytest.raises(ValueError, match="different lengths"):
        select({"a": np.ones(4), "b": np.ones(5)}, split_items(4))
    with pytest.raises(ValueError, match="overlap"):
        Split(np.array([0, 1]), np.array([1, 2]))
    with pytest.raises(ValueError, match="test_fraction=1.5"):
        split_items(10, 1.5)
    with pytest.raises(ValueError, match="n_items=1"):
        split_items(1)
    with pytest.raises(ValueError, match="scores is empty"):
        select({}, split_items(4))


def test_restrict_indexes_every_nested_array():
    from interp.selection import restrict

    m = {"base": {"mc1": np.arange(5.0)}, "dola|a|0.1": {"mc1": np.arange(5.0) * 2, "mc2": np.ones(5)}}
    out = restrict(m, np.array([1, 3]))
    assert out["base"]["mc1"].tolist() == [1.0, 3.0] and out["dola|a|0.1"]["mc1"].tolist() == [2.0, 6.0]
    assert out["dola|a|0.1"]["mc2"].shape == (2,)
