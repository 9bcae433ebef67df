"""The steering task of the toy environment: move one attribute to a target value at a chosen
layer from N example pairs, then measure it on fresh samples.

Pairs: a negative sample has the steered attribute at a value other than the target; its
positive partner is the same sample (same values, same noise) with that attribute set to the
target. Adapters are fitted on the activations of block ``layer`` of the pairs. Metrics on
fresh samples: accuracy = share whose predicted value of the steered attribute is the target;
disturbance = share of the other attributes whose prediction changed under steering.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from interp.toy.data import N_VALUES, AttributeWorld
from interp.toy.model import ToyMLP


@dataclass
class SteerTask:
    """The toy steering task: which attribute to move to which target value, at which block's output."""

    attribute: int = 0
    target: int = 1
    layer: int = 1  # block whose output is steered (0..3)


def _check(world: AttributeWorld, task: SteerTask) -> None:
    if not 0 <= task.attribute < world.m:
        raise ValueError(f"attribute={task.attribute} out of range 0..{world.m - 1}")
    if not 0 <= task.target < N_VALUES:
        raise ValueError(f"target={task.target} out of range 0..{N_VALUES - 1}")


def example_pairs(world: AttributeWorld, task: SteerTask, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``n`` (negative, positive) input pairs ``[n, 8m]`` each."""
    _check(world, task)
    if n < 1:
        raise ValueError(f"n={n}; need at least one pair")
    values = world.sample_values(n, generator)
    others = torch.randint(0, N_VALUES - 1, (n,), generator=generator)
    values[:, task.attribute] = others + (others >= task.target).long()  # any value but the target
    pos_values = values.clone()
    pos_values[:, task.attribute] = task.target
    noise = world.noise * torch.randn(n, world.m, world.anchors.shape[-1], generator=generator)
    idx = torch.arange(world.m)[None, :]
    neg = (world.anchors[idx, values] + noise).flatten(1)
    pos = (world.anchors[idx, pos_values] + noise).flatten(1)
    return neg, pos


@torch.no_grad()
def evaluate(model: ToyMLP, x: Tensor, task: SteerTask, edit=None) -> dict[str, float]:
    """Accuracy on the steered attribute and disturbance of the others (vs. no steering)."""
    plain = model(x).argmax(-1)
    steered = model(x, task.layer, edit).argmax(-1) if edit is not None else plain
    others = torch.ones(model.m, dtype=torch.bool)
    others[task.attribute] = False
    return {
        "accuracy": float((steered[:, task.attribute] == task.target).float().mean()),
        "disturbance": float((steered[:, others] != plain[:, others]).float().mean()),
    }
