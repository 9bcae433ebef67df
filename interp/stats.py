"""Statistics that stay honest: NaN-aware means with bootstrap confidence intervals."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """Mean of the defined values with a percentile-bootstrap CI. ``n_undefined`` counts NaNs
    (undefined per-item metrics), which are excluded, never treated as 0."""

    mean: float
    ci_low: float
    ci_high: float
    n: int
    n_undefined: int

    def __str__(self) -> str:
        if self.n == 0:
            return f"undefined (0 of {self.n_undefined} defined)"
        return (
            f"{self.mean:.3f} [{self.ci_low:.3f}, {self.ci_high:.3f}] "
            f"(n={self.n}{f', {self.n_undefined} undefined' if self.n_undefined else ''})"
        )


def bootstrap_ci(values, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Estimate:
    """Mean and percentile bootstrap CI over the non-NaN entries of ``values`` (NaN = undefined,
    counted in ``n_undefined``, never treated as 0)."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot={n_boot!r}; need a positive integer number of bootstrap resamples")
    if not 0 < level < 1:
        raise ValueError(f"level={level!r}; must lie in (0, 1)")
    x = np.asarray(values, dtype=float).ravel()
    if np.isinf(x).any():
        i = int(np.flatnonzero(np.isinf(x))[0])
        raise ValueError(f"values[{i}]={x[i]}; a mean with an infinite value has no CI (NaN marks undefined values)")
    defined = x[~np.isnan(x)]
    n_undef = int(x.size - defined.size)
    if defined.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0, n_undef)
    rng = np.random.default_rng(seed)
    means = defined[rng.integers(0, defined.size, size=(n_boot, defined.size))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return Estimate(float(defined.mean()), float(lo), float(hi), int(defined.size), n_undef)


# ----------------------------------------------------------------------------- diagnostics
# Used by the function-vector transfer study (seed 000) and reusable in any study that pools
# measurements over groups (tasks, layers, models).


@dataclass(frozen=True)
class Correlation:
    """Pearson or Spearman r with its two-sided p-value over ``n`` complete pairs. Undefined
    (NaN r and p) with fewer than 3 pairs or a constant side — never reported as 0."""

    r: float
    p: float
    n: int
    method: str

    @property
    def defined(self) -> bool:
        return not np.isnan(self.r)

    def __str__(self) -> str:
        return f"undefined (n={self.n})" if not self.defined else f"r={self.r:+.3f} (p={self.p:.2g}, n={self.n})"


METHODS = ("pearson", "spearman")


def ratio_ci(
    num, den, floor: float = 0.0, paired: bool = True, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, tuple[float, float]]:
    """mean(num) / mean(den) and its percentile-bootstrap CI, resampling numerator and
    denominator *together* when ``paired`` (the same items under both: a recovery or a
    faithfulness share, where a fixed denominator would hide its own sampling error), each on its
    own otherwise. Undefined (NaN) when mean(den) ≤ 0 or is below ``floor``; resamples whose
    denominator falls below it are left out of the CI."""
    num, den = np.asarray(num, float), np.asarray(den, float)
    nan = float("nan")
    if paired and len(num) != len(den):
        raise ValueError(f"paired ratio: num has {len(num)} items, den {len(den)}; they must match")
    if len(num) == 0 or len(den) == 0 or den.mean() <= 0 or den.mean() < floor:
        return nan, (nan, nan)
    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(num), size=(n_boot, len(num)))
    j = i if paired else rng.integers(0, len(den), size=(n_boot, len(den)))
    d = den[j].mean(1)
    ok = d >= max(floor, 1e-12)
    boots = num[i].mean(1)[ok] / d[ok]
    tail = (1 - level) / 2
    lo, hi = np.quantile(boots, [tail, 1 - tail]) if len(boots) else (nan, nan)
    return float(num.mean() / den.mean()), (float(lo), float(hi))


def correlate(x, y, method: str = "pearson") -> Correlation:
    """Correlation of the pairs where both ``x`` and ``y`` are defined (NaN pairs dropped)."""
    from scipy import stats

    if method not in METHODS:
        raise ValueError(f"method={method!r}; allowed: {list(METHODS)}")
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x has {x.size} values but y has {y.size}")
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Correlation(float("nan"), float("nan"), int(x.size), method)
    res = stats.pearsonr(x, y) if method == "pearson" else stats.spearmanr(x, y)
    return Correlation(float(res[0]), float(res[1]), int(x.size), method)


@dataclass(frozen=True)
class SimpsonCheck:
    """Whether a significant pooled correlation's sign disagrees with most within-group signs.
    A pooled correlation that is not significant (p >= alpha) is no trend to reverse, so it is
    never flagged (``pooled_significant`` says which case it was)."""

    flagged: bool
    pooled_sign: int
    n_groups: int  # groups with a defined, non-zero correlation
    n_opposite: int  # of those, how many have the sign opposite to the pooled one
    pooled_significant: bool = True

    def __str__(self) -> str:
        if not self.pooled_significant:
            return (
                f"no Simpson's paradox (the pooled correlation is not significant; {self.n_opposite} of "
                f"{self.n_groups} groups disagree in sign)"
            )
        if not self.flagged:
            return f"no Simpson's paradox ({self.n_opposite} of {self.n_groups} groups disagree with the pooled sign)"
        return (
            f"SIMPSON'S PARADOX: the pooled correlation is {'positive' if self.pooled_sign > 0 else 'negative'} "
            f"but {self.n_opposite} of {self.n_groups} within-group correlations have the opposite sign"
        )


