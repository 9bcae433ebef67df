"""Activation, component and head patching with recovery metrics.

Denoising (default): run the corrupted prompt and write one activation from the clean run
into it. Noising: run the clean prompt and write the corrupted activation into it.
Recovery is ``R = (m_patched - m_corr) / (m_clean - m_corr)`` in both directions, so it always
places the patched run on the corrupted (0) → clean (1) scale: in denoising R is how much of
the clean behaviour a site restores, in noising ``1 - R`` is how much a site's corruption
destroys. When ``|m_clean - m_corr| < tol`` (or either is not finite) the ratio is meaningless:
it is NaN and the prompt is flagged in ``undefined``, never computed from a tiny denominator.

Sites: ``resid_pre``, ``resid_mid``, ``resid_post``, ``attn_out``, ``mlp_out`` (grid
``[layer]`` or ``[layer, pos]``) and ``z`` (each head's output, grid ``[layer, head]`` or
``[layer, head, pos]``). Every grid runs on :mod:`interp.engine` (batched, starts at the first
changed layer).

Example:
    >>> metric = logit_diff_metric(io_ids, s_ids)
    >>> res = patch(model, clean, corrupted, metric, site="z")            # [layer head] grid
    >>> res.mean_recovery()                                                # NaN-aware mean over prompts
    >>> res = patch(model, clean, corrupted, metric, site="resid_pre", per_position=True)
    >>> summary = component_patching(model, clean, corrupted, metric)     # resid vs attn vs mlp
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from interp.data.tokenize import TokenBatch, run_batch
from interp.engine import (
    DEFAULT_MEMORY_BUDGET_GB,
    Metric,
    Variant,
    apply_metric,
    base_run,
    linear_friendly_weights,
    metric_columns,
    run_variants,
)
from interp.hooks import Positions, act_name, as_index, check_finite, check_layer, hooks, position_mask
from interp.stats import Estimate, bootstrap_ci

# sites by their TransformerLens short names (``act_name(site, layer)`` gives the hook)
SITES = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "z")
DIRECTIONS = ("denoise", "noise")


# --------------------------------------------------------------------------- metrics


def logit_diff_metric(correct: Int[Tensor, " batch"], wrong: Int[Tensor, " batch"]) -> Metric:
    """``logit[correct] - logit[wrong]`` per prompt.

    It declares the token ids it reads (``metric.columns``), so the patching engine unembeds
    only those columns. A custom metric may do the same; without ``columns`` it gets every logit.
    """
    for name, ids in (("correct", correct), ("wrong", wrong)):
        if not isinstance(ids, Tensor) or ids.dtype.is_floating_point or ids.dtype == torch.bool:
            raise TypeError(f"{name}={ids!r:.60}; expected an integer tensor of token ids, one per prompt")
    if correct.shape != wrong.shape:
        raise ValueError(
            f"correct has shape {tuple(correct.shape)} but wrong has {tuple(wrong.shape)}; one id each per prompt"
        )
    if bool((correct < 0).any() | (wrong < 0).any()):
        raise ValueError("correct / wrong hold a negative token id; a -1 would silently read the last vocabulary entry")

    def metric(logits: Float[Tensor, "batch d_vocab"]) -> Float[Tensor, " batch"]:
        rows = torch.arange(logits.shape[0], device=logits.device)
        return logits[rows, correct.to(logits.device)] - logits[rows, wrong.to(logits.device)]

    metric.columns = torch.unique(torch.cat([correct.flatten(), wrong.flatten()]))
    return metric


def logprob_metric(target: Int[Tensor, " batch"]) -> Metric:
    """Log-probability of ``target`` per prompt."""

    def metric(logits: Float[Tensor, "batch d_vocab"]) -> Float[Tensor, " batch"]:
        logp = logits.float().log_softmax(-1)
        return logp[torch.arange(logits.shape[0], device=logits.device), target.to(logits.device)]

    return metric


def prob_metric(target: Int[Tensor, " batch"]) -> Metric:
    """Probability of ``target`` per prompt."""
    logprob = logprob_metric(target)
    return lambda logits: logprob(logits).exp()


def check_tol(tol, argument: str = "tol") -> None:
    """The undefined-recovery tolerance: a finite number >= 0 (NaN would compare false and define
    every gap), or a ValueError naming ``argument``."""
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (math.isfinite(tol) and tol >= 0):
        raise ValueError(
            f"{argument}={tol!r}; must be a finite number >= 0 (NaN would compare false and define every gap)"
        )


def recovery(
    m_patched: Float[Tensor, "*grid batch"],
    m_clean: Float[Tensor, " batch"],
    m_corr: Float[Tensor, " batch"],
    tol: float = 1e-3,
) -> tuple[Float[Tensor, "*grid batch"], Bool[Tensor, " batch"]]:
    """Recovery per prompt and the mask of prompts where it is undefined (NaN there)."""
    check_tol(tol)
    gap = m_clean - m_corr
    undefined = ~torch.isfinite(gap) | (gap.abs() < tol)
    safe_gap = torch.where(undefined, torch.ones_like(gap), gap)
    r = (m_patched - m_corr) / safe_gap
    return torch.where(undefined, torch.full_like(r, float("nan")), r), undefined


def _check_same_batch(clean: TokenBatch, corrupted: TokenBatch) -> None:
    if len(clean) != len(corrupted):
        raise ValueError(
            f"clean has {len(clean)} prompts but corrupted has {len(corrupted)}; patching pairs them one to one"
        )


def check_pair_shapes(clean: TokenBatch, corrupted: TokenBatch) -> None:
    """Clean and corrupted batches of the same shape, or a ValueError saying how they differ."""
    _check_same_batch(clean, corrupted)
    if clean.tokens.shape != corrupted.tokens.shape:
        raise ValueError(
            f"clean tokens have shape {tuple(clean.tokens.shape)} but corrupted tokens have "
            f"{tuple(corrupted.tokens.shape)}; patching every position needs equal shapes "
            "(use prompts of equal token length, or patch per-prompt positions, e.g. "
            "positions=corrupted.last_index, clean_positions=clean.last_index)"
        )
    _check_aligned(clean, corrupted)


def _check_aligned(clean: TokenBatch, corrupted: TokenBatch) -> None:
    """Patching every position pairs position p of clean prompt i with position p of corrupted
    prompt i: that is only meaningful when both have their real tokens at the same positions."""
    differ = (clean.attention_mask.cpu() != corrupted.attention_mask.cpu()).any(-1)
    if not bool(differ.any()):
        return
    i = int(differ.nonzero()[0])
    n_clean, n_corr = int(clean.attention_mask[i].sum()), int(corrupted.attention_mask[i].sum())
    sides = f" (clean padded on the {clean.padding_side}, corrupted on the {corrupted.padding_side})"
    raise ValueError(
        f"clean and corrupted prompt {i} are not aligned: {n_clean} vs {n_corr} real tokens at different positions"
        + (sides if clean.padding_side != corrupted.padding_side else "")
        + f" (clean {clean.prompts[i]!r}, corrupted {corrupted.prompts[i]!r}); patching every position needs the "
        "same real-token positions in each pair — use prompts of equal token length and one padding side, or say "
        "which positions correspond: positions=corrupted.last_index, clean_positions=clean.last_index"
    )


def last_logits(model: HookedTransformer, batch: TokenBatch, **kw) -> Float[Tensor, "batch d_vocab"]:
    """Logits ``[batch, d_vocab]`` at each prompt's last real token (padding-aware forward).

    Only the last positions are unembedded: with Gemma-3's 262k-token vocabulary the full
    ``[batch, pos, d_vocab]`` logits of 50 long prompts take over 10 GB."""
    last = _last_position_hooks(model, batch)
    with hooks(model, last):
        logits = run_batch(model, batch, **kw)
    if last:
        return logits[:, 0]
    return logits[torch.arange(len(batch), device=logits.device), batch.last_index.to(logits.device)]


def _last_position_hooks(model: HookedTransformer, batch: TokenBatch) -> list[tuple[str, Callable]]:
    """A hook that keeps only each prompt's last real position after ``ln_final`` (the caller
    reads nothing else), so the unembedding runs on ``[b, 1, d]``, not ``[b, p, d]``; empty for
    a model without ``ln_final`` (its logits are then computed at every position)."""
    name = "ln_final.hook_normalized"
    if name not in model.hook_dict:
        return []
    rows = torch.arange(len(batch))

    def keep_last(act: Tensor, hook) -> Tensor:
        return act[rows.to(act.device), batch.last_index.to(act.device)][:, None]

    return [(name, keep_last)]


# --------------------------------------------------------------------------- results


@dataclass
class Verification:
    """Attribution's top cells patched exactly: mean recovery by both methods per cell (grid
    index, NaN where undefined), the cells named (``L23H3``, ``L5@p4``), and their largest
    absolute disagreement."""

    cells: list[tuple[int, ...]]
    labels: list[str]
    attribution: Float[Tensor, " k"]
    exact: Float[Tensor, " k"]

    @property
    def max_abs_diff(self) -> float:
        return float((self.attribution - self.exact).abs().nan_to_num(0.0).max()) if self.cells else 0.0

    def rows(self) -> list[list]:
        """``[cell, attribution, exact, difference]`` per cell, largest |attribution| first."""
        pairs = zip(self.labels, self.attribution.tolist(), self.exact.tolist())
        return [[name, round(a, 4), round(e, 4), round(a - e, 4)] for name, a, e in pairs]


def cell_label(axes: tuple[str, ...], layers: list[int], cell: tuple[int, ...]) -> str:
    """``L{layer}`` then ``H{head}`` / ``@p{pos}`` for the grid axes of ``cell``."""
    out = f"L{layers[cell[0]]}"
    for axis, i in zip(axes[1:], cell[1:]):
        out += f"H{i}" if axis == "head" else f"@p{i}"
    return out


@dataclass
class PatchingResult:
    """Metric and recovery of every patched site, per prompt (last axis)."""

    site: str
    axes: tuple[str, ...]  # grid axes then "batch", e.g. ("layer", "head", "batch")
    metric: Float[Tensor, "*grid batch"]  # metric of the patched run (attribution: predicted)
    recovery: Float[Tensor, "*grid batch"]  # NaN where undefined
    m_clean: Float[Tensor, " batch"]
    m_corr: Float[Tensor, " batch"]
    undefined: Bool[Tensor, " batch"]
    direction: str = "denoise"
    method: str = "exact"  # or "attribution"
    pos_labels: list[str] = field(default_factory=list)  # tokens of the first base prompt
    layers: list[int] = field(default_factory=list)  # layer of each row of the grid
    verification: Verification | None = None  # attribution_patching(..., verify_top=k): its top cells, exactly

    def mean_recovery(self, include: Bool[Tensor, " batch"] | None = None) -> Float[Tensor, "*grid"]:
        """Mean recovery over the prompts where it is defined (and ``include`` is True);
        NaN where no prompt is usable."""
        rec = self.recovery if include is None else self.recovery[..., include.cpu()]
        if rec.shape[-1] == 0:
            return torch.full(rec.shape[:-1], float("nan"))
        defined = ~torch.isnan(rec)
        count = defined.sum(-1)
        total = torch.where(defined, rec, torch.zeros_like(rec)).sum(-1)
        return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, float("nan")))

    def estimate(
        self, index: tuple[int, ...], n_boot: int = 2000, seed: int = 0, include: Bool[Tensor, " batch"] | None = None
    ) -> Estimate:
        """Mean and bootstrap CI over prompts (those in ``include``) of the recovery at one cell."""
        values = self.recovery[index] if include is None else self.recovery[index][include.cpu()]
        return bootstrap_ci(values.numpy(), n_boot=n_boot, seed=seed)

    def top(
        self, k: int = 10, n_boot: int = 2000, include: Bool[Tensor, " batch"] | None = None
    ) -> list[tuple[tuple[int, ...], Estimate]]:
        """The ``k`` grid cells of largest mean recovery with their estimates."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k={k!r}; must be a positive integer (k=-1 would silently drop the last cell)")
        mean = self.mean_recovery(include).nan_to_num(float("-inf"))
        order = mean.flatten().argsort(descending=True)[:k]
        cells = [tuple(int(i) for i in np.unravel_index(int(f), tuple(mean.shape))) for f in order]
        return [
            (cell, self.estimate(cell, n_boot, include=include)) for cell in cells if np.isfinite(float(mean[cell]))
        ]


