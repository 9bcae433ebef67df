"""DoLa on TruthfulQA (MC1/MC2/MC3) and FACTOR, with logit lens and apathy (seed 001 §3).

For each model: score every TruthfulQA question's options after the 6-shot QA primer and every
FACTOR completion after its prefix, once per item, for the baseline and every DoLa bucket,
relative-top α and post-softmax setting (one forward per item serves them all). Then: the
best bucket (by MC1 / accuracy at ``select_alpha``, as seed 001 chooses it), the α sweep on
that bucket, the length-bias demonstration (raw logits plus a constant per token), and the
logit lens (correct / incorrect / top-1 token probability vs layer) beside the apathy curves.

    python -m experiments.dola --config configs/dola.yaml
"""

from __future__ import annotations

from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import interp  # noqa: E402
from interp.data import load_factor, load_truthfulqa_mc  # noqa: E402
from interp.dola import (  # noqa: E402
    ALPHAS, BUCKETS, ContinuationScorer, TruthfulQAItem, candidate_layers, factor_item,
    length_bias_scores, mc_metrics, summarise, truthfulqa_primer,
)  # fmt: skip
from interp.lens import apathy_curves, logit_lens  # noqa: E402
from interp.runner import Run, RunConfig, file_slug, main  # noqa: E402
from interp.stats import bootstrap_ci  # noqa: E402


@dataclass
class BenchConfig:
    n_items: int | None = None  # None: all; else a seeded random subset (stated in the report)
    seed: int = 0


@dataclass
class DolaConfig:
    run: RunConfig = field(default_factory=RunConfig)
    models: list[str] = field(default_factory=lambda: ["smollm2-135m-instruct", "gemma-3-270m"])
    truthfulqa_version: str = "v1"
    truthfulqa: BenchConfig = field(default_factory=BenchConfig)
    truthfulqa_shots: int = 6  # QA pairs of the standard primer put before each question
    factor_split: str = "news"
    factor: BenchConfig = field(default_factory=BenchConfig)
    buckets: list[str] = field(default_factory=lambda: list(BUCKETS))
    alphas: list[float] = field(default_factory=lambda: list(ALPHAS))
    select_alpha: float = 0.1  # α at which the best bucket is chosen (Chuang et al.'s value)
    length_bias: list[float] = field(default_factory=lambda: [-20.0, -10.0, -5.0, 0.0, 5.0, 10.0, 20.0])
    lens_questions: int = 200  # TruthfulQA questions for the logit-lens and apathy figures
    chunk: int = 25  # items per cached chunk (an interrupted run resumes from the last chunk)
    truncate_context: bool = False  # contexts longer than n_ctx: keep their last tokens (counted) instead of failing


def _subset(n_total: int, bench: BenchConfig) -> list[int]:
    if bench.n_items is None or bench.n_items >= n_total:
        return list(range(n_total))
    if bench.n_items < 1:
        raise ValueError(f"n_items={bench.n_items}; need at least 1 (or null for all)")
    return sorted(np.random.default_rng(bench.seed).choice(n_total, bench.n_items, replace=False).tolist())


def _score_chunks(run: Run, scorer: ContinuationScorer, items, step: str, key: dict, chunk: int, desc: str):
    from tqdm.auto import tqdm

    out = []
    starts = range(0, len(items), chunk)
    for s in tqdm(starts, desc=desc):
        part = items[s : s + chunk]
        res = run.cached(lambda: [(r.scores, r.n_tokens, r.premature) for r in scorer.score_all(part)],
                         step=step, start=s, n=len(part), **key)  # fmt: skip
        out += res
    return out


def _variants(cfg: DolaConfig, scores: dict, n_tokens: np.ndarray) -> dict[str, np.ndarray]:
    """Named score vectors for one item: baseline, raw-logit (+c), DoLa per bucket/α/softmax."""
    out = {"base": scores[("baseline",)], "base_raw": scores[("raw_logit",)]}
    for c in cfg.length_bias:
        out[f"base_raw{c:+g}"] = length_bias_scores(scores[("raw_logit",)], n_tokens, c)
    for b in cfg.buckets:
        for a in cfg.alphas:
            out[f"dola|{b}|{a:g}"] = scores[("dola", b, a, True)]
            out[f"dola_raw|{b}|{a:g}"] = scores[("dola", b, a, False)]
    return out


