"""Contrastive activation addition (Rimsky et al. 2024): ``a' = a + λ v``, ``v = mean(a⁺ − a⁻)``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from interp.steering.base import Adapter


@dataclass
class CAAConfig:
    strength: float = 1.0  # λ


class CAA(Adapter):
    def __init__(self, cfg: CAAConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or CAAConfig()
        self.register_buffer("vector", torch.zeros(0))

    def _fit(self, neg: Tensor, pos: Tensor) -> None:
        self.vector = (pos - neg).mean(0)

    @property
    def direction(self) -> Tensor:
        return self.vector

    def forward(self, a: Tensor) -> Tensor:
        self.check_input(a)
        return a + self.cfg.strength * self.vector.to(a)