# --------------------------------------------------------------------------- patching


def site_hook(model: HookedTransformer, site: str, layer: int) -> str:
    """Hook name of a patching ``site`` in block ``layer``, checked against the model."""
    if site not in SITES:
        raise ValueError(f"site={site!r}; allowed: {list(SITES)}")
    name = act_name(site, layer)
    if name not in model.hook_dict:
        raise ValueError(f"site={site!r} has no hook point {name!r} in this model")
    return name


def resolve_layers(model: HookedTransformer, layers: Sequence[int] | None) -> list[int]:
    """``layers`` checked against the model (None: every layer)."""
    if layers is None:
        return list(range(model.cfg.n_layers))
    if len(layers) == 0:
        raise ValueError("layers is empty; pass None for every layer or a list of layer indices")
    return [check_layer(model, layer, "layers") for layer in layers]


def prepare_pair(
    clean: TokenBatch, corrupted: TokenBatch, positions: Positions, clean_positions: Positions, per_position: bool
):
    """Validate the pair; return the slot masks and the index maps (or None for all positions)."""
    _check_same_batch(clean, corrupted)
    if positions is None and clean_positions is not None:
        raise ValueError("clean_positions given without positions; give positions (in the corrupted prompts) too")
    if positions is None:
        check_pair_shapes(clean, corrupted)
        return None, None
    if per_position:
        raise ValueError("per_position=True patches every position separately; it cannot be combined with positions=")
    b = len(corrupted)
    corr_idx = as_index(positions, b, corrupted.tokens.shape[1], None)
    clean_idx = as_index(positions if clean_positions is None else clean_positions, b, clean.tokens.shape[1], None)
    if corr_idx.shape != clean_idx.shape:
        raise ValueError(
            f"positions select {corr_idx.shape[1]} slots per prompt but clean_positions select {clean_idx.shape[1]}"
        )
    return corr_idx, clean_idx


