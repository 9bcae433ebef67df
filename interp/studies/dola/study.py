"""DoLa on TruthfulQA (MC1/MC2/MC3) and FACTOR, with logit lens and apathy (seed 001 §3).

The study is :mod:`interp.studies.dola` around :class:`interp.dola.ContinuationScorer` (one
forward per item serves the baseline and every bucket × α × post-softmax setting); this script
scores both benchmarks per model (cached in chunks, resumable), then reports the best bucket (by
MC1 / accuracy at ``select_alpha``, as seed 001 chooses it), the α sweep on that bucket, the
length-bias demonstration (raw logits plus a constant per token), and the logit lens beside the
apathy curves.

    interp run dola --config configs/dola.yaml
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import interp.studies.dola.figures as plots
from interp.cache import file_slug
from interp.data import load_factor, load_truthfulqa_mc
from interp.dola import TruthfulQAItem, candidate_layers, factor_item, mc_metrics, summarise, truthfulqa_primer
from interp.executor import Cell
from interp.runner import Run, RunConfig
from interp.selection import SelectionConfig, restrict, select, split_items
from interp.studies.dola.core import (
    DolaSettings,
    best_alpha,
    best_bucket,
    bucket_diagnostics,
    chunk_starts,
    item_subset,
    lens_and_apathy,
    per_item_metrics,
    score_chunk,
)
from interp.study import Study

MC = ("mc1", "mc2", "mc3")


@dataclass
class DolaConfig(DolaSettings):
    run: RunConfig = field(default_factory=RunConfig)
    models: list[str] = field(default_factory=lambda: ["smollm2-135m-instruct", "gemma-3-270m"])
    selection: SelectionConfig = field(
        default_factory=SelectionConfig
    )  # items that choose bucket and α; the rest report


def _fmt(values, scale: float = 100.0) -> str:
    e = summarise(values)
    return "undefined" if e.n == 0 else f"{scale * e.mean:.1f} [{scale * e.ci_low:.1f}, {scale * e.ci_high:.1f}]"


def _delta(a, b) -> str:
    """Paired difference b - a per item, mean and bootstrap CI (percentage points)."""
    e = summarise(b - a)
    return "undefined" if e.n == 0 else f"{100 * e.mean:+.1f} [{100 * e.ci_low:+.1f}, {100 * e.ci_high:+.1f}]"


def _intro(cfg: DolaConfig, nq: tuple[int, int], nf: tuple[int, int]) -> str:
    sub = lambda n, seed: "" if n[0] == n[1] else f", seeded subset (seed {seed})"  # noqa: E731
    return (
        f"DoLa vs baseline on TruthfulQA {cfg.truthfulqa_version} MC ({nq[0]} of {nq[1]} "
        f"questions{sub(nq, cfg.truthfulqa.seed)}; "
        f"{cfg.truthfulqa_shots}-shot QA primer) and FACTOR {cfg.factor_split} ({nf[0]} of {nf[1]} "
        f"items{sub(nf, cfg.factor.seed)}). "
        "Answer score = sum over its tokens. **Base** = log-softmax of the final layer (correct scoring); **DoLa** = "
        "log-softmax of "
        "log q_N − log q_M over the plausible set (post-softmax, the paper's equation; the default: it is a "
        "distribution over the tokens DoLa "
        "may pick); **DoLa, vocabulary normaliser** = the DoLa reference code's lm_score (log-softmax over the whole "
        "vocabulary, then "
        "implausible tokens set to −1000; seed 001's numbers follow it), scored in the same forward; **DoLa w/o "
        "softmax** and **raw logits** = "
        f"the un-normalised sums seed 001 shows to carry a length bias. Buckets {cfg.buckets} (even layers, "
        "hidden-state "
        f"numbering, 0 = embeddings); α ∈ {cfg.alphas}. Bucket (by MC1 / FACTOR accuracy at α = {cfg.select_alpha}) "
        "and then α on "
        "that bucket are chosen as in seed 001, but **held out**: on a seeded selection part of the items "
        f"({1 - cfg.selection.test_fraction:.0%}, "
        f"seed {cfg.selection.seed}), reported on the rest (first table). The per-bucket and α-sweep tables and the "
        "'seed 001 procedure' "
        "columns choose on all items, as the seed does — labelled best-on-test, an optimistic upper bound. Numbers "
        "are % with 95% "
        f"bootstrap CIs over items."
    )


def held_out(cfg: DolaConfig, m: dict, key: str) -> tuple[str, float, object, object]:
    """Seed 001's choice (bucket at ``select_alpha``, then α on it) made on the selection items:
    (bucket, α, Selection of α on that bucket (its test estimate and optimism gap), split)."""
    split = split_items(len(m["base"][key]), cfg.selection.test_fraction, cfg.selection.seed)
    bucket = select({b: m[f"dola|{b}|{cfg.select_alpha:g}"][key] for b in cfg.buckets}, split).config
    sel = select({a: m[f"dola|{bucket}|{a:g}"][key] for a in cfg.alphas}, split)
    return bucket, sel.config, sel, split


def _held_out_row(cfg: DolaConfig, name: str, bench: str, m: dict, key: str) -> tuple[list[str], dict]:
    """The HEADLINE row and its metrics.json entry, from one held-out choice."""
    bucket, alpha, sel, split = held_out(cfg, m, key)
    test = restrict(m, split.test)
    v = f"dola|{bucket}|{alpha:g}"
    tb = best_bucket(cfg, test, key)
    ta = best_alpha(cfg, test, tb, key)
    row = [
        name,
        bench,
        f"{len(split.selection)} / {len(split.test)}",
        f"{bucket}, α={alpha:g}",
        _fmt(test["base"][key]),
        _fmt(test[v][key]),
        _delta(test["base"][key], test[v][key]),
        f"{100 * sel.optimism_gap:+.1f}",
        f"{_fmt(test[f'dola|{tb}|{ta:g}'][key])} ({tb}, α={ta:g})",
    ]
    entry = {
        "bucket": bucket,
        "alpha": alpha,
        "n_selection": len(split.selection),
        "n_test": len(split.test),
        "test": vars(sel.test),
        "test_base": vars(summarise(test["base"][key])),
        "optimism_gap": sel.optimism_gap,
        "selection_score": sel.selection_score,
    }
    return row, entry


# The arms compared with the baseline on the held-out items. Seed 001's procedure picks the
# bucket at ``select_alpha`` and then α; the α = 0 arms are fixed in advance (pre-registered):
# α = 0 without post-softmax is the DoLa reference code's TruthfulQA-MC setting, and post-softmax
# is the paper's equation at the same α. Only their bucket is chosen, on the selection items.
ARMS = {
    "seed 001 choice (bucket at select_alpha, then α)": ("dola", None),
    "α = 0, no post-softmax (reference code's MC setting; pre-registered)": ("dola_raw", 0.0),
    "α = 0, post-softmax (pre-registered)": ("dola", 0.0),
}


def arm_choice(cfg: DolaConfig, m: dict, key: str, arm: str, split) -> tuple[str, float]:
    """(bucket, α) of one arm, chosen on ``split.selection`` by ``key``."""
    prefix, alpha = ARMS[arm]
    if alpha is None:
        bucket, alpha, _, _ = held_out(cfg, m, key)
        return bucket, alpha
    sel = select({b: m[f"{prefix}|{b}|{alpha:g}"][key] for b in cfg.buckets}, split)
    return sel.config, alpha


def arm_rows(cfg: DolaConfig, name: str, bench: str, m: dict, keys: tuple[str, ...]) -> tuple[list, dict]:
    """Per arm: the held-out paired Δ (test items) of every metric in ``keys`` against the baseline."""
    split = split_items(len(m["base"][keys[0]]), cfg.selection.test_fraction, cfg.selection.seed)
    test = restrict(m, split.test)
    rows, entry = [], {}
    for arm, (prefix, _) in ARMS.items():
        bucket, alpha = arm_choice(cfg, m, keys[0], arm, split)
        v = f"{prefix}|{bucket}|{alpha:g}"
        rows.append([name, bench, arm, f"{bucket}, α={alpha:g}", *[_delta(test["base"][k], test[v][k]) for k in keys]])
        entry[arm] = {
            "variant": v,
            "n_test": len(split.test),
            "base": {k: vars(summarise(test["base"][k])) for k in keys},
            "dola": {k: vars(summarise(test[v][k])) for k in keys},
            "delta": {k: vars(summarise(test[v][k] - test["base"][k])) for k in keys},
        }
    return rows, entry


def masked_shares(cfg: DolaConfig, scored, items) -> dict[str, dict[str, float]]:
    """Per α > 0: the share of answer tokens outside the plausible set (scored −1000), over the
    true and the false options separately, and the share of options with at least one such token."""
    out = {}
    for a in [a for a in cfg.alphas if a > 0]:
        tok = {True: [0.0, 0.0], False: [0.0, 0.0]}
        opts_any = []
        for (scores, n_tokens, _), it in zip(scored, items):
            masked = np.asarray(scores[("masked", a)])
            for lab, n_m, n_t in zip(it.labels, masked, n_tokens):
                tok[bool(lab)][0] += n_m
                tok[bool(lab)][1] += n_t
            opts_any += list(masked > 0)
        share = lambda c: c[0] / c[1] if c[1] else float("nan")  # noqa: E731
        out[f"{a:g}"] = {
            "true_tokens": share(tok[True]),
            "false_tokens": share(tok[False]),
            "all_tokens": share([tok[True][0] + tok[False][0], tok[True][1] + tok[False][1]]),
            "options_with_masked_token": float(np.mean(opts_any)) if opts_any else float("nan"),
        }
    return out


def _truthfulqa_tables(run: Run, cfg: DolaConfig, name: str, tq: dict, layers_by_bucket: dict, n_layers: int) -> list:
    bb = best_bucket(cfg, tq, "mc1")
    ba = best_alpha(cfg, tq, bb, "mc1")
    rows = [["base", "-", *[_fmt(tq["base"][k]) for k in MC]]]
    rows += [
        [f"DoLa {b}", f"{layers_by_bucket[b]}", *[_fmt(tq[f"dola|{b}|{cfg.select_alpha:g}"][k]) for k in MC]]
        for b in cfg.buckets
    ]
    run.report.add_table(
        ["scoring", "candidate layers", "MC1", "MC2", "MC3"],
        rows,
        caption=f"{name} ({n_layers} layers): TruthfulQA by bucket at α = {cfg.select_alpha} (seed 001 Tables 4/5; all "
        "items)",
    )
    rows = [[f"{a:g}", *[_fmt(tq[f"dola|{bb}|{a:g}"][k]) for k in MC]] for a in cfg.alphas]
    run.report.add_table(
        ["α", "MC1", "MC2", "MC3"],
        rows,
        caption=f"{name}: TruthfulQA α sweep on bucket {bb} (seed 001 Table 6; bucket chosen on all items, labelled "
        "best-on-test)",
    )
    best = [
        name,
        f"{bb}, α={ba:g}",
        *[f"{_fmt(tq['base'][k])} → {_fmt(tq[f'dola|{bb}|{ba:g}'][k])}" for k in MC],
        *[_delta(tq["base"][k], tq[f"dola|{bb}|{ba:g}"][k]) for k in MC],
    ]
    bias = [
        name,
        *[
            _fmt(tq[v][k])
            for v in ("base", f"dola|{bb}|{ba:g}", f"dola_raw|{bb}|{ba:g}", f"base_raw{max(cfg.length_bias):+g}")
            for k in MC
        ],
    ]
    return [best, bias, (bb, ba)]


def _factor_table(run: Run, cfg: DolaConfig, name: str, fa: dict, layers_by_bucket: dict) -> tuple[list, tuple]:
    fb = best_bucket(cfg, fa, "acc")
    fal = best_alpha(cfg, fa, fb, "acc")
    rows = [["base", "-", _fmt(fa["base"]["acc"])]]
    rows += [
        [f"DoLa {b}", f"{layers_by_bucket[b]}", _fmt(fa[f"dola|{b}|{cfg.select_alpha:g}"]["acc"])] for b in cfg.buckets
    ]
    rows += [[f"DoLa {fb}, α={a:g}", "", _fmt(fa[f"dola|{fb}|{a:g}"]["acc"])] for a in cfg.alphas]
    run.report.add_table(
        ["scoring", "candidate layers", "accuracy"],
        rows,
        caption=f"{name}: FACTOR {cfg.factor_split} by bucket at α = {cfg.select_alpha}, then α on bucket {fb} (seed "
        "001 Tables 8-10)",
    )
    row = [
        name,
        f"{fb}, α={fal:g}",
        _fmt(fa["base"]["acc"]),
        _fmt(fa[f"dola|{fb}|{fal:g}"]["acc"]),
        _delta(fa["base"]["acc"], fa[f"dola|{fb}|{fal:g}"]["acc"]),
        _fmt(fa[f"dola_raw|{fb}|{fal:g}"]["acc"]),
    ]
    return row, (fb, fal)


def _normalisation_and_buckets(
    run: Run, cfg: DolaConfig, name: str, tq: dict, fa: dict, tq_scored, layers_by_bucket: dict
) -> dict:
    a = cfg.select_alpha
    rows = [
        [
            b,
            *[f"{_fmt(tq[f'dola|{b}|{a:g}'][k])} / {_fmt(tq[f'dola_vocab|{b}|{a:g}'][k])}" for k in MC],
            f"{_fmt(fa[f'dola|{b}|{a:g}']['acc'])} / {_fmt(fa[f'dola_vocab|{b}|{a:g}']['acc'])}",
        ]
        for b in cfg.buckets
    ]
    run.report.add_table(
        ["bucket", "MC1: plausible set / vocabulary", "MC2", "MC3", "FACTOR"],
        rows,
        caption=f"{name}: the two post-softmax normalisers at α = {a} (default: plausible set)",
    )
    diag = bucket_diagnostics(tq_scored, layers_by_bucket)
    rows = [
        [
            b,
            f"{d.layers}",
            ", ".join(f"L{j}: {sh:.0%}" for j, sh in sorted(d.shares.items(), key=lambda x: -x[1])[:3]),
            "DEGENERATE (one layer > 90%)" if d.degenerate else "no",
            ", ".join(d.same_scores_as) or "-",
            ", ".join(f"{o} ({a:.0%})" for o, a in d.same_choice_as.items()) or "-",
        ]
        for b, d in diag.items()
    ]
    run.report.add_table(
        [
            "bucket",
            "candidate layers",
            "chosen for (top 3)",
            "degenerate",
            "same scores as",
            "same layer as (share of tokens ≥ 90%)",
        ],
        rows,
        caption=f"{name}: premature-layer choices on TruthfulQA answer tokens; a degenerate bucket is one setting, "
        "and buckets with equal scores are one setting counted twice in the bucket search",
    )
    return diag


@dataclass
class DolaData:
    questions: list
    factor: list
    q_idx: list[int]
    f_idx: list[int]
    tq_items: list
    f_items: list


def _data(cfg: DolaConfig) -> DolaData:
    questions, factor = load_truthfulqa_mc(cfg.truthfulqa_version), load_factor(cfg.factor_split)
    q_idx, f_idx = item_subset(len(questions), cfg.truthfulqa), item_subset(len(factor), cfg.factor)
    tq_items, f_items = (
        [TruthfulQAItem.from_question(questions[i]) for i in q_idx],
        [factor_item(factor[i]) for i in f_idx],
    )
    return DolaData(questions, factor, q_idx, f_idx, tq_items, f_items)


def cells(cfg: DolaConfig, done: dict) -> list[Cell]:
    """Per model: TruthfulQA and FACTOR chunks (one forward per item, every bucket × α) and the
    lens. The items themselves are the cells' arguments, so their content is in the keys."""
    d, out, primer = _data(cfg), [], truthfulqa_primer(cfg.truthfulqa_shots)
    common = (cfg.buckets, cfg.alphas)
    for name in cfg.models:
        for s in chunk_starts(len(d.tq_items), cfg.chunk):
            part = [t.item for t in d.tq_items[s : s + cfg.chunk]]
            out.append(Cell(f"{name}/truthfulqa/{s}", name, score_chunk, (part, *common, primer, cfg.truncate_context)))
        for s in chunk_starts(len(d.f_items), cfg.chunk):
            part = d.f_items[s : s + cfg.chunk]
            out.append(Cell(f"{name}/factor/{s}", name, score_chunk, (part, *common, "", cfg.truncate_context)))
        lens_args = ([d.questions[i] for i in d.q_idx], cfg.lens_questions, primer)
        out.append(Cell(f"{name}/lens", name, lens_and_apathy, lens_args))
    return out


