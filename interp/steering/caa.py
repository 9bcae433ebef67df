"""Contrastive activation addition (Rimsky et al. 2024): ``a' = a + λ v``, ``v = mean(a⁺ − a⁻)``.

With ``groups`` (e.g. which answer letter matches the behaviour), ``v`` is the equal-weight
mean of the per-group mean differences, so an imbalance between groups in the fitting data
puts no "group A vs group B" direction into the vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from interp.steering.base import Adapter


@dataclass
class CAAConfig:
    """CAA settings: the strength λ that multiplies the mean difference."""

    strength: float = 1.0  # λ


def mean_difference(
    neg: Float[Tensor, "n d"], pos: Float[Tensor, "n d"], groups: Sequence | None = None
) -> Float[Tensor, " d"]:
    """``mean(pos − neg)`` over pairs; with ``groups`` (one label per pair) the mean over groups
    of each group's mean difference (every group weighs the same)."""
    diff = pos - neg
    if groups is None:
        return diff.mean(0)
    if len(groups) != len(diff):
        raise ValueError(f"groups has {len(groups)} labels for {len(diff)} pairs; give one label per pair")
    labels = list(dict.fromkeys(groups))
    if len(labels) < 2:
        raise ValueError(f"groups={labels}: balancing needs at least two groups")
    return torch.stack([diff[[i for i, g in enumerate(groups) if g == label]].mean(0) for label in labels]).mean(0)


class CAA(Adapter):
    """Contrastive activation addition: ``a' = a + λ v`` with ``v`` the (optionally group-balanced) mean difference."""

    def __init__(self, cfg: CAAConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or CAAConfig()
        self.register_buffer("vector", torch.zeros(0))
        self._groups: Sequence | None = None

    def fit(self, neg: Tensor, pos: Tensor, groups: Sequence | None = None) -> "CAA":
        """Fit on pairs; ``groups``: balance the vector over these labels (see module doc)."""
        self._groups = groups
        try:
            return super().fit(neg, pos)
        finally:
            self._groups = None

    def _fit(self, neg: Tensor, pos: Tensor) -> None:
        self.vector = mean_difference(neg, pos, self._groups)

    def _build(self, d: int) -> None:
        self.vector = torch.zeros(d)

    @property
    def direction(self) -> Tensor:
        return self.vector

    def forward(self, a: Tensor) -> Tensor:
        self.check_input(a)
        return a + self.cfg.strength * self.vector.to(a)
