"""Matplotlib figures. Each function returns a Figure; the caller saves it (``Run.save_figure``).

The backend is not chosen here (a notebook keeps its own); experiment scripts get Agg from
:func:`interp.runner.main`. Sections: patching and lens figures, then one per study.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from interp.dola import summarise
from interp.stats import bootstrap_ci
from interp.transfer import best_layer


def layer_head_heatmap(values, title: str, cbar_label: str = "recovery", center_zero: bool = True):
    """``values [layer, head]`` as a heatmap, layers on the y axis; NaN cells are hatched grey."""
    v = np.asarray(values, dtype=float)
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * v.shape[1], 1.0 + 0.22 * v.shape[0]))
    lim = np.nanmax(np.abs(v)) if np.isfinite(v).any() else 1.0
    kw = dict(cmap="RdBu_r", vmin=-lim, vmax=lim) if center_zero else dict(cmap="viridis")
    ax.set_facecolor("0.85")
    im = ax.imshow(np.ma.masked_invalid(v), aspect="auto", origin="lower", **kw)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_xticks(range(v.shape[1]))
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, label=cbar_label)
    return fig


def lens_curves(layers: Sequence[int], curves: dict[str, tuple], title: str, ylabel: str = "probability"):
    """Lines with bands: ``curves[name] = (mean, low, high)`` per layer (like seed 001's Fig. 2)."""
    return layer_curves(layers, curves, title, ylabel, xlabel="layer (resid_post)")


def layer_curves(layers: Sequence[int], curves: dict[str, tuple], title: str, ylabel: str, xlabel: str = "layer"):
    """One line per entry with a confidence band: ``curves[name] = (mean, low, high)``.
    NaN (undefined) points leave gaps instead of being drawn as zero."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for name, (mean, low, high) in curves.items():
        (line,) = ax.plot(layers, mean, marker="o", ms=3, label=name)
        ax.fill_between(layers, low, high, color=line.get_color(), alpha=0.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def layer_pos_heatmap(values, pos_labels: Sequence[str], title: str, cbar_label: str = "recovery"):
    """``values [layer, pos]`` with the prompt's tokens on the x axis; NaN cells grey."""
    v = np.asarray(values, dtype=float)
    fig, ax = plt.subplots(figsize=(1.5 + 0.5 * v.shape[1], 1.2 + 0.2 * v.shape[0]))
    lim = np.nanmax(np.abs(v)) if np.isfinite(v).any() else 1.0
    ax.set_facecolor("0.85")
    im = ax.imshow(np.ma.masked_invalid(v), aspect="auto", origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_xticks(range(v.shape[1]))
    labels = [repr(t)[1:-1] for t in pos_labels] if len(pos_labels) == v.shape[1] else [str(i) for i in range(v.shape[1])]
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("layer")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, label=cbar_label)
    fig.tight_layout()
    return fig


def exact_vs_attribution(exact, attribution, labels: Sequence[str], title: str):
    """Scatter of exact against attribution-patching estimates, one colour per site, with the
    identity line and each site's Pearson r in the legend."""
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    lo, hi = np.inf, -np.inf
    for x, y, label in zip(exact, attribution, labels):
        x, y = np.asarray(x, float).ravel(), np.asarray(y, float).ravel()
        ok = np.isfinite(x) & np.isfinite(y)
        r = np.corrcoef(x[ok], y[ok])[0, 1] if ok.sum() > 2 else float("nan")
        ax.scatter(x[ok], y[ok], s=10, alpha=0.6, label=f"{label} (r={r:.2f}, n={int(ok.sum())})")
        if ok.any():
            lo, hi = min(lo, x[ok].min(), y[ok].min()), max(hi, x[ok].max(), y[ok].max())
    if np.isfinite(lo):
        ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8, ls="--")
    ax.set_xlabel("exact patching recovery")
    ax.set_ylabel("attribution patching estimate")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def bar_with_ci(labels: Sequence[str], means, lows, highs, title: str, ylabel: str):
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * len(labels)), 3.2))
    means, lows, highs = map(np.asarray, (means, lows, highs))
    ax.bar(labels, means, yerr=[means - lows, highs - means], capsize=3, color="tab:blue", alpha=0.8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", rotation=45)
    return fig


def grid(n: int, w: float, h: float, cols: int = 4):
    """Figure with ``n`` panels in rows of at most ``cols`` (seven in one row are unreadable);
    spare axes hidden. Returns (fig, list of the n axes)."""
    ncol = min(n, cols)
    nrow = -(-n // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(w * ncol, h * nrow), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _abs_max_floor(*arrays, floor: float = 0.5) -> float:
    """Largest finite |value|, at least ``floor``: a colour range floor (d = 0.5, "medium";
    0.5 logits), or a run where nothing moves paints d = 0.09 as dark as a real effect."""
    finite = np.abs(np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays]))
    finite = finite[np.isfinite(finite)]
    return max(finite.max(initial=0.0), floor)


