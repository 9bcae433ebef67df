"""Figures of the prompt_pairs study, rendered from its typed results (generic pieces: :mod:`interp.plots`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def prompt_pairs_curves(
    name: str, results: dict, adapters: list[str], n_train: list[int], draws: int, datasets: list[str] | None = None
):
    """Seed 002 Fig. 4.1: one panel per metric vs number of fitting pairs, one line per adapter
    (95% CI band over held-out pairs), baseline dashed, positive reference dotted. Pooled over
    ``datasets`` (all by default); ``results[dataset]`` is a
    :class:`interp.studies.prompt_pairs.PromptPairsResult`."""
    from interp.studies.prompt_pairs.core import METRIC_TITLES, METRICS, mean_ci, per_pair

    datasets = datasets or list(results)
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4.3 * len(METRICS), 3.6))
    for ax, metric in zip(axes, METRICS):
        for i, a in enumerate(adapters):
            stats = [
                mean_ci(np.concatenate([per_pair(results[d].cells, a, n, metric, draws) for d in datasets]))
                for n in n_train
            ]
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
            ax.text(
                0.5,
                0.5,
                "undefined\n(no target feature)" if metric == "target" else "undefined",
                transform=ax.transAxes,
                ha="center",
                color="0.4",
            )
        ax.set_xlabel("fitting pairs")
        ax.set_title(METRIC_TITLES[metric], fontsize=9)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{name}: {', '.join(datasets)}", fontsize=9)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- DoLa, logit lens, apathy (seed 001 §3)


def prompt_pairs_doses(name: str, rows: dict[str, list[tuple]]):
    """Prompt-pairs dose sweep, pooled over datasets: per adapter, (mean push, target-feature
    shift as a share of the positive examples' shift, content-word cosine, share of continuations
    changed) at each scale of its edit."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    titles = [
        "target SAE features: (steered − none) / (positive − none)",
        "cosine(first content word, target)",
        "continuations changed from unsteered",
    ]
    for a, pts in rows.items():
        x = [p[0] for p in pts]
        for ax, i in zip(axes, (1, 2, 3)):
            ax.plot(x, [p[i] for p in pts], marker="o", ms=3, label=a)
    axes[0].axhline(1.0, color="tab:green", lw=0.8, ls=":", label="positive examples")
    axes[0].axhline(0.0, color="0.4", lw=0.8, ls="--", label="no adapter")
    for i, (ax, t) in enumerate(zip(axes, titles), start=1):
        if not any(
            np.isfinite(p[i]) and p[0] > 0 for pts in rows.values() for p in pts
        ):  # e.g. no dataset has target features
            ax.text(0.5, 0.5, "undefined", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.set_xscale("log")
        ax.set_xlabel("relative dose ‖Δ‖ / ‖resid‖ (held-out pairs)")
        ax.set_title(t, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(
        f"{name}: dose response, each adapter's edit scaled (largest n, first draw; pooled over datasets)", fontsize=10
    )
    fig.tight_layout()
    return fig