def simpson_check(pooled: Correlation, groups: dict, alpha: float = 0.05) -> SimpsonCheck:
    """Flags a pooled correlation whose sign is opposite to most within-group signs (Simpson's paradox)."""
    signs = [int(np.sign(c.r)) for c in groups.values() if c.defined and c.r != 0]
    ps = int(np.sign(pooled.r)) if pooled.defined else 0
    opposite = sum(s == -ps for s in signs) if ps else 0
    significant = bool(pooled.defined and pooled.p < alpha)
    return SimpsonCheck(
        bool(significant and ps and signs and opposite > len(signs) / 2), ps, len(signs), opposite, significant
    )


@dataclass(frozen=True)
class GroupedCorrelation:
    """A pooled correlation beside the per-group ones, with the Simpson's-paradox check."""

    pooled: Correlation
    groups: dict
    simpson: SimpsonCheck


def grouped_correlation(x, y, groups, method: str = "pearson") -> GroupedCorrelation:
    """Pooled correlation and one per group (``groups``: a label per pair, e.g. task or
    (task, layer)), side by side, with the Simpson's-paradox check between them."""
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    labels = list(groups)
    if len(labels) != x.size:
        raise ValueError(f"groups has {len(labels)} labels for {x.size} pairs")
    pooled = correlate(x, y, method)
    per = {}
    for g in dict.fromkeys(labels):
        idx = np.array([lab == g for lab in labels])
        per[g] = correlate(x[idx], y[idx], method)
    return GroupedCorrelation(pooled, per, simpson_check(pooled, per))


def dissociation_cases(cosine, transfer, groups, cos_min: float = 0.8, transfer_max: float = 0.4) -> dict:
    """Per group, how many pairs have similar vectors (cos > ``cos_min``) that still fail to
    transfer (transfer < ``transfer_max``); key ``"total"`` sums them. NaN pairs never count."""
    c, t = np.asarray(cosine, dtype=float).ravel(), np.asarray(transfer, dtype=float).ravel()
    labels = list(groups)
    if not (c.size == t.size == len(labels)):
        raise ValueError(f"cosine ({c.size}), transfer ({t.size}) and groups ({len(labels)}) differ in length")
    hit = (c > cos_min) & (t < transfer_max)
    out = {g: int(sum(h for h, lab in zip(hit, labels) if lab == g)) for g in dict.fromkeys(labels)}
    out["total"] = int(hit.sum())
    return out


def auroc(scores, positive) -> float:
    """Area under the ROC curve of ``scores`` for the binary ``positive`` labels (scikit-learn's
    ``roc_auc_score``; ties count half). Items with a NaN score are left out; labels must be
    bool or 0/1 (a NaN label is an error, not a positive). NaN (undefined) when either class is
    empty."""
    from sklearn.metrics import roc_auc_score

    s = np.asarray(scores, dtype=float).ravel()
    pos = binary_outcomes(positive, "positive")
    if s.shape != pos.shape:
        raise ValueError(f"scores has {s.size} values but positive has {pos.size}")
    ok = ~np.isnan(s)
    s, pos = s[ok], pos[ok]
    if pos.all() or not pos.any():
        return float("nan")
    return float(roc_auc_score(pos, s))


def pc1_variance(vectors) -> float:
    """Share of the variance of the rows (centred) that the first principal component
    explains; NaN for fewer than 2 rows or no variance."""
    v = np.asarray(vectors, dtype=float)
    if v.ndim != 2:
        raise ValueError(f"vectors must be [n, d]; got shape {v.shape}")
    if v.shape[0] < 2:
        return float("nan")
    sv = np.linalg.svd(v - v.mean(0), compute_uv=False)
    total = float((sv**2).sum())
    return float(sv[0] ** 2 / total) if total > 0 else float("nan")


def iid_gate(iid_accuracy: dict, threshold: float = 0.5) -> tuple[list, list]:
    """(kept, dropped) group keys: a task whose in-distribution accuracy is below
    ``threshold`` does not work at all, so its transfer numbers say nothing about transfer.
    Report results both gated and ungated."""
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold={threshold}; must lie in [0, 1]")
    kept = [k for k, a in iid_accuracy.items() if not np.isnan(a) and a >= threshold]
    return kept, [k for k in iid_accuracy if k not in kept]


# ----------------------------------------------------------------------------- steering effects
# Used by the steering studies on real models (seeds 003, 004).


