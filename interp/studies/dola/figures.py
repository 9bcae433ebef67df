"""Figures of the dola study, rendered from its typed results (generic pieces: :mod:`interp.plots`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from interp.dola import summarise
from interp.stats import bootstrap_ci


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
            (line,) = ax.plot(
                length_bias, [100 * e.mean for e in est], marker="o", ms=3, label=f"{name} raw logits + c"
            )
            ax.fill_between(
                length_bias,
                [100 * e.ci_low for e in est],
                [100 * e.ci_high for e in est],
                color=line.get_color(),
                alpha=0.2,
            )
            ax.axhline(
                100 * metrics["base"][key].mean(), color=line.get_color(), ls="--", lw=1, label=f"{name} log-softmax"
            )
        ax.set(xlabel="constant c added per token", ylabel=f"{key.upper()} (%)", title=key.upper())
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(
        "Length bias: TruthfulQA scored with raw logits (shifted to min 0) plus c per token — no DoLa at all",
        fontsize=10,
    )
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