def align_positions(src: Tensor, src_idx: Tensor | None, base_seq: int, base_idx: Tensor | None) -> Tensor:
    """Source activation re-indexed onto the base run's positions (slots outside the map are
    zero and never written, since the slot mask excludes them)."""
    if base_idx is None:
        return src
    out = torch.zeros(src.shape[0], base_seq, *src.shape[2:], dtype=src.dtype, device=src.device)
    rows = torch.arange(src.shape[0], device=src.device)[:, None]
    out[rows, base_idx.to(src.device)] = src[rows, src_idx.to(src.device)]
    return out


def str_tokens(model: HookedTransformer, batch: TokenBatch, row: int = 0) -> list[str]:
    """Token strings of one prompt (decoded one by one; TL's to_str_tokens fails on Gemma)."""
    return [model.tokenizer.decode([int(t)]) for t in batch.tokens[row]]


@torch.no_grad()
def patch(
    model: HookedTransformer,
    clean: TokenBatch,
    corrupted: TokenBatch,
    metric: Metric,
    site: str = "z",
    per_position: bool = False,
    direction: str = "denoise",
    positions: Positions = None,
    clean_positions: Positions = None,
    layers: Sequence[int] | None = None,
    tol: float = 1e-3,
    memory_budget_gb: float = DEFAULT_MEMORY_BUDGET_GB,
    progress: bool = True,
) -> PatchingResult:
    """Patch ``site`` at every layer (and head, and position when ``per_position``).

    ``positions`` restricts the patch to the given slots of the corrupted prompts (e.g.
    ``corrupted.last_index``) read from ``clean_positions`` of the clean prompts (default: the
    same); then clean and corrupted prompts may differ in length. Without it every position is
    patched and the two token shapes must match.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction={direction!r}; allowed: {list(DIRECTIONS)}")
    with linear_friendly_weights(model, max_bytes=memory_budget_gb * 2**30 / 4, unembed=metric_columns(metric) is None):
        return _patch(
            model,
            clean,
            corrupted,
            metric,
            site,
            per_position,
            direction,
            positions,
            clean_positions,
            layers,
            tol,
            memory_budget_gb,
            progress,
        )


def _grid(model, site: str, per_position: bool, layer_list: list[int], names: list[str], seq: int):
    """The variants (one per layer [× head] [× position]), the grid's axis names and shape."""
    variants: list[Variant] = []
    heads = range(model.cfg.n_heads) if site == "z" else [None]
    pos_range = range(seq) if per_position else [None]
    for layer, name in zip(layer_list, names):
        for h in heads:
            for p in pos_range:
                variants.append(Variant(name, layer, pos=p, head=h))
    grid_axes = ["layer"] + (["head"] if site == "z" else []) + (["pos"] if per_position else [])
    shape = [len(layer_list)] + ([model.cfg.n_heads] if site == "z" else []) + ([seq] if per_position else [])
    return variants, grid_axes, shape


