"""Function vectors and task vectors: layer sweeps and the recovery table (seed 001 §4).

For each model and word-pair task: clean ICL prompts (``n_shots`` demonstrations) and their
shuffled-label twins give each head's mean output and its causal indirect effect; the top-k
heads make the function vector (FV). FVs (k x λ) and task vectors (TV, replace) are put into
the residual after every layer at the last token of zero-shot prompts; accuracy is the
first answer token at top-1. Recovery = acc(layer) / acc(5-shot). Also: zero/5/10-shot
baselines, FV on shuffled-label prompts, and resid / attn / mlp patching recovery by layer
(clean ICL into shuffled, last token).

    python -m experiments.function_vectors --config configs/function_vectors.yaml
"""

from __future__ import annotations

from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import interp  # noqa: E402
from interp.data import load_fv_task  # noqa: E402
from interp.engine import linear_friendly_weights  # noqa: E402
from interp.function_vectors import SteeringBatch, function_vector, task_vectors, top1_accuracy  # noqa: E402
from interp.mediation import causal_indirect_effect, first_token_ids, icl_prompts, mean_head_outputs  # noqa: E402
from interp.patching import patch, prob_metric  # noqa: E402
from interp.runner import Run, RunConfig, file_slug, main  # noqa: E402
from interp.stats import bootstrap_ci  # noqa: E402

THRESHOLDS = (0.5, 0.75, 0.9, 1.0)


@dataclass
class FVConfig:
    run: RunConfig = field(default_factory=RunConfig)
    models: list[str] = field(default_factory=lambda: ["smollm2-135m-instruct", "gemma-3-270m"])
    tasks: list[str] = field(default_factory=lambda: ["antonym", "capitalize", "country-capital", "present-past",
                                                      "english-french", "english-spanish", "sentiment"])  # fmt: skip
    n_icl: int = 25  # clean / shuffled ICL prompts for mean head outputs, CIE and task vectors
    n_shots: int = 10
    n_eval: int = 50  # zero-shot queries (and 5/10-shot baselines) to measure accuracy on
    ks: list[int] = field(default_factory=lambda: [2, 5, 10, 20, 50])
    scales: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0, 4.0, 8.0, 16.0])
    default_k: int = 10  # Todd et al.'s defaults: k = 10, λ = 1
    default_scale: float = 1.0
    layers: list[int] | None = None  # default: every layer
    patching: bool = True  # resid / attn / mlp recovery by layer per task
    min_reference: float = 0.1  # recovery is undefined where 5-shot accuracy is below this (a ratio to ~0 says nothing)
    memory_budget_gb: float = 4.0


def _ratio(acc: np.ndarray, ref: float, floor: float) -> np.ndarray:
    # undefined when 5-shot accuracy is below the floor: 1 correct of 50 would turn 3 correct into "300%"
    return acc / ref if ref > 0 and ref >= floor else np.full_like(acc, np.nan)


