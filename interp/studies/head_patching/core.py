"""Head-level patching study on IOI (which heads carry the indirect object?): the pieces around
:func:`interp.patching.patch` and :func:`interp.attribution.attribution_patching` that the
experiment strings together.

    >>> runs = clean_runs(model, clean, corr, io_ids, metric, tol=1e-3)    # before any recovery figure
    >>> attr, n_calls = attribution_all_sites(model, clean, corr, metric, ["resid_pre", "attn_out"], tol=1e-3)
    >>> rows = agreement(exact_results, attr, runs.usable)                 # Pearson r, all and small-effect cells
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from interp.attribution import attribution_patching
from interp.config import PatchingConfig
from interp.data.ioi import DEFAULT_NAMES, DEFAULT_TEMPLATES
from interp.patching import PatchingResult, component_positions, last_logits
from interp.selection import SelectionConfig, split_items
from interp.stats import Estimate


@dataclass
class IOITaskConfig:
    n_pairs: int = 48
    seed: int = 0
    templates: list[str] = field(default_factory=lambda: list(DEFAULT_TEMPLATES))
    names: list[str] = field(default_factory=lambda: list(DEFAULT_NAMES))
    orders: list[str] = field(default_factory=lambda: ["ABBA", "BABA"])  # n_pairs of each name order


@dataclass
class HeadPatchingSettings(PatchingConfig):
    memory_budget_gb: float = 4.0
    # per-layer components; resid_* sites are patched at the last token, the others everywhere
    components: list[str] = field(default_factory=lambda: ["resid_pre", "attn_out", "mlp_out"])
    per_position_pairs: int = 8  # pairs of the first template used for the layer x position maps
    selection: SelectionConfig = field(
        default_factory=SelectionConfig
    )  # pairs that rank the heads; the rest report them


@dataclass
class CleanRuns:
    top: torch.Tensor  # [batch] top-1 token of each clean prompt
    correct: torch.Tensor  # [batch] bool: the top-1 is the answer
    m_clean: torch.Tensor  # [batch]
    m_corr: torch.Tensor  # [batch]
    usable: torch.Tensor  # [batch] bool: correct and a defined clean-corrupted gap


@torch.no_grad()
def clean_runs(model, clean, corr, answer_ids: torch.Tensor, metric, tol: float) -> CleanRuns:
    """Do the clean runs succeed? Recovery figures should average over ``usable`` pairs only."""
    logits = last_logits(model, clean)
    top = logits.argmax(-1).cpu()
    ok = top == answer_ids
    m_clean, m_corr = metric(logits).cpu(), metric(last_logits(model, corr)).cpu()
    return CleanRuns(top, ok, m_clean, m_corr, ok & ((m_clean - m_corr).abs() >= tol))


def site_label(site: str) -> str:
    return f"{site} @ last token" if site.startswith("resid") else site


def first_template_pairs(n_pairs: int, n_templates: int, n: int) -> list[int]:
    """Indices of the first ``n`` pairs built from the first template (``ioi_pairs`` cycles templates)."""
    return [i for i in range(n_pairs) if i % n_templates == 0][:n]


def attribution_all_sites(
    model, clean, corr, metric, components: list[str], tol: float
) -> tuple[dict[str, PatchingResult], int]:
    """Attribution for every head (``z``) and component, residual sites at the last token as in
    exact component patching; returns the results by site and how many calls (each two forwards
    and one backward) it took."""
    everywhere = ["z"] + [site for site in components if not component_positions(site, clean, corr)]
    at_last = [site for site in components if component_positions(site, clean, corr)]
    attr = attribution_patching(model, clean, corr, metric, sites=everywhere, tol=tol)
    if at_last:
        attr |= attribution_patching(
            model,
            clean,
            corr,
            metric,
            sites=at_last,
            tol=tol,
            positions=corr.last_index,
            clean_positions=clean.last_index,
        )
    return attr, 1 + bool(at_last)


def pearson_or_undefined(x, y) -> float:
    """Pearson r rounded to 3 digits; NaN (undefined, not 0) with < 3 points or a constant side."""
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return round(float(np.corrcoef(x, y)[0, 1]), 3)


@dataclass
class Agreement:
    site: str
    exact: np.ndarray  # mean recovery per cell, flattened
    attribution: np.ndarray
    n_cells: int  # cells defined in both
    r: float
    n_small: int  # of them with |exact| < 0.5 (first order should hold there)
    r_small: float


def agreement(
    exact: dict[str, PatchingResult], attr: dict[str, PatchingResult], usable: torch.Tensor
) -> list[Agreement]:
    """Attribution vs exact mean recovery per site, over all cells and over the small-effect cells."""
    out = []
    for site in exact:
        x, y = exact[site].mean_recovery(usable).flatten().numpy(), attr[site].mean_recovery(usable).flatten().numpy()
        ok = np.isfinite(x) & np.isfinite(y)
        small = ok & (np.abs(x) < 0.5)
        out.append(
            Agreement(
                site,
                x,
                y,
                int(ok.sum()),
                pearson_or_undefined(x[ok], y[ok]),
                int(small.sum()),
                pearson_or_undefined(x[small], y[small]),
            )
        )
    return out


@dataclass
class HeldOutHead:
    head: tuple[int, int]
    selection: Estimate  # mean recovery on the pairs that ranked it
    test: Estimate  # on the other pairs
    rank_all: int  # its rank when ranked on all pairs (the best-on-test ranking), 1-based


def held_out_heads(
    res: PatchingResult, usable: torch.Tensor, groups: list[str], k: int, selection: SelectionConfig, n_boot: int
) -> tuple[list[HeldOutHead], int, int]:
    """Top ``k`` heads ranked by mean recovery on a selection part of the usable pairs
    (stratified by ``groups``, e.g. name order), each reported on the other part; and the
    numbers of selection / test pairs."""
    idx = np.flatnonzero(usable.cpu().numpy())
    split = split_items(len(idx), selection.test_fraction, selection.seed, groups=[groups[i] for i in idx])
    masks = []
    for part in (split.selection, split.test):
        m = torch.zeros(len(usable), dtype=torch.bool)
        m[idx[part]] = True
        masks.append(m)
    order_all = res.mean_recovery(usable).nan_to_num(float("-inf")).flatten().argsort(descending=True).tolist()
    shape = tuple(res.recovery.shape[:-1])
    out = []
    for cell, est in res.top(k, n_boot, include=masks[0]):
        rank = order_all.index(int(np.ravel_multi_index(cell, shape))) + 1
        out.append(HeldOutHead(cell, est, res.estimate(cell, n_boot, include=masks[1]), rank))
    return out, len(split.selection), len(split.test)
