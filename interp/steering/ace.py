"""Affine concept editing (Marshall et al. 2024), steering towards the positive examples.

``a0 = mean(a⁻)``, ``r = mean(a⁺ − a⁻)``; ``a' = a − proj_r(a) + proj_r(a0) + α r``.
The component of ``a`` along ``r`` is replaced, so every input lands on the same projection
(that of ``a0 + α r``) wherever it started, while components orthogonal to ``r`` are kept.
With α = 1 the target projection is that of the positive mean. EleutherAI's implementation
uses the pooled mean of both classes as ``a0`` (``reference="pooled"``), which on balanced
data shifts the effective α by ½.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from interp.steering.base import Adapter

REFERENCES = ("negative", "pooled")


@dataclass
class ACEConfig:
    """ACE settings: the target α along r, and the reference point ``a0`` (``negative`` mean or ``pooled``)."""

    alpha: float = 1.0
    reference: str = "negative"  # "negative" (DESIGN.md) or "pooled" (EleutherAI's code)


class ACE(Adapter):
    """Affine concept editing (see the module docstring): replaces the component along r by that of ``a0 + α r``."""

    def __init__(self, cfg: ACEConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or ACEConfig()
        if self.cfg.reference not in REFERENCES:
            raise ValueError(f"reference={self.cfg.reference!r}; allowed: {list(REFERENCES)}")
        self.register_buffer("r", torch.zeros(0))
        self.register_buffer("a0", torch.zeros(0))

    def _fit(self, neg: Tensor, pos: Tensor) -> None:
        self.r = (pos - neg).mean(0)
        if self.r.norm() < 1e-8:
            raise ValueError("mean(pos - neg) is zero: ACE has no direction to edit along")
        self.a0 = neg.mean(0) if self.cfg.reference == "negative" else torch.cat([neg, pos]).mean(0)

    def _build(self, d: int) -> None:
        self.r, self.a0 = torch.zeros(d), torch.zeros(d)

    @property
    def direction(self) -> Tensor:
        return self.r

    def forward(self, a: Tensor) -> Tensor:
        self.check_input(a)
        r, a0 = self.r.to(a), self.a0.to(a)
        unit = r / r.norm()
        proj = lambda x: (x @ unit)[..., None] * unit  # noqa: E731
        return a - proj(a) + proj(a0) + self.cfg.alpha * r