def _task_study(model, task: str, cfg: FVConfig, seed: int) -> dict:
    pairs = load_fv_task(task)
    clean = icl_prompts(pairs, cfg.n_icl, cfg.n_shots, seed=seed)
    shuffled = icl_prompts(pairs, cfg.n_icl, cfg.n_shots, seed=seed, shuffle_labels=True)
    ans = first_token_ids(model, clean.answers)
    clean_b = interp.tokenize(model, clean.prompts)  # right padding: patched runs share the prompt prefix
    shuf_b = interp.tokenize(model, shuffled.prompts)
    mean_z = mean_head_outputs(model, clean_b)
    cie = causal_indirect_effect(model, shuf_b, ans, mean_z, memory_budget_gb=cfg.memory_budget_gb, progress=False)
    # evaluation queries: a different seed; zero-shot prompts carry the same queries as the 5-shot ones
    five = icl_prompts(pairs, cfg.n_eval, 5, seed=seed + 1)
    ten = icl_prompts(pairs, cfg.n_eval, 10, seed=seed + 2)
    ten_shuf = icl_prompts(pairs, cfg.n_eval, 10, seed=seed + 2, shuffle_labels=True)
    zero = [f"Q: {q}\nA:" for q in five.queries]
    ans_eval, ans_ten = first_token_ids(model, five.answers), first_token_ids(model, ten.answers)
    zero_b = interp.tokenize(model, zero, padding_side="left")  # left: SteeringBatch recomputes one column
    zero_sb = SteeringBatch(model, zero_b, ans_eval)
    shuf_sb = SteeringBatch(model, interp.tokenize(model, ten_shuf.prompts, padding_side="left"), ans_ten)
    base = {
        "zero-shot": zero_sb.baseline_accuracy().numpy(),
        "5-shot": top1_accuracy(model, interp.tokenize(model, five.prompts), ans_eval).numpy(),
        "10-shot": top1_accuracy(model, interp.tokenize(model, ten.prompts), ans_ten).numpy(),
        "10-shot shuffled": shuf_sb.baseline_accuracy().numpy(),
    }
    layers = cfg.layers if cfg.layers is not None else list(range(model.cfg.n_layers))
    fvs = {k: function_vector(model, mean_z, [(lay, h) for lay, h, _ in cie.top(k)]) for k in [*cfg.ks, cfg.default_k]}
    grid = torch.stack([s * fvs[k] for k in cfg.ks for s in cfg.scales] + [cfg.default_scale * fvs[cfg.default_k]])
    tv = task_vectors(model, clean_b, layers)
    fv_grid, default_acc, shuf_fv, tv_acc = (np.zeros((len(cfg.ks), len(cfg.scales), len(layers))),
                                             np.zeros(len(layers)), np.zeros(len(layers)), np.zeros(len(layers)))  # fmt: skip
    with linear_friendly_weights(model):
        for li, layer in enumerate(layers):
            acc = zero_sb.accuracy(layer, grid).mean(1).numpy()
            fv_grid[:, :, li], default_acc[li] = acc[:-1].reshape(len(cfg.ks), len(cfg.scales)), acc[-1]
            shuf_fv[li] = float(shuf_sb.accuracy(layer, grid[-1:]).mean())
            tv_acc[li] = float(zero_sb.accuracy(layer, tv[li][None], mode="replace").mean())
    fv_acc = {k: fv_grid[i] for i, k in enumerate(cfg.ks)}  # [scale layer]
    out = {"layers": layers, "baselines": base, "fv": fv_acc, "fv_default": default_acc, "fv_shuffled": shuf_fv,
           "tv": tv_acc, "cie": cie.cie.numpy(), "top_heads": cie.top(cfg.default_k)}  # fmt: skip
    if cfg.patching:
        metric = prob_metric(ans)
        out["patching"] = {}
        for site in ("resid_pre", "attn_out", "mlp_out"):
            res = patch(model, clean_b, shuf_b, metric, site=site, positions=shuf_b.last_index, clean_positions=clean_b.last_index,
                        memory_budget_gb=cfg.memory_budget_gb, progress=False)  # fmt: skip
            out["patching"][site] = res.recovery.numpy()  # [layer batch]; NaN = undefined
    return out


def _recovery_rows(name: str, task: str, r: dict, cfg: FVConfig) -> tuple[list, dict]:
    five = float(r["baselines"]["5-shot"].mean())
    search = np.max(np.stack([a.max(0) for a in r["fv"].values()]), 0)  # per layer, max over (k, λ)
    f = cfg.min_reference
    curves = {"FV default": _ratio(r["fv_default"], five, f), "FV search": _ratio(search, five, f), "TV": _ratio(r["tv"], five, f)}
    layers = r["layers"]
    peaks = {m: (float(np.nanmax(c)) if np.isfinite(c).any() else float("nan")) for m, c in curves.items()}
    fmt = lambda c: "undefined" if not np.isfinite(c).any() else f"{np.nanmax(c):.2f} (L{layers[int(np.nanargmax(c))]}) / {np.nanmean(c):.2f}"  # noqa: E731
    row = [name, task, *[f"{float(r['baselines'][b].mean()):.2f}" for b in ("zero-shot", "5-shot", "10-shot", "10-shot shuffled")],
           *[fmt(c) for c in curves.values()],
           f"{r['fv_shuffled'].max():.2f} (L{layers[int(np.argmax(r['fv_shuffled']))]})"]  # fmt: skip
    return row, {"curves": curves, "peaks": peaks}


