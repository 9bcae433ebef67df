"""Correctness-direction steering sweep (seed 004).

The study is :mod:`interp.studies.correctness` (kind calibration, stratified split, correct −
wrong direction at early / middle / late layers, steered greedy answers, McNemar per α, the
invariance flag, a positive control); this script runs it per model and writes the report: an
accuracy table layer × α with counts, the smallest change the test set could detect, and a flag
when the outputs are byte-identical across every α of a layer ("suspicious invariance").

    interp run correctness_steering --config configs/correctness_steering.yaml
"""

from __future__ import annotations

from dataclasses import dataclass, field

import interp.studies.correctness_steering.figures as plots
from interp.cache import file_slug
from interp.config import settings_part
from interp.executor import Cell
from interp.runner import Run, RunConfig
from interp.stats import mcnemar_min_detectable
from interp.studies.correctness_steering.core import (
    CorrectnessSettings,
    alpha_tests,
    check_settings,
    control_comparisons,
    correctness_study,
    invariance_flags,
    relative_tests,
)
from interp.study import Study


@dataclass
class CorrectnessConfig(CorrectnessSettings):
    run: RunConfig = field(default_factory=RunConfig)
    models: list[str] = field(default_factory=lambda: ["smollm2-135m-instruct", "gemma-3-270m"])


def _intro(cfg: CorrectnessConfig) -> str:
    return (
        f"Correctness-direction steering (seed 004). Task: {cfg.task} (candidates {cfg.kinds}; 'auto' picks the kind "
        "whose accuracy on "
        f"{cfg.n_calibrate} calibration problems is closest to 0.5). {cfg.n_problems} other problems, two-shot "
        "prompts, greedy "
        f"{cfg.max_new_tokens} tokens, answer = the integer the continuation starts with. Train/test split "
        f"{1 - cfg.test_fraction:.0%}/"
        f"{cfg.test_fraction:.0%} stratified by correctness. Direction = mean(correct) − mean(wrong) residual at the "
        "last prompt token, "
        f"at layers ≈ {cfg.layer_fractions} of depth; α ∈ {cfg.alphas}, added at the last prompt token and every "
        "generated token. "
        "Cells: accuracy (correct/n); * = exact McNemar p < 0.05 against α = 0 of the same layer. Positive control: α "
        f"= ±{cfg.control_alpha:g} "
        "must change the outputs, else an invariance would say nothing about the model. Beside the seed's raw grid, a "
        "bracketing grid of "
        f"relative doses {cfg.relative_doses}: the direction scaled to d × the mean residual norm at the layer (the "
        "test prompts' last token), "
        "from no measurable change to most outputs changed; every raw α is also given in these units. No α or layer "
        "is chosen: every cell "
        f"is reported; the 'strongest α' column is the smallest p on the test problems (labelled best-on-test)."
    )


def _model_report(run: Run, cfg: CorrectnessConfig, name: str, r) -> None:
    tests, flags = alpha_tests(r, cfg.alphas), invariance_flags(r, cfg.alphas)
    _intro_text(run, cfg, name, r)
    _accuracy_table(run, cfg, name, r, tests)
    _relative_table(run, name, r)
    controls = control_comparisons(r)
    if controls:
        _control_table(run, name, r, controls)
    _invariance_table(run, cfg, name, r, tests, flags)
    run.save_figure(
        plots.correctness_accuracy(name, r, cfg.alphas),
        f"accuracy_{file_slug(name)}.png",
        f"{name}: accuracy vs raw α per layer",
    )
    run.save_figure(
        plots.correctness_dose_response(name, r),
        f"doses_{file_slug(name)}.png",
        f"{name}: accuracy (—) and share of outputs changed from α = 0 (- -) against the relative dose, both grids "
        "(circles: bracketing grid; crosses: the seed's raw α grid in relative units)",
    )
    run.log_metrics(**{name: _metrics(r, tests, flags) | {"relative_control": _control_metrics(r, controls)}})