def _scored(done: dict, prefix: str, n_items: int, chunk: int) -> list[tuple] | None:
    """A dataset's per-item scores in order, or None when a chunk failed."""
    parts = [done.get(f"{prefix}/{s}") for s in chunk_starts(n_items, chunk)]
    return None if any(p is None for p in parts) else [x for p in parts for x in p]


@dataclass
class DolaModelAnalysis:
    tq: dict  # variant -> metric -> [item] (TruthfulQA)
    fa: dict  # variant -> {"acc": [item]} (FACTOR)
    tq_scored: list  # per item: (scores, n_tokens, premature layers)
    f_scored: list  # the same for FACTOR
    lens: object  # LensApathy
    layers_by_bucket: dict[str, list[int]]


def analyse(cfg: DolaConfig, done: dict) -> dict[str, DolaModelAnalysis]:
    """Per model: every variant's per-item TruthfulQA MC1/2/3 and FACTOR accuracy (models with a
    failed chunk are left out and listed at the end of the report)."""
    d, out = _data(cfg), {}
    for name in cfg.models:
        tq_scored = _scored(done, f"{name}/truthfulqa", len(d.tq_items), cfg.chunk)
        f_scored = _scored(done, f"{name}/factor", len(d.f_items), cfg.chunk)
        la = done.get(f"{name}/lens")
        if tq_scored is None or f_scored is None or la is None:
            continue
        tq = per_item_metrics(cfg, tq_scored, [t.metrics for t in d.tq_items])
        f_metrics = [lambda s, lab=it.labels: {"acc": mc_metrics(s, lab)["mc1"]} for it in d.f_items]
        fa = per_item_metrics(cfg, f_scored, f_metrics)
        out[name] = DolaModelAnalysis(
            tq, fa, tq_scored, f_scored, la, {b: candidate_layers(la.n_layers, b) for b in cfg.buckets}
        )
    return out


