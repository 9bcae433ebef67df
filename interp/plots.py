"""Matplotlib figures. Each function returns a Figure; the caller saves it (``Run.save_figure``)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: experiments and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


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
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for name, (mean, low, high) in curves.items():
        (line,) = ax.plot(layers, mean, marker="o", ms=3, label=name)
        ax.fill_between(layers, low, high, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("layer (resid_post)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def bar_with_ci(labels: Sequence[str], means, lows, highs, title: str, ylabel: str):
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * len(labels)), 3.2))
    means, lows, highs = map(np.asarray, (means, lows, highs))
    ax.bar(labels, means, yerr=[means - lows, highs - means], capsize=3, color="tab:blue", alpha=0.8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", rotation=45)
    return fig
