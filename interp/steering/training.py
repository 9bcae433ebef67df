"""Full-batch training shared by the trained adapters (LoReFT, LoReST): Adam on the mean
squared error between the steered negative activations and their positive partners."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's global RNG inside the block (parameter init uses it) without changing
    the caller's random state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def train(
    module: nn.Module, steered: Callable[[Tensor, int], Tensor], neg: Tensor, pos: Tensor, steps: int, lr: float
) -> list[float]:
    """Minimise ``mean ‖steered(neg, step) − pos‖²``; returns the loss per step."""
    if steps < 1:
        raise ValueError(f"steps={steps}; need at least 1")
    if lr <= 0:
        raise ValueError(f"lr={lr}; must be > 0")
    opt = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=lr)
    losses = []
    with torch.enable_grad():
        for step in range(steps):
            opt.zero_grad()
            loss = (steered(neg, step) - pos).pow(2).sum(-1).mean()
            loss.backward()
            opt.step()
            losses.append(loss.detach().item())
    return losses