def report(cfg: DolaConfig, res: dict[str, DolaModelAnalysis], run: Run) -> None:
    d = _data(cfg)
    run.report.add_text(_intro(cfg, (len(d.q_idx), len(d.questions)), (len(d.f_idx), len(d.factor))))
    best_rows, f_rows, bias_rows, held, arms, masked_rows = [], [], [], [], [], []
    for name, a in res.items():
        tq, fa, la, layers_by_bucket = a.tq, a.fa, a.lens, a.layers_by_bucket
        (tq_row, tq_held), (f_row_h, f_held) = (
            _held_out_row(cfg, name, "TruthfulQA MC1", tq, "mc1"),
            _held_out_row(cfg, name, f"FACTOR {cfg.factor_split}", fa, "acc"),
        )
        held += [tq_row, f_row_h]
        (tq_arms, tq_arm_m), (f_arms, f_arm_m) = (
            arm_rows(cfg, name, "TruthfulQA", tq, MC),
            arm_rows(cfg, name, f"FACTOR {cfg.factor_split}", fa, ("acc",)),
        )
        arms += tq_arms + [[*r, "-", "-"] for r in f_arms]
        masked = {
            "truthfulqa": masked_shares(cfg, a.tq_scored, [t.item for t in d.tq_items]),
            "factor": masked_shares(cfg, a.f_scored, d.f_items),
        }
        masked_rows += _masked_rows(name, masked)
        best, bias, (bb, ba) = _truthfulqa_tables(run, cfg, name, tq, layers_by_bucket, la.n_layers)
        best_rows.append(best)
        bias_rows.append(bias)
        f_row, (fb, fal) = _factor_table(run, cfg, name, fa, layers_by_bucket)
        f_rows.append(f_row)
        diag = _normalisation_and_buckets(run, cfg, name, tq, fa, a.tq_scored, layers_by_bucket)
        n_lens = _lens_figures(run, name, a)
        metrics = {
            "truthfulqa": {v: {k: float(x.mean()) for k, x in m.items()} for v, m in tq.items()},
            "factor": {v: float(m["acc"].mean()) for v, m in fa.items()},
            "best_bucket_truthfulqa": [bb, ba],
            "best_bucket_factor": [fb, fal],
            "held_out": {"truthfulqa": tq_held, "factor": f_held},
            "held_out_arms": {"truthfulqa": tq_arm_m, "factor": f_arm_m},
            "masked_share": masked,
            "lens_prompts": n_lens,
            "lens_skipped": la.skipped,
            "buckets": {b: vars(x) for b, x in diag.items()},
        }
        run.log_metrics(**{name: metrics})
    _summary_tables(run, cfg, {n: a.tq for n, a in res.items()}, best_rows, f_rows, bias_rows, held)
    _arm_tables(run, cfg, arms, masked_rows)


