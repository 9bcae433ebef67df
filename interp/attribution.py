"""Attribution patching: a first-order estimate of every patch from two forwards and one backward.

For a site with activation ``a`` and a metric ``m``, the effect of patching the clean value
into the corrupted run is approximated by the first-order Taylor term at the corrupted run:

    Δm ≈ (a_clean − a_corr) · ∂m/∂a |_(corrupted run)

summed over the activation's features (``d_model``, or ``d_head`` for heads) and over the
patched positions. **Sign convention**: a positive value predicts that the patch *raises* the
metric above ``m_corr``; the predicted patched metric is ``m_corr + Δm`` and the predicted
recovery ``Δm / (m_clean − m_corr)`` is on the same scale as exact denoising recovery (1 =
fully restored). Only the denoising direction is estimated (the gradient is taken at the
corrupted run).

The results come back as :class:`interp.patching.PatchingResult` with ``method="attribution"``
so exact and approximate grids can be compared cell by cell.

Example:
    >>> attr = attribution_patching(model, clean, corrupted, metric, sites=("z", "resid_pre"))
    >>> exact = patch(model, clean, corrupted, metric, site="z")
    >>> pearson(attr["z"].mean_recovery(), exact.mean_recovery())
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from transformer_lens import HookedTransformer

from interp.data.tokenize import TokenBatch
from interp.engine import (
    Metric,
    apply_metric,
    base_run,
    batch_mask,
    batch_tokens,
    final_logits,
    last_rows,
    linear_friendly_weights,
    metric_columns,
)
from interp.hooks import Positions, act_name, capture, check_finite, hooks, position_mask
from interp.patching import (
    SITES,
    PatchingResult,
    Verification,
    align_positions,
    cell_label,
    patch,
    prepare_pair,
    recovery,
    resolve_layers,
    site_hook,
    str_tokens,
)
from interp.progress import log


def attribution_patching(
    model: HookedTransformer,
    clean: TokenBatch,
    corrupted: TokenBatch,
    metric: Metric,
    sites: Sequence[str] = tuple(SITES),
    per_position: bool = False,
    positions: Positions = None,
    clean_positions: Positions = None,
    layers: Sequence[int] | None = None,
    tol: float = 1e-3,
    verify_top: int = 0,
    verify_tol: float = 0.1,
) -> dict[str, PatchingResult]:
    """Attribution estimates for every layer (head, position) of every site in ``sites``.

    Grids match :func:`interp.patching.patch`: ``[layer(, head)(, pos), batch]``.
    ``positions``/``clean_positions`` select per-prompt slots as there.

    ``verify_top=k`` patches the ``k`` cells of largest ``|mean recovery|`` of each site exactly
    (only their layers are run) and stores both figures in ``result.verification``; a cell whose
    attribution and exact mean recovery differ by more than ``verify_tol`` is logged, because the
    linear estimate can misrank the very heads that matter most (saturated attention, norms).
    """
    if isinstance(verify_top, bool) or not isinstance(verify_top, int) or verify_top < 0:
        raise ValueError(f"verify_top={verify_top!r}; expected an int >= 0 (0: no exact check)")
    if not sites:
        raise ValueError("sites is empty; choose from " + ", ".join(SITES))
    layer_list = resolve_layers(model, layers)
    names = {site: [site_hook(model, site, layer) for layer in layer_list] for site in sites}
    all_names = sorted({n for ns in names.values() for n in ns})
    corr_idx, clean_idx = prepare_pair(clean, corrupted, positions, clean_positions, per_position)
    seq = corrupted.tokens.shape[1]

    with linear_friendly_weights(model, unembed=metric_columns(metric) is None):
        logits_clean, clean_acts = base_run(model, clean, all_names, metric_columns(metric), resid=False)
        grads, corr_acts, logits_corr = _gradients(model, corrupted, metric, all_names)
    check_finite(clean_acts[all_names[-1]], "activations of the clean run")
    check_finite(corr_acts[all_names[-1]], "activations of the corrupted run")
    slots = torch.ones(len(corrupted), seq, dtype=torch.bool)
    if corr_idx is not None:
        slots = position_mask(corr_idx, len(corrupted), seq)
    m_clean, m_corr = apply_metric(metric, logits_clean).float().cpu(), apply_metric(metric, logits_corr).float().cpu()

    labels = str_tokens(model, corrupted) if model.tokenizer is not None else []
    out = {}
    for site, site_names in names.items():
        est = torch.stack(
            [
                _site_grid(n, clean_acts, corr_acts, grads, (clean_idx, corr_idx), slots, per_position)
                for n in site_names
            ]
        )
        est = est + m_corr  # predicted patched metric
        rec, undefined = recovery(est, m_clean, m_corr, tol)
        axes = ("layer",) + (("head",) if site == "z" else ()) + (("pos",) if per_position else ()) + ("batch",)
        args = (est, rec, m_clean, m_corr, undefined, "denoise", "attribution", labels, layer_list)
        out[site] = PatchingResult(site, axes, *args)
    if verify_top:
        pair = (clean, corrupted, metric)
        for site, result in out.items():
            kw = dict(per_position=per_position, positions=positions, clean_positions=clean_positions, tol=tol)
            result.verification = verify(model, pair, result, verify_top, kw, verify_tol)
    return out


def verify(model, pair, result: PatchingResult, k: int, patch_kw: dict, verify_tol: float) -> Verification:
    """Exact patching of ``result``'s top ``k`` cells by ``|mean recovery|`` (only their layers)."""
    mean = result.mean_recovery()
    order = mean.abs().nan_to_num(-1.0).flatten().argsort(descending=True)[:k]
    cells = [tuple(int(i) for i in np.unravel_index(int(f), tuple(mean.shape))) for f in order]
    rows = sorted({c[0] for c in cells})
    layers = [result.layers[r] for r in rows]
    exact = patch(model, *pair, site=result.site, layers=layers, progress=False, **patch_kw).mean_recovery()
    exact_at = torch.stack([exact[(rows.index(c[0]),) + c[1:]] for c in cells])
    labels = [cell_label(result.axes, result.layers, c) for c in cells]
    check = Verification(cells, labels, torch.stack([mean[c] for c in cells]), exact_at)
    bad = [r for r in check.rows() if abs(r[3]) > verify_tol]
    if bad:
        log(
            f"attribution_patching: {len(bad)} of the top {len(cells)} {result.site} cells differ from exact "
            f"patching by more than {verify_tol} in mean recovery: "
            + "; ".join(f"{r[0]} attribution {r[1]:+.3f} vs exact {r[2]:+.3f}" for r in bad[:5])
        )
    return check


