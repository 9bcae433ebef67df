"""Prompt-pairs steering environment scored with SAE features (seed 002 §3.2, Figure 4.1).

The study is :mod:`interp.studies.prompt_pairs` (activations at the target word, adapters
fitted on 4 … 1024 pairs, SAE target / test features, the first (content) word's MiniLM cosine
with the target, :mod:`interp.semantic`); the SAE comes from :func:`interp.sae.get_sae`. This
script runs it per model and dataset and writes the report; every figure shows the baseline
without an adapter as a dashed line, as in seed 002's Fig. 4.1.

    interp run prompt_pairs --config configs/prompt_pairs.yaml
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

import interp.studies.prompt_pairs.figures as plots
from interp.cache import file_slug
from interp.config import settings_part
from interp.executor import Cell
from interp.runner import Run, RunConfig
from interp.sae import SAETrainConfig, get_sae
from interp.semantic import WordEmbedder
from interp.steering.controls import compare_to_controls
from interp.studies.prompt_pairs.core import (
    METRIC_TITLES,
    METRICS,
    PromptPairsSettings,
    check_settings,
    dataset_study,
    mean_ci,
    per_pair,
    study_layer,
)
from interp.study import Study


@dataclass
class PromptPairsConfig(PromptPairsSettings):
    run: RunConfig = field(default_factory=RunConfig)
    models: list[str] = field(default_factory=lambda: ["smollm2-135m-instruct", "gemma-3-270m"])


def _intro(cfg: PromptPairsConfig) -> str:
    every = "every" if cfg.target_share == 1 else f"≥ {cfg.target_share:.0%} of the"
    return (
        f"Prompt-pairs environment (seed 002 §3.2) on datasets {cfg.datasets} (8 templates × 20 contexts × 8 target "
        "pairs "
        f"each, written for this project: `interp/data/prompt_pairs.py`). Activations: residual after the layer at "
        f"≈{cfg.layer_fraction:.0%} of depth, at the target word (last token). {cfg.n_test} held-out pairs per "
        "dataset; "
        f"adapters {list(cfg.adapters)} fitted on n ∈ {cfg.n_train} pairs ({cfg.draws} random subsets per n, metrics "
        f"averaged over them). Target features: active on {every} positive "
        f"example{'' if cfg.target_share == 1 else 's'} of the fitting pool; test features: "
        f"{cfg.n_test_features} random features never active on any pool example. SAE metrics are read from the SAE "
        "code of adapter(negative activation) of each held-out pair; the cosine compares the first word (and, "
        "separately, the first content word) the steered "
        f"model generates after the prompt without its target ({cfg.max_new_tokens} greedy tokens, adapter at the last "
        f"prompt token and every generated token) with the positive target, embedded with all-MiniLM-L6-v2. Intervals: "
        f"normal 95% CI over held-out pairs (pooled: over all datasets' pairs). Undefined: a dataset with no target "
        f"feature, or no generated word."
    )


def _fmt(m: float, lo: float, hi: float) -> str:
    if not np.isfinite(m):
        return "undef."
    return f"{m:.3f} [{lo:.3f}, {hi:.3f}]" if np.isfinite(lo) else f"{m:.3f}"


def _sae_section(run: Run, name: str, layer: int, q: dict) -> None:
    if q.get("source") != "trained":
        run.report.add_text(f"SAE: pretrained `{q['source']}`.")
        return
    run.report.add_table(
        [
            "SAE",
            "d_sae",
            "k",
            "train tokens (dataset + generated)",
            "explained variance",
            "L0",
            "dead share",
            "LM loss clean / spliced / zero-abl.",
            "loss recovered",
            "train time",
        ],
        [
            [
                f"TopK, resid_post L{layer}",
                q["d_sae"],
                q["config"]["k"],
                f"{q['train_tokens_dataset']} + {q['train_tokens_generated']}",
                f"{q['explained_variance']:.3f}",
                f"{q['l0']:.1f}",
                f"{q['dead_share']:.3f}",
                f"{q['clean']:.3f} / {q['spliced']:.3f} / {q['zero']:.3f}",
                f"{q['loss_recovered']:.3f}",
                f"{q['train_seconds']:.0f} s",
            ]
        ],
        caption=f"{name}: the SAE Lens SAE trained here (quality on {q['n_eval_tokens']} held-out dataset tokens)",
    )


def _dataset_rows(cfg: PromptPairsConfig, results: dict) -> list[list]:
    rows = []
    for d, r in results.items():
        b = r.base
        rows.append(
            [
                d,
                r.n_target,
                " / ".join(str(v) for v in r.n_target_at.values()),
                "undef." if not np.isfinite(r.target_also_on_negatives) else f"{r.target_also_on_negatives:.2f}",
                f"{r.n_test_features} of {r.n_silent}",
                _fmt(*mean_ci(b["target"])),
                _fmt(*mean_ci(r.reference["target"])),
                f"{_fmt(*mean_ci(b['cosine']))} / {_fmt(*mean_ci(b['cosine_content']))}",
                f"{b['hit_pos']:.2f} / {b['hit_neg']:.2f}",
            ]
        )
    return rows


def _adapter_rows(cfg: PromptPairsConfig, results: dict, n: int) -> list[list]:
    rows = []
    for a in cfg.adapters:
        for group in ["pooled"] + cfg.datasets:
            ds = cfg.datasets if group == "pooled" else [group]
            cells = [
                _fmt(*mean_ci(np.concatenate([per_pair(results[d].cells, a, n, m, cfg.draws) for d in ds])))
                for m in METRICS
            ]
            hp = np.mean([results[d].cells[a, n, k]["hit_pos"] for d in ds for k in range(cfg.draws)])
            hn = np.mean([results[d].cells[a, n, k]["hit_neg"] for d in ds for k in range(cfg.draws)])
            push = np.concatenate([per_pair(results[d].cells, a, n, "push", cfg.draws) for d in ds])
            rows.append([a, group] + cells + [f"{hp:.2f} / {hn:.2f}", _fmt(*mean_ci(push))])
    return rows


def _example_rows(cfg: PromptPairsConfig, results: dict, n: int) -> list[list]:
    return [
        [d, f"…{prefix[-55:]}", positive, repr(base_text.strip())]
        + [repr(r.cells[a, n, 0]["texts"][i].strip()) for a in cfg.adapters]
        for d, r in results.items()
        for i, (prefix, positive, base_text) in enumerate(r.examples[:3])
    ]


_DATASET_HEADERS = [
    "dataset",
    "target features",
    "features active on ≥ 100 / 95 / 90 / 80 / 50 % of positives",
    "target features' activity on negatives",
    "test features (of silent)",
    "target act. no adapter",
    "target act. positive ex.",
    "cosine no adapter (first / content word)",
    "content word ∈ pos / neg targets",
]


def _model_report(run: Run, cfg: PromptPairsConfig, name: str, layer: int, quality: dict, results: dict) -> None:
    run.report.add_text(f"## {name} (layer {layer})")
    _sae_section(run, name, layer, quality)
    _model_tables(run, cfg, name, results)
    _model_figures(run, cfg, name, results)
    run.log_metrics(**{name: _model_metrics(cfg, layer, quality, results)})


def _model_tables(run: Run, cfg: PromptPairsConfig, name: str, results: dict) -> None:
    n_big = max(cfg.n_train)
    run.report.add_table(
        _DATASET_HEADERS,
        _dataset_rows(cfg, results),
        caption=f"{name}: per-dataset features and the unsteered baseline",
    )
    run.report.add_table(
        ["adapter", "dataset"]
        + [f"{METRIC_TITLES[m]} (n={n_big})" for m in METRICS]
        + [f"content word ∈ pos / neg targets (n={n_big})", "relative dose ‖Δ‖ / ‖resid‖"],
        _adapter_rows(cfg, results, n_big),
        caption=f"{name}: adapters at the largest n, pooled and per dataset (mean [95% CI])",
    )
    run.report.add_table(
        ["dataset", "held-out prompt", "positive target", "no adapter"] + [f"{a} (n={n_big})" for a in cfg.adapters],
        _example_rows(cfg, results, n_big),
        caption=f"{name}: generated continuations, unsteered and steered (first fitting draw)",
    )


def _model_figures(run: Run, cfg: PromptPairsConfig, name: str, results: dict) -> None:
    slug, args = file_slug(name), (list(cfg.adapters), cfg.n_train, cfg.draws)
    if cfg.dose_scales:
        _dose_section(run, cfg, name, slug, results)
    run.save_figure(
        plots.prompt_pairs_curves(name, results, *args),
        f"metrics_{slug}.png",
        f"{name}: metrics vs fitting pairs, pooled over datasets (dashed: no adapter; dotted: positive examples)",
    )
    for d in cfg.datasets:
        run.save_figure(plots.prompt_pairs_curves(name, results, *args, [d]), f"metrics_{slug}_{d}.png", f"{name}: {d}")


def _model_metrics(cfg: PromptPairsConfig, layer: int, quality: dict, results: dict) -> dict:
    return {
        "layer": layer,
        "sae": quality,
        "datasets": {
            d: {
                "n_target": r.n_target,
                "examples": r.examples,
                "curves": {
                    a: {
                        m: [mean_ci(per_pair(r.cells, a, n, m, cfg.draws)) for n in cfg.n_train]
                        for m in (*METRICS, "push")
                    }
                    for a in cfg.adapters
                },
                "baseline": {m: mean_ci(r.base[m]) for m in METRICS},
            }
            for d, r in results.items()
        },
    }


def pooled_shift(groups: list[tuple]) -> float:
    """Target-feature shift pooled over datasets, 1 = the positive examples' level: a ratio of
    pooled means, Σ(steered − unsteered) / Σ(positive − unsteered) over the datasets' mean
    values. (A mean of per-dataset ratios is dominated by a dataset whose positive − unsteered
    gap is near zero.) ``groups``: (steered, unsteered, positive) target values per dataset;
    datasets without target features are left out by the caller; NaN (undefined) when none is
    left or the pooled gap is 0 (an empty sum is 0)."""
    gap = sum(float(np.mean(ref)) - float(np.mean(base)) for _, base, ref in groups)
    moved = sum(float(np.mean(st)) - float(np.mean(base)) for st, base, _ in groups)
    return moved / gap if gap != 0 else float("nan")


def _dose_points(cfg: PromptPairsConfig, results: dict, a: str) -> list[tuple]:
    """Per scale, pooled over datasets: (push, target shift share, content cosine, changed share, hit_pos)."""
    out = []
    for x in sorted(cfg.dose_scales):
        cells = [(r, r.doses[a, x]) for r in results.values()]
        push = float(np.mean([np.mean(c["push"]) for _, c in cells]))
        out.append(
            (
                push,
                pooled_shift([(c["target"], r.base["target"], r.reference["target"]) for r, c in cells if r.n_target]),
                mean_ci(np.concatenate([np.asarray(c["cosine_content"], float) for _, c in cells]))[0],
                float(np.mean([c["changed"] for _, c in cells])),
                float(np.mean([c["hit_pos"] for _, c in cells])),
            )
        )
    return out


def control_points(cfg: PromptPairsConfig, results: dict, a: str, x: float) -> dict | None:
    """At one adapter and scale, pooled over datasets and held-out pairs: the adapter's edit against
    random directions of the same per-pair norm — content-word cosine and target-feature level as
    :class:`~interp.steering.controls.ControlComparison` (paired over pairs), and the changed shares."""
    if not cfg.n_controls or any((a, x, 0) not in r.controls for r in results.values()):
        return None
    cat = lambda get: np.concatenate([np.asarray(get(r), float) for r in results.values()])  # noqa: E731
    out = {}
    for m in ("cosine_content", "target"):
        vec = cat(lambda r: r.doses[a, x][m])
        ctrl = np.stack([cat(lambda r, c=c: r.controls[a, x, c][m]) for c in range(cfg.n_controls)])
        ok = np.isfinite(vec) & np.isfinite(ctrl).all(0)
        out[m] = compare_to_controls(vec[ok], ctrl[:, ok]) if ok.any() else None
    out["changed"] = float(np.mean([r.doses[a, x]["changed"] for r in results.values()]))
    out["changed_control"] = float(
        np.mean([r.controls[a, x, c]["changed"] for r in results.values() for c in range(cfg.n_controls)])
    )
    return out


def _cmp(c) -> str:
    return (
        "undef."
        if c is None
        else f"{c.effect:.3f} vs {c.control_mean:.3f}: {c.difference:+.3f} [{c.ci[0]:+.3f}, {c.ci[1]:+.3f}]"
    )


def _control_table(run: Run, cfg: PromptPairsConfig, name: str, results: dict) -> dict:
    rows, metrics = [], {}
    for a in cfg.adapters:
        for x in sorted(cfg.dose_scales):
            p = control_points(cfg, results, a, x)
            if p is None:
                continue
            rows.append([a, f"{x:g}", _cmp(p["cosine_content"]), _cmp(p["target"])])
            rows[-1].append(f"{p['changed']:.2f} / {p['changed_control']:.2f}")
            metrics.setdefault(a, {})[f"{x:g}"] = {
                k: (vars(v) if v is not None and not isinstance(v, float) else v) for k, v in p.items()
            }
    if rows:
        run.report.add_table(
            [
                "adapter",
                "scale s",
                "cosine content word: adapter vs random direction, Δ [95% CI]",
                "target features: adapter vs random direction, Δ [95% CI]",
                "continuations changed: adapter / random",
            ],
            rows,
            caption=f"{name}: specificity control — each dose cell against {cfg.n_controls} random directions with "
            "the adapter's own push on every held-out pair (same relative dose), pooled over datasets; Δ = adapter − "
            "mean control, paired bootstrap CI over pairs; each metric over the pairs where it is defined for the "
            "adapter and every control (a content-word cosine needs a content word), so the adapter's figure can "
            "differ slightly from the dose table's",
        )
    return metrics


def _dose_section(run: Run, cfg: PromptPairsConfig, name: str, slug: str, results: dict) -> None:
    points = {a: _dose_points(cfg, results, a) for a in cfg.adapters}
    base_cos = mean_ci(np.concatenate([np.asarray(r.base["cosine_content"], float) for r in results.values()]))[0]
    rows = [
        [
            a,
            f"{x:g}",
            f"{p[0]:.3g}",
            "undef." if not np.isfinite(p[1]) else f"{p[1]:.2f}",
            f"{p[2]:.3f}",
            f"{p[4]:.2f}",
            f"{p[3]:.2f}",
        ]
        for a in cfg.adapters
        for x, p in zip(sorted(cfg.dose_scales), points[a])
    ]
    run.report.add_table(
        [
            "adapter",
            "scale s of the edit",
            "relative dose ‖Δ‖ / ‖resid‖",
            "target-feature shift, pooled means (1 = positive examples)",
            "cosine content word",
            "content word ∈ pos targets",
            "continuations changed",
        ],
        rows,
        caption=f"{name}: dose sweep — each adapter fitted on n={max(cfg.n_train)} (first draw), its edit scaled by s, "
        "pooled over "
        f"{len(results)} datasets × {cfg.n_test} held-out pairs (unsteered content-word cosine {base_cos:.3f}); every "
        "scale reported, nothing chosen",
    )
    run.save_figure(
        plots.prompt_pairs_doses(name, points),
        f"doses_{slug}.png",
        f"{name}: dose response of every adapter (edit scaled)",
    )
    controls = _control_table(run, cfg, name, results)
    run.log_metrics(**{f"{name} controls": controls})
    run.log_metrics(
        **{
            f"{name} doses": {
                a: {
                    f"{x:g}": dict(zip(["push", "target_shift", "cosine_content", "changed", "hit_pos"], p))
                    for x, p in zip(sorted(cfg.dose_scales), points[a])
                }
                for a in cfg.adapters
            }
        }
    )


def _sae_config(model, cfg: PromptPairsSettings, seed: int) -> SAETrainConfig:
    return SAETrainConfig(layer=study_layer(model.cfg.n_layers, cfg.layer_fraction), seed=seed, **asdict(cfg.sae))


def sae_cell(model, name: str, cfg: PromptPairsSettings, seed: int, pretrained: str | None) -> tuple[int, dict]:
    """Train (or load) the model's SAE at the study layer: (layer, quality report)."""
    sae_cfg = _sae_config(model, cfg, seed)
    _, quality = get_sae(model, name, sae_cfg, pretrained=pretrained)
    return sae_cfg.layer, quality


