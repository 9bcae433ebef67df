"""Head-level patching study: which heads carry the indirect object in IOI?

On ``smollm2-135m-instruct`` (default), with IOI prompts ("When Mary and John went to the
store, John gave a drink to" → " Mary") and ABC corruptions (the second "John" replaced by a
third name), metric = logit(IO) − logit(S):

1. do the clean runs succeed, and how often (before any recovery figure);
2. exact head patching (each head's z, all positions), denoising and noising;
3. component patching (resid_pre / attn_out / mlp_out per layer) and the peak layers;
4. per-position patching of resid_pre / attn_out / mlp_out on the first template (token labels);
5. attribution patching against exact patching, with Pearson r and timings.

Every step is a cell (the clean runs first: the component cell patches only the usable pairs).

    interp run head_patching --config configs/head_patching.yaml [model.name=gemma-3-270m]
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

import interp
from interp import plots
from interp.config import ModelConfig
from interp.data.ioi import ioi_pairs
from interp.executor import Cell
from interp.patching import PatchingResult, component_patching, logit_diff_metric, patch
from interp.runner import Run, RunConfig
from interp.stats import bootstrap_ci
from interp.studies.head_patching.core import (
    CleanRuns,
    HeadPatchingSettings,
    IOITaskConfig,
    agreement,
    attribution_all_sites,
    clean_runs,
    first_template_pairs,
    held_out_heads,
    site_label,
)
from interp.study import Study


@dataclass
class HeadPatchingConfig:
    run: RunConfig = field(default_factory=RunConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    task: IOITaskConfig = field(default_factory=IOITaskConfig)
    patching: HeadPatchingSettings = field(default_factory=HeadPatchingSettings)


def _setup(model, task: IOITaskConfig):
    pairs = ioi_pairs(task.n_pairs, task.seed, task.templates, task.names, task.orders)
    clean, corr = interp.tokenize(model, pairs.clean), interp.tokenize(model, pairs.corrupted)
    io = interp.data.single_token_ids(model, pairs.io, "task.names (IO)")
    s = interp.data.single_token_ids(model, pairs.s, "task.names (S)")
    return pairs, clean, corr, io, s, logit_diff_metric(io, s)


@dataclass
class CleanCell:
    runs: CleanRuns
    prompts: list[str]
    order: list[str]  # name order of each pair
    top1: list[str]  # decoded top-1 token per clean prompt
    n_layers: int
    n_heads: int


def clean_cell(model, task: IOITaskConfig, tol: float) -> CleanCell:
    pairs, clean, corr, io, _, metric = _setup(model, task)
    c = clean_runs(model, clean, corr, io, metric, tol)
    top1 = [model.tokenizer.decode([int(t)]) for t in c.top]
    return CleanCell(c, list(clean.prompts), list(pairs.order), top1, model.cfg.n_layers, model.cfg.n_heads)


def heads_cell(model, task: IOITaskConfig, pc: HeadPatchingSettings, direction: str) -> tuple[PatchingResult, float]:
    """Exact head patching (z at every position) and its wall time."""
    _, clean, corr, _, _, metric = _setup(model, task)
    t0 = time.perf_counter()
    res = patch(
        model, clean, corr, metric, site="z", direction=direction, tol=pc.tol, memory_budget_gb=pc.memory_budget_gb
    )
    return res, time.perf_counter() - t0


def components_cell(model, task: IOITaskConfig, pc: HeadPatchingSettings, usable: torch.Tensor):
    _, clean, corr, _, _, metric = _setup(model, task)
    return component_patching(
        model,
        clean,
        corr,
        metric,
        sites=pc.components,
        include=usable,
        tol=pc.tol,
        n_boot=pc.n_boot,
        memory_budget_gb=pc.memory_budget_gb,
    )


def positions_cell(model, task: IOITaskConfig, pc: HeadPatchingSettings, site: str) -> PatchingResult:
    """Per (layer, position) patching on the first template's pairs of the first name order."""
    pairs, _, _, io, s, _ = _setup(model, task)
    order = task.orders[0]
    first = [
        i
        for i in first_template_pairs(len(pairs.clean), len(task.templates), len(pairs.clean))
        if pairs.order[i] == order
    ]
    first = first[: pc.per_position_pairs]
    clean = interp.tokenize(model, [pairs.clean[i] for i in first])
    corr = interp.tokenize(model, [pairs.corrupted[i] for i in first])
    metric = logit_diff_metric(io[first], s[first])
    return patch(
        model, clean, corr, metric, site=site, per_position=True, tol=pc.tol, memory_budget_gb=pc.memory_budget_gb
    )