# --------------------------------------------------------------------------- CAA behaviours (seed 003)


def caa_effect_heatmap(table: dict, models: list[str], behaviors: list[str]):
    """Cohen's d at the best layer, next to the +1 − (−1) shift split into its behaviour and
    letter parts: a d that comes from a push towards one letter (plus a letter-unbalanced test
    set) shows up as a letter part with no behaviour part. ``table[model][behaviour]`` is a
    :class:`interp.studies.caa_behaviors.BehaviorSummary`."""
    # a (model, behaviour) cell that failed is absent from the table: shown as "missing"
    get = lambda m, b, f: f(table[m][b]) if b in table.get(m, {}) else np.nan  # noqa: E731
    d = np.array([[get(m, b, lambda s: s.d.d) for m in models] for b in behaviors])
    beh = np.array([[get(m, b, lambda s: s.split[0]) for m in models] for b in behaviors])
    let = np.array([[get(m, b, lambda s: s.split[1]) for m in models] for b in behaviors])
    fig, axes = plt.subplots(1, 3, figsize=(3 * (2.0 + 1.6 * len(models)), 0.45 * len(behaviors) + 1.8))
    shift_lim = _abs_max_floor(beh, let)  # one scale for both parts of the shift, so they compare by colour
    panels = [(d, "Cohen's d (m=+1 vs m=−1)", _abs_max_floor(d)), (beh, "behaviour part of the shift (logits)", shift_lim),
              (let, "letter part of the shift (logits, + = towards A)", shift_lim)]  # fmt: skip
    for k, (ax, (vals, title, lim)) in enumerate(zip(axes, panels)):
        im = ax.imshow(vals, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        for (i, j), v in np.ndenumerate(vals):
            # white text on the saturated end of the map, or it disappears into dark red / blue
            colour = "white" if np.isfinite(v) and abs(v) > 0.6 * lim else "black"
            missing = behaviors[i] not in table.get(models[j], {})
            label = "missing" if missing else "undef." if np.isnan(v) else f"{v:+.2f}" + (f"\nL{table[models[j]][behaviors[i]].best_layer}" if k == 0 else "")
            ax.text(j, i, label, ha="center", va="center", fontsize=7, color=colour)
        ax.set_xticks(range(len(models)), models, fontsize=7)
        ax.set_yticks(range(len(behaviors)), behaviors if k == 0 else [], fontsize=8)
        ax.set_title(title, fontsize=8)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle("CAA at each behaviour's best layer: effect size, and the m=+1 vs m=−1 shift split by equal-weight letter groups", fontsize=9)
    fig.tight_layout()
    return fig


def caa_violins(name: str, sweeps: dict, summaries: dict, multipliers: list[float]):
    """Per-question logit differences at each behaviour's best layer, one violin per multiplier."""
    behaviors = list(sweeps)
    fig, axes = grid(len(behaviors), 3.0, 3.0)
    for ax, b in zip(axes, behaviors):
        r, s = sweeps[b], summaries[b]
        li = r.layers.index(s.best_layer)
        ax.violinplot([r.ld[li, mi] for mi in range(len(multipliers))], showmedians=True)
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_xticks(range(1, len(multipliers) + 1), [f"{m:+g}" for m in multipliers], fontsize=7)
        ax.set_title(f"{b}\n(L{s.best_layer})", fontsize=8)
        ax.set_xlabel("multiplier", fontsize=7)
    axes[0].set_ylabel("logit(matching) − logit(other)")
    fig.suptitle(f"{name}: per-question logit difference at each behaviour's best layer", fontsize=9)
    fig.tight_layout()
    return fig


def caa_layer_curves(name: str, sweeps: dict, summaries: dict):
    """Logit delta by layer, with the generation delta on a twin axis where it was scored."""
    behaviors = list(sweeps)
    fig, axes = grid(len(behaviors), 3.2, 2.8)
    for ax, b in zip(axes, behaviors):
        r, s = sweeps[b], summaries[b]
        ax.plot(r.layers, s.delta, color="C0", marker="o", ms=2, label="logit delta")
        ax.set_xlabel("layer", fontsize=7)
        ax.tick_params(labelsize=7)
        title = b
        if s.gen_delta is not None:
            ax2 = ax.twinx()
            ax2.plot(r.gen_layers, s.gen_delta, color="C3", marker="s", ms=2, label="generation delta")
            ax2.set_ylim(-1.05, 1.05)
            ax2.tick_params(labelsize=7, colors="C3")
            c = s.gen_corr
            title += f"\nr = {c.r:+.2f}" if c.defined else "\nr undefined"
        ax.set_title(title, fontsize=8)
        ax.axhline(0, color="0.5", lw=0.6)
    axes[0].set_ylabel("logit delta (m=+1 − m=−1)", color="C0", fontsize=8)
    with_gen = any(s.gen_delta is not None for s in summaries.values())
    fig.suptitle(f"{name}: logit delta (blue) vs generation delta p(matching | +1) − p(matching | −1) (red) by layer" if with_gen
                 else f"{name}: logit delta by layer (generation score off)", fontsize=9)  # fmt: skip
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- cross-template transfer (seed 000)


def caa_dose_response(name: str, rows: list, multipliers: list[float]):
    """Per behaviour (a :class:`~interp.studies.caa_behaviors.DoseRow`), the share of test
    questions where the matching letter wins (solid) and the share whose preferred letter
    changed from m = 0 (dashed) against the signed relative dose (m·‖v‖ / mean residual norm;
    the multiplier when the norms are not recorded)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    relative = all(r.relative is not None for r in rows)
    for i, r in enumerate(rows):
        x = np.asarray(r.relative if relative else multipliers)
        c = colours[i % len(colours)]
        ax.plot(x, r.shares, color=c, marker="o", ms=3, label=f"{r.behavior} (L{r.layer})")
        if r.changed is not None:
            ax.plot(x, r.changed, color=c, ls="--", lw=0.9)
    ax.set_xscale("symlog", linthresh=min((abs(v) for r in rows for v in (r.relative or multipliers) if v), default=1.0))
    ax.set_xlabel("relative dose (m·‖v‖ / mean residual norm)" if relative else "multiplier m")
    ax.set_ylabel("matching wins (—) / changed (- -)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    ax.set_title(f"{name}: dose response at the best layer (test questions)", fontsize=9)
    fig.tight_layout()
    return fig


def transfer_heatmaps(name: str, results: dict):
    """Transfer matrix [source template, target template] at each task's best layer (diagonal = IID)."""
    tasks = list(results)
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.9 * len(tasks), 3.6), squeeze=False, gridspec_kw={"wspace": 0.55})
    for ax, task in zip(axes[0], tasks):
        r = results[task]
        li = best_layer(r)
        m = r.transfer[li]
        im = ax.imshow(m, vmin=0, vmax=1, cmap="viridis")
        for (s, t), v in np.ndenumerate(m):
            ax.text(t, s, f"{v:.2f}"[1:] if v < 1 else "1", ha="center", va="center", fontsize=5, color="w" if v < 0.6 else "k")
        ax.set_xticks(range(len(r.kinds)), r.kinds, rotation=90, fontsize=6)
        ax.set_yticks(range(len(r.kinds)), r.kinds, fontsize=6)
        ax.set_title(f"{task} (layer {r.layers[li]})", fontsize=8)
        ax.set_xlabel("test template", fontsize=7)
    axes[0, 0].set_ylabel("vector from template", fontsize=7)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.7, label="steered accuracy")
    fig.suptitle(f"{name}: transfer accuracy at each task's best layer (diagonal = IID)", fontsize=9)
    return fig


