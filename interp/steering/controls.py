"""Specificity controls for steering: does the direction matter, or would any push of that size
do the same?

A steering effect (or a null) at a dose counts only beside controls at the same dose. Two kinds:

- :func:`random_directions` — directions drawn uniformly on the sphere, each scaled to the
  vector's own norm (per layer), several seeds: the push without the direction;
- :func:`shuffled_label_vectors` — for a mean-difference vector ``mean(pos − neg)``, the same
  estimator with each pair's labels flipped at random (seeded): the extraction without the
  label information, at the norm it happens to have (rescale with ``match_norm`` to compare at
  the same dose).

:func:`compare_to_controls` puts the vector's per-item outcome beside the controls': the
vector's mean, the controls' mean and spread, and the difference vector − mean control with a
paired bootstrap CI over items, plus the share of controls at least as extreme as the vector
(an empirical p with ``n_controls + 1`` in the denominator).

    >>> ctrl = random_directions(v, n=5, seed=0)                        # [5, layer, d_model], ‖·‖ = ‖v‖
    >>> acc_v, acc_c = sb.accuracy(layer, v[None]), sb.accuracy(layer, ctrl[:, li])
    >>> compare_to_controls(acc_v[0].numpy(), acc_c.numpy())            # ControlComparison
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from interp.hooks import check_finite


def random_directions(vectors: Float[Tensor, "*layer d"], n: int, seed: int = 0) -> Float[Tensor, "n *layer d"]:
    """``n`` random directions per vector row, each with that row's norm (isotropic Gaussian,
    normalised; seeded, so the controls are the same across runs)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r}; need at least one control direction")
    check_finite(vectors, "vectors")
    norms = vectors.float().norm(dim=-1, keepdim=True)
    if bool((norms == 0).any()):
        raise ValueError("vectors has a zero row: a control of the same norm would be zero too")
    g = torch.Generator().manual_seed(seed)
    raw = torch.randn((n, *vectors.shape), generator=g)
    return (raw / raw.norm(dim=-1, keepdim=True) * norms[None]).to(vectors.dtype)


def random_unit_directions(d_model: int, n: int, seed: int = 0) -> Float[Tensor, "n d"]:
    """``n`` seeded directions of norm 1 (the same draw as :func:`random_directions`), for
    controls that take their size from the edit they replace, row by row."""
    dirs = random_directions(torch.ones(d_model), n, seed)
    return dirs / dirs.norm(dim=-1, keepdim=True)


def shuffled_label_vectors(
    neg: Float[Tensor, "pairs *layer d"], pos: Float[Tensor, "pairs *layer d"], n: int, seed: int = 0
) -> Float[Tensor, "n *layer d"]:
    """``n`` mean-difference vectors with each pair's labels flipped at random: the same estimator
    as ``mean(pos − neg)`` with the label information destroyed."""
    if neg.shape != pos.shape or neg.shape[0] < 1:
        raise ValueError(f"neg {tuple(neg.shape)} and pos {tuple(pos.shape)} must be equal shapes with >= 1 pair")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r}; need at least one control vector")
    diff = (pos - neg).float()
    g = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, (n, diff.shape[0]), generator=g).float() * 2 - 1  # [n pairs]
    view = (n, diff.shape[0], *([1] * (diff.ndim - 1)))
    return (signs.view(view) * diff[None]).mean(1).to(pos.dtype)


def match_norm(controls: Float[Tensor, "n *layer d"], vectors: Float[Tensor, "*layer d"]) -> Tensor:
    """``controls`` rescaled row by row to the norm of ``vectors`` (the same dose)."""
    norm = controls.float().norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return (controls.float() / norm * vectors.float().norm(dim=-1, keepdim=True)[None]).to(controls.dtype)


@dataclass
class ControlComparison:
    """The vector's outcome beside controls at the same dose (higher = more of the outcome)."""

    effect: float  # mean over items under the vector
    control_mean: float  # mean over controls of their mean over items
    control_sd: float  # spread of the controls' means (NaN with one control)
    difference: float  # effect − control_mean
    ci: tuple[float, float]  # paired bootstrap CI of the difference over items
    p_extreme: float  # (1 + #controls with |mean − control_mean| ≥ |effect − control_mean|) / (n_controls + 1)
    n_items: int
    n_controls: int

    def __str__(self) -> str:
        return (
            f"{self.effect:.3f} vs control {self.control_mean:.3f} ± {self.control_sd:.3f} (n={self.n_controls}): "
            f"Δ {self.difference:+.3f} [{self.ci[0]:+.3f}, {self.ci[1]:+.3f}]"
        )


def compare_to_controls(
    effect: np.ndarray, controls: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> ControlComparison:
    """``effect`` ``[items]`` (the vector's per-item outcome) against ``controls``
    ``[n_controls, items]`` (each control's per-item outcome on the same items)."""
    e = np.asarray(effect, dtype=float)
    c = np.asarray(controls, dtype=float)
    if e.ndim != 1 or c.ndim != 2 or c.shape[1] != e.shape[0] or e.size == 0 or c.shape[0] == 0:
        raise ValueError(f"effect {e.shape} and controls {c.shape}: expected [items] and [n_controls >= 1, items]")
    if not (np.isfinite(e).all() and np.isfinite(c).all()):
        raise ValueError("effect and controls must be finite per-item outcomes")
    per_item = e - c.mean(0)  # paired: the same items under the vector and the controls
    rng = np.random.default_rng(seed)
    boots = per_item[rng.integers(0, e.size, size=(n_boot, e.size))].mean(1)
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    means = c.mean(1)
    centre = float(means.mean())
    extreme = int((np.abs(means - centre) >= abs(float(e.mean()) - centre) - 1e-12).sum())
    sd = float(means.std(ddof=1)) if len(means) > 1 else float("nan")
    return ControlComparison(
        float(e.mean()),
        centre,
        sd,
        float(per_item.mean()),
        (float(lo), float(hi)),
        (1 + extreme) / (len(means) + 1),
        int(e.size),
        int(c.shape[0]),
    )