def attribution_cell(model, task: IOITaskConfig, pc: HeadPatchingSettings):
    """Attribution patching of every site: (results by site, calls, wall time)."""
    _, clean, corr, _, _, metric = _setup(model, task)
    t0 = time.perf_counter()
    attr, n_calls = attribution_all_sites(model, clean, corr, metric, pc.components, pc.tol)
    return attr, n_calls, time.perf_counter() - t0


def cells(cfg: HeadPatchingConfig, done: dict) -> list[Cell]:
    m, t, pc = cfg.model.name, cfg.task, cfg.patching
    out = [
        Cell("clean", m, clean_cell, (t, pc.tol)),
        Cell("heads.denoise", m, heads_cell, (t, pc, "denoise")),
        Cell("heads.noise", m, heads_cell, (t, pc, "noise")),
        *[Cell(f"positions.{site}", m, positions_cell, (t, pc, site)) for site in pc.components],
        Cell("attribution", m, attribution_cell, (t, pc)),
    ]
    if "clean" in done:  # the component cell patches the usable pairs only
        out.append(Cell("components", m, components_cell, (t, pc, done["clean"].runs.usable)))
    return out


@dataclass
class HeadPatchingResult:
    clean: CleanCell
    orders: dict[str, torch.Tensor]  # name order -> [pair] mask
    heads: PatchingResult
    heads_s: float
    noise: PatchingResult
    components: object  # ComponentSummary
    positions: dict[str, PatchingResult]
    attribution: dict[str, PatchingResult]
    attribution_calls: int
    attribution_s: float


def analyse(cfg: HeadPatchingConfig, done: dict) -> HeadPatchingResult:
    c = done["clean"]
    orders = {o: torch.tensor([x == o for x in c.order]) for o in cfg.task.orders}
    attr, n_calls, t_attr = done["attribution"]
    return HeadPatchingResult(
        c,
        orders,
        *done["heads.denoise"],
        done["heads.noise"][0],
        done["components"],
        {site: done[f"positions.{site}"] for site in cfg.patching.components},
        attr,
        n_calls,
        t_attr,
    )


def report(cfg: HeadPatchingConfig, r: HeadPatchingResult, run: Run) -> None:
    pc = cfg.patching
    run.report.add_text(
        f"Model `{cfg.model.name}` ({r.clean.n_layers} layers x {r.clean.n_heads} heads). "
        f"{len(r.clean.prompts)} IOI pairs from {len(cfg.task.templates)} templates (seed {cfg.task.seed}), "
        f"{cfg.task.n_pairs} in each name order "
        f"{cfg.task.orders} (ABBA: the indirect object named first; BABA: the subject named first, so a 'first name' "
        "heuristic "
        "cannot pass); the corrupted prompt replaces the second mention of the subject by a third name (ABC). "
        "Metric: logit(IO) - logit(S) at the last token. Recovery `(m_patched - m_corr)/(m_clean - m_corr)`, "
        f"undefined (NaN) when `|m_clean - m_corr| < {pc.tol}`."
    )
    usable = _clean_section(run, r)
    _head_section(cfg, run, r, usable)
    comp = _component_section(cfg, run, r)
    _position_section(cfg, run, r)
    _attribution_section(run, r, usable, comp)


def _clean_section(run: Run, r: HeadPatchingResult) -> torch.Tensor:
    c, prompts = r.clean.runs, r.clean.prompts
    acc = bootstrap_ci(c.correct.float().numpy())
    by_order = {o: bootstrap_ci(c.correct[m].float().numpy()) for o, m in r.orders.items()}
    run.report.add_text(
        "## 1. Does the clean run succeed?\n\n"
        f"The top-1 next token is the indirect object for **{int(c.correct.sum())} of {len(c.correct)}** clean prompts "
        f"(accuracy {acc}; "
        + "; ".join(f"{o}: {e}" for o, e in by_order.items())
        + f"). Mean logit difference: clean {c.m_clean.mean():.2f}, corrupted {c.m_corr.mean():.2f}. "
        f"Recovery figures below average over the **{int(c.usable.sum())}** pairs whose clean run is correct "
        "and whose clean-corrupted gap is defined."
    )
    rows = [
        [
            prompts[i],
            repr(r.clean.top1[i]),
            f"{c.m_clean[i]:.2f}",
            f"{c.m_corr[i]:.2f}",
            "yes" if c.correct[i] else "**no**",
        ]
        for i in range(min(len(c.correct), 12))
    ]
    run.report.add_table(
        ["clean prompt", "top-1", "m_clean", "m_corr", "correct"],
        rows,
        caption=f"First {len(rows)} of {len(c.correct)} pairs",
    )
    run.log_metrics(
        clean_accuracy=float(c.correct.float().mean()),
        n_pairs=len(c.correct),
        n_usable_pairs=int(c.usable.sum()),
        m_clean_mean=float(c.m_clean.mean()),
        m_corr_mean=float(c.m_corr.mean()),
        by_order={
            o: {"clean_accuracy": e.mean, "n_usable_pairs": int((c.usable & r.orders[o]).sum())}
            for o, e in by_order.items()
        },
    )
    return c.usable