def _masked_rows(name: str, masked: dict) -> list[list[str]]:
    return [
        [name, bench, a, *[f"{100 * v[k]:.1f}" for k in ("all_tokens", "true_tokens", "false_tokens")]]
        + [f"{100 * v['options_with_masked_token']:.1f}"]
        for bench, per_alpha in masked.items()
        for a, v in per_alpha.items()
    ]


def _arm_tables(run: Run, cfg: DolaConfig, arms: list, masked_rows: list) -> None:
    run.report.add_table(
        ["model", "benchmark", "arm", "chosen on selection", "Δ MC1 / accuracy (paired, test)", "Δ MC2", "Δ MC3"],
        arms,
        caption="Every DoLa arm against the baseline on the held-out test items: paired Δ (pp, 95% bootstrap CI). "
        "The α = 0 arms are fixed in advance (α = 0 without post-softmax is the DoLa reference code's TruthfulQA-MC "
        "setting); only their bucket is chosen, on the selection items, by MC1 / FACTOR accuracy",
    )
    run.report.add_table(
        [
            "model",
            "benchmark",
            "α",
            "answer tokens masked (%)",
            "of true answers",
            "of false answers",
            "options with ≥1",
        ],
        masked_rows,
        caption="Answer tokens outside DoLa's plausible set at each α > 0 (all items). A masked token scores −1000, "
        "so an MC score at that α counts masked tokens more than it compares log-probabilities",
    )


