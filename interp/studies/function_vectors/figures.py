"""Figures of the function_vectors study, rendered from its typed results (generic pieces: :mod:`interp.plots`)."""

from __future__ import annotations

import matplotlib.pyplot as plt

from interp.stats import bootstrap_ci


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
    return _finish_fv_grid(
        fig,
        axes,
        len(tasks),
        "accuracy / 5-shot accuracy",
        f"{name}: recovery of 5-shot accuracy by layer (zero-shot prompts)",
    )


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
            ax.fill_between(
                results[task].layers,
                [e.ci_low for e in est],
                [e.ci_high for e in est],
                color=line.get_color(),
                alpha=0.15,
            )
        ax.set_title(f"{task} ({n_undef} of {rec.shape[1]} prompts undefined)" if n_undef else task, fontsize=9)
    return _finish_fv_grid(
        fig,
        axes,
        len(tasks),
        "recovery (clean ICL → shuffled)",
        f"{name}: patching recovery at the last token by layer (mean, 95% CI; undefined prompts left out)",
    )


# --------------------------------------------------------------------------- correctness direction (seed 004)
