"""Low-rank representation finetuning (Wu et al. 2024) as a steering adapter.

``a' = a + Rᵀ(W a + b − R a)`` with ``R ∈ R^{r×d}`` of orthonormal rows (torch's orthogonal
parametrisation) and an affine ``W a + b`` into the rank-r space, trained so that the
steered negatives match their positives (MSE, full batch, Adam). Deterministic under ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn
from torch.nn.utils.parametrizations import orthogonal

from interp.steering.base import Adapter, check_rank
from interp.steering.training import seeded, train


@dataclass
class LoReFTConfig:
    """LoReFT settings: rank, training steps, learning rate and seed."""

    rank: int = 4
    steps: int = 500
    lr: float = 1e-2
    seed: int = 0


class LoReFT(Adapter):
    """Low-rank representation finetuning as an adapter (see the module docstring for the edit)."""

    def __init__(self, cfg: LoReFTConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or LoReFTConfig()
        check_rank(self.cfg.rank)
        self.losses: list[float] = []

    def _fit(self, neg: Tensor, pos: Tensor) -> None:
        self._build(neg.shape[1])
        self.to(neg.device)
        self.losses = train(self, lambda x, step: self._steer(x), neg, pos, self.cfg.steps, self.cfg.lr)

    def _build(self, d: int) -> None:
        check_rank(self.cfg.rank, d)
        with seeded(self.cfg.seed):
            self.R = orthogonal(nn.Linear(d, self.cfg.rank, bias=False))  # weight [r, d], orthonormal rows
            self.W = nn.Linear(d, self.cfg.rank)

    def _steer(self, a: Tensor) -> Tensor:
        return a + (self.W(a) - self.R(a)) @ self.R.weight

    def forward(self, a: Tensor) -> Tensor:
        self.check_input(a)
        return self._steer(a.float()).to(a.dtype)