def _per_item_metrics(cfg: DolaConfig, scored, metric_fn) -> dict[str, dict[str, np.ndarray]]:
    """variant -> metric -> per-item values."""
    acc: dict[str, dict[str, list[float]]] = {}
    for (scores, n_tokens, _), fn in zip(scored, metric_fn):
        for name, s in _variants(cfg, scores, n_tokens).items():
            for k, v in fn(np.asarray(s)).items():
                acc.setdefault(name, {}).setdefault(k, []).append(v)
    return {n: {k: np.asarray(v) for k, v in d.items()} for n, d in acc.items()}


def _fmt(values: np.ndarray, scale: float = 100.0) -> str:
    e = summarise(values)
    return "undefined" if e.n == 0 else f"{scale * e.mean:.1f} [{scale * e.ci_low:.1f}, {scale * e.ci_high:.1f}]"


def _delta(a: np.ndarray, b: np.ndarray) -> str:
    """Paired difference b - a per item, mean and bootstrap CI (percentage points)."""
    e = summarise(np.asarray(b) - np.asarray(a))
    return "undefined" if e.n == 0 else f"{100 * e.mean:+.1f} [{100 * e.ci_low:+.1f}, {100 * e.ci_high:+.1f}]"


def _best_bucket(cfg: DolaConfig, metrics, key: str) -> str:
    return max(cfg.buckets, key=lambda b: metrics[f"dola|{b}|{cfg.select_alpha:g}"][key].mean())


def _best_alpha(cfg: DolaConfig, metrics, bucket: str, key: str) -> float:
    return max(cfg.alphas, key=lambda a: metrics[f"dola|{bucket}|{a:g}"][key].mean())


@torch.no_grad()
def _lens_and_apathy(model, questions, n: int, primer: str):
    """Logit lens at the answer position of the primed prompt: the first token of the MC1
    correct answer and of the first incorrect one (questions where the two share their first
    token are skipped and counted), with apathy at the same position."""
    prompts, correct, wrong = [], [], []
    skipped = 0
    for q in questions[:n]:
        opts = list(q.mc1_targets)
        c = model.to_tokens(" " + opts[0].strip(), prepend_bos=False)[0][0]
        w = model.to_tokens(" " + opts[1].strip(), prepend_bos=False)[0][0]
        if c == w:
            skipped += 1
            continue
        prompts.append(primer + f"Q: {q.question}\nA:")
        correct.append(int(c))
        wrong.append(int(w))
    probs = {"correct": [], "incorrect": [], "top-1": []}
    attn, mlp = [], []
    for s in range(0, len(prompts), 16):
        batch = interp.tokenize(model, prompts[s : s + 16])
        res = logit_lens(model, batch, {"correct": torch.tensor(correct[s : s + 16]), "incorrect": torch.tensor(wrong[s : s + 16])})
        probs["correct"].append(res.probs["correct"])
        probs["incorrect"].append(res.probs["incorrect"])
        probs["top-1"].append(res.top1_probs)
        ap = apathy_curves(model, batch)
        attn.append(ap.attn)
        mlp.append(ap.mlp)
    from interp.lens import ApathyResult

    return {k: torch.cat(v, 1).numpy() for k, v in probs.items()}, ApathyResult(torch.cat(attn, 1), torch.cat(mlp, 1)), skipped


