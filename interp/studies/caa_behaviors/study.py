"""CAA behaviour evaluation across layers and models (seed 003; Rimsky et al.'s A/B datasets).

The study is :mod:`interp.studies.caa_behaviors` (vectors, logit and generation scores, best
layer, paired d_z, the shift's behaviour / letter split, dose response); this script runs it per
model and behaviour, caches each behaviour's sweep, and writes the report and figures.

    interp run caa_behaviors --config configs/caa_behaviors.yaml
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

import interp.studies.caa_behaviors.figures as plots
from interp.cache import file_slug
from interp.config import reset_fields, settings_part
from interp.data.datasets_io import data_dir
from interp.executor import Cell
from interp.runner import Run, RunConfig
from interp.selection import SelectionConfig
from interp.studies.caa_behaviors.core import (
    CAABehaviorSettings,
    behavior_sweep,
    check_settings,
    content_check,
    control_layers,
    control_rows,
    control_sweep,
    dose_response,
    dose_response_rows,
    letter_layer,
    summarize,
)
from interp.study import Study


@dataclass
class CAAConfig(CAABehaviorSettings):
    run: RunConfig = field(default_factory=RunConfig)
    models: list[str] = field(default_factory=lambda: ["smollm2-135m-instruct", "gemma-3-270m"])


def _intro(cfg: CAAConfig) -> str:
    g = cfg.generation
    gen = (
        (
            f"Generation: greedy {g.max_new_tokens} tokens, steered at the last prompt token and every generated "
            f"token, multipliers {g.multipliers}, "
            + (f"every ⌈depth / {g.n_layers}⌉-th layer; " if g.n_layers else f"every {g.layer_stride}-th layer; ")
            + "p(matching) among parseable answers. "
        )
        if g.enabled
        else "Generation score off. "
    )
    return (
        f"CAA on the A/B behaviour datasets {cfg.behaviors}: vector per layer from {cfg.n_generate} generate-split "
        "questions "
        "(answer-letter token, matching minus not "
        f"matching{'; A- and B-matching questions weighted equally' if cfg.balance_letters else ''}), applied at "
        "the last prompt token (the answer's '(') with "
        f"multipliers {cfg.multipliers} on {cfg.n_test} test questions. Logit score = logit(matching letter) − "
        "logit(other); "
        "delta = mean(+1) − mean(−1); paired d_z (+1 vs −1 on the same questions, bootstrap 95% CI). "
        + (
            f"Best layer = largest delta on {cfg.n_select} held-out generate-split questions (after the vector's "
            f"{cfg.n_generate}, never used for it); every figure at that layer is on all the A/B test questions, "
            "with the optimism gap and the best-on-test layer (labelled). "
            if cfg.n_select
            else f"Best layer = largest delta on a selection part of the test questions "
            f"({1 - cfg.selection.test_fraction:.0%}, stratified by matching letter, seed {cfg.selection.seed}); "
            "every figure at that layer is on the other part, with the optimism gap and the best-on-test layer "
            "(labelled). "
        )
        + "Doses: m × ‖v‖ in units of the "
        "mean residual norm at the layer and token steered. "
        + gen
        + "Chat template applied where the tokenizer has one."
    )


def _undef(x: float, fmt: str) -> str:
    return "undef." if np.isnan(x) else format(x, fmt)


def _summary_table(cfg: CAAConfig, sweeps: dict, summaries: dict) -> tuple[list[str], list[list[str]]]:
    head = [
        "behaviour",
        "questions: vector / selection / test",
        "best layer on selection (fraction of depth)",
        "logit delta (test) [95% CI]",
        "optimism gap",
        "best-on-test layer (labelled)",
        "paired d_z (test) [95% CI]",
        "delta's behaviour / letter part",
        "matching at m=0",
    ]
    if cfg.generation.enabled:
        head += [
            f"p(matching) at m={cfg.generation.multipliers} (nearest gen. layer)",
            "unparseable share",
            "r(logit delta, gen. delta) over layers",
        ]
    rows = []
    for b, s in summaries.items():
        r = sweeps[b]
        sel, t = s.selection, s.selection.test
        row = [
            b,
            f"{r.n_generate} / {sel.n_selection} / {sel.n_test}" + (f" ({r.skipped} too long)" if r.skipped else ""),
            f"L{s.best_layer} ({s.best_fraction:.2f})",
            f"{t.mean:+.2f} [{t.ci_low:+.2f}, {t.ci_high:+.2f}]",
            f"{sel.optimism_gap:+.2f}",
            f"L{sel.best_on_test[0]}: {sel.best_on_test[1]:+.2f}",
            str(s.d),
            " / ".join(_undef(x, "+.2f") for x in s.split),
            f"{s.base_matching:.2f}",
        ]
        if s.gen_p is not None:
            gi = r.gen_layers.index(min(r.gen_layers, key=lambda x: abs(x - s.best_layer)))
            row += [
                " / ".join(_undef(v, ".2f") for v in s.gen_p[gi]) + f" (L{r.gen_layers[gi]})",
                f"{s.gen_unparseable.mean():.2f}",
                str(s.gen_corr),
            ]
        rows.append(row)
    return head, rows


def cells(cfg: CAAConfig, done: dict) -> list[Cell]:
    """Stage 1 per (model, behaviour): the sweep. Stage 2, once a sweep is done: controls, the
    all-positions option and the letter swap at the layers its selection questions chose."""
    # a behaviour's sweep is given its own behaviour, not the others, nor the selection split
    # or the stage-2 settings
    settings = reset_fields(settings_part(cfg, CAABehaviorSettings), "selection", "n_controls", "all_positions")
    stage2 = replace(settings_part(cfg, CAABehaviorSettings), selection=SelectionConfig())
    data = (data_dir("caa"),)
    out = []
    for name in cfg.models:
        for b in cfg.behaviors:
            out.append(Cell(f"{name}/{b}", name, behavior_sweep, (b, replace(settings, behaviors=[b])), data))
            r = done.get(f"{name}/{b}")
            if r is None or not (cfg.n_controls or cfg.all_positions):
                continue
            layers = control_layers(r, summarize(r, cfg, r.n_layers), cfg)
            vectors = r.vectors[[r.layers.index(x) for x in layers]]
            args = (b, replace(stage2, behaviors=[b]), layers, vectors, cfg.run.seed)
            out.append(Cell(f"{name}/{b}/controls", name, control_sweep, args, data))
    return out


@dataclass
class CAAModelAnalysis:
    sweeps: dict  # behaviour -> BehaviorSweep
    summaries: dict  # behaviour -> BehaviorSummary (layer chosen on selection questions)
    doses: dict  # behaviour -> DoseRow at the chosen layer
    n_layers: int
    chat: bool
    controls: dict = field(default_factory=dict)  # behaviour -> [ControlRow] (stage 2 done)
    content: dict = field(default_factory=dict)  # behaviour -> ContentCheck


def analyse(cfg: CAAConfig, done: dict) -> dict[str, CAAModelAnalysis]:
    """Per model: each behaviour's summary (layer chosen on the selection questions; delta, paired
    d and the behaviour / letter split on the test questions) and its dose response."""
    out = {}
    for name in cfg.models:
        # failed cells: left out here, listed at the end of the report
        sweeps = {b: done[f"{name}/{b}"] for b in cfg.behaviors if f"{name}/{b}" in done}
        if not sweeps:
            continue
        first = next(iter(sweeps.values()))
        summaries = {b: summarize(r, cfg, first.n_layers) for b, r in sweeps.items()}
        doses = {d.behavior: d for d in dose_response_rows(sweeps, summaries, cfg.multipliers)}
        a = out[name] = CAAModelAnalysis(sweeps, summaries, doses, first.n_layers, first.chat)
        for b, r in sweeps.items():
            cs = done.get(f"{name}/{b}/controls")
            if cs is not None:
                a.controls[b] = control_rows(r, summaries[b], cs, letter_layer(r, cfg)[1])
                a.content[b] = content_check(r, cs, cfg.multipliers.index(0.0))
    return out


def report(cfg: CAAConfig, res: dict[str, CAAModelAnalysis], run: Run) -> None:
    run.report.add_text(_intro(cfg))
    for name, a in res.items():
        run.report.add_text(f"## {name} ({'chat template' if a.chat else 'plain prompt'}, {a.n_layers} layers)")
        run.report.add_table(
            *_summary_table(cfg, a.sweeps, a.summaries), caption=f"{name}: CAA per behaviour at its best layer"
        )
        run.report.add_table(
            *dose_response(a.sweeps, a.summaries, cfg.multipliers),
            caption=f"{name}: dose response at the best layer, test questions — mean logit difference (share where the "
            "matching letter wins; share whose preferred letter differs from m = 0)",
        )
        _control_tables(run, cfg, name, a)
        _model_figures(run, cfg, name, a)
        run.log_metrics(**{name: {b: _behaviour_metrics(cfg, a, b, s) for b, s in a.summaries.items()}})
    run.save_figure(
        plots.caa_effect_heatmap({n: a.summaries for n, a in res.items()}, cfg.models, cfg.behaviors),
        "effect_sizes.png",
        "Paired d_z per behaviour × model at the best layer, and the shift's behaviour and letter parts",
    )


def _ci3(x: tuple[float, float, float]) -> str:
    return "undef." if np.isnan(x[0]) else f"{x[0]:+.2f} [{x[1]:+.2f}, {x[2]:+.2f}]"


def _control_row(b: str, c) -> list[str]:
    v = c.vs_control
    row = [b, f"L{c.layer} ({c.role})", f"{c.m:+g}", _undef(c.relative, ".3f")]
    if v is None:
        row += ["-", "-", "-"]
    else:
        row += [
            f"{v.effect:+.2f}",
            f"{v.control_mean:+.2f} ± {_undef(v.control_sd, '.2f')}",
            f"{v.difference:+.2f} [{v.ci[0]:+.2f}, {v.ci[1]:+.2f}]",
        ]
    row += [f"{c.changed:.2f} / {_undef(c.changed_control, '.2f')}", _ci3(c.behaviour), _ci3(c.letter)]
    if c.all_positions is not None:
        e = c.all_positions
        row += [f"{e.mean:+.2f} [{e.ci_low:+.2f}, {e.ci_high:+.2f}]; {c.all_positions_changed:.2f} changed"]
        row += [f"{_ci3(c.all_positions_split[0])} / {_ci3(c.all_positions_split[1])}"]
    else:
        row += ["-", "-"]
    return row


def _control_tables(run: Run, cfg: CAAConfig, name: str, a: CAAModelAnalysis) -> None:
    if not a.controls:
        return
    rows = [_control_row(b, c) for b, cs in a.controls.items() for c in cs]
    run.report.add_table(
        [
            "behaviour",
            "layer",
            "m",
            "relative dose",
            "vector: shift from m=0",
            f"random directions, same norm (n={cfg.n_controls})",
            "vector − control [95% CI]",
            "changed: vector / control",
            "behaviour part [95% CI]",
            "letter part [95% CI]",
            "vector at every position after the instruction: shift; changed",
            "its behaviour / letter part",
        ],
        rows,
        caption=f"{name}: the vector at the answer's '(' against random directions of its norm at the same "
        "multiplier, on all A/B test questions, at the best layer and at the layer where letters move most (both "
        "chosen on the held-out generate-split questions). Shift = change of logit(matching) − logit(other) from "
        "m = 0; behaviour / letter parts with bootstrap CIs resampling within letter groups; 'changed' = share "
        "of questions whose preferred letter differs from m = 0",
    )
    rows = [
        [
            b,
            str(k.n),
            f"{k.follows_content.mean:.2f} [{k.follows_content.ci_low:.2f}, {k.follows_content.ci_high:.2f}]",
            f"{k.prefers_a:.2f} / {k.prefers_a_swapped:.2f}",
            "met" if k.follows_content.ci_low > 0.5 else "NOT met",
        ]
        for b, k in a.content.items()
    ]
    run.report.add_table(
        [
            "behaviour",
            "test questions",
            "answer follows the content",
            "prefers (A): original / swapped",
            "precondition",
        ],
        rows,
        caption=f"{name}: unsteered content check — the options' texts swapped between (A) and (B). A model that "
        "reads the options prefers the same content both ways (1.0); one that answers by letter follows the "
        "content on none (0.0); chance is 0.5. The precondition for reading a shift as behaviour: CI above 0.5",
    )


def _model_figures(run: Run, cfg: CAAConfig, name: str, a: CAAModelAnalysis) -> None:
    slug = file_slug(name)
    if a.controls:
        run.save_figure(
            plots.caa_controls(name, a.controls),
            f"controls_{slug}.png",
            f"{name}: the vector's shift at each behaviour's best layer against random directions of its norm "
            "(dotted: mean ± SD over the controls) and the vector at every position after the instruction (dashed)",
        )
    run.save_figure(
        plots.caa_dose_response(name, list(a.doses.values()), cfg.multipliers),
        f"doses_{slug}.png",
        f"{name}: dose response at each behaviour's best layer (test questions) against the relative dose m·‖v‖ / "
        "mean residual norm: share where the matching letter wins (—) and share changed from m = 0 (- -)",
    )
    run.save_figure(
        plots.caa_violins(name, a.sweeps, a.summaries, cfg.multipliers),
        f"violins_{slug}.png",
        f"{name}: per-question logit differences by multiplier",
    )
    run.save_figure(
        plots.caa_layer_curves(name, a.sweeps, a.summaries),
        f"layers_{slug}.png",
        f"{name}: logit vs generation delta by layer" if cfg.generation.enabled else f"{name}: logit delta by layer",
    )


def _behaviour_metrics(cfg: CAAConfig, a: CAAModelAnalysis, b: str, s) -> dict:
    dose = a.doses[b]
    return {
        "best_layer": s.best_layer,
        "best_fraction": s.best_fraction,
        "delta": s.delta,
        "d": vars(s.d),
        "held_out": {
            "delta_test": vars(s.selection.test),
            "optimism_gap": s.selection.optimism_gap,
            "n_selection": s.selection.n_selection,
            "n_test": s.selection.n_test,
            "best_on_test_layer": s.selection.best_on_test[0],
            "best_on_test_delta": s.selection.best_on_test[1],
        },
        "dose": {
            "multipliers": cfg.multipliers,
            "relative": dose.relative,
            "share_matching": dose.shares,
            "changed": dose.changed,
            "mean_ld": dose.means,
        },
        "gen_delta": s.gen_delta,
        "gen_corr": vars(s.gen_corr) if s.gen_corr is not None else None,
        "shift_pm1_behaviour_letter": s.split,
        "examples": a.sweeps[b].gen_examples,
        "controls": [_control_metrics(c) for c in a.controls.get(b, [])],
        "content_check": None
        if b not in a.content
        else vars(a.content[b]) | {"follows_content": vars(a.content[b].follows_content)},
    }


def _control_metrics(c) -> dict:
    out = {k: v for k, v in vars(c).items() if k not in ("vs_control", "all_positions")}
    out["vs_control"] = None if c.vs_control is None else vars(c.vs_control)
    out["all_positions"] = None if c.all_positions is None else vars(c.all_positions)
    return out


def headline(metrics: dict, config: dict) -> list[dict]:
    """Per model and behaviour: the held-out delta and d_z at the chosen layer, the content check,
    and at the widest multiplier the vector against random directions of its norm."""
    from interp.results_table import est

    rows = []
    for model, per_b in metrics.items():
        for b, m in per_b.items():
            held = m.get("held_out", {})
            ctrl = [c for c in m.get("controls", []) if c.get("role") == "best layer"]
            wide = max(ctrl, key=lambda c: c["m"], default=None)
            content = m.get("content_check") or {}
            v = (wide or {}).get("vs_control") or {}
            rows.append(
                {
                    "model": model,
                    "behaviour": b,
                    "questions: selection / test": f"{held.get('n_selection')} / {held.get('n_test')}",
                    "layer (chosen on selection)": f"L{m.get('best_layer')}",
                    "delta m=±1 (test)": est(held.get("delta_test"), signed=True),
                    "paired d_z": est(
                        m.get("d")
                        and {
                            "mean": m["d"]["d"],
                            "ci_low": m["d"]["ci_low"],
                            "ci_high": m["d"]["ci_high"],
                            "n": m["d"]["n_a"],
                        },
                        signed=True,
                    ),
                    "follows content unsteered": est(content.get("follows_content")),
                    "widest m: vector − random direction": "-"
                    if not v
                    else f"m={wide['m']:+g}: {v['difference']:+.2f} [{v['ci'][0]:+.2f}, {v['ci'][1]:+.2f}]",
                    "its letter part": "-" if wide is None else f"{wide['letter'][0]:+.2f}",
                }
            )
    return rows


STUDY = Study(
    "caa_behaviors",
    CAAConfig,
    cells=cells,
    analyse=analyse,
    report=report,
    check=check_settings,
    description="CAA across behaviours (seed 003): logit and generation metrics, dose response, layer choice held out",
    headline=headline,
)
