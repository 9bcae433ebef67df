"""Figures of the fv_transfer study, rendered from its typed results (generic pieces: :mod:`interp.plots`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from interp.transfer import best_layer


def transfer_heatmaps(name: str, results: dict):
    """Transfer matrix [source template, target template] at each task's best layer (diagonal = IID)."""
    tasks = list(results)
    fig, axes = plt.subplots(
        1, len(tasks), figsize=(3.9 * len(tasks), 3.6), squeeze=False, gridspec_kw={"wspace": 0.55}
    )
    for ax, task in zip(axes[0], tasks):
        r = results[task]
        li = best_layer(r)
        m = r.transfer[li]
        im = ax.imshow(m, vmin=0, vmax=1, cmap="viridis")
        for (s, t), v in np.ndenumerate(m):
            ax.text(
                t,
                s,
                f"{v:.2f}"[1:] if v < 1 else "1",
                ha="center",
                va="center",
                fontsize=5,
                color="w" if v < 0.6 else "k",
            )
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
        ax.scatter(
            x, y, s=6, alpha=0.35, color=c, label=f"{task}: r = {r.r:+.2f}" if r.defined else f"{task}: r undefined"
        )
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
        ax.axhline(
            np.mean([v.mean() for v in r.zero_shot.values()]),
            color="0.4",
            ls="--",
            lw=0.8,
            label="zero-shot, unsteered",
        )
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
            ax.plot(
                r.alphas,
                r.val_curve[:, li].mean(0),
                color=colours[i % len(colours)],
                marker="o",
                ms=2,
                label=f"{e} (L{r.layers[li]})",
            )
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