def _site_grid(n: str, clean_acts, corr_acts, grads, idx, slots, per_position: bool) -> Tensor:
    """(a_clean − a_corr)·∂m/∂a at hook ``n``, summed over d (and positions unless per position):
    ``[(head,) (pos,) batch]``."""
    clean_idx, corr_idx = idx
    seq = slots.shape[1]
    delta = align_positions(clean_acts[n], clean_idx, seq, corr_idx).cpu() - corr_acts[n]
    check_finite(delta, f"activation difference at {n}")
    contrib = (delta * grads[n]).float()  # [batch pos (head) d]
    contrib = contrib.sum(-1) * slots.view(*slots.shape, *([1] * (contrib.ndim - 3)))
    if per_position:
        return contrib.movedim(0, -1).movedim(0, -2) if contrib.ndim == 3 else contrib.movedim(0, -1)
    return contrib.sum(1).movedim(0, -1)


@contextlib.contextmanager
def _frozen(model: HookedTransformer):
    """No weight gradients: only activation gradients are needed (restored on exit)."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _gradients(model: HookedTransformer, batch: TokenBatch, metric: Metric, names: list[str]):
    """One forward with the graph and one backward: ∂(Σ_prompts m)/∂a at every named hook.
    Prompts do not interact, so the gradient of the sum is each prompt's own gradient."""
    first = act_name("resid_pre", 0)

    def leaf(act: Tensor, hook) -> Tensor:
        # make the graph start here even when the weights are frozen (requires_grad=False)
        return act.detach().requires_grad_(True)

    with (
        torch.enable_grad(),
        _frozen(model),
        hooks(model, [(first, leaf)]),
        capture(model, names, detach=False) as acts,
    ):
        resid = model(
            batch_tokens(model, batch), stop_at_layer=model.cfg.n_layers, attention_mask=batch_mask(model, batch)
        )
        logits = final_logits(model, last_rows(resid, batch), metric_columns(metric))
        total = apply_metric(metric, logits).sum()
        tensors = [acts[n] for n in names]
        grads = torch.autograd.grad(total, tensors, allow_unused=True)
    out_grads = {
        n: (g if g is not None else torch.zeros_like(t)).detach().cpu() for n, g, t in zip(names, grads, tensors)
    }
    return out_grads, {n: acts[n].detach().cpu() for n in names}, logits.detach()