def _patch(
    model,
    clean,
    corrupted,
    metric,
    site,
    per_position,
    direction,
    positions,
    clean_positions,
    layers,
    tol,
    memory_budget_gb,
    progress,
) -> PatchingResult:
    layer_list = resolve_layers(model, layers)
    names = [site_hook(model, site, layer) for layer in layer_list]
    corr_idx, clean_idx = prepare_pair(clean, corrupted, positions, clean_positions, per_position)
    base, source = (corrupted, clean) if direction == "denoise" else (clean, corrupted)
    base_idx, src_idx = (corr_idx, clean_idx) if direction == "denoise" else (clean_idx, corr_idx)

    cols = metric_columns(metric)
    logits_src, src_acts = base_run(model, source, names, cols, resid=False)
    logits_base, base_acts = base_run(model, base, names, cols)
    seq = base.tokens.shape[1]
    sources = {n: align_positions(src_acts[n], src_idx, seq, base_idx) for n in names}
    check_finite(src_acts[names[-1]], f"activations of the {'clean' if direction == 'denoise' else 'corrupted'} run")
    check_finite(base_acts[names[-1]], f"activations of the {'corrupted' if direction == 'denoise' else 'clean'} run")
    slots = None if base_idx is None else position_mask(base_idx, len(base), seq)

    variants, grid_axes, shape = _grid(model, site, per_position, layer_list, names, seq)
    m = run_variants(
        model,
        base,
        sources,
        variants,
        metric,
        slots=slots,
        memory_budget_gb=memory_budget_gb,
        progress=progress,
        desc=f"patch {site}",
        base_cache=base_acts,
    )
    m_src, m_base = apply_metric(metric, logits_src).float().cpu(), apply_metric(metric, logits_base).float().cpu()
    m_clean, m_corr = (m_src, m_base) if direction == "denoise" else (m_base, m_src)
    m = m.view(*shape, len(base))
    rec, undefined = recovery(m, m_clean, m_corr, tol)
    labels = str_tokens(model, base) if model.tokenizer is not None else []
    axes = (*grid_axes, "batch")
    return PatchingResult(site, axes, m, rec, m_clean, m_corr, undefined, direction, "exact", labels, layer_list)


