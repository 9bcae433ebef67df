"""Figures of the correctness_steering study, rendered from its typed results (generic pieces: :mod:`interp.plots`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from interp.stats import bootstrap_ci


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
    """Against the signed relative dose, per layer: accuracy (left) and the share of outputs
    changed from α = 0 (right) under the direction (solid; the bracketing grid as circles, the raw
    α grid converted as crosses) and under random directions of its norm at the same doses (dotted:
    the mean over the controls), so a reader sees at once whether the direction does more than
    any push of that size."""
    fig, (acc_ax, chg_ax) = plt.subplots(1, 2, figsize=(9.0, 3.6), sharex=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    lin = min(abs(d) for d in r.relative_doses) if r.relative_doses else 0.01
    order = np.argsort(r.relative_doses)
    x = np.asarray(r.relative_doses)[order]
    for i, layer in enumerate(r.layers):
        c = colours[i % len(colours)]
        acc_ax.plot(x, r.rel_correct[layer].mean(1)[order], color=c, marker="o", ms=3, label=f"layer {layer}")
        acc_ax.plot(r.relative_of_raw(layer), r.correct[layer].mean(1), color=c, marker="x", ms=4, ls="none")
        chg_ax.plot(x, r.changed(layer, relative=True)[order], color=c, marker="o", ms=3, label=f"layer {layer}")
        if layer in r.ctrl_correct and len(r.ctrl_correct[layer]):
            acc_ax.plot(x, r.ctrl_correct[layer].mean((0, 2))[order], color=c, ls=":", lw=1.2)
            chg_ax.plot(x, r.control_changed(layer).mean(0)[order], color=c, ls=":", lw=1.2)
    acc_ax.axhline(float(np.mean(r.test_base)), color="0.5", lw=0.6)
    if r.ctrl_correct:
        for ax in (acc_ax, chg_ax):
            ax.plot([], [], color="0.3", ls=":", label="random directions, same dose")
    for ax, label in ((acc_ax, "test accuracy"), (chg_ax, "share of outputs changed")):
        ax.set_xscale("symlog", linthresh=lin)
        ax.set_xlabel("relative dose d (× mean residual norm)")
        ax.set_ylabel(label)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    chg_ax.legend(fontsize=7)
    fig.suptitle(f"{name}: {r.kind} under steering, n={r.n_test} test problems", fontsize=9)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- toy steering (seed 002 §3.1)