def _intro_text(run: Run, cfg: CorrectnessConfig, name: str, r) -> None:
    calib = ", ".join(f"{k}: {v:.2f}" for k, v in r.calibration.items()) or "not run (task fixed)"
    if r.too_few_problems:
        calib += "; not candidates, too few distinct problems: " + ", ".join(
            f"{k} ({n})" for k, n in r.too_few_problems.items()
        )
    run.report.add_text(f"## {name}")
    run.report.add_text(
        f"Task **{r.kind}** (calibration accuracy {calib}); accuracy on all {cfg.n_problems} problems "
        f"{r.base_accuracy:.1%}; train {r.n_train[0]} correct + {r.n_train[1]} wrong, test {r.n_test}. "
        f"Direction norms: " + ", ".join(f"L{layer}: {v:.2f}" for layer, v in zip(r.layers, r.norms)) + ". "
        f"Smallest accuracy change an exact McNemar test on {r.n_test} problems could detect: "
        f"{mcnemar_min_detectable(r.n_test):.1%} (all discordant pairs in one direction)."
    )


def _accuracy_table(run: Run, cfg: CorrectnessConfig, name: str, r, tests: dict) -> None:
    rows = [
        [f"{a:+g}"]
        + [
            f"{r.correct[layer][ai].mean():.1%} ({int(r.correct[layer][ai].sum())}/{r.correct[layer].shape[1]})"
            + ("*" if tests[(layer, a)].p < 0.05 else "")
            for layer in r.layers
        ]
        for ai, a in enumerate(cfg.alphas)
    ]
    run.report.add_table(
        ["α", *[f"layer {layer} ({layer / r.n_layers:.0%} of depth)" for layer in r.layers]],
        rows,
        caption=f"{name}: test accuracy by layer and α",
    )


def _invariance_table(run: Run, cfg: CorrectnessConfig, name: str, r, tests: dict, flags: dict) -> None:
    strongest = {
        layer: min((tests[(layer, a)] for a in cfg.alphas if a != 0.0), key=lambda m: m.p) for layer in r.layers
    }
    run.report.add_table(
        [
            "layer",
            "outputs identical across all α",
            f"control: outputs changed at α = +{cfg.control_alpha:g} / −{cfg.control_alpha:g}",
            "min McNemar p (α ≠ 0; best-on-test, labelled)",
            "gained / lost at that α",
        ],
        [
            [
                f"L{layer}",
                "YES — suspicious invariance" if flags[layer] else "no",
                f"{r.control[layer][0]} / {r.control[layer][1]} of {r.n_test}",
                f"{strongest[layer].p:.3g}",
                f"{strongest[layer].gained} / {strongest[layer].lost}",
            ]
            for layer in r.layers
        ],
        caption=f"{name}: invariance flag and the strongest α effect per layer",
    )


def _metrics(r, tests: dict, flags: dict) -> dict:
    return {
        "kind": r.kind,
        "calibration": r.calibration,
        "layers": r.layers,
        "base_accuracy": r.base_accuracy,
        "accuracy": {str(layer): r.correct[layer].mean(1) for layer in r.layers},
        "identical_across_alpha": {str(k): v for k, v in flags.items()},
        "control_changed": {str(k): v for k, v in r.control.items()},
        "mcnemar_p": {f"L{k[0]} a={k[1]:+g}": m.p for k, m in tests.items()},
        "resid_norm": r.resid_norm,
        "relative_of_raw": {str(k): r.relative_of_raw(k) for k in r.layers},
        "relative_doses": r.relative_doses,
        "relative_accuracy": {str(k): r.rel_correct[k].mean(1) for k in r.layers},
        "relative_changed": {str(k): r.changed(k, relative=True) for k in r.layers},
        "raw_changed": {str(k): r.changed(k) for k in r.layers},
        "relative_mcnemar_p": {f"L{k[0]} d={k[1]:+g}": m.p for k, m in relative_tests(r).items()},
    }


def _relative_table(run: Run, name: str, r) -> None:
    tests = relative_tests(r)
    raw = {layer: r.relative_of_raw(layer) for layer in r.layers}
    rows = [
        [
            f"{d:+g}",
            *[
                f"{r.rel_correct[layer][di].mean():.1%}{'*' if tests[(layer, d)].p < 0.05 else ''}; changed "
                f"{r.changed(layer, True)[di]:.0%} "
                f"(α={d * r.resid_norm[li] / r.norms[li]:+.3g})"
                for li, layer in enumerate(r.layers)
            ],
        ]
        for di, d in enumerate(r.relative_doses)
    ]
    run.report.add_table(
        ["relative dose d", *[f"layer {layer}: accuracy; outputs changed (raw α)" for layer in r.layers]],
        rows,
        caption=f"{name}: bracketing grid — test accuracy and share of outputs changed from α = 0 by relative dose "
        f"(mean residual norm {', '.join(f'L{layer}: {v:.1f}' for layer, v in zip(r.layers, r.resid_norm))}); the "
        "seed's "
        f"raw grid spans |d| ≤ {', '.join(f'L{layer}: {abs(raw[layer]).max():.3f}' for layer in r.layers)}",
    )


