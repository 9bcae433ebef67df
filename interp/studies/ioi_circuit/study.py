"""The IOI circuit study (issue 29): EAP, EAP-IG and exact edge scores ranked on selection pairs,
faithfulness curves on both halves, the smallest circuit reaching the target chosen on the
selection pairs and reported on the held-out pairs with a bootstrap CI, its heads.

    interp run ioi_circuit --config configs/ioi_circuit.yaml
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from interp.cache import file_slug
from interp.config import settings_part
from interp.executor import Cell
from interp.runner import Run, RunConfig
from interp.studies.ioi_circuit.core import CircuitResult, CircuitSettings, ioi_circuit
from interp.study import Study


@dataclass
class CircuitConfig(CircuitSettings):
    run: RunConfig = field(default_factory=RunConfig)
    models: list[str] = field(default_factory=lambda: ["smollm2-135m-instruct", "gemma-3-270m"])


def cells(cfg: CircuitConfig, done: dict) -> list[Cell]:
    s = settings_part(cfg, CircuitSettings)
    return [Cell(name, name, ioi_circuit, (s,)) for name in cfg.models]


def _intro(cfg: CircuitConfig) -> str:
    t = cfg.task
    return (
        f"IOI circuit: {t.n_pairs} clean / ABC-corrupted pairs per name order {t.orders} (seed {t.seed}), split "
        f"{1 - cfg.selection.test_fraction:.0%} selection / rest test (seed {cfg.selection.seed}, stratified by "
        "order). "
        "Edges (interp.circuits: embedding, heads and MLPs to every downstream head's Q/K/V input, MLP input and the "
        f"logits) ranked on the selection pairs by EAP, EAP-IG ({cfg.ig_steps} steps) and exact edge patching of the "
        f"top {cfg.exact_top} EAP-IG edges; metric logit(IO) − logit(S). A circuit of n edges = the top n of a "
        "ranking without dangling edges; faithfulness = the metric with every other edge patched from the corrupted "
        "run, as a share of the clean − corrupted gap, pooled over the pairs (95% CI: bootstrap over pairs, "
        "circuit, clean and corrupted metrics resampled together). The smallest circuit reaching the target is "
        "chosen on the **selection** pairs' curve and reported on the **test** pairs."
    )


def report(cfg: CircuitConfig, done: dict, run: Run) -> None:
    run.report.add_text(_intro(cfg))
    for name in cfg.models:
        r: CircuitResult | None = done.get(name)
        if r is None:
            continue  # a failed cell is listed at the end of the report
        _model_report(run, cfg, name, r)


def _model_report(run: Run, cfg: CircuitConfig, name: str, r: CircuitResult) -> None:
    import matplotlib.pyplot as plt

    run.report.add_text(
        f"## {name}\n\n{r.n_edges} edges; pairs: {r.n_selection} selection / {r.n_test} test; clean top-1 accuracy on "
        f"the test pairs {r.clean_accuracy:.2f}; Spearman r(EAP-IG, exact) over the exactly scored edges "
        f"{r.rank_agreement:+.2f}."
    )
    sizes = sorted({c[0] for curve in r.curves.values() for c in curve})
    rows = []
    for method, curve in r.curves.items():
        by = {n: (k, f, lo, hi) for n, k, f, lo, hi in curve}
        sel = {n: f for n, _, f in r.selection_curves.get(method, [])}
        rows.append(
            [
                method,
                *[
                    "-"
                    if n not in by
                    else f"{by[n][1]:.2f} [{by[n][2]:.2f}, {by[n][3]:.2f}] sel {sel[n]:.2f} ({by[n][0]})"
                    for n in sizes
                ],
            ]
        )
    run.report.add_table(
        ["ranking", *[f"top {n}" for n in sizes]],
        rows,
        caption=f"{name}: faithfulness on the test pairs [95% CI], on the selection pairs (sel), and the edges kept "
        "after pruning dangling ones",
    )
    run.report.add_table(
        [
            "ranking",
            f"smallest circuit with selection faithfulness ≥ {cfg.target:.0%}",
            "faithfulness: selection",
            "test [95% CI]",
            "its heads",
        ],
        [
            [m, "not reached", "-", "-", "-"]
            if v is None
            else [m, f"{v[0]} edges", f"{v[1]:.2f}", f"{v[2]:.2f} [{v[3]:.2f}, {v[4]:.2f}]", _heads_text(r.heads[m])]
            for m, v in r.smallest.items()
        ],
        caption=f"{name}: the smallest circuit per ranking, its size chosen on the selection pairs (where the edges "
        "were ranked too) and its faithfulness held out",
    )
    run.report.add_table(
        ["ranking", "top edges on the selection pairs (score)"],
        [[m, "; ".join(f"{e} ({v:+.3f})" for e, v in top[:8])] for m, top in r.scores.items()],
        caption=f"{name}: the highest-scoring edges",
    )
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for i, (method, curve) in enumerate(r.curves.items()):
        color = f"C{i}"
        x = [k for _, k, *_ in curve]
        ax.plot(x, [c[2] for c in curve], marker="o", ms=3, color=color, label=f"{method} (test)")
        ax.fill_between(x, [c[3] for c in curve], [c[4] for c in curve], color=color, alpha=0.15, lw=0)
        sel = r.selection_curves.get(method, [])
        ax.plot([k for _, k, _ in sel], [f for _, _, f in sel], ls="--", lw=1, color=color, label=f"{method} (sel)")
    ax.axhline(cfg.target, color="0.5", ls=":", label=f"target {cfg.target:.0%}")
    ax.set_xscale("log")
    ax.set_xlabel("edges in the circuit")
    ax.set_ylabel("faithfulness")
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    run.save_figure(
        fig, f"faithfulness_{file_slug(name)}.png", f"{name}: faithfulness against circuit size, per ranking"
    )
    run.log_metrics(**{name: _metrics(r)})


def _heads_text(heads: list[str], show: int = 24) -> str:
    """The circuit's heads in layer order; a long list is cut after ``show`` (its length said)."""
    order = sorted(heads, key=lambda h: tuple(int(x) for x in h[1:].split("H")))
    if not order:
        return "-"
    head = ", ".join(order[:show])
    return head if len(order) <= show else f"{len(order)} heads: {head}, …"