def dataset_cell(model, name: str, cfg: PromptPairsSettings, seed: int, pretrained: str | None, dataset: str):
    """Every adapter × fitting size × draw on one dataset, scored with the model's SAE."""
    sae_cfg = _sae_config(model, cfg, seed)
    sae, _ = get_sae(model, name, sae_cfg, pretrained=pretrained)
    return dataset_study(model, sae, sae_cfg.layer, dataset, cfg, WordEmbedder(), seed=seed)


def cells(cfg: PromptPairsConfig, done: dict) -> list[Cell]:
    """Per model: the SAE first; then one cell per dataset (each reads the SAE from its cache)."""
    settings, out = settings_part(cfg, PromptPairsSettings), []
    for name in cfg.models:
        # a model's cells see its own pretrained SAE only, and each dataset cell its own dataset
        s = replace(settings, sae_pretrained={}, datasets=[])
        pre = cfg.sae_pretrained.get(name)
        out.append(Cell(f"{name}/sae", name, sae_cell, (name, s, cfg.run.seed, pre)))
        if f"{name}/sae" in done:
            out += [Cell(f"{name}/{d}", name, dataset_cell, (name, s, cfg.run.seed, pre, d)) for d in cfg.datasets]
    return out


def analyse(cfg: PromptPairsConfig, done: dict) -> dict:
    """The SAE reports and per-dataset results by label (the report pools them)."""
    return done