def _lens_figures(run: Run, name: str, a: DolaModelAnalysis) -> int:
    la, tq_scored, layers_by_bucket = a.lens, a.tq_scored, a.layers_by_bucket
    n_lens = next(iter(la.probs.values())).shape[1]
    run.save_figure(
        plots.dola_lens_apathy(name, la.probs, la.apathy, n_lens),
        f"lens_apathy_{file_slug(name)}.png",
        f"{name}: logit lens (mean, 95% CI; {la.skipped} questions skipped whose correct and incorrect answers "
        f"share a first token) beside the normalised apathy curves (seed 001 Figures 2 and 8)",
    )
    run.save_figure(
        plots.dola_premature_layers(name, tq_scored, layers_by_bucket),
        f"premature_{file_slug(name)}.png",
        f"{name}: which premature layer DoLa picked, per bucket",
    )
    return n_lens


_HELD_HEADERS = [
    "model",
    "benchmark",
    "items: selection / test",
    "chosen on selection",
    "base (test)",
    "DoLa (test)",
    "Δ (paired, test)",
    "optimism gap (pp)",
    "seed 001 procedure on the test items (labelled best-on-test)",
]
_BEST_HEADERS = ["model", "best DoLa", "MC1 base → DoLa", "MC2 base → DoLa", "MC3 base → DoLa", "Δ MC1 (paired)"]
_BEST_HEADERS += ["Δ MC2", "Δ MC3"]
_BIAS_HEADERS = ["model", "base MC1", "MC2", "MC3", "DoLa MC1", "MC2", "MC3", "DoLa w/o softmax MC1", "MC2", "MC3"]


