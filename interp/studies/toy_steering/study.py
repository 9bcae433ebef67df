"""Toy "steering clear" study (seed 002 §3.1; Krasheninnikov & Krueger 2024, Figure 1).

The cells are in :mod:`.core` (per cell: adapters fitted on N pairs, hyperparameters on
validation samples, accuracy and disturbance on test samples): first one cell per number of
attributes m trains the residual MLP (best validation checkpoint); then every (N, repeat) cell
and the CAA / ACE dose sweep take the trained MLP as an argument. "none" is the unsteered model.

    interp run toy_steering --config configs/toy_steering.yaml
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

import interp.studies.toy_steering.figures as plots
from interp.config import reset_fields, settings_part
from interp.executor import Cell
from interp.runner import Run, RunConfig
from interp.studies.toy_steering.core import ADAPTERS, ToySettings, bracket, cell_estimate, dose_sweep, run_cell
from interp.study import Study
from interp.toy import AttributeWorld, train_toy


@dataclass
class ToyConfig(ToySettings):
    run: RunConfig = field(default_factory=RunConfig)


def cells(cfg: ToyConfig, done: dict) -> list[Cell]:
    """A training cell per m; once it is done, the (N, repeat) steering and dose cells on its MLP."""
    out = []
    # the steering cells are given the trained MLP, so they need neither the grid lists nor the training settings
    base = reset_fields(settings_part(cfg, ToySettings), "ms", "n_pairs", "repeats", "train")
    for m in cfg.ms:
        world = AttributeWorld.create(m, seed=cfg.train.seed)
        out.append(Cell(f"m{m}/train", None, train_toy, (world, cfg.train)))
        if f"m{m}/train" not in done:
            continue
        model = done[f"m{m}/train"][0]
        steer, doses = reset_fields(base, "doses"), reset_fields(base, "grid")
        out += [
            Cell(f"m{m}/N{n}/r{rep}", None, run_cell, (model, world, steer, n, rep))
            for n in cfg.n_pairs
            for rep in range(cfg.repeats)
        ]
        out += [
            Cell(f"m{m}/doses/N{n}/r{rep}", None, dose_sweep, (model, world, doses, n, rep))
            for n in cfg.doses.n_pairs
            for rep in range(cfg.repeats)
        ]
    return out


def analyse(cfg: ToyConfig, done: dict) -> dict:
    """Per m: the trained model's info, every steering row and every dose row."""
    out = {}
    for m in cfg.ms:
        if f"m{m}/train" not in done:
            continue
        rows = [r for n in cfg.n_pairs for rep in range(cfg.repeats) for r in done.get(f"m{m}/N{n}/r{rep}", [])]
        doses = [
            r for n in cfg.doses.n_pairs for rep in range(cfg.repeats) for r in done.get(f"m{m}/doses/N{n}/r{rep}", [])
        ]
        out[m] = {"info": done[f"m{m}/train"][1], "rows": rows, "doses": doses}
    return out


def _intro(cfg: ToyConfig) -> str:
    t = cfg.train
    return (
        f"Toy steering: m in {cfg.ms} attributes x 8 values, anchors N(0,1) in R^8, noise 0.1. Residual MLP "
        f"512-512-256-512 (GELU, LayerNorm), Adam lr {t.lr}, {t.n_samples} samples (80/20 split), {t.epochs} epochs, "
        f"best validation checkpoint. Steering: attribute {cfg.task.attribute} -> value {cfg.task.target} at the "
        "output "
        f"of block {cfg.task.layer}; N pairs in {cfg.n_pairs}; {cfg.repeats} repeats; hyperparameters chosen per cell "
        f"on {cfg.n_val} fresh validation samples, accuracy and disturbance on {cfg.n_test} other fresh samples. "
        f"Grid: CAA λ {cfg.grid.caa_strength}, ACE α {cfg.grid.ace_alpha}, LoReFT rank {cfg.grid.loreft_rank}, "
        f"LoReST rank {cfg.grid.lorest_rank} (τ {cfg.grid.temperature}); LoReFT/LoReST {cfg.grid.steps} full-batch "
        f"Adam steps, lr {cfg.grid.lr}."
    )