def _top_head_rows(pc, res: PatchingResult, noise: PatchingResult, usable, orders: dict) -> list[list]:
    """The top heads by pooled denoising recovery: pooled, noising damage and each name order."""
    rows = []
    for (layer, head), est in res.top(pc.top_k_heads, pc.n_boot, include=usable):
        noise_est = bootstrap_ci(1 - noise.recovery[layer, head, usable].numpy(), n_boot=pc.n_boot)
        per_order = [str(res.estimate((layer, head), pc.n_boot, include=usable & m)) for m in orders.values()]
        rows.append([layer, head, str(est), str(noise_est), *per_order])
    return rows


def _head_section(cfg, run: Run, r: HeadPatchingResult, usable) -> None:
    pc, res, noise, orders = cfg.patching, r.heads, r.noise, r.orders
    n = int(usable.sum())
    run.report.add_text(
        "## 2. Head patching\n\nEach head's output `z` at every position, one head at a time "
        f"({r.clean.n_layers * r.clean.n_heads} heads, {r.heads_s:.1f} s). "
        "Denoising writes the clean value into the corrupted run (recovery: how much of the clean "
        "behaviour one head restores); noising writes the corrupted value into the clean run "
        "(1 - recovery: how much one head's corruption destroys)."
    )
    if n == 0:
        run.report.add_text(
            "**No usable pair** (no clean run is correct with a defined gap): every recovery below is undefined and "
            "shown grey."
        )
    mean = res.mean_recovery(usable)
    run.save_figure(
        plots.layer_head_heatmap(mean.numpy(), f"Denoising: mean recovery per head ({n} pairs)"),
        "heads_denoise.png",
        "Denoising head patching: mean recovery of logit(IO) - logit(S)",
    )
    damage = 1 - noise.mean_recovery(usable)
    run.save_figure(
        plots.layer_head_heatmap(damage.numpy(), f"Noising: mean 1 - recovery per head ({n} pairs)", "damage"),
        "heads_noise.png",
        "Noising head patching: share of the clean logit difference destroyed by corrupting one head",
    )
    rows = _top_head_rows(pc, res, noise, usable, orders)
    run.report.add_table(
        ["layer", "head", "denoising recovery [95% CI], pooled", "noising damage [95% CI]"]
        + [f"denoising, {o} only" for o in orders],
        rows,
        caption=f"Top {len(rows)} heads by pooled denoising recovery, with each name order alone — ranked and reported "
        "on the same pairs (labelled best-on-test; the held-out ranking follows)",
    )
    run.log_metrics(
        head_recovery_mean=mean,
        head_noising_damage_mean=damage,
        top_heads=rows,
        heads_exact_s=r.heads_s,
        undefined_pairs=int(res.undefined.sum()),
        head_recovery_mean_by_order={o: res.mean_recovery(usable & m) for o, m in orders.items()},
    )
    _held_out_table(run, pc, res, usable, orders)


def _held_out_table(run: Run, pc, res: PatchingResult, usable, orders: dict) -> None:
    if int(usable.sum()) < 2:
        run.report.add_text(
            f"Held-out head ranking: **undefined** ({int(usable.sum())} usable pairs; a selection / test split needs "
            "2)."
        )
        return
    groups = [next(o for o, m in orders.items() if bool(m[i])) for i in range(len(usable))]
    held, n_sel, n_test = held_out_heads(res, usable, groups, pc.top_k_heads, pc.selection, pc.n_boot)
    run.report.add_table(
        [
            "layer",
            "head",
            f"recovery on the {n_sel} selection pairs (ranked on)",
            f"recovery on the {n_test} test pairs [95% CI]",
            "rank when ranked on all pairs",
        ],
        [[h.head[0], h.head[1], f"{h.selection.mean:.3f}", str(h.test), h.rank_all] for h in held],
        caption=f"HEADLINE — top {len(held)} heads ranked on a selection part of the usable pairs (stratified by name "
        "order, "
        f"seed {pc.selection.seed}), reported on the held-out pairs",
    )
    run.log_metrics(
        held_out_heads=[
            {"head": h.head, "selection": vars(h.selection), "test": vars(h.test), "rank_all": h.rank_all} for h in held
        ],
        held_out_pairs={"selection": n_sel, "test": n_test},
    )