def _summary_tables(run: Run, cfg: DolaConfig, per_model_tq: dict, best_rows, f_rows, bias_rows, held) -> None:
    run.report.add_table(
        _HELD_HEADERS,
        held,
        caption="HEADLINE — DoLa with bucket and α chosen on held-out selection items, reported on the test items",
    )
    run.report.add_table(
        _BEST_HEADERS,
        best_rows,
        caption="TruthfulQA: baseline vs best DoLa, bucket and α chosen on all items (seed 001 Table 1; labelled "
        "best-on-test)",
    )
    run.report.add_table(
        ["model", "best DoLa", "base", "DoLa", "Δ (paired)", "DoLa w/o softmax"],
        f_rows,
        caption=f"FACTOR {cfg.factor_split} accuracy: baseline vs best DoLa, chosen on all items (seed 001 Table 2; "
        "labelled best-on-test)",
    )
    c = max(cfg.length_bias)
    run.report.add_table(
        [*_BIAS_HEADERS, f"base raw logits +{c:g} MC1", "MC2", "MC3"],
        bias_rows,
        caption="Length bias (seed 001 Table 7): correct (log-softmax) scoring vs un-normalised sums",
    )
    run.report.add_table(
        ["model", *[f"c={c:+g}" for c in cfg.length_bias]],
        [[name, *[_fmt(m[f"base_raw{c:+g}"]["mc1"]) for c in cfg.length_bias]] for name, m in per_model_tq.items()],
        caption="MC1 of baseline raw-logit scoring (logits shifted to min 0) plus c per token: a constant moves the "
        "metric",
    )
    run.save_figure(
        plots.dola_length_bias(cfg.length_bias, per_model_tq),
        "length_bias.png",
        "TruthfulQA MC metrics of raw-logit scoring vs the constant added per token (dashed: correct log-softmax "
        "scoring)",
    )