def _lens_figure(name: str, probs: dict, apathy, n: int):
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 3.8))
    layers = np.arange(next(iter(probs.values())).shape[0])
    for label, p in probs.items():
        est = [bootstrap_ci(row, n_boot=1000) for row in p]
        (line,) = ax1.plot(layers, [e.mean for e in est], marker="o", ms=3, label=label)
        ax1.fill_between(layers, [e.ci_low for e in est], [e.ci_high for e in est], color=line.get_color(), alpha=0.2)
    ax1.set(xlabel="layer (resid_post)", ylabel="probability", title=f"{name}: logit lens, {n} TruthfulQA prompts")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=8)
    na, nm = apathy.normalised()
    ax2.plot(layers, na.numpy(), marker="o", ms=3, label="attention (resid_pre, attn_out)")
    ax2.plot(layers, nm.numpy(), marker="s", ms=3, label="MLP (resid_mid, mlp_out)")
    ax2.set(xlabel="layer", ylabel="apathy (min-max normalised)", title=f"{name}: apathy at the answer position")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _length_bias_figure(cfg: DolaConfig, per_model: dict):
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharex=True)
    for ax, key in zip(axes, ["mc1", "mc2", "mc3"]):
        for name, metrics in per_model.items():
            est = [summarise(metrics[f"base_raw{c:+g}"][key]) for c in cfg.length_bias]
            (line,) = ax.plot(cfg.length_bias, [100 * e.mean for e in est], marker="o", ms=3, label=f"{name} raw logits + c")
            ax.fill_between(cfg.length_bias, [100 * e.ci_low for e in est], [100 * e.ci_high for e in est], color=line.get_color(), alpha=0.2)
            ax.axhline(100 * metrics["base"][key].mean(), color=line.get_color(), ls="--", lw=1, label=f"{name} log-softmax")
        ax.set(xlabel="constant c added per token", ylabel=f"{key.upper()} (%)", title=key.upper())
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Length bias: TruthfulQA scored with raw logits (shifted to min 0) plus c per token — no DoLa at all", fontsize=10)
    fig.tight_layout()
    return fig


def _premature_figure(name: str, scored, layers_by_bucket: dict):
    fig, axes = plt.subplots(1, len(layers_by_bucket), figsize=(3.2 * len(layers_by_bucket), 2.8))
    for ax, (b, layers) in zip(np.atleast_1d(axes), layers_by_bucket.items()):
        chosen = np.concatenate([np.asarray(p[b]) for _, _, p in scored])
        ax.bar(layers, [np.mean(chosen == j) for j in layers], width=1.6)
        ax.set(title=f"bucket {b}", xlabel="premature layer", ylabel="share of tokens")
    fig.suptitle(f"{name}: premature layers DoLa chose on TruthfulQA answer tokens", fontsize=10)
    fig.tight_layout()
    return fig