def _curves_figure(name: str, per_task: dict, layers_by_task: dict):
    tasks = list(per_task)
    cols = min(4, len(tasks))
    rows = -(-len(tasks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False, sharey=True)
    for ax, task in zip(axes.flat, tasks):
        for method, c in per_task[task]["curves"].items():
            ax.plot(layers_by_task[task], c, marker="o", ms=2, label=method)
        ax.axhline(1.0, color="0.5", ls="--", lw=0.8)
        ax.set_title(task, fontsize=9)
    return _finish_grid(fig, axes, len(tasks), "accuracy / 5-shot accuracy", f"{name}: recovery of 5-shot accuracy by layer (zero-shot prompts)")


def _finish_grid(fig, axes, n_used: int, ylabel: str, title: str):
    for ax in axes.flat[:n_used]:
        ax.set_xlabel("layer")
        ax.grid(alpha=0.3)
    for ax in axes.flat[n_used:]:
        ax.axis("off")
    axes[0, 0].set_ylabel(ylabel)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _patching_figure(name: str, results: dict):
    tasks = [t for t in results if "patching" in results[t]]
    cols = min(4, len(tasks))
    rows = -(-len(tasks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False, sharey=True)
    for ax, task in zip(axes.flat, tasks):
        n_undef = 0
        for site, rec in results[task]["patching"].items():
            est = [bootstrap_ci(row, n_boot=500) for row in rec]
            n_undef = est[0].n_undefined
            mean = [e.mean for e in est]
            (line,) = ax.plot(results[task]["layers"], mean, marker="o", ms=2, label=site)
            ax.fill_between(results[task]["layers"], [e.ci_low for e in est], [e.ci_high for e in est], color=line.get_color(), alpha=0.15)
        ax.set_title(f"{task} ({n_undef} of {rec.shape[1]} prompts undefined)" if n_undef else task, fontsize=9)
    return _finish_grid(fig, axes, len(tasks), "recovery (clean ICL → shuffled)",
                        f"{name}: patching recovery at the last token by layer (mean, 95% CI; undefined prompts left out)")


def run(cfg: FVConfig, run: Run) -> None:
    run.report.add_text(
        f"Function vectors (top-k CIE heads, k ∈ {cfg.ks}, λ ∈ {cfg.scales}) and task vectors on tasks {cfg.tasks}. "
        f"{cfg.n_icl} clean / shuffled-label ICL prompts of {cfg.n_shots} shots give the mean head outputs, CIE and task "
        f"vectors; accuracy (first answer token top-1) on {cfg.n_eval} other queries. Recovery = accuracy / 5-shot "
        f"accuracy per layer; cells show peak (layer) / mean over layers. FV default: k = {cfg.default_k}, "
        f"λ = {cfg.default_scale}; FV search: best (k, λ) per layer; TV: replace the residual. A task whose 5-shot "
        f"accuracy is below {cfg.min_reference} has undefined recovery (a ratio to almost nothing)."
    )
    rows, peaks = [], []
    for name in cfg.models:
        model = interp.load_model(name, device=run.device)
        per_task, layers_by_task, results = {}, {}, {}
        for ti, task in enumerate(cfg.tasks):
            r = run.cached(lambda: _task_study(model, task, cfg, cfg.run.seed + 1000 * ti), step="fv.task", model=name, task=task,
                           cfg={k: v for k, v in vars(cfg).items() if k not in ("run", "models", "tasks", "min_reference")}, seed=cfg.run.seed + 1000 * ti)  # fmt: skip
            results[task] = r
            row, info = _recovery_rows(name, task, r, cfg)
            rows.append(row)
            per_task[task], layers_by_task[task] = info, r["layers"]
            peaks.append(info["peaks"])
            run.log_metrics(**{f"{name}/{task}": {"baselines": {b: float(v.mean()) for b, v in r["baselines"].items()},
                                                  "peaks": info["peaks"], "top_heads": r["top_heads"]}})  # fmt: skip
        run.save_figure(_curves_figure(name, per_task, layers_by_task), f"recovery_{file_slug(name)}.png", f"{name}: FV / TV recovery by layer per task")
        if cfg.patching:
            run.save_figure(_patching_figure(name, results), f"patching_{file_slug(name)}.png", f"{name}: resid / attn / mlp patching recovery by layer per task")
        del model
    run.report.add_table(["model", "task", "zero-shot", "5-shot", "10-shot", "10-shot shuffled", "FV default", "FV search", "TV", "FV default on 10-shot shuffled: best accuracy"], rows,
                         caption="Accuracy baselines and recovery of 5-shot accuracy: peak (layer) / mean over layers")  # fmt: skip
    share_rows = []
    for method in ("FV default", "FV search", "TV"):
        vals = np.array([p[method] for p in peaks])
        ok = np.isfinite(vals)
        share_rows.append([method, *[f"{(vals[ok] >= t).mean():.0%}" if ok.any() else "undefined" for t in THRESHOLDS], f"{int((~ok).sum())}"])
    run.report.add_table(["method", *[f"peak ≥ {t:.2f}" for t in THRESHOLDS], "undefined"], share_rows,
                         caption="Share of model × task combinations whose peak recovery reaches each level (seed 001 Table 3)")  # fmt: skip


if __name__ == "__main__":
    main("function_vectors", FVConfig, run)