_CHOICE_HEADERS = [
    "adapter",
    "chosen setting (count over N x repeats)",
    "relative dose of the chosen setting (median)",
    "training loss first -> last (median)",
    "mean gate (median)",
]


def report(cfg: ToyConfig, res: dict, run: Run) -> None:
    run.report.add_text(_intro(cfg))
    rows: list[dict] = []
    dose_rows: list[dict] = []
    model_rows = []
    for m, r in res.items():
        info = r["info"]
        model_rows.append([m, f"{info['val_accuracy']:.4f}", info["n_train"], info["n_val"], cfg.train.epochs])
        run.log_metrics(**{f"m{m}_val_accuracy": info["val_accuracy"], f"m{m}_val_history": info["val_history"]})
        rows += r["rows"]
        run.log_metrics(results=rows)
        dose_rows += r["doses"]
        run.log_metrics(doses=dose_rows)
    run.report.add_table(
        ["m", "best validation accuracy", "train samples", "validation samples", "epochs"],
        model_rows,
        caption="Trained toy models (target: >= 0.98)",
    )
    for m in cfg.ms:
        _m_report(run, cfg, m, [r for r in rows if r["m"] == m], [r for r in dose_rows if r["m"] == m])
    summary = {
        f"m{m}": {
            a: {str(n): cell_estimate([r for r in rows if r["m"] == m], a, n, "accuracy").mean for n in cfg.n_pairs}
            for a in ["none"] + ADAPTERS
        }
        for m in cfg.ms
    }
    run.log_metrics(summary=summary)


def _m_report(run: Run, cfg: ToyConfig, m: int, sub: list[dict], doses: list[dict]) -> None:
    run.save_figure(
        plots.toy_steering_curves(sub, cfg.n_pairs, ADAPTERS, m, cfg.repeats),
        f"steering_m{m}.png",
        f"m={m}: steered-attribute accuracy and disturbance vs number of pairs",
    )
    run.report.add_table(
        ["adapter"] + [str(n) for n in cfg.n_pairs],
        _table(sub, cfg, "accuracy"),
        caption=f"m={m}: test accuracy on the steered attribute, mean [95% CI] over repeats",
    )
    run.report.add_table(
        ["adapter"] + [str(n) for n in cfg.n_pairs],
        _table(sub, cfg, "disturbance"),
        caption=f"m={m}: disturbance (share of other attributes whose prediction changed)",
    )
    run.report.add_table(
        _CHOICE_HEADERS,
        _choices(sub),
        caption=f"m={m}: hyperparameters chosen on validation, their dose ‖edit(a) − a‖ / ‖a‖ on the test samples, "
        "and training diagnostics",
    )
    _chosen_control_table(run, cfg, m, sub)
    if cfg.doses.n_pairs:
        _dose_report(run, cfg, m, sub, doses)
        _control_table(run, cfg, m, doses)


def _chosen_control_table(run: Run, cfg: ToyConfig, m: int, rows: list[dict]) -> None:
    """Every adapter at its validation-chosen setting beside random directions with its own push."""
    out = []
    for a in ADAPTERS:
        cells = []
        for n in cfg.n_pairs:
            sub = [r for r in rows if r["adapter"] == a and r["n_pairs"] == n and "control_accuracy" in r]
            if not sub:
                cells.append("-")
                continue
            mean, beyond = _vs_control(sub)
            cells.append(f"{mean('accuracy'):.2f} vs {mean('control_accuracy'):.2f} ({beyond}/{len(sub)})")
        if any(c != "-" for c in cells):
            out.append([a, *cells])
    if out:
        run.report.add_table(
            ["adapter"] + [str(n) for n in cfg.n_pairs],
            out,
            caption=f"m={m}: specificity control at the chosen settings — test accuracy of each adapter against "
            f"{cfg.doses.n_controls} random directions with its own push on every test sample (the same dose), mean "
            f"over repeats (repeats whose paired 95% CI of the difference excludes 0)",
        )