def transfer_scatter(name: str, p, diag):
    """Cosine vs transfer of every template pair (:class:`interp.transfer.TransferPairs`), per-task
    and pooled least-squares lines; the title flags Simpson's paradox."""
    fig, ax = plt.subplots(figsize=(6.2, 4.4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, task in enumerate(dict.fromkeys(p.task)):
        sel = np.array([t == task for t in p.task])
        x, y = p.cos[sel], p.transfer[sel]
        c = colours[i % len(colours)]
        r = diag.pearson.by_task[task]
        ax.scatter(x, y, s=6, alpha=0.35, color=c, label=f"{task}: r = {r.r:+.2f}" if r.defined else f"{task}: r undefined")
        if np.ptp(x) > 0 and np.ptp(y) > 0:
            slope, icept = np.polyfit(x, y, 1)
            xs = np.linspace(x.min(), x.max(), 10)
            ax.plot(xs, slope * xs + icept, color=c, lw=1.5)
    pooled = diag.pearson.pooled
    if pooled.defined:
        slope, icept = np.polyfit(p.cos, p.transfer, 1)
        xs = np.linspace(p.cos.min(), p.cos.max(), 10)
        ax.plot(xs, slope * xs + icept, color="k", ls="--", lw=2, label=f"pooled: r = {pooled.r:+.2f}")
    ax.set_xlabel("cosine between the two templates' vectors (same layer)")
    ax.set_ylabel("transfer accuracy")
    flag = " — SIMPSON'S PARADOX" if diag.pearson.simpson_task.flagged else ""
    ax.set_title(f"{name}: cosine vs transfer, all layers and template pairs{flag}", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    return fig


def transfer_layer_curves(name: str, results: dict):
    """IID and transfer accuracy by layer per task, beside the unsteered zero-shot and ICL levels."""
    tasks = list(results)
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.3 * len(tasks), 2.8), squeeze=False, sharey=True)
    for ax, task in zip(axes[0], tasks):
        r = results[task]
        k = len(r.kinds)
        iid = np.array([np.diag(m) for m in r.transfer])  # [layer kind]
        off = np.array([m[~np.eye(k, dtype=bool)].mean() for m in r.transfer])
        ax.plot(r.layers, iid.mean(1), marker="o", ms=2, label="IID (mean over templates)")
        ax.fill_between(r.layers, iid.min(1), iid.max(1), alpha=0.15)
        ax.plot(r.layers, off, marker="o", ms=2, label="transfer (mean over pairs)")
        ax.axhline(np.mean([v.mean() for v in r.zero_shot.values()]), color="0.4", ls="--", lw=0.8, label="zero-shot, unsteered")
        ax.axhline(np.mean([v.mean() for v in r.icl.values()]), color="0.4", ls=":", lw=0.8, label="ICL (n_shots)")
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("layer")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("accuracy")
    axes[0, 0].legend(fontsize=6)
    fig.suptitle(f"{name}: steered accuracy by layer (band: range over templates)", fontsize=9)
    fig.tight_layout()
    return fig


def transfer_dose_response(name: str, by_extraction: dict[str, dict]):
    """Per task, validation accuracy (solid) and the share of predictions changed (dashed) vs
    dose at the task's best layer, one colour per extraction (``by_extraction[e][task]`` is a
    :class:`~interp.studies.fv_transfer.TransferResult`); grey: unsteered accuracy."""
    tasks = list(dict.fromkeys(t for results in by_extraction.values() for t in results))
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks), 2.9), squeeze=False, sharey=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, task in zip(axes[0], tasks):
        for i, (e, results) in enumerate(by_extraction.items()):
            r = results.get(task)
            if r is None or r.val_curve is None:
                continue
            li = best_layer(r)
            ax.plot(r.alphas, r.val_curve[:, li].mean(0), color=colours[i % len(colours)], marker="o", ms=2, label=f"{e} (L{r.layers[li]})")
            ax.plot(r.alphas, r.val_changed[:, li].mean(0), color=colours[i % len(colours)], ls="--", lw=0.9)
            ax.axhline(float(np.mean(r.val_unsteered)), color="0.5", lw=0.6)
        ax.set_xscale("log")
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("dose α")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    axes[0, 0].set_ylabel("accuracy (—) / changed (- -)")
    fig.suptitle(f"{name}: validation dose response at each task's best layer (mean over source templates)", fontsize=9)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- prompt pairs (seed 002 §3.2)