def _control_table(run: Run, name: str, r, controls: dict) -> None:
    """The direction beside random directions of the same norm at the same relative dose."""
    rows = []
    for di, d in enumerate(r.relative_doses):
        row = [f"{d:+g}"]
        for layer in r.layers:
            c, ch = controls[(layer, d)], r.control_changed(layer)[:, di]
            row.append(
                f"{c.effect:.1%} vs {c.control_mean:.1%} ± {c.control_sd:.1%}: Δ {c.difference:+.1%} "
                f"[{c.ci[0]:+.1%}, {c.ci[1]:+.1%}]; changed {r.changed(layer, True)[di]:.0%} vs {ch.mean():.0%}"
            )
        rows.append(row)
    n = next(iter(controls.values())).n_controls
    run.report.add_table(
        [
            "relative dose d",
            *[
                f"layer {layer}: direction vs {n} random directions (accuracy; Δ [95% CI]; changed)"
                for layer in r.layers
            ],
        ],
        rows,
        caption=f"{name}: specificity control — test accuracy with the correctness direction against random directions "
        "of "
        "the same norm at the same relative dose (mean ± SD over controls); Δ = direction − mean control, paired "
        "bootstrap CI over test problems. A change the random directions match is a push of that size, not the "
        "direction.",
    )


def _control_metrics(r, controls: dict) -> dict:
    out = {}
    for (layer, d), c in controls.items():
        di = r.relative_doses.index(d)
        out[f"L{layer} d={d:+g}"] = vars(c) | {
            "changed": float(r.changed(layer, True)[di]),
            "control_changed": float(r.control_changed(layer)[:, di].mean()),
        }
    return out


def cells(cfg: CorrectnessConfig, done: dict) -> list[Cell]:
    # each model's cell gets the settings (max_rows included: it batches, it changes no number
    # but is part of what the cell is given) and its own seed
    settings = settings_part(cfg, CorrectnessSettings)
    return [
        Cell(name, name, correctness_study, (settings, cfg.run.seed + 1000 * mi)) for mi, name in enumerate(cfg.models)
    ]


def analyse(cfg: CorrectnessConfig, done: dict) -> dict:
    """The per-model results by name (the report tests every α and flags invariance)."""
    return done


def report(cfg: CorrectnessConfig, done: dict, run: Run) -> None:
    run.report.add_text(_intro(cfg))
    for name in cfg.models:
        if name in done:  # a failed cell is listed at the end of the report
            _model_report(run, cfg, name, done[name])


def headline(metrics: dict, config: dict) -> list[dict]:
    """Per model: the unsteered accuracy and, at the two middle relative doses of each sign, the
    direction's accuracy minus random directions of its norm at every layer (pp, 95% CI)."""
    rows = []
    for model, m in metrics.items():
        ctrl = m.get("relative_control", {})
        doses = m.get("relative_doses", [])
        pick = [d for d in doses if abs(d) == sorted({abs(x) for x in doses})[-2]] if len(doses) > 2 else doses
        row = {
            "model": model,
            "problems (test)": f"{round(config.get('n_problems', 0) * config.get('test_fraction', 0))}",
            "split": f"calibration {config.get('n_calibrate')} / test {config.get('test_fraction', 0):.0%}",
            "layers": ", ".join(f"L{x}" for x in m.get("layers", [])),
            "unsteered accuracy": f"{100 * m.get('base_accuracy', float('nan')):.1f} %",
        }
        for d in pick:
            cells = [ctrl.get(f"L{layer} d={d:+g}") for layer in m.get("layers", [])]
            row[f"d={d:+g}: direction − random (pp)"] = "; ".join(
                "-" if c is None else f"{100 * c['difference']:+.1f} [{100 * c['ci'][0]:+.1f}, {100 * c['ci'][1]:+.1f}]"
                for c in cells
            )
        rows.append(row)
    return rows


STUDY = Study(
    "correctness_steering",
    CorrectnessConfig,
    cells=cells,
    analyse=analyse,
    report=report,
    check=check_settings,
    description="a correctness direction (seed 004 analogue on a plain LM): α sweep at early / middle / late layers, "
    "invariance flag",
    headline=headline,
)
