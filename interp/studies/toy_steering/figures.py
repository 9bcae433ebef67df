"""Figures of the toy_steering study, rendered from its typed results (generic pieces: :mod:`interp.plots`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def toy_steering_curves(rows: list[dict], n_pairs: list[int], adapters: list[str], m: int, repeats: int):
    """Steered-attribute accuracy and disturbance vs number of pairs per adapter (mean, 95% CI over repeats)."""
    from interp.studies.toy_steering.core import cell_estimate

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, key in zip(axes, ["accuracy", "disturbance"]):
        for a in ["none"] + adapters:
            est = [cell_estimate(rows, a, n, key) for n in n_pairs]
            mean = [e.mean for e in est]
            style = dict(ls="--", color="0.4") if a == "none" else dict(marker="o", ms=3)
            (line,) = ax.plot(n_pairs, mean, label=a, **style)
            ax.fill_between(
                n_pairs, [e.ci_low for e in est], [e.ci_high for e in est], color=line.get_color(), alpha=0.2
            )
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
            ax.plot(
                push,
                [np.mean([r[key] for r in sub if r["strength"] == s]) for s in strengths],
                marker="o",
                ms=3,
                ls="-" if a == "caa" else "--",
                label=f"{a}, N={n}",
            )
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