def _choices(rows) -> list[list]:
    """Which setting won how often (a winner at the grid's edge says: widen the grid)."""
    out = []
    for a in ADAPTERS:
        sub = [r for r in rows if r["adapter"] == a and "error" not in r]
        counts: dict[str, int] = {}
        for r in sub:
            counts[r["setting"]] = counts.get(r["setting"], 0) + 1
        loss = "-"
        if sub and "loss_last" in sub[0]:
            loss = f"{np.median([r['loss_first'] for r in sub]):.3g} -> {np.median([r['loss_last'] for r in sub]):.3g}"
        gate = f"{np.median([r['mean_gate'] for r in sub]):.2f}" if sub and "mean_gate" in sub[0] else "-"
        push = f"{np.median([r['push'] for r in sub]):.3g}" if sub else "-"
        out.append([a, ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())), push, loss, gate])
    return out


def _dose_report(run: Run, cfg: ToyConfig, m: int, rows: list[dict], dose_rows: list[dict]) -> None:
    """Dose-response figure and the bracket table: does the grid go from no effect to the positive control?"""
    none = float(np.mean([r["accuracy"] for r in rows if r["adapter"] == "none"]))
    run.save_figure(
        plots.toy_dose_response(dose_rows, m, none),
        f"doses_m{m}.png",
        f"m={m}: accuracy and disturbance against the relative dose (CAA λ, ACE α grid)",
    )
    table = []
    for a in cfg.doses.adapters:
        for n in cfg.doses.n_pairs:
            b = bracket(dose_rows, a, n, none)
            if not b["defined"]:
                table.append([a, n, "undefined (every fit failed)", "", "", ""])
                continue
            ctrl = (
                "not reached"
                if b["control_strength"] is None
                else f"{b['control_strength']:.3g} ({b['control_push']:.3g}); disturbance "
                f"{b['control_disturbance']:.1e}"
            )
            table.append(
                [
                    a,
                    n,
                    f"{b['low_strength']:.3g} ({b['low_push']:.3g}): {b['low_accuracy']:.2f}"
                    + ("" if b["no_effect"] else " (already an effect)"),
                    ctrl,
                    f"{b['max_accuracy']:.2f}",
                    f"{b['max_push']:.3g}",
                ]
            )
    run.report.add_table(
        [
            "adapter",
            "N",
            "smallest strength (relative dose): accuracy",
            "first strength with accuracy ≥ 0.9 (relative dose)",
            "max accuracy",
            "max relative dose",
        ],
        table,
        caption=f"m={m}: dose sweep over strengths {cfg.doses.strengths[0]:.3g} … {cfg.doses.strengths[-1]:.3g} (every "
        f"strength reported, nothing chosen; unsteered accuracy {none:.3f}), "
        f"mean over {cfg.repeats} repeats on the cells' test samples",
    )


def _vs_control(rows: list[dict]) -> tuple[Callable[[str], float], int]:
    """A mean over ``rows`` of any key, and how many rows' adapter − control CI excludes 0."""
    beyond = sum(lo > 0 or hi < 0 for lo, hi in (r["accuracy_minus_control_ci"] for r in rows))
    return (lambda key: float(np.mean([r[key] for r in rows]))), beyond


