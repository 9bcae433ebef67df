"""Cross-template function-vector transfer (seed 000).

The study is :mod:`interp.studies.fv_transfer` (vectors per template, α on validation queries,
transfer matrices) with the analysis of :mod:`interp.transfer` (correlations pooled / per task /
per task × layer with the Simpson's-paradox check, dissociation cases, AUROC, PC1 variance, IID
gate, gated and ungated side by side); this script runs it per model and task and writes the
report.

    interp run fv_transfer --config configs/fv_transfer.yaml
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

import interp.studies.fv_transfer.figures as plots
from interp.cache import file_slug
from interp.config import reset_fields, settings_part
from interp.data.datasets_io import data_dir
from interp.executor import Cell
from interp.runner import Run, RunConfig
from interp.stats import bootstrap_ci, iid_gate
from interp.steering.controls import compare_to_controls
from interp.studies.fv_transfer.core import TransferSettings, check_settings, task_transfer, templates_for
from interp.study import Study
from interp.transfer import best_layer, subset_pairs, template_permutation_test, transfer_diagnostics, transfer_pairs


@dataclass
class TransferConfig(TransferSettings):
    run: RunConfig = field(default_factory=RunConfig)
    models: list[str] = field(default_factory=lambda: ["smollm2-135m-instruct", "gemma-3-270m"])
    extractions: list[str] | None = None  # several extractions side by side; default [extraction]
    icl_min: float = 0.5  # a task "solved in context": n_shots-shot accuracy on its natural template ≥ this


EXTRACTION_TEXT = {
    "shuffled": "mean-difference: clean ICL minus shuffled-label ICL (seed 000's)",
    "zero_shot": "mean-difference: clean ICL minus over the same queries without demonstrations",
    "fv": "head-based function vector (Todd et al.): top-{k} CIE heads of the template",
}


def _extractions(cfg: TransferConfig) -> list[str]:
    out = cfg.extractions if cfg.extractions is not None else [cfg.extraction]
    for e in out:
        check_settings(replace(cfg, extraction=e))
    if not out:
        raise ValueError("extractions is empty; give at least one of " + str(list(EXTRACTION_TEXT)))
    return list(out)


def _intro(cfg: TransferConfig) -> str:
    ex = "; ".join(f"`{e}` = {EXTRACTION_TEXT[e].format(k=cfg.fv_k)}" for e in _extractions(cfg))
    dose = (
        "raw: the vector × α"
        if cfg.dose_units == "raw"
        else "relative: α × (mean residual norm after the layer at the last token of the source template's validation "
        "prompts) along the unit vector"
    )
    return (
        f"Cross-template transfer of function vectors (seed 000). Tasks {cfg.tasks}; templates "
        f"{cfg.templates} (texts in `interp/data/fv_templates.py`, listed per task below). Extractions, one vector per "
        "(task, "
        f"template, layer) from {cfg.n_icl} clean {cfg.n_shots}-shot ICL prompts of the template: {ex}. Added at the "
        "last "
        f"token of zero-shot prompts; dose {dose}; α ∈ {cfg.alphas} chosen per (source template, layer) on {cfg.n_val} "
        f"validation queries of the source template; accuracies (first answer token top-1) on {cfg.n_eval} other test "
        "queries "
        "shared by all templates. Best layer per task: highest mean validation accuracy over templates (so no test "
        "number is "
        f"selected on test items). Dissociation: cos > {cfg.cos_min} and transfer < {cfg.transfer_max}; "
        f"transfer failure for the AUROC: transfer < {cfg.transfer_max}; IID gate: task IID ≥ {cfg.iid_threshold}; a "
        "task is "
        f"solved in context when its {cfg.n_shots}-shot accuracy on the natural template is ≥ {cfg.icl_min}."
    )


def _num(x: float, digits: int = 2) -> str:
    return "undefined" if np.isnan(x) else f"{x:.{digits}f}"


def _signed(x: float) -> str:
    return "undefined" if np.isnan(x) else f"{x:+.3f}"


def _corr(c) -> str:
    return "undefined" if not c.defined else f"{c.r:+.3f} (p={c.p:.2g}, n={c.n})"


def _task_row(task: str, r) -> list[str]:
    li, k = best_layer(r), len(r.kinds)
    m, off = r.transfer[li], ~np.eye(k, dtype=bool)
    ci = bootstrap_ci(np.diag(m), n_boot=1000)
    zs = np.array([r.zero_shot[t].mean() for t in r.kinds])
    return [
        task,
        f"L{r.layers[li]}",
        f"{np.diag(m).mean():.2f} [{ci.ci_low:.2f}, {ci.ci_high:.2f}]",
        f"{m[off].mean():.2f}",
        f"{(m - zs[None])[off].mean():+.2f}",
        f"{zs.mean():.2f}",
        f"{np.mean([v.mean() for v in r.icl.values()]):.2f}",
        f"{r.cos[li][off].mean():.2f}",
        f"{np.nanmean(r.pc1):.2f} ({np.nanmin(r.pc1):.2f}–{np.nanmax(r.pc1):.2f})",
        ", ".join(f"{a:g}" for a in r.alpha_star[:, li]),
    ]


def _correlation_rows(label: str, diag) -> list[list[str]]:
    if diag is None:
        return [[label, "no pairs", "", "", "", "", ""]]
    return [
        [
            label,
            method,
            _corr(d.pooled),
            "; ".join(f"{t}: {_corr(c)}" for t, c in d.by_task.items()),
            "FLAGGED" if d.simpson_task.flagged else "no",
            f"{d.sig_pos} / {d.sig_neg} of {d.n_defined}",
            "FLAGGED" if d.simpson_task_layer.flagged else "no",
        ]
        for method, d in (("pearson", diag.pearson), ("spearman", diag.spearman))
    ]


def _dissociation_row(label: str, d, dropped: list[str]) -> list[str]:
    if d is None:
        return [label, "no pairs", "", "", "", ""]
    per = ", ".join(f"{t}: {c}" for t, c in d.dissociation.items() if t != "total")
    from_dropped = sum(c for t, c in d.dissociation.items() if t in dropped)
    return [
        label,
        f"{d.dissociation['total']} ({per})",
        f"{from_dropped}",
        _num(d.auroc, 3),
        f"{d.failure_rate:.2f} / {_num(d.failure_given_high_cos)} (n={d.n_high_cos})",
        f"{d.n_pairs}",
    ]


def _side_by_side_row(task: str, extraction: str, r, cfg: TransferConfig) -> list[str]:
    li, k = best_layer(r), len(r.kinds)
    m, off = r.transfer[li], ~np.eye(k, dtype=bool)
    ci = bootstrap_ci(np.diag(m), n_boot=1000)
    zs = np.array([r.zero_shot[t].mean() for t in r.kinds])
    natural = (
        "n/a"
        if "natural" not in r.icl
        else f"{r.icl['natural'].mean():.2f} ({'solved' if r.icl['natural'].mean() >= cfg.icl_min else 'NOT solved'})"
    )
    changed = f"{r.val_changed[:, li, -1].mean():.2f}" if r.val_changed is not None else "n/a"
    raw = f"{np.median(r.alpha_star[:, li] * r.raw_per_unit[:, li]):.3g}" if r.raw_per_unit is not None else "n/a"
    controls = task_controls(r)
    return [
        task,
        extraction,
        natural,
        f"L{r.layers[li]}",
        f"{np.diag(m).mean():.2f} [{ci.ci_low:.2f}, {ci.ci_high:.2f}]",
        _control_delta(controls, "iid"),
        f"{m[off].mean():.2f}",
        f"{(m - zs[None])[off].mean():+.2f}",
        _control_delta(controls, "transfer"),
        f"{zs.mean():.2f}",
        f"{np.median(r.alpha_star[:, li]):g} ({raw})",
        changed,
    ]


def _side_by_side(run: Run, cfg: TransferConfig, name: str, by_ex: dict[str, dict]) -> None:
    rows = [_side_by_side_row(task, e, by_ex[e][task], cfg) for task in cfg.tasks for e in by_ex if task in by_ex[e]]
    units = "raw" if cfg.dose_units == "raw" else "× residual norm"
    run.report.add_table(
        [
            "task",
            "extraction",
            f"{cfg.n_shots}-shot ICL, natural",
            "best layer",
            "IID (95% CI over templates)",
            "IID − random directions (95% CI)",
            "transfer",
            "transfer − unsteered target",
            "transfer − random directions (95% CI)",
            "zero-shot unsteered",
            f"median α* ({units}) (raw)",
            f"changed at α = {cfg.alphas[-1]:g} (val)",
        ],
        rows,
        caption=f"{name}: the extractions side by side, each at its best layer (chosen on validation queries); "
        f"'changed' = share of validation predictions the largest dose changes (positive control: near 1)",
    )
    run.save_figure(
        plots.transfer_dose_response(name, by_ex),
        f"dose_response_{file_slug(name)}.png",
        f"{name}: validation accuracy (solid) and share of predictions changed (dashed) vs dose at each task's best "
        "layer, per extraction",
    )


@dataclass
class ExtractionAnalysis:
    """One model × extraction: the IID gate and the cosine–transfer diagnostics, ungated and gated."""

    label: str
    results: dict  # task -> TransferResult
    iid: dict[str, float]
    kept: list[str]
    dropped: list[str]
    pairs: object
    diag_all: object
    diag_gated: object
    permutation: object = None  # PermutationTest of the pooled r, templates relabelled within task
    permutation_gated: object = None  # the same over the tasks the IID gate keeps (None: none kept)
    permutation_by_task: dict = field(default_factory=dict)  # task -> PermutationTest of that task's r


def analyse_extraction(cfg: TransferConfig, name: str, extraction: str, results: dict) -> ExtractionAnalysis:
    iid = {task: float(np.diag(r.transfer[best_layer(r)]).mean()) for task, r in results.items()}
    kept, dropped = iid_gate(iid, cfg.iid_threshold)
    pairs = transfer_pairs(results)
    diag_all = transfer_diagnostics(pairs, cfg.cos_min, cfg.transfer_max)
    diag_gated = transfer_diagnostics(subset_pairs(pairs, kept), cfg.cos_min, cfg.transfer_max)
    perm = template_permutation_test(results)
    gated = template_permutation_test({t: results[t] for t in kept}) if kept else None
    by_task = {t: template_permutation_test({t: r}) for t, r in results.items()}
    return ExtractionAnalysis(
        f"{name}, {extraction}", results, iid, kept, dropped, pairs, diag_all, diag_gated, perm, gated, by_task
    )


def _model_report(run: Run, cfg: TransferConfig, name: str, extraction: str, results: dict) -> dict:
    a = analyse_extraction(cfg, name, extraction, results)
    _extraction_tables(run, cfg, a)
    _extraction_figures(run, a, f"{file_slug(name)}_{extraction}")
    return _extraction_metrics(a)


_TASK_HEADERS = [
    "task",
    "best layer",
    "IID (95% CI over templates)",
    "transfer (mean off-diagonal)",
    "transfer − unsteered target",
    "zero-shot unsteered",
    "{n}-shot ICL",
    "mean cos",
    "PC1 variance (mean, range over layers)",
    "α* per template",
]
_CORRELATION_HEADERS = [
    "tasks",
    "method",
    "pooled r",
    "per task r",
    "Simpson (task)",
    "task×layer: sig + / sig − of defined",
    "Simpson (task×layer)",
]
_DISSOCIATION_HEADERS = [
    "tasks",
    "dissociation cases (per task)",
    "of them from gated-out tasks",
    "AUROC cos → failure",
    "failure rate: all / given high cos",
    "pairs",
]


def _extraction_tables(run: Run, cfg: TransferConfig, a: ExtractionAnalysis) -> None:
    label, results = a.label, a.results
    run.report.add_text(f"## {label}")
    run.report.add_table(
        [h.format(n=cfg.n_shots) for h in _TASK_HEADERS],
        [_task_row(t, r) for t, r in results.items()],
        caption=f"{label}: per task at its best layer (templates in order {list(results.values())[-1].kinds}). "
        f"IID gate ≥ {cfg.iid_threshold}: kept {a.kept or 'none'}, dropped {a.dropped or 'none'}.",
    )
    run.report.add_table(
        _CORRELATION_HEADERS,
        _correlation_rows(f"all ({len(results)})", a.diag_all)
        + _correlation_rows(f"gated ({len(a.kept)})", a.diag_gated),
        caption=f"{label}: cosine vs transfer over all layers and ordered template pairs, ungated and IID-gated",
    )
    top = max(cfg.alphas)
    edge = {t: int((r.alpha_star[:, best_layer(r)] >= top).sum()) for t, r in results.items()}
    if any(edge.values()):
        run.report.add_text(
            f"{label}: templates whose dose chosen on validation is the grid's largest (α = {top:g}; the best dose "
            "may lie beyond the grid — extend `alphas`): "
            + ", ".join(f"{t} {n}/{len(results[t].kinds)}" for t, n in edge.items() if n)
            + "."
        )
    if a.permutation is not None:
        pt = a.permutation
        run.report.add_text(
            f"{label}: pooled Pearson r = {pt.r:+.3f}; permutation p = {pt.p:.3g} ({pt.n_perm} relabellings of each "
            "task's templates, applied to rows and columns of its transfer matrices at every layer — pairs that "
            "share a template are not independent, so this p, not the pooled r's own, is the one to read)."
            + (
                ""
                if a.permutation_gated is None
                else f" Over the tasks the IID gate keeps: r = {a.permutation_gated.r:+.3f}, permutation p = "
                f"{a.permutation_gated.p:.3g}."
            )
            + " Per task (its own templates relabelled): "
            + ", ".join(f"{t} r = {_signed(pt.r)}, p = {_num(pt.p, 3)}" for t, pt in a.permutation_by_task.items())
            + "."
        )
    controls = {t: task_controls(r) for t, r in results.items()}
    if any(v is not None for v in controls.values()):
        run.report.add_table(
            [
                "task",
                "best layer",
                "in-distribution: vector vs random (Δ [95% CI])",
                "transfer: vector vs random (Δ [95% CI])",
            ],
            [
                [
                    t,
                    str(r.layers[best_layer(r)]),
                    _control_cell(controls[t], "iid"),
                    _control_cell(controls[t], "transfer"),
                ]
                for t, r in results.items()
            ],
            caption=f"{label}: specificity control at each task's best layer — every steered cell beside random "
            "directions of the same norm at the same dose on the same test queries (per query: mean over source "
            "templates, diagonal for in-distribution, off-diagonal for transfer; Δ CI: paired bootstrap over queries)",
        )
    run.report.add_table(
        _DISSOCIATION_HEADERS,
        [_dissociation_row("all", a.diag_all, a.dropped), _dissociation_row("gated", a.diag_gated, a.dropped)],
        caption=f"{label}: dissociation cases (cos > {cfg.cos_min}, transfer < {cfg.transfer_max}) and cosine as a "
        "failure predictor",
    )


def task_controls(r) -> dict | None:
    """Vector vs random directions of its norm at the same dose, at the task's best layer:
    ``{"iid": ControlComparison, "transfer": ControlComparison}`` over the test queries (each query's
    correctness averaged over source templates: the diagonal, or the off-diagonal cells); None for a
    result computed without controls."""
    if getattr(r, "control_items", None) is None or r.transfer_items is None:
        return None
    li = best_layer(r)
    items, ctrl = r.transfer_items[li], r.control_items[li]  # [s t q], [s t c q]
    k = items.shape[0]
    diag = np.eye(k, dtype=bool)
    out = {}
    for key, cells_ in (("iid", diag), ("transfer", ~diag)):
        if not cells_.any():
            continue
        out[key] = compare_to_controls(items[cells_].mean(0), ctrl[cells_].mean(0))
    return out


def _delta_text(difference: float, ci) -> str:
    """One format for vector − control with its CI, in the report's tables and the results headline."""
    return f"{difference:+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}]"