def prompt_pairs_curves(name: str, results: dict, adapters: list[str], n_train: list[int], draws: int, datasets: list[str] | None = None):
    """Seed 002 Fig. 4.1: one panel per metric vs number of fitting pairs, one line per adapter
    (95% CI band over held-out pairs), baseline dashed, positive reference dotted. Pooled over
    ``datasets`` (all by default); ``results[dataset]`` is a
    :class:`interp.studies.prompt_pairs.PromptPairsResult`."""
    from interp.studies.prompt_pairs import METRIC_TITLES, METRICS, mean_ci, per_pair

    datasets = datasets or list(results)
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4.3 * len(METRICS), 3.6))
    for ax, metric in zip(axes, METRICS):
        for i, a in enumerate(adapters):
            stats = [mean_ci(np.concatenate([per_pair(results[d].cells, a, n, metric, draws) for d in datasets])) for n in n_train]
            m, lo, hi = (np.array(x) for x in zip(*stats))
            ax.plot(n_train, m, marker="o", ms=3, color=f"C{i}", label=a.upper() if a != "loreft" else "LoReFT")
            ax.fill_between(n_train, lo, hi, color=f"C{i}", alpha=0.15)
        base = mean_ci(np.concatenate([np.asarray(results[d].base[metric], float) for d in datasets]))[0]
        ax.axhline(base, color="k", ls="--", lw=1, label="no adapter")
        if metric in ("target", "test"):
            ref = mean_ci(np.concatenate([results[d].reference[metric] for d in datasets]))[0]
            ax.axhline(ref, color="0.4", ls=":", lw=1, label="positive examples")
        ax.set_xscale("log", base=2)
        ax.set_xlim(min(n_train) / 1.4, max(n_train) * 1.4)  # also when every value is undefined (no line drawn)
        if not np.isfinite(base):
            ax.text(0.5, 0.5, "undefined\n(no target feature)" if metric == "target" else "undefined", transform=ax.transAxes, ha="center", color="0.4")
        ax.set_xlabel("fitting pairs")
        ax.set_title(METRIC_TITLES[metric], fontsize=9)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{name}: {', '.join(datasets)}", fontsize=9)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- DoLa, logit lens, apathy (seed 001 §3)