def _control_table(run: Run, cfg: ToyConfig, m: int, dose_rows: list[dict]) -> None:
    """Every strength of the dose sweep beside random directions with the adapter's push."""
    rows = []
    for a in cfg.doses.adapters:
        for n in cfg.doses.n_pairs:
            for x in cfg.doses.strengths:
                sub = [
                    r
                    for r in dose_rows
                    if r["adapter"] == a and r["n_pairs"] == n and r["strength"] == x and "control_accuracy" in r
                ]
                if not sub:
                    continue
                mean, beyond = _vs_control(sub)
                rows.append(
                    [
                        a,
                        n,
                        f"{x:.3g}",
                        f"{mean('push'):.3g}",
                        f"{mean('accuracy'):.3f} / {mean('control_accuracy'):.3f}",
                        f"{mean('accuracy_minus_control'):+.3f} ({beyond}/{len(sub)})",
                        f"{mean('disturbance'):.1e} / {mean('control_disturbance'):.1e}",
                    ]
                )
    if rows:
        run.report.add_table(
            [
                "adapter",
                "N",
                "strength",
                "relative dose",
                "accuracy: adapter / random direction",
                "Δ accuracy (repeats whose 95% CI excludes 0)",
                "disturbance: adapter / random",
            ],
            rows,
            caption=f"m={m}: specificity control — each strength of the dose sweep against "
            f"{cfg.doses.n_controls} random directions with the adapter's own push on every test sample (the same "
            f"dose), mean over {cfg.repeats} repeats; paired CI over the {cfg.n_test} test samples per repeat",
        )


def _table(rows, cfg: ToyConfig, key: str) -> list[list]:
    out = []
    for a in ["none"] + ADAPTERS:
        cells = []
        for n in cfg.n_pairs:
            e = cell_estimate(rows, a, n, key)
            fmt = ".2f" if key == "accuracy" else ".1e"  # disturbance is often ~1e-5: keep it visible
            cells.append("undefined" if e.n == 0 else f"{e.mean:{fmt}} [{e.ci_low:{fmt}}, {e.ci_high:{fmt}}]")
        out.append([a] + cells)
    return out


def check(cfg: ToyConfig) -> None:
    if not cfg.ms or any(m < 2 for m in cfg.ms):
        raise ValueError(f"ms={cfg.ms!r}; need one or more numbers of attributes >= 2")
    if cfg.repeats < 1 or cfg.n_val < 1 or cfg.n_test < 1:
        raise ValueError(f"repeats={cfg.repeats}, n_val={cfg.n_val}, n_test={cfg.n_test}; each must be >= 1")
    if not cfg.n_pairs or any(n < 1 for n in cfg.n_pairs):
        raise ValueError(f"n_pairs={cfg.n_pairs!r}; need one or more positive numbers of pairs")


def headline(metrics: dict, config: dict) -> list[dict]:
    """Per m: validation accuracy of the MLP, each adapter's test accuracy at the smallest, a middle
    and the largest N (strengths chosen on validation samples), and how many chosen settings beat
    random directions with their own push (the paired CI of the difference above 0)."""
    rows = []
    for mk, per_a in (metrics.get("summary") or {}).items():
        ns = sorted({int(n) for v in per_a.values() for n in v})
        pick = [ns[0], ns[len(ns) // 2], ns[-1]] if ns else []
        row = {
            "m": mk[1:],
            "MLP validation accuracy": f"{metrics.get(f'{mk}_val_accuracy', float('nan')):.3f}",
            "split": f"strength chosen on {config.get('n_val')} validation samples, reported on {config.get('n_test')}",
            "repeats": str(config.get("repeats")),
            "N: smallest / middle / largest": " / ".join(map(str, pick)),
        }
        for a, v in per_a.items():
            row[a] = " / ".join(f"{v[str(n)]:.2f}" for n in pick if str(n) in v)
        row["chosen settings beating random directions"] = _beats_control(metrics.get("results") or [], int(mk[1:]))
        rows.append(row)
    return rows


def _beats_control(results: list[dict], m: int) -> str:
    """How many chosen-setting cells (adapter × N × repeat) of ``m`` have an adapter − control CI
    above 0, as "k of n" (the report's control table counts CIs excluding 0 on either side)."""
    ci = [r["accuracy_minus_control_ci"] for r in results if r.get("m") == m and "accuracy_minus_control_ci" in r]
    return f"{sum(lo > 0 for lo, _ in ci)} of {len(ci)}" if ci else "no control in this report"


STUDY = Study(
    "toy_steering",
    ToyConfig,
    cells=cells,
    analyse=analyse,
    report=report,
    check=check,
    description="the toy 'steering clear' MLP (seed 002 §3.1): CAA / ACE / LoReFT / LoReST vs number of pairs, dose "
    "sweep",
    headline=headline,
)
