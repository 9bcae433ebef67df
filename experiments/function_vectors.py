"""Function vectors and task vectors: layer sweeps and the recovery table (seed 001 §4).

The study is :mod:`interp.studies.function_vectors` (CIE, FVs over k × λ, task vectors, baselines,
patching recovery per task); this script runs it per model and task, and reports recovery of
5-shot accuracy per layer and the share of model × task combinations reaching each level.

    python -m experiments.function_vectors --config configs/function_vectors.yaml
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from interp import plots
from interp.cache import file_slug
from interp.config import settings_part
from interp.executor import Cell
from interp.runner import Run, RunConfig, main
from interp.studies.function_vectors import THRESHOLDS, FVSettings, peak_recovery, peak_shares, recovery_curves, task_study


@dataclass
class FVConfig(FVSettings):
    run: RunConfig = field(default_factory=RunConfig)
    models: list[str] = field(default_factory=lambda: ["smollm2-135m-instruct", "gemma-3-270m"])


def _intro(cfg: FVConfig) -> str:
    return (f"Function vectors (top-k CIE heads, k ∈ {cfg.ks}, λ ∈ {cfg.scales}) and task vectors on tasks {cfg.tasks}. "
            f"{cfg.n_icl} clean / shuffled-label ICL prompts of {cfg.n_shots} shots give the mean head outputs, CIE and task "
            f"vectors; accuracy (first answer token top-1) on {cfg.n_eval} other queries. Recovery = accuracy / 5-shot "
            f"accuracy per layer; cells show peak (layer) / mean over layers. FV default: k = {cfg.default_k}, "
            f"λ = {cfg.default_scale}; FV search: best (k, λ) per layer; TV: replace the residual. A task whose 5-shot "
            f"accuracy is below {cfg.min_reference} has undefined recovery (a ratio to almost nothing).")  # fmt: skip


def _row(name: str, task: str, r, curves: dict) -> list:
    fmt = lambda c: "undefined" if not np.isfinite(c).any() else f"{np.nanmax(c):.2f} (L{r.layers[int(np.nanargmax(c))]}) / {np.nanmean(c):.2f}"  # noqa: E731
    return [name, task, *[f"{float(r.baselines[b].mean()):.2f}" for b in ("zero-shot", "5-shot", "10-shot", "10-shot shuffled")],
            *[fmt(c) for c in curves.values()], f"{r.fv_shuffled.max():.2f} (L{r.layers[int(np.argmax(r.fv_shuffled))]})"]  # fmt: skip


def run(cfg: FVConfig, run: Run) -> None:
    run.report.add_text(_intro(cfg))
    rows, peaks = [], []
    settings, parts = settings_part(cfg, FVSettings), {k: v for k, v in vars(cfg).items() if k not in ("run", "models", "tasks", "min_reference")}
    seeds = {task: cfg.run.seed + 1000 * ti for ti, task in enumerate(cfg.tasks)}
    done = run.cells([Cell(f"{name}/{task}", name, task_study, (task, settings, seeds[task]), {"step": "fv.task.v2", "task": task, "cfg": parts, "seed": seeds[task]})
                      for name in cfg.models for task in cfg.tasks])  # fmt: skip
    for name in cfg.models:
        curves, results = {}, {}
        for task in cfg.tasks:
            if f"{name}/{task}" not in done:
                continue  # a failed cell: listed at the end of the report
            r = results[task] = done[f"{name}/{task}"]
            curves[task] = recovery_curves(r, cfg.min_reference)
            rows.append(_row(name, task, r, curves[task]))
            peaks.append(peak_recovery(curves[task]))
            run.log_metrics(**{f"{name}/{task}": {"baselines": {b: float(v.mean()) for b, v in r.baselines.items()},
                                                  "peaks": peaks[-1], "top_heads": r.top_heads}})  # fmt: skip
        if not results:
            continue
        run.save_figure(plots.fv_recovery_curves(name, curves, {t: r.layers for t, r in results.items()}), f"recovery_{file_slug(name)}.png",
                        f"{name}: FV / TV recovery by layer per task")  # fmt: skip
        if cfg.patching:
            run.save_figure(plots.fv_patching_curves(name, results), f"patching_{file_slug(name)}.png", f"{name}: resid / attn / mlp patching recovery by layer per task")
    run.report.add_table(["model", "task", "zero-shot", "5-shot", "10-shot", "10-shot shuffled", "FV default", "FV search", "TV", "FV default on 10-shot shuffled: best accuracy"], rows,
                         caption="Accuracy baselines and recovery of 5-shot accuracy: peak (layer) / mean over layers")  # fmt: skip
    share_rows = [[m, *[f"{v:.0%}" if np.isfinite(v) else "undefined" for v in shares], f"{n_undef}"] for m, (shares, n_undef) in peak_shares(peaks).items()]
    run.report.add_table(["method", *[f"peak ≥ {t:.2f}" for t in THRESHOLDS], "undefined"], share_rows,
                         caption="Share of model × task combinations whose peak recovery reaches each level (seed 001 Table 3)")  # fmt: skip


if __name__ == "__main__":
    main("function_vectors", FVConfig, run)