def check(cfg: DolaConfig) -> None:
    import math

    from interp.dola import BUCKETS

    bad = [b for b in cfg.buckets if b not in BUCKETS]
    if bad or not cfg.buckets:
        raise ValueError(f"buckets={cfg.buckets!r}; allowed (one or more): {list(BUCKETS)}")
    if not cfg.alphas or any(not (math.isfinite(a) and 0 <= a < 1) for a in cfg.alphas):
        raise ValueError(f"alphas={cfg.alphas!r}; need one or more values in [0, 1)")
    if cfg.select_alpha not in cfg.alphas:
        raise ValueError(f"select_alpha={cfg.select_alpha}; must be one of alphas={cfg.alphas}")
    if 0.0 not in cfg.alphas:
        raise ValueError(
            f"alphas={cfg.alphas!r}; must include 0.0 (the pre-registered α = 0 arms, the reference code's MC setting)"
        )
    if cfg.chunk < 1 or cfg.lens_questions < 1:
        raise ValueError(f"chunk={cfg.chunk}, lens_questions={cfg.lens_questions}; both must be >= 1")


def headline(metrics: dict, config: dict) -> list[dict]:
    """Per model: the held-out paired Δ of every arm (TruthfulQA MC1/MC2, FACTOR) and the masked share."""
    from interp.results_table import est

    rows = []
    for model, m in metrics.items():
        held = m.get("held_out", {})
        tq, fa = held.get("truthfulqa", {}), held.get("factor", {})
        arms = m.get("held_out_arms", {})
        row = {
            "model": model,
            "items (TruthfulQA / FACTOR)": f"{tq.get('n_selection', 0) + tq.get('n_test', 0)} / "
            f"{fa.get('n_selection', 0) + fa.get('n_test', 0)}",
            "split": f"selection / test {tq.get('n_selection')} / {tq.get('n_test')} (seed "
            f"{config.get('selection', {}).get('seed', 0)})",
        }
        for arm, label in zip(ARMS, ("seed 001 choice", "α=0 plain (reference)", "α=0 post-softmax")):
            a_tq, a_fa = arms.get("truthfulqa", {}).get(arm), arms.get("factor", {}).get(arm)
            if a_tq is None:
                row[f"{label}: Δ MC1 / MC2 / FACTOR (pp)"] = "not in this report"
                continue
            row[f"{label}: Δ MC1 / MC2 / FACTOR (pp)"] = " / ".join(
                [
                    est(a_tq["delta"]["mc1"], 100, 1, True),
                    est(a_tq["delta"]["mc2"], 100, 1, True),
                    est(a_fa["delta"]["acc"], 100, 1, True),
                ]
            )
        masked = m.get("masked_share", {}).get("truthfulqa", {}).get(f"{config.get('select_alpha', 0.1):g}")
        row["TruthfulQA answer tokens masked at select_alpha"] = (
            "-" if masked is None else f"{masked['all_tokens']:.1%}"
        )
        rows.append(row)
    return rows


STUDY = Study(
    "dola",
    DolaConfig,
    cells=cells,
    analyse=analyse,
    report=report,
    check=check,
    description="DoLa on TruthfulQA MC and FACTOR (buckets, α, both normalisers, length bias), held out",
    headline=headline,
)
