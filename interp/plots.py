"""Generic matplotlib figures (no study imports): heatmaps over (layer, head) and (layer,
position), curves with CI bands, exact-vs-attribution scatter, bars with CIs and subplot grids.
Each function returns a Figure; the caller saves it (``Run.save_figure``). Study figures live in
``interp/studies/<name>/figures.py`` and build on these.

The backend is not chosen here (a notebook keeps its own); ``interp run`` selects Agg.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np


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
    labels = (
        [repr(t)[1:-1] for t in pos_labels] if len(pos_labels) == v.shape[1] else [str(i) for i in range(v.shape[1])]
    )
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
    """A bar chart of means with their confidence intervals as error bars."""
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