def dola_lens_apathy(name: str, probs: dict, apathy, n: int):
    """Logit lens (correct / incorrect / top-1 probability by layer, 95% CI) beside the
    min-max normalised apathy curves (seed 001 Figures 2 and 8)."""
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


def dola_length_bias(length_bias: list[float], per_model: dict):
    """TruthfulQA MC metrics of raw-logit scoring vs the constant added per token, beside the
    correct log-softmax scoring (dashed)."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharex=True)
    for ax, key in zip(axes, ["mc1", "mc2", "mc3"]):
        for name, metrics in per_model.items():
            est = [summarise(metrics[f"base_raw{c:+g}"][key]) for c in length_bias]
            (line,) = ax.plot(length_bias, [100 * e.mean for e in est], marker="o", ms=3, label=f"{name} raw logits + c")
            ax.fill_between(length_bias, [100 * e.ci_low for e in est], [100 * e.ci_high for e in est], color=line.get_color(), alpha=0.2)
            ax.axhline(100 * metrics["base"][key].mean(), color=line.get_color(), ls="--", lw=1, label=f"{name} log-softmax")
        ax.set(xlabel="constant c added per token", ylabel=f"{key.upper()} (%)", title=key.upper())
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Length bias: TruthfulQA scored with raw logits (shifted to min 0) plus c per token — no DoLa at all", fontsize=10)
    fig.tight_layout()
    return fig


def dola_premature_layers(name: str, scored, layers_by_bucket: dict):
    """Share of answer tokens for which DoLa chose each candidate layer, per bucket."""
    fig, axes = plt.subplots(1, len(layers_by_bucket), figsize=(3.2 * len(layers_by_bucket), 2.8))
    for ax, (b, layers) in zip(np.atleast_1d(axes), layers_by_bucket.items()):
        chosen = np.concatenate([np.asarray(p[b]) for _, _, p in scored])
        ax.bar(layers, [np.mean(chosen == j) for j in layers], width=1.6)
        ax.set(title=f"bucket {b}", xlabel="premature layer", ylabel="share of tokens")
    fig.suptitle(f"{name}: premature layers DoLa chose on TruthfulQA answer tokens", fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- function and task vectors (seed 001 §4)


def fv_recovery_curves(name: str, per_task: dict, layers_by_task: dict):
    """Recovery of 5-shot accuracy by layer per task; ``per_task[task]`` maps method -> curve."""
    tasks = list(per_task)
    cols = min(4, len(tasks))
    rows = -(-len(tasks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False, sharey=True)
    for ax, task in zip(axes.flat, tasks):
        for method, c in per_task[task].items():
            ax.plot(layers_by_task[task], c, marker="o", ms=2, label=method)
        ax.axhline(1.0, color="0.5", ls="--", lw=0.8)
        ax.set_title(task, fontsize=9)
    return _finish_fv_grid(fig, axes, len(tasks), "accuracy / 5-shot accuracy", f"{name}: recovery of 5-shot accuracy by layer (zero-shot prompts)")


def _finish_fv_grid(fig, axes, n_used: int, ylabel: str, title: str):
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


def fv_patching_curves(name: str, results: dict):
    """Patching recovery (clean ICL → shuffled, last token) by layer per task, mean and 95% CI."""
    tasks = [t for t in results if results[t].patching is not None]
    cols = min(4, len(tasks))
    rows = -(-len(tasks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False, sharey=True)
    for ax, task in zip(axes.flat, tasks):
        n_undef = 0
        for site, rec in results[task].patching.items():
            est = [bootstrap_ci(row, n_boot=500) for row in rec]
            n_undef = est[0].n_undefined
            mean = [e.mean for e in est]
            (line,) = ax.plot(results[task].layers, mean, marker="o", ms=2, label=site)
            ax.fill_between(results[task].layers, [e.ci_low for e in est], [e.ci_high for e in est], color=line.get_color(), alpha=0.15)
        ax.set_title(f"{task} ({n_undef} of {rec.shape[1]} prompts undefined)" if n_undef else task, fontsize=9)
    return _finish_fv_grid(fig, axes, len(tasks), "recovery (clean ICL → shuffled)",
                        f"{name}: patching recovery at the last token by layer (mean, 95% CI; undefined prompts left out)")


# --------------------------------------------------------------------------- correctness direction (seed 004)


def correctness_accuracy(name: str, r, alphas: list[float]):
    """Test accuracy vs α per layer, 95% bootstrap CI (``r``: :class:`interp.studies.correctness.CorrectnessResult`)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for layer in r.layers:
        est = [bootstrap_ci(row.astype(float), n_boot=1000) for row in r.correct[layer]]
        (line,) = ax.plot(alphas, [e.mean for e in est], marker="o", ms=3, label=f"layer {layer}")
        ax.fill_between(alphas, [e.ci_low for e in est], [e.ci_high for e in est], color=line.get_color(), alpha=0.12)
    ax.set_xlabel("α (multiple of the correct − wrong direction)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{name}: {r.kind} accuracy under steering (95% bootstrap CI, n={r.n_test})", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def correctness_dose_response(name: str, r):
    """Accuracy (solid) and share of outputs changed from α = 0 (dashed) per layer against the
    signed relative dose: the bracketing grid (circles) and the raw α grid converted (crosses)."""
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    lin = min(abs(d) for d in r.relative_doses) if r.relative_doses else 0.01
    for i, layer in enumerate(r.layers):
        c = colours[i % len(colours)]
        order = np.argsort(r.relative_doses)
        x = np.asarray(r.relative_doses)[order]
        ax.plot(x, r.rel_correct[layer].mean(1)[order], color=c, marker="o", ms=3, label=f"layer {layer}")
        ax.plot(x, r.changed(layer, relative=True)[order], color=c, ls="--", lw=0.9)
        ax.plot(r.relative_of_raw(layer), r.correct[layer].mean(1), color=c, marker="x", ms=4, ls="none")
    ax.axhline(float(np.mean(r.test_base)), color="0.5", lw=0.6)
    ax.set_xscale("symlog", linthresh=lin)
    ax.set_xlabel("relative dose d (× mean residual norm)")
    ax.set_ylabel("accuracy (—) / changed (- -)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{name}: {r.kind} under steering, n={r.n_test} test problems", fontsize=9)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- toy steering (seed 002 §3.1)


def toy_steering_curves(rows: list[dict], n_pairs: list[int], adapters: list[str], m: int, repeats: int):
    """Steered-attribute accuracy and disturbance vs number of pairs per adapter (mean, 95% CI over repeats)."""
    from interp.toy.study import cell_estimate

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, key in zip(axes, ["accuracy", "disturbance"]):
        for a in ["none"] + adapters:
            est = [cell_estimate(rows, a, n, key) for n in n_pairs]
            mean = [e.mean for e in est]
            style = dict(ls="--", color="0.4") if a == "none" else dict(marker="o", ms=3)
            (line,) = ax.plot(n_pairs, mean, label=a, **style)
            ax.fill_between(n_pairs, [e.ci_low for e in est], [e.ci_high for e in est], color=line.get_color(), alpha=0.2)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("number of example pairs")
        ax.set_ylabel("steered-attribute accuracy" if key == "accuracy" else "disturbance of other attributes")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"m = {m}: mean and 95% CI over {repeats} repeats", fontsize=10)
    fig.tight_layout()
    return fig