def patch_heads(model, clean, corrupted, metric, **kw) -> PatchingResult:
    """Each head's output ``z`` patched per (layer, head) (``per_position=True``: per
    (layer, head, pos)); see :func:`patch`."""
    return patch(model, clean, corrupted, metric, site="z", **kw)


# --------------------------------------------------------------------------- component summary


@dataclass
class ComponentSummary:
    """Per-layer recovery of resid vs attn_out vs mlp_out."""

    results: dict[str, PatchingResult]
    estimates: dict[str, list[Estimate]]  # site -> one estimate per layer
    peak_layers: dict[str, list[int]]  # site -> layers sorted by mean recovery, best first

    def table(self, top: int = 3) -> list[list]:
        rows = []
        for site, ests in self.estimates.items():
            layers = self.results[site].layers
            best = [f"L{layer}: {ests[layers.index(layer)]}" for layer in self.peak_layers[site][:top]]
            rows.append([site] + best + [""] * (top - len(best)))
        return rows


def component_positions(site: str, clean: TokenBatch, corrupted: TokenBatch, resid_at_last_token: bool = True) -> dict:
    """Position arguments of :func:`patch` for one whole component: ``resid_*`` at each
    prompt's last token (patched everywhere it trivially restores the clean run), others
    everywhere (empty dict)."""
    if site.startswith("resid") and resid_at_last_token:
        return dict(positions=corrupted.last_index, clean_positions=clean.last_index)
    return {}


def component_patching(
    model: HookedTransformer,
    clean: TokenBatch,
    corrupted: TokenBatch,
    metric: Metric,
    sites: Sequence[str] = ("resid_pre", "attn_out", "mlp_out"),
    resid_at_last_token: bool = True,
    include: Bool[Tensor, " batch"] | None = None,
    n_boot: int = 2000,
    **kw,
) -> ComponentSummary:
    """Recovery by layer for each whole component (all heads together).

    Attention and MLP outputs are patched at every position. The residual stream patched at
    every position would restore the whole clean run at every layer (recovery 1 throughout),
    so with ``resid_at_last_token`` (default) ``resid_*`` sites are patched at each prompt's
    last token instead. ``include`` selects the prompts the estimates average over (e.g. those
    whose clean run is correct); undefined prompts are always left out."""
    if not sites:
        raise ValueError("sites is empty; choose from " + ", ".join(s for s in SITES if s != "z"))
    results, estimates, peaks = {}, {}, {}
    for site in sites:
        if site == "z":
            raise ValueError("component_patching compares whole components; use patch(site='z') for heads")
        res = patch(
            model,
            clean,
            corrupted,
            metric,
            site=site,
            **component_positions(site, clean, corrupted, resid_at_last_token),
            **kw,
        )
        results[site] = res
        rec = res.recovery if include is None else res.recovery[..., include.cpu()]
        estimates[site] = [bootstrap_ci(rec[i].numpy(), n_boot=n_boot) for i in range(rec.shape[0])]
        mean = torch.tensor([e.mean for e in estimates[site]]).nan_to_num(float("-inf"))
        peaks[site] = [res.layers[int(i)] for i in mean.argsort(descending=True) if np.isfinite(float(mean[i]))]
    return ComponentSummary(results, estimates, peaks)