def report(cfg: PromptPairsConfig, done: dict, run: Run) -> None:
    run.report.add_text(_intro(cfg))
    for name in cfg.models:
        if f"{name}/sae" not in done:
            continue  # a failed cell: listed at the end of the report
        layer, quality = done[f"{name}/sae"]
        results = {d: done[f"{name}/{d}"] for d in cfg.datasets if f"{name}/{d}" in done}
        if results:
            _model_report(run, cfg, name, layer, quality, results)


def _check(cfg: PromptPairsConfig) -> None:
    if not cfg.datasets:
        raise ValueError("datasets=[]; name at least one dataset")
    check_settings(cfg)


def headline(metrics: dict, config: dict) -> list[dict]:
    """Per model and adapter at the fitted edit (s = 1): dose, target shift, content cosine,
    changed share, and the adapter against random directions of its push where the report has them."""
    rows = []
    for key, per_a in metrics.items():
        if not key.endswith(" doses"):
            continue
        model = key[: -len(" doses")]
        ctrl = metrics.get(f"{model} controls") or {}
        for a, per_s in per_a.items():
            p = per_s.get("1")
            if p is None:
                continue
            c = (ctrl.get(a) or {}).get("1") or {}
            cc = c.get("cosine_content")
            rows.append(
                {
                    "model": model,
                    "adapter": a,
                    "datasets × test pairs": f"{len(config.get('datasets', []))} × {config.get('n_test')}",
                    "fitted on (pairs)": str(max(config.get("n_train", [0]))),
                    "relative dose": f"{p['push']:.3g}",
                    "target shift (1 = positives)": f"{p['target_shift']:.2f}",
                    "content-word cosine": f"{p['cosine_content']:.3f}",
                    "changed": f"{p['changed']:.2f}",
                    "cosine: adapter − random (same push)": "-"
                    if not cc
                    else f"{cc['difference']:+.3f} [{cc['ci'][0]:+.3f}, {cc['ci'][1]:+.3f}]",
                }
            )
    return rows


STUDY = Study(
    "prompt_pairs",
    PromptPairsConfig,
    cells=cells,
    analyse=analyse,
    report=report,
    check=_check,
    description="CAA / ACE / LoReFT / LoReST on prompt pairs (seed 002 §3.2), scored with SAE features and word "
    "similarity",
    headline=headline,
)
