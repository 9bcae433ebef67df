"""Figures of the caa_behaviors study, rendered from its typed results (generic pieces: :mod:`interp.plots`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from interp.plots import _abs_max_floor, grid


def caa_effect_heatmap(table: dict, models: list[str], behaviors: list[str]):
    """Paired d_z at the best layer, next to the +1 − (−1) shift split into its behaviour and
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
    panels = [
        (d, "paired d_z (m=+1 vs m=−1)", _abs_max_floor(d)),
        (beh, "behaviour part of the shift (logits)", shift_lim),
        (let, "letter part of the shift (logits, + = towards A)", shift_lim),
    ]
    for k, (ax, (vals, title, lim)) in enumerate(zip(axes, panels)):
        im = ax.imshow(vals, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        for (i, j), v in np.ndenumerate(vals):
            # white text on the saturated end of the map, or it disappears into dark red / blue
            colour = "white" if np.isfinite(v) and abs(v) > 0.6 * lim else "black"
            missing = behaviors[i] not in table.get(models[j], {})
            label = (
                "missing"
                if missing
                else "undef."
                if np.isnan(v)
                else f"{v:+.2f}" + (f"\nL{table[models[j]][behaviors[i]].best_layer}" if k == 0 else "")
            )
            ax.text(j, i, label, ha="center", va="center", fontsize=7, color=colour)
        ax.set_xticks(range(len(models)), models, fontsize=7)
        ax.set_yticks(range(len(behaviors)), behaviors if k == 0 else [], fontsize=8)
        ax.set_title(title, fontsize=8)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(
        "CAA at each behaviour's best layer: effect size, and the m=+1 vs m=−1 shift split by equal-weight letter "
        "groups",
        fontsize=9,
    )
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
    fig.suptitle(
        f"{name}: logit delta (blue) vs generation delta p(matching | +1) − p(matching | −1) (red) by layer"
        if with_gen
        else f"{name}: logit delta by layer (generation score off)",
        fontsize=9,
    )
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
    ax.set_xscale(
        "symlog", linthresh=min((abs(v) for r in rows for v in (r.relative or multipliers) if v), default=1.0)
    )
    ax.set_xlabel("relative dose (m·‖v‖ / mean residual norm)" if relative else "multiplier m")
    ax.set_ylabel("matching wins (—) / changed (- -)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    ax.set_title(f"{name}: dose response at the best layer (test questions)", fontsize=9)
    fig.tight_layout()
    return fig


def caa_controls(name: str, controls: dict):
    """Per behaviour at its best layer (``controls``: behaviour -> :class:`ControlRow` list), the
    mean shift of logit(matching) − logit(other) from m = 0 against the relative dose: the vector at
    the answer's "(" (solid, 95% CI), random directions of its norm (dotted, mean ± SD over the
    controls) and the vector at every position after the instruction (dashed)."""
    names = list(controls)
    cols = min(4, len(names)) or 1
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.5 * rows), squeeze=False)
    for ax, b in zip(axes.flat, names):
        best = [c for c in controls[b] if c.role == "best layer"]
        best.sort(key=lambda c: c.m)
        x = np.array([c.m for c in best])
        effect = np.array([c.vs_control.effect for c in best])
        lo = effect - np.array([c.vs_control.difference - c.vs_control.ci[0] for c in best])
        hi = effect + np.array([c.vs_control.ci[1] - c.vs_control.difference for c in best])
        ax.plot(x, effect, marker="o", ms=3, color="tab:blue", label="vector at '('")
        ax.fill_between(x, lo, hi, color="tab:blue", alpha=0.15)
        ctrl = np.array([c.vs_control.control_mean for c in best])
        sd = np.nan_to_num(np.array([c.vs_control.control_sd for c in best]))
        ax.plot(x, ctrl, color="0.3", ls=":", label="random, same norm")
        ax.fill_between(x, ctrl - sd, ctrl + sd, color="0.5", alpha=0.15)
        if all(c.all_positions is not None for c in best):
            ax.plot(x, [c.all_positions.mean for c in best], color="tab:orange", ls="--", label="every position")
        ax.set_xscale("symlog", linthresh=min(abs(v) for v in x if v) if len(x) else 1.0)
        ax.axhline(0, color="0.6", lw=0.6)
        ax.set_title(f"{b} (L{best[0].layer})" if best else b, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    fig.supxlabel("multiplier m", fontsize=8)
    fig.supylabel("shift of logit(matching) − logit(other)", fontsize=8)
    fig.suptitle(f"{name}: CAA vector against random directions of its norm (test questions)", fontsize=9)
    fig.tight_layout()
    return fig