def run(cfg: DolaConfig, run: Run) -> None:
    questions = load_truthfulqa_mc(cfg.truthfulqa_version)
    factor = load_factor(cfg.factor_split)
    q_idx, f_idx = _subset(len(questions), cfg.truthfulqa), _subset(len(factor), cfg.factor)
    tq_items = [TruthfulQAItem.from_question(questions[i]) for i in q_idx]
    f_items = [factor_item(factor[i]) for i in f_idx]
    run.report.add_text(
        f"DoLa vs baseline on TruthfulQA {cfg.truthfulqa_version} MC ({len(q_idx)} of {len(questions)} questions"
        f"{'' if len(q_idx) == len(questions) else f', seeded subset (seed {cfg.truthfulqa.seed})'}; {cfg.truthfulqa_shots}-shot QA primer) and "
        f"FACTOR {cfg.factor_split} ({len(f_idx)} of {len(factor)} items"
        f"{'' if len(f_idx) == len(factor) else f', seeded subset (seed {cfg.factor.seed})'}). Answer score = sum over its "
        f"tokens. **Base** = log-softmax of the final layer (correct scoring); **DoLa** = log-softmax of "
        f"log q_N − log q_M over the plausible set (post-softmax, correct); **DoLa w/o softmax** and **raw logits** = "
        f"the un-normalised sums seed 001 shows to carry a length bias. Buckets {cfg.buckets} (even layers, hidden-state "
        f"numbering, 0 = embeddings); α ∈ {cfg.alphas}. As in seed 001 the best bucket is chosen by MC1 (FACTOR: "
        f"accuracy) at α = {cfg.select_alpha} and the best α on that bucket — on the evaluation items themselves, so "
        f"'best DoLa' is an optimistic upper bound. Numbers are % with 95% bootstrap CIs over items."
    )
    per_model_tq, per_model_f, best_rows, f_rows, bias_rows = {}, {}, [], [], []
    for name in cfg.models:
        model = interp.load_model(name, device=run.device)
        L = model.cfg.n_layers
        scorer_key = dict(model=name, buckets=cfg.buckets, alphas=cfg.alphas)
        if not model.cfg.default_prepend_bos:
            # scores of models used without a BOS; earlier cache entries always had one
            scorer_key["bos"] = False
        layers_by_bucket = {b: candidate_layers(L, b) for b in cfg.buckets}
        scorer = ContinuationScorer(model, cfg.buckets, cfg.alphas, shared_prefix=truthfulqa_primer(cfg.truthfulqa_shots), truncate=cfg.truncate_context)
        tq_scored = _score_chunks(run, scorer, [t.item for t in tq_items], "dola.tfqa",
                                  scorer_key | dict(version=cfg.truthfulqa_version, idx=q_idx, shots=cfg.truthfulqa_shots), cfg.chunk, f"{name} TruthfulQA")  # fmt: skip
        scorer = ContinuationScorer(model, cfg.buckets, cfg.alphas, truncate=cfg.truncate_context)
        f_scored = _score_chunks(run, scorer, f_items, "dola.factor", scorer_key | dict(split=cfg.factor_split, idx=f_idx),
                                 cfg.chunk, f"{name} FACTOR")  # fmt: skip
        tq = _per_item_metrics(cfg, tq_scored, [t.metrics for t in tq_items])
        fa = _per_item_metrics(cfg, f_scored, [lambda s, lab=it.labels: {"acc": mc_metrics(s, lab)["mc1"]} for it in f_items])
        per_model_tq[name], per_model_f[name] = tq, fa

        # --- TruthfulQA: buckets at select_alpha, α on the best bucket, best vs base
        bb = _best_bucket(cfg, tq, "mc1")
        ba = _best_alpha(cfg, tq, bb, "mc1")
        rows = [["base", "-", *[_fmt(tq["base"][k]) for k in ("mc1", "mc2", "mc3")]]]
        rows += [[f"DoLa {b}", f"{layers_by_bucket[b]}", *[_fmt(tq[f"dola|{b}|{cfg.select_alpha:g}"][k]) for k in ("mc1", "mc2", "mc3")]] for b in cfg.buckets]
        run.report.add_table(["scoring", "candidate layers", "MC1", "MC2", "MC3"], rows,
                             caption=f"{name} ({L} layers): TruthfulQA by bucket at α = {cfg.select_alpha} (seed 001 Tables 4/5)")  # fmt: skip
        rows = [[f"{a:g}", *[_fmt(tq[f"dola|{bb}|{a:g}"][k]) for k in ("mc1", "mc2", "mc3")]] for a in cfg.alphas]
        run.report.add_table(["α", "MC1", "MC2", "MC3"], rows, caption=f"{name}: TruthfulQA α sweep on bucket {bb} (seed 001 Table 6)")
        best_rows.append([name, f"{bb}, α={ba:g}", *[f"{_fmt(tq['base'][k])} → {_fmt(tq[f'dola|{bb}|{ba:g}'][k])}" for k in ("mc1", "mc2", "mc3")],
                          *[_delta(tq["base"][k], tq[f"dola|{bb}|{ba:g}"][k]) for k in ("mc1", "mc2", "mc3")]])  # fmt: skip
        bias_rows.append([name, *[_fmt(tq["base"][k]) for k in ("mc1", "mc2", "mc3")],
                          *[_fmt(tq[f"dola|{bb}|{ba:g}"][k]) for k in ("mc1", "mc2", "mc3")],
                          *[_fmt(tq[f"dola_raw|{bb}|{ba:g}"][k]) for k in ("mc1", "mc2", "mc3")],
                          *[_fmt(tq[f"base_raw{max(cfg.length_bias):+g}"][k]) for k in ("mc1", "mc2", "mc3")]])  # fmt: skip

        # --- FACTOR
        fb = _best_bucket(cfg, fa, "acc")
        fal = _best_alpha(cfg, fa, fb, "acc")
        rows = [["base", "-", _fmt(fa["base"]["acc"])]]
        rows += [[f"DoLa {b}", f"{layers_by_bucket[b]}", _fmt(fa[f"dola|{b}|{cfg.select_alpha:g}"]["acc"])] for b in cfg.buckets]
        rows += [[f"DoLa {fb}, α={a:g}", "", _fmt(fa[f"dola|{fb}|{a:g}"]["acc"])] for a in cfg.alphas]
        run.report.add_table(["scoring", "candidate layers", "accuracy"], rows,
                             caption=f"{name}: FACTOR {cfg.factor_split} by bucket at α = {cfg.select_alpha}, then α on bucket {fb} (seed 001 Tables 8-10)")  # fmt: skip
        f_rows.append([name, f"{fb}, α={fal:g}", _fmt(fa["base"]["acc"]), _fmt(fa[f"dola|{fb}|{fal:g}"]["acc"]),
                       _delta(fa["base"]["acc"], fa[f"dola|{fb}|{fal:g}"]["acc"]), _fmt(fa[f"dola_raw|{fb}|{fal:g}"]["acc"])])  # fmt: skip

        # --- figures
        probs, ap, skipped = run.cached(lambda: _lens_and_apathy(model, [questions[i] for i in q_idx], cfg.lens_questions, truthfulqa_primer(cfg.truthfulqa_shots)),
                                        step="dola.lens", model=name, n=cfg.lens_questions, idx=q_idx, shots=cfg.truthfulqa_shots)  # fmt: skip
        n_lens = next(iter(probs.values())).shape[1]
        run.save_figure(_lens_figure(name, probs, ap, n_lens), f"lens_apathy_{file_slug(name)}.png",
                        f"{name}: logit lens (mean, 95% CI; {skipped} questions skipped whose correct and incorrect answers "
                        f"share a first token) beside the normalised apathy curves (seed 001 Figures 2 and 8)")  # fmt: skip
        run.save_figure(_premature_figure(name, tq_scored, layers_by_bucket), f"premature_{file_slug(name)}.png",
                        f"{name}: which premature layer DoLa picked, per bucket")  # fmt: skip
        run.log_metrics(**{name: {
            "truthfulqa": {v: {k: float(x.mean()) for k, x in d.items()} for v, d in tq.items()},
            "factor": {v: float(d["acc"].mean()) for v, d in fa.items()},
            "best_bucket_truthfulqa": [bb, ba], "best_bucket_factor": [fb, fal],
            "lens_prompts": n_lens, "lens_skipped": skipped,
        }})  # fmt: skip
        del model

    run.report.add_table(["model", "best DoLa", "MC1 base → DoLa", "MC2 base → DoLa", "MC3 base → DoLa", "Δ MC1 (paired)", "Δ MC2", "Δ MC3"], best_rows,
                         caption="TruthfulQA: baseline vs best DoLa (seed 001 Table 1)")  # fmt: skip
    run.report.add_table(["model", "best DoLa", "base", "DoLa", "Δ (paired)", "DoLa w/o softmax"], f_rows,
                         caption=f"FACTOR {cfg.factor_split} accuracy: baseline vs best DoLa (seed 001 Table 2)")  # fmt: skip
    c = max(cfg.length_bias)
    run.report.add_table(
        ["model", "base MC1", "MC2", "MC3", "DoLa MC1", "MC2", "MC3", "DoLa w/o softmax MC1", "MC2", "MC3",
         f"base raw logits +{c:g} MC1", "MC2", "MC3"], bias_rows,
        caption="Length bias (seed 001 Table 7): correct (log-softmax) scoring vs un-normalised sums",
    )  # fmt: skip
    rows = [[name, *[f"{c:+g}: {_fmt(m[f'base_raw{c:+g}']['mc1'])}" for c in cfg.length_bias]] for name, m in per_model_tq.items()]
    run.report.add_table(["model", *[f"c={c:+g}" for c in cfg.length_bias]], [[r[0], *[x.split(': ', 1)[1] for x in r[1:]]] for r in rows],
                         caption="MC1 of baseline raw-logit scoring (logits shifted to min 0) plus c per token: a constant moves the metric")  # fmt: skip
    run.save_figure(_length_bias_figure(cfg, per_model_tq), "length_bias.png",
                    "TruthfulQA MC metrics of raw-logit scoring vs the constant added per token (dashed: correct log-softmax scoring)")  # fmt: skip


if __name__ == "__main__":
    main("dola", DolaConfig, run)
