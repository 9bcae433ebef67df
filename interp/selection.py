"""Held-out selection: choose a configuration (layer, strength, bucket, k, ...) on one part of
the items and report it on the other.

A study scores every candidate configuration on every item; :func:`split_items` splits the
items (seeded; stratified by group when groups are given) into a *selection* part and a *test*
part; :func:`select` picks the configuration with the best mean on the selection items and
reports its test mean with a bootstrap CI, the **optimism gap** (selection score − test score
of the chosen configuration: how much choosing on the same items would have flattered it) and,
labelled as such, the best-on-test configuration that a study selecting on its test items would
have reported.

    >>> split = split_items(n_items, test_fraction=0.5, seed=0, groups=task_of_item)
    >>> sel = select({("L6", 0.5): acc_a, ("L10", 1.0): acc_b}, split)   # per-item scores [n_items]
    >>> sel.describe()   # 'chosen on 20 items, reported on 20: 0.41 [0.20, 0.62]; optimism gap +0.08'
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from interp.stats import Estimate, bootstrap_ci


@dataclass
class SelectionConfig:
    """How a study splits its items for choosing (see :func:`split_items`)."""

    test_fraction: float = 0.5  # share of the items kept for reporting
    seed: int = 0


@dataclass(frozen=True)
class Split:
    """Item indices to choose on (``selection``) and to report on (``test``), disjoint and sorted."""

    selection: np.ndarray  # item indices to choose on (sorted)
    test: np.ndarray  # item indices to report on (sorted), disjoint from selection

    def __post_init__(self) -> None:
        if np.intersect1d(self.selection, self.test).size:
            raise ValueError("selection and test items overlap; a held-out split needs disjoint parts")


def split_items(
    n_items: int, test_fraction: float = 0.5, seed: int = 0, groups: Sequence[Hashable] | None = None
) -> Split:
    """Seeded split of ``range(n_items)``; with ``groups`` (one label per item) each group is
    split in the same proportion, so both parts keep the group mix."""
    if n_items < 2:
        raise ValueError(f"n_items={n_items}; a selection / test split needs at least 2 items")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction={test_fraction}; must lie in (0, 1)")
    if groups is not None and len(groups) != n_items:
        raise ValueError(f"groups has {len(groups)} labels for n_items={n_items}; give one label per item")
    rng = np.random.default_rng(seed)
    labels = list(groups) if groups is not None else [0] * n_items
    sel, test = [], []
    for g in dict.fromkeys(labels):
        idx = np.array([i for i, lab in enumerate(labels) if lab == g])
        idx = idx[rng.permutation(len(idx))]
        n_test = int(round(test_fraction * len(idx)))
        if len(idx) >= 2:
            n_test = min(max(n_test, 1), len(idx) - 1)  # both parts get an item of every group that has two
        test += idx[:n_test].tolist()
        sel += idx[n_test:].tolist()
    if not sel or not test:
        raise ValueError(f"split of {n_items} items at test_fraction={test_fraction} leaves an empty part")
    return Split(np.array(sorted(sel)), np.array(sorted(test)))


def restrict(values: Mapping, idx: np.ndarray) -> dict:
    """``values`` (nested dicts of per-item arrays) with every array indexed by ``idx``: a study's
    own "choose the best" code run on one part of the items."""
    return {k: restrict(v, idx) if isinstance(v, Mapping) else np.asarray(v)[idx] for k, v in values.items()}


@dataclass
class Selection:
    """What was chosen on the selection items, its score there, its test estimate with CI, and the best-on-test
    figure beside it (labelled)."""

    config: Hashable  # chosen on the selection items
    selection_score: float  # its mean on the selection items
    test: Estimate  # its mean on the test items, with a bootstrap CI
    optimism_gap: float  # selection_score − test.mean
    n_selection: int
    n_test: int
    selection_scores: dict  # every config's mean on the selection items
    best_on_test: tuple[Hashable, float]  # LABELLED: the config a best-on-test search reports, and its test mean

    def describe(self, digits: int = 2) -> str:
        t = self.test
        test = "undefined" if t.n == 0 else f"{t.mean:.{digits}f} [{t.ci_low:.{digits}f}, {t.ci_high:.{digits}f}]"
        return (
            f"chosen on {self.n_selection} items, reported on {self.n_test}: {test}; optimism gap "
            f"{self.optimism_gap:+.{digits}f} "
            f"(best-on-test, labelled: {self.best_on_test[1]:.{digits}f} at {self.best_on_test[0]})"
        )


def _mean(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else float("nan")


def select(
    scores: Mapping[Hashable, Sequence[float] | np.ndarray],
    split: Split,
    higher_is_better: bool = True,
    n_boot: int = 2000,
    seed: int = 0,
) -> Selection:
    """Choose the config with the best mean selection score (the first in ``scores``' order among
    ties, so order candidates from the most conservative, e.g. the smallest dose); report it on
    the test items. ``scores[config]`` holds one score per item (NaN = undefined, left out)."""
    if not scores:
        raise ValueError("scores is empty; give at least one configuration")
    arrays = {c: np.asarray(v, dtype=float).ravel() for c, v in scores.items()}
    n = {len(v) for v in arrays.values()}
    if len(n) != 1:
        raise ValueError(f"scores have different lengths {sorted(n)}; every configuration needs one score per item")
    n_items = n.pop()
    if len(split.selection) + len(split.test) != n_items:
        raise ValueError(
            f"split covers {len(split.selection)} + {len(split.test)} items but scores have {n_items}; make the split "
            "for exactly these items (split_items(n_items=...))"
        )
    if max(split.selection.max(), split.test.max()) >= n_items:
        raise ValueError(
            f"split indexes item {max(split.selection.max(), split.test.max())} but scores have {n_items} items"
        )
    sign = 1.0 if higher_is_better else -1.0
    sel_scores = {c: _mean(v[split.selection]) for c, v in arrays.items()}
    test_scores = {c: _mean(v[split.test]) for c, v in arrays.items()}
    defined = [c for c in arrays if not np.isnan(sel_scores[c])]
    if not defined:
        raise ValueError("every configuration's selection score is undefined (all NaN); nothing can be chosen")
    best = max(defined, key=lambda c: (sign * sel_scores[c], -list(arrays).index(c)))
    test_defined = [c for c in arrays if not np.isnan(test_scores[c])]
    oracle = max(test_defined, key=lambda c: (sign * test_scores[c], -list(arrays).index(c))) if test_defined else best
    est = bootstrap_ci(arrays[best][split.test], n_boot=n_boot, seed=seed)
    return Selection(
        best,
        sel_scores[best],
        est,
        sel_scores[best] - est.mean,
        len(split.selection),
        len(split.test),
        sel_scores,
        (oracle, test_scores.get(oracle, float("nan"))),
    )