@dataclass(frozen=True)
class EffectSize:
    """Cohen's d of ``a`` minus ``b`` with the pooled SD, and a normal-approximation CI
    (Hedges & Olkin's standard error). Undefined (NaN) when either group has < 2 values or the
    pooled SD is 0."""

    d: float
    ci_low: float
    ci_high: float
    n_a: int
    n_b: int

    def __str__(self) -> str:
        if np.isnan(self.d):
            return f"undefined (n={self.n_a}, {self.n_b})"
        return f"d={self.d:+.2f} [{self.ci_low:+.2f}, {self.ci_high:+.2f}]"


def cohens_d(a, b, level: float = 0.95) -> EffectSize:
    """Cohen's d of two independent samples (pooled SD) with a normal-approximation CI; for paired data use
    :func:`paired_d`."""
    from scipy.stats import norm

    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    na, nb = a.size, b.size
    nan = float("nan")
    if na < 2 or nb < 2:
        return EffectSize(nan, nan, nan, na, nb)
    pooled = np.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2))
    if pooled == 0:
        return EffectSize(nan, nan, nan, na, nb)
    d = float((a.mean() - b.mean()) / pooled)
    se = np.sqrt((na + nb) / (na * nb) + d**2 / (2 * (na + nb)))
    z = norm.ppf((1 + level) / 2)
    return EffectSize(d, float(d - z * se), float(d + z * se), na, nb)


def paired_d(a, b, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> EffectSize:
    """Paired effect size d_z = mean(a − b) / SD(a − b) for the same items under two conditions
    (a pooled-SD d treats them as independent groups), with a percentile-bootstrap CI over items.
    Undefined (NaN) with fewer than 2 complete pairs or a constant difference."""
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"a has {a.size} items but b has {b.size}; a paired effect needs the same items")
    diff = (a - b)[~(np.isnan(a) | np.isnan(b))]
    nan = float("nan")
    if diff.size < 2 or diff.std(ddof=1) == 0:
        return EffectSize(nan, nan, nan, diff.size, diff.size)
    rng = np.random.default_rng(seed)
    boot = diff[rng.integers(0, diff.size, size=(n_boot, diff.size))]
    sd = boot.std(1, ddof=1)
    dz = np.where(sd > 0, boot.mean(1) / np.where(sd > 0, sd, 1.0), np.nan)
    lo, hi = np.nanquantile(dz, [(1 - level) / 2, (1 + level) / 2])
    return EffectSize(float(diff.mean() / diff.std(ddof=1)), float(lo), float(hi), diff.size, diff.size)


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test of paired correctness: ``gained`` items right only under the
    treatment, ``lost`` right only under the control; two-sided binomial p on the discordant
    pairs (1.0 when there are none)."""

    gained: int
    lost: int
    p: float
    n: int


def binary_outcomes(values, name: str) -> np.ndarray:
    """``values`` as a bool array, accepting only bool or 0/1 entries: NaN, strings and other
    numbers are errors (``"False"`` or 0.4 must not count as correct)."""
    raw = np.asarray(values, dtype=object).ravel()
    bad = [
        v
        for v in raw
        if not (
            isinstance(v, (bool, np.bool_)) or (isinstance(v, (int, float, np.integer, np.floating)) and v in (0, 1))
        )
    ]
    if bad:
        raise ValueError(f"{name} must hold bool or 0/1 outcomes; got {bad[0]!r} ({sum(1 for _ in bad)} such entries)")
    return raw.astype(bool)


def mcnemar_exact(control, treatment) -> McNemar:
    """Exact McNemar test (scipy's binomial test on the discordant pairs) of paired binary
    outcomes under the control and the treatment."""
    from scipy.stats import binomtest

    c, t = binary_outcomes(control, "control"), binary_outcomes(treatment, "treatment")
    if c.size == 0:
        raise ValueError("control and treatment are empty; the test needs at least one paired item")
    if c.shape != t.shape:
        raise ValueError(
            f"control has {c.size} items but treatment has {t.size}; the test needs the same items under both"
        )
    gained, lost = int((t & ~c).sum()), int((c & ~t).sum())
    p = 1.0 if gained + lost == 0 else float(binomtest(gained, gained + lost, 0.5).pvalue)
    return McNemar(gained, lost, p, int(c.size))


def mcnemar_min_detectable(n: int, alpha: float = 0.05) -> float:
    """The smallest accuracy change (as a share of ``n`` items) an exact two-sided McNemar
    test on ``n`` paired items could call significant at ``alpha``: k discordant pairs all in
    one direction give p = 2·0.5^k, so k must reach ⌈log2(2/alpha)⌉. NaN when n is too small."""
    if n < 1:
        raise ValueError(f"n={n}; need at least one item")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha}; must lie in (0, 1)")
    k = int(np.ceil(np.log2(2 / alpha)))
    while 2 * 0.5**k > alpha:  # guard the boundary against rounding
        k += 1
    return k / n if k <= n else float("nan")


def identical_outputs(outputs_by_setting: dict) -> bool:
    """True when every setting (e.g. each α) produced exactly the same outputs, item by item —
    seed 004's "suspicious invariance": the intervention may not be reaching the model."""
    values = [list(v) for v in outputs_by_setting.values()]
    if len(values) < 2:
        raise ValueError(f"need at least two settings to compare; got {len(values)}")
    return all(v == values[0] for v in values[1:])