def _control_delta(c: dict | None, key: str) -> str:
    if not c or key not in c:
        return "no control"
    return _delta_text(c[key].difference, c[key].ci)


def _control_cell(c: dict | None, key: str) -> str:
    if not c or key not in c:
        return "-"
    x = c[key]
    return f"{x.effect:.2f} vs {x.control_mean:.2f}: {_control_delta(c, key)}"


def _extraction_figures(run: Run, a: ExtractionAnalysis, slug: str) -> None:
    label, results, pairs, diag_all = a.label, a.results, a.pairs, a.diag_all
    run.save_figure(
        plots.transfer_heatmaps(label, results),
        f"transfer_{slug}.png",
        f"{label}: transfer matrices at each task's best layer",
    )
    if diag_all is not None:
        run.save_figure(
            plots.transfer_scatter(label, pairs, diag_all),
            f"cos_vs_transfer_{slug}.png",
            f"{label}: cosine vs transfer coloured by task, per-task and pooled least-squares lines",
        )
    run.save_figure(
        plots.transfer_layer_curves(label, results),
        f"layers_{slug}.png",
        f"{label}: IID and transfer accuracy by layer",
    )


def _extraction_metrics(a: ExtractionAnalysis) -> dict:
    iid, kept, dropped, results, diag_all, diag_gated = a.iid, a.kept, a.dropped, a.results, a.diag_all, a.diag_gated
    return {
        "iid": iid,
        "kept": kept,
        "dropped": dropped,
        "per_task": {
            t: {
                "best_layer": r.layers[best_layer(r)],
                "transfer_best_layer": r.transfer[best_layer(r)],
                "kinds": r.kinds,
                "zero_shot": {k: float(v.mean()) for k, v in r.zero_shot.items()},
                "icl": {k: float(v.mean()) for k, v in r.icl.items()},
                "pc1": r.pc1,
                "alpha_star": r.alpha_star,
                "val_curve": r.val_curve,
                "val_changed": r.val_changed,
                "raw_per_unit": r.raw_per_unit,
                "heads": r.heads,
                "controls": {k: vars(v) for k, v in (task_controls(r) or {}).items()} or None,
            }
            for t, r in results.items()
        },
        "permutation": None if a.permutation is None else vars(a.permutation),
        "permutation_gated": None if a.permutation_gated is None else vars(a.permutation_gated),
        "permutation_by_task": {t: vars(pt) for t, pt in a.permutation_by_task.items()},
        "diagnostics": {
            "all": diag_all.to_json() if diag_all else {},
            "gated": diag_gated.to_json() if diag_gated else {},
        },
    }


