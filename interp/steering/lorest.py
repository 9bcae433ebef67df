"""Low-rank representation steering (Krasheninnikov & Krueger 2024), as seed 002 states it.

``a' = a − (a Q) diag(p) Qᵀ + b`` with ``Q ∈ R^{d×r}`` of orthonormal columns (torch's
orthogonal parametrisation, in place of the seed's differentiable QR), a free bias ``b`` and
gates ``p_i = GumbelSoftmax([l_i, 0]; τ)₀``. No reference code is public; our choices:

- training samples fresh Gumbel noise every step (one draw per gate, shared by the batch)
  from a generator seeded by ``seed``, soft (not straight-through) samples;
- after training the gates are noise-free, ``p_i = softmax([l_i, 0]/τ)₀ = σ(l_i/τ)``;
- ``l`` starts at ``gate_init`` (0: every gate half open), ``b`` at zero, ``Q`` random.

A gate near 0 drops its direction: with all gates closed the adapter is a pure bias (CAA-like,
cheap to fit from few pairs); open gates remove the activation's component in span(Q) (ACE-
like projection) so the bias can set it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import orthogonal

from interp.steering.base import Adapter, check_rank
from interp.steering.training import seeded, train


@dataclass
class LoReSTConfig:
    """LoReST settings: rank, Gumbel temperature τ, steps, learning rate, initial gate logit and seed."""

    rank: int = 4
    temperature: float = 1.0  # τ
    steps: int = 500
    lr: float = 1e-2
    gate_init: float = 0.0
    seed: int = 0


class LoReST(Adapter):
    """Low-rank representation steering with gated directions and a bias (see the module docstring)."""

    def __init__(self, cfg: LoReSTConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or LoReSTConfig()
        check_rank(self.cfg.rank)
        if self.cfg.temperature <= 0:
            raise ValueError(f"temperature={self.cfg.temperature}; must be > 0")
        self.losses: list[float] = []

    def _fit(self, neg: Tensor, pos: Tensor) -> None:
        r = self.cfg.rank
        self._build(neg.shape[1])
        self.to(neg.device)
        gen = torch.Generator(device=neg.device).manual_seed(self.cfg.seed)

        def steered(a: Tensor, step: int) -> Tensor:
            u = torch.rand(r, 2, generator=gen, device=a.device).clamp(1e-10, 1 - 1e-10)
            gumbel = -torch.log(-torch.log(u))
            two = torch.stack([self.logits, torch.zeros_like(self.logits)], -1)
            p = ((two + gumbel) / self.cfg.temperature).softmax(-1)[:, 0]
            return self._steer(a, p)

        self.losses = train(self, steered, neg, pos, self.cfg.steps, self.cfg.lr)

    def _build(self, d: int) -> None:
        r = self.cfg.rank
        check_rank(r, d)
        with seeded(self.cfg.seed):
            self.Q = orthogonal(nn.Linear(r, d, bias=False))  # weight [d, r], orthonormal columns
        self.logits = nn.Parameter(torch.full((r,), float(self.cfg.gate_init)))
        self.bias = nn.Parameter(torch.zeros(d))

    @property
    def gates(self) -> Tensor:
        """Noise-free gates ``σ(l/τ)``, one per low-rank direction."""
        return torch.sigmoid(self.logits.detach() / self.cfg.temperature)

    def _steer(self, a: Tensor, p: Tensor) -> Tensor:
        Q = self.Q.weight  # [d, r]
        return a - ((a @ Q) * p) @ Q.T + self.bias

    def forward(self, a: Tensor) -> Tensor:
        self.check_input(a)
        return self._steer(a.float(), self.gates).to(a.dtype)
