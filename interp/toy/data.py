"""Synthetic attribute data of the "steering clear" toy environment (Krasheninnikov & Krueger
2024; seed 002 §3.1).

``m`` attributes with 8 values each; value ``v`` of attribute ``i`` has an anchor in R^8 drawn
from N(0, 1). A sample picks one value per attribute and concatenates the anchors plus
N(0, σ²) noise (σ = 0.1): input ``[8m]``, target the ``m`` value indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

N_VALUES = 8
ANCHOR_DIM = 8


@dataclass
class AttributeWorld:
    """The toy environment's anchors ``[m, value, dim]`` and noise; ``sample`` draws inputs and their attribute
    values."""

    anchors: Float[Tensor, "m value dim"]
    noise: float = 0.1

    @classmethod
    def create(cls, m: int, seed: int = 0, noise: float = 0.1) -> "AttributeWorld":
        if m < 1:
            raise ValueError(f"m={m}; need at least one attribute")
        if noise < 0:
            raise ValueError(f"noise={noise}; must be >= 0")
        g = torch.Generator().manual_seed(seed)
        return cls(torch.randn(m, N_VALUES, ANCHOR_DIM, generator=g), noise)

    @property
    def m(self) -> int:
        return self.anchors.shape[0]

    def sample_values(self, n: int, generator: torch.Generator) -> Int[Tensor, "n m"]:
        return torch.randint(0, N_VALUES, (n, self.m), generator=generator)

    def render(self, values: Int[Tensor, "n m"], generator: torch.Generator) -> Float[Tensor, "n in_dim"]:
        """Inputs for given value indices (fresh noise)."""
        if values.ndim != 2 or values.shape[1] != self.m:
            raise ValueError(f"values has shape {tuple(values.shape)}; expected [n, m={self.m}]")
        x = self.anchors[torch.arange(self.m)[None, :], values]  # [n m dim]
        x = x + self.noise * torch.randn(x.shape, generator=generator)
        return x.flatten(1)

    def sample(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        values = self.sample_values(n, generator)
        return self.render(values, generator), values
