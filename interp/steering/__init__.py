"""Steering adapters (CAA, ACE, LoReFT, LoReST) behind one interface, and the hook that
applies any of them to a HookedTransformer.

    >>> adapter = make_adapter("caa", CAAConfig(strength=4.0)).fit(neg_acts, pos_acts)
    >>> with apply_adapter(model, adapter, ("resid_post", 6), positions=batch.last_index):
    ...     logits = interp.run_batch(model, batch)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from transformer_lens import HookedTransformer

from interp.hooks import HookRef, Positions, hook_name, hooks, position_mask
from interp.steering.ace import ACE, ACEConfig
from interp.steering.adapters import ADAPTERS, make_adapter
from interp.steering.base import Adapter, check_pairs
from interp.steering.batch import Steer, SteeringBatch, last_token_residuals, mean_difference_vectors
from interp.steering.caa import CAA, CAAConfig
from interp.steering.io import load_adapter, load_vectors, save_adapter, save_vectors
from interp.steering.loreft import LoReFT, LoReFTConfig
from interp.steering.lorest import LoReST, LoReSTConfig


@contextlib.contextmanager
def apply_adapter(
    model: HookedTransformer, adapter: Adapter, hook: HookRef, positions: Positions = None
) -> Iterator[None]:
    """Replace the activation at ``hook`` by ``adapter(activation)`` at ``positions`` (None:
    all). The hook is removed on exit, also when the body raises."""
    name = hook_name(model, hook)
    if not adapter.fitted:
        raise RuntimeError(f"{type(adapter).__name__} is not fitted; call .fit(neg, pos) first")

    def fn(act: torch.Tensor, hook) -> torch.Tensor:
        mask = position_mask(positions, act.shape[0], act.shape[1], act.device)[..., None]
        with torch.no_grad():
            steered = adapter(act)
        return torch.where(mask, steered, act)

    with hooks(model, [(name, fn)]):
        yield


__all__ = [
    "ACE",
    "ACEConfig",
    "ADAPTERS",
    "Adapter",
    "CAA",
    "CAAConfig",
    "LoReFT",
    "LoReFTConfig",
    "LoReST",
    "LoReSTConfig",
    "Steer",
    "SteeringBatch",
    "apply_adapter",
    "check_pairs",
    "last_token_residuals",
    "load_adapter",
    "load_vectors",
    "make_adapter",
    "mean_difference_vectors",
    "save_adapter",
    "save_vectors",
]
