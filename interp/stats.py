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
        return f"{self.mean:.3f} [{self.ci_low:.3f}, {self.ci_high:.3f}] (n={self.n}{f', {self.n_undefined} undefined' if self.n_undefined else ''})"


def bootstrap_ci(values, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Estimate:
    """Mean and percentile bootstrap CI over the non-NaN entries of ``values``."""
    x = np.asarray(values, dtype=float).ravel()
    defined = x[~np.isnan(x)]
    n_undef = int(x.size - defined.size)
    if defined.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0, n_undef)
    rng = np.random.default_rng(seed)
    means = defined[rng.integers(0, defined.size, size=(n_boot, defined.size))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return Estimate(float(defined.mean()), float(lo), float(hi), int(defined.size), n_undef)