def toy_dose_response(rows: list[dict], m: int, none_accuracy: float, control: float = 0.9):
    """Toy dose sweep: steered-attribute accuracy and disturbance against the relative push
    (mean over repeats per strength; one line per adapter and number of pairs)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    keys = sorted({(r["adapter"], r["n_pairs"]) for r in rows if "error" not in r})
    for a, n in keys:
        sub = [r for r in rows if r["adapter"] == a and r["n_pairs"] == n and "error" not in r]
        strengths = sorted({r["strength"] for r in sub})
        push = [np.mean([r["push"] for r in sub if r["strength"] == s]) for s in strengths]
        for ax, key in zip(axes, ["accuracy", "disturbance"]):
            ax.plot(push, [np.mean([r[key] for r in sub if r["strength"] == s]) for s in strengths], marker="o", ms=3,
                    ls="-" if a == "caa" else "--", label=f"{a}, N={n}")  # fmt: skip
    axes[0].axhline(none_accuracy, color="0.4", ls=":", label="unsteered")
    axes[0].axhline(control, color="tab:green", lw=0.8, ls=":", label=f"positive control ({control:.0%})")
    for ax, label in zip(axes, ["steered-attribute accuracy", "disturbance of other attributes"]):
        ax.set_xscale("log")
        ax.set_xlabel("relative dose ‖edit(a) − a‖ / ‖a‖ (test samples)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"m = {m}: dose response over the strength grid (mean over repeats)", fontsize=10)
    fig.tight_layout()
    return fig


def prompt_pairs_doses(name: str, rows: dict[str, list[tuple]]):
    """Prompt-pairs dose sweep, pooled over datasets: per adapter, (mean push, target-feature
    shift as a share of the positive examples' shift, content-word cosine, share of continuations
    changed) at each scale of its edit."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    titles = ["target SAE features: (steered − none) / (positive − none)", "cosine(first content word, target)", "continuations changed from unsteered"]
    for a, pts in rows.items():
        x = [p[0] for p in pts]
        for ax, i in zip(axes, (1, 2, 3)):
            ax.plot(x, [p[i] for p in pts], marker="o", ms=3, label=a)
    axes[0].axhline(1.0, color="tab:green", lw=0.8, ls=":", label="positive examples")
    axes[0].axhline(0.0, color="0.4", lw=0.8, ls="--", label="no adapter")
    for i, (ax, t) in enumerate(zip(axes, titles), start=1):
        if not any(np.isfinite(p[i]) and p[0] > 0 for pts in rows.values() for p in pts):  # e.g. no dataset has target features
            ax.text(0.5, 0.5, "undefined", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.set_xscale("log")
        ax.set_xlabel("relative dose ‖Δ‖ / ‖resid‖ (held-out pairs)")
        ax.set_title(t, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{name}: dose response, each adapter's edit scaled (largest n, first draw; pooled over datasets)", fontsize=10)
    fig.tight_layout()
    return fig
