"""The adapter interface shared by CAA, ACE, LoReFT and LoReST.

An adapter is a ``torch.nn.Module``: ``fit(neg, pos)`` on paired activations ``[n, d]``
returns the fitted adapter, and calling it on activations ``[..., d]`` returns the steered
activations of the same shape. :func:`interp.steering.apply_adapter` puts any adapter into a
HookedTransformer at a hook point and positions.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def check_pairs(neg: Tensor, pos: Tensor) -> None:
    """Paired activations: same shape ``[n, d]``, at least one pair, finite values."""
    if neg.ndim != 2 or pos.ndim != 2:
        raise ValueError(f"neg and pos must be [n, d]; got shapes {tuple(neg.shape)} and {tuple(pos.shape)}")
    if neg.shape != pos.shape:
        raise ValueError(
            f"neg has shape {tuple(neg.shape)} but pos has {tuple(pos.shape)}; pairs must match one to one"
        )
    if neg.shape[0] == 0:
        raise ValueError("neg and pos are empty; fitting needs at least one pair")
    for name, t in (("neg", neg), ("pos", pos)):
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} contains NaN/inf activations ({int((~torch.isfinite(t)).sum())} entries)")


def check_rank(rank: int, d: int | None = None) -> None:
    """A low-rank adapter's rank: at least 1 and (once ``d`` is known) at most ``d``."""
    if rank < 1:
        raise ValueError(f"rank={rank}; need at least 1")
    if d is not None and rank > d:
        raise ValueError(f"rank={rank} exceeds the activation dimension d={d}")


class Adapter(nn.Module):
    """Base class: subclasses implement ``_fit`` and ``forward``."""

    def __init__(self) -> None:
        super().__init__()
        self.fitted = False
        self.d_model: int | None = None

    def fit(self, neg: Tensor, pos: Tensor) -> "Adapter":  # [n, d] each; checked with a clear message below
        check_pairs(neg, pos)
        self.d_model = neg.shape[1]
        self._fit(neg.detach().float(), pos.detach().float())
        self.fitted = True
        return self

    def _fit(self, neg: Tensor, pos: Tensor) -> None:
        raise NotImplementedError

    def _build(self, d: int) -> None:
        """Create the parameters and buffers for dimension ``d`` (their values are set by ``_fit``
        or by :func:`interp.steering.io.load_adapter`)."""
        raise NotImplementedError

    def check_input(self, a: Tensor) -> None:
        if not self.fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call .fit(neg, pos) first")
        if a.shape[-1] != self.d_model:
            raise ValueError(
                f"activations have last dimension {a.shape[-1]}; this adapter was fitted on d={self.d_model}"
            )