def _component_section(cfg, run: Run, r: HeadPatchingResult) -> dict[str, PatchingResult]:
    summary = r.components
    layers = list(range(r.clean.n_layers))
    curves = {
        site_label(site): ([e.mean for e in ests], [e.ci_low for e in ests], [e.ci_high for e in ests])
        for site, ests in summary.estimates.items()
    }
    rows = [[site_label(row[0])] + row[1:] for row in summary.table(3)]
    run.report.add_text(
        "## 3. Component patching\n\nPer layer: the residual stream before the layer at the last token, and the "
        "layer's attention output and MLP output at every position, patched clean -> corrupted (mean and 95% "
        "bootstrap CI over usable pairs). The residual at every position would trivially give 1 at every layer."
    )
    run.save_figure(
        plots.layer_curves(layers, curves, "Recovery by layer and component", "recovery"),
        "components.png",
        "Component patching: recovery per layer",
    )
    run.report.add_table(
        ["site", "peak layer 1", "peak layer 2", "peak layer 3"], rows, caption="Layers of peak recovery"
    )
    run.log_metrics(component_recovery={k: v[0] for k, v in curves.items()}, component_peak_layers=summary.peak_layers)
    return summary.results


def _position_section(cfg, run: Run, r: HeadPatchingResult) -> None:
    pc, order = cfg.patching, cfg.task.orders[0]
    n = next(iter(r.positions.values())).recovery.shape[-1] if r.positions else 0
    run.report.add_text(
        f"## 4. Which positions matter?\n\nPer (layer, position) patching on the {n} {order} pairs of the first "
        f"template (`{cfg.task.templates[0]}`); x labels are the tokens of the first corrupted prompt."
    )
    for site in pc.components:
        res = r.positions[site]
        run.save_figure(
            plots.layer_pos_heatmap(res.mean_recovery().numpy(), res.pos_labels, f"{site}: mean recovery"),
            f"positions_{site}.png",
            f"{site} patched per (layer, position)",
        )


def _attribution_section(run: Run, r: HeadPatchingResult, usable, comp) -> None:
    agree = agreement({"z": r.heads} | comp, r.attribution, usable)
    run.report.add_text(
        "## 5. Attribution patching vs exact patching\n\nAttribution estimates every patch at once from the "
        "gradient at the corrupted run, `(a_clean - a_corr) . dm/da` (positive = the patch is predicted to "
        f"raise the metric). All sites took {r.attribution_s:.2f} s in total ({r.attribution_calls} call(s) of two "
        "forwards "
        f"and one backward each), against {r.heads_s:.1f} s for exact head patching alone. "
        "It is a first-order approximation: it is trustworthy for patches that move the metric a little and can "
        "miss large, saturating effects (cells with |exact recovery| >= 0.5), so the table gives Pearson r over "
        "all cells and over the small-effect cells."
    )
    run.save_figure(
        plots.exact_vs_attribution(
            [a.exact for a in agree],
            [a.attribution for a in agree],
            [site_label(a.site) for a in agree],
            "Mean recovery: exact vs attribution",
        ),
        "attribution_vs_exact.png",
        "Attribution patching against exact patching (one point per layer/head)",
    )
    rows = [[site_label(a.site), a.n_cells, a.r, a.n_small, a.r_small] for a in agree]
    run.report.add_table(
        ["site", "cells", "Pearson r", "cells |exact| < 0.5", "Pearson r there"],
        rows,
        caption="Agreement over the grid of mean recoveries",
    )
    run.log_metrics(attribution_s=r.attribution_s, attribution_pearson={a.site: a.r for a in agree})


def check(cfg: HeadPatchingConfig) -> None:
    cfg.patching.check()
    if not cfg.task.orders:
        raise ValueError("task.orders=[]; name at least one name order (ABBA, BABA)")
    if cfg.task.n_pairs < 1:
        raise ValueError(f"task.n_pairs={cfg.task.n_pairs}; must be >= 1")


def headline(metrics: dict, config: dict) -> list[dict]:
    """The IOI pairs, the clean accuracy and the top heads with their held-out recovery."""
    from interp.results_table import est

    heads = metrics.get("held_out_heads") or []
    pairs = metrics.get("held_out_pairs") or {}
    return [
        {
            "model": (config.get("model") or {}).get("name", "-"),
            "pairs (usable)": f"{metrics.get('n_pairs')} ({metrics.get('n_usable_pairs')})",
            "split": f"heads ranked on {pairs.get('selection')} pairs, reported on {pairs.get('test')}",
            "clean accuracy": f"{metrics.get('clean_accuracy', float('nan')):.3f}",
            "top heads: recovery on the test pairs": "; ".join(
                f"L{h['head'][0]}H{h['head'][1]} {est(h['test'])}" for h in heads[:3]
            ),
            "attribution vs exact (Pearson r, z)": str((metrics.get("attribution_pearson") or {}).get("z", "-")),
        }
    ]


STUDY = Study(
    "head_patching",
    HeadPatchingConfig,
    cells=cells,
    analyse=analyse,
    report=report,
    check=check,
    description="IOI on SmolLM2 / Gemma: exact head, component and position patching; attribution vs exact",
    headline=headline,
)