def cells(cfg: TransferConfig, done: dict) -> list[Cell]:
    # a task's cell is given its own task and not the analysis thresholds (they re-render, not recompute)
    base = reset_fields(settings_part(cfg, TransferSettings), "cos_min", "transfer_max", "iid_threshold")
    seeds = {task: cfg.run.seed + 1000 * ti for ti, task in enumerate(cfg.tasks)}
    data = (data_dir("function_vectors"),)
    return [
        Cell(
            f"{name}/{e}/{task}",
            name,
            task_transfer,
            (task, replace(base, extraction=e, tasks=[task]), seeds[task]),
            data,
        )
        for name in cfg.models
        for e in _extractions(cfg)
        for task in cfg.tasks
    ]


def analyse(cfg: TransferConfig, done: dict) -> dict:
    """The per-(model, extraction, task) results by label (the report runs the transfer analysis)."""
    return done


def report(cfg: TransferConfig, done: dict, run: Run) -> None:
    extractions = _extractions(cfg)
    run.report.add_text(_intro(cfg))
    all_metrics = {}
    for name in cfg.models:
        by_ex = {e: {t: done[f"{name}/{e}/{t}"] for t in cfg.tasks if f"{name}/{e}/{t}" in done} for e in extractions}
        by_ex = {e: r for e, r in by_ex.items() if r}  # failed cells are listed at the end of the report
        if not by_ex:
            continue
        run.report.add_text(f"# {name}")
        _side_by_side(run, cfg, name, by_ex)
        all_metrics[name] = {e: _model_report(run, cfg, name, e, results) for e, results in by_ex.items()}
        run.log_metrics(**all_metrics)
    tpl_rows = [[task, kind, f"`{t!r}`"] for task in cfg.tasks for kind, t in templates_for(task, cfg).items()]
    run.report.add_table(
        ["task", "kind", "template"],
        tpl_rows,
        caption="Templates (the model predicts the first token of ' y' after the stem)",
    )


