"""Steering doses in units of the residual norm.

A raw strength α on a vector v says little by itself: adding α·v after a layer whose residual
has norm 100 is a nudge when ‖v‖ = 1 and a rewrite when ‖v‖ = 50. A *relative* dose d puts the
push in the residual's own units: the added vector is

    d · r̄_l · v / ‖v‖,    r̄_l = mean over prompts of ‖resid_post[l]‖ at the steered position,

so d = 1 adds a vector as long as the typical residual there. :func:`raw_strength` converts a
relative dose back into the α of ``α · v`` (reports show both), and :func:`geometric_doses`
builds grids that bracket an effect (from a dose with no measurable change up to a positive
control that changes most outputs). :func:`relative_push` measures the dose an adapter of any
kind (trained ones too) applied: ‖edit(a) − a‖ / ‖a‖ per row.

    >>> norms = mean_residual_norm(model, batch, layers)   # [layer]
    >>> steer = dose_vectors(vectors, norms, [0.1, 0.3, 1.0])  # [dose layer d_model]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from interp.data.tokenize import TokenBatch
from interp.hooks import check_finite
from interp.steering.batch import last_token_residuals


def residual_norm(residuals: Float[Tensor, "*rows d_model"]) -> float:
    """Mean L2 norm of the residual rows."""
    norms = residuals.float().norm(dim=-1)
    if norms.numel() == 0:
        raise ValueError("residuals is empty; a residual norm needs at least one row")
    check_finite(norms, "residual norms")
    return float(norms.mean())


@torch.no_grad()
def mean_residual_norm(model: HookedTransformer, batch: TokenBatch, layers: Iterable[int]) -> Float[Tensor, " layer"]:
    """Per layer, the mean norm of the residual after it at each prompt's last real token
    (where :class:`~interp.steering.SteeringBatch` steers)."""
    res = last_token_residuals(model, batch, list(layers))  # [batch layer d_model]
    return torch.tensor([residual_norm(res[:, i]) for i in range(res.shape[1])])


def raw_strength(vectors: Float[Tensor, "layer d_model"], norms: Float[Tensor, " layer"]) -> Float[Tensor, " layer"]:
    """The α (per layer) with ``α · v`` equal to a relative dose of 1: ``r̄_l / ‖v_l‖``."""
    if vectors.shape[:1] != norms.shape:
        raise ValueError(f"vectors {tuple(vectors.shape)} and norms {tuple(norms.shape)} must agree on the layer axis")
    length = vectors.float().norm(dim=-1)
    if bool((length == 0).any()):
        raise ValueError(
            f"vectors has a zero vector at layer indices {torch.nonzero(length == 0).flatten().tolist()}; it has no "
            "direction to dose"
        )
    return norms.float() / length


def dose_vectors(
    vectors: Float[Tensor, "layer d_model"], norms: Float[Tensor, " layer"], doses: Sequence[float]
) -> Float[Tensor, "dose layer d_model"]:
    """``dose · r̄_l · v_l / ‖v_l‖`` for every dose and layer."""
    d = torch.as_tensor(list(doses), dtype=torch.float32)
    if d.numel() == 0:
        raise ValueError("doses is empty; give at least one dose")
    check_finite(d, "doses")
    return d[:, None, None] * (raw_strength(vectors, norms)[:, None] * vectors.float())[None]


def relative_push(before: Float[Tensor, "n d"], after: Float[Tensor, "n d"]) -> Float[Tensor, " n"]:
    """Per row, the push an edit applied in units of the row's own norm: ‖after − before‖ / ‖before‖."""
    if before.shape != after.shape:
        raise ValueError(f"before {tuple(before.shape)} and after {tuple(after.shape)} must have the same shape")
    norms = before.float().norm(dim=-1)
    if bool((norms == 0).any()):
        raise ValueError("before has a zero row; a push relative to it is undefined")
    push = (after.float() - before.float()).norm(dim=-1) / norms
    check_finite(push, "relative push")
    return push


def geometric_doses(low: float, high: float, n: int) -> list[float]:
    """``n`` doses from ``low`` to ``high``, evenly spaced on a log scale."""
    if not 0 < low < high or n < 2:
        raise ValueError(f"low={low}, high={high}, n={n}; need 0 < low < high and n >= 2")
    return [float(x) for x in np.geomspace(low, high, n)]