def _metrics(r: CircuitResult) -> dict:
    out = {k: v for k, v in vars(r).items() if k != "circuit_edges"}
    out["smallest"] = {m: (None if v is None else list(v)) for m, v in r.smallest.items()}
    out["curves"] = {m: [list(c) for c in curve] for m, curve in r.curves.items()}
    return out


def headline(metrics: dict, config: dict) -> list[dict]:
    rows = []
    for model, m in metrics.items():
        sm = m.get("smallest", {})
        rows.append(
            {
                "model": model,
                "pairs: selection / test": f"{m.get('n_selection')} / {m.get('n_test')}",
                "edges": str(m.get("n_edges")),
                "smallest ≥ target on selection, EAP-IG: edges, test faithfulness": _smallest(sm.get("EAP-IG")),
                "smallest ≥ target on selection, EAP: edges, test faithfulness": _smallest(sm.get("EAP")),
                "r(EAP-IG, exact)": f"{m.get('rank_agreement', float('nan')):+.2f}",
            }
        )
    return rows


def _smallest(v: list | None) -> str:
    if not v:
        return "not reached"
    return f"{v[0]}, {v[2]:.2f} [{v[3]:.2f}, {v[4]:.2f}]"


def check(cfg: CircuitConfig) -> None:
    if cfg.ig_steps < 1 or cfg.exact_top < 1 or not cfg.sizes or min(cfg.sizes) < 1:
        raise ValueError(
            f"ig_steps={cfg.ig_steps}, exact_top={cfg.exact_top}, sizes={cfg.sizes}; each must be >= 1 "
            "(sizes non-empty)"
        )
    if not 0 < cfg.target <= 1 or not np.isfinite(cfg.target):
        raise ValueError(f"target={cfg.target}; a faithfulness share in (0, 1]")


STUDY = Study(
    "ioi_circuit",
    CircuitConfig,
    cells=cells,
    analyse=lambda cfg, done: done,
    report=report,
    check=check,
    description="the IOI circuit: EAP / EAP-IG / exact edge rankings, held-out faithfulness curves, smallest circuit",
    headline=headline,
)