def _check(cfg: TransferConfig) -> None:
    if not cfg.tasks:
        raise ValueError("tasks=[]; name at least one task, e.g. tasks=[antonym]")
    _extractions(cfg)  # checks every extraction's settings


def headline(metrics: dict, config: dict) -> list[dict]:
    """Per model and extraction: in-distribution accuracy per task, the gate, and the
    cosine–transfer relation over all pairs."""
    rows = []
    for model, per in metrics.items():
        extractions = {config.get("extraction", "-"): per} if "iid" in per else per
        for e, m in extractions.items():
            diag = (m.get("diagnostics") or {}).get("all", {})
            r = (diag.get("pearson") or {}).get("pooled", {})
            rows.append(
                {
                    "model": model,
                    "extraction": e,
                    "templates × tasks": f"{len(config.get('templates', []))} × {len(m.get('iid') or {})}",
                    "queries per cell": str(config.get("n_eval", "-")),
                    "in-distribution accuracy": ", ".join(f"{t} {v:.2f}" for t, v in (m.get("iid") or {}).items()),
                    "kept by the gate": ", ".join(m.get("kept", [])) or "none",
                    "pooled r(cosine, transfer)": _headline_r(r, m.get("permutation")),
                    "in-distribution: vector − random direction": _headline_controls(m.get("per_task") or {}, "iid"),
                    "transfer accuracy": _headline_transfer(m.get("per_task") or {}),
                    "transfer: vector − random direction": _headline_controls(m.get("per_task") or {}, "transfer"),
                }
            )
    return rows


def _headline_r(r: dict, perm: dict | None) -> str:
    # pairs that share a template are not independent: where the report has the template-permutation
    # test, its p is the one shown (the pooled r's own p counts every pair as independent)
    if not r:
        return "-"
    if perm and perm.get("p") is not None and np.isfinite(perm["p"]):
        return f"{r['r']:+.3f} (template-permutation p={perm['p']:.2g}, n={r['n']})"
    return f"{r['r']:+.3f} (p={r['p']:.2g}, n={r['n']}, pairs counted as independent)"


def _headline_transfer(per_task: dict) -> str:
    """Mean off-diagonal accuracy (source template's vector on the other templates) at the best layer."""
    out = []
    for t, m in per_task.items():
        matrix = np.asarray(m.get("transfer_best_layer") or [], dtype=float)
        if matrix.ndim == 2 and matrix.shape[0] == matrix.shape[1] and matrix.shape[0] > 1:
            out.append(f"{t} {matrix[~np.eye(len(matrix), dtype=bool)].mean():.2f}")
    return ", ".join(out) or "-"


def _headline_controls(per_task: dict, key: str) -> str:
    out = []
    for t, m in per_task.items():
        c = (m.get("controls") or {}).get(key)
        if c:
            out.append(f"{t} {_delta_text(c['difference'], c['ci'])}")
    return ", ".join(out) or "no control in this report"


STUDY = Study(
    "fv_transfer",
    TransferConfig,
    cells=cells,
    analyse=analyse,
    report=report,
    check=_check,
    description="cross-template function-vector transfer (seed 000): IID gate, Simpson check, dissociations",
    headline=headline,
)
