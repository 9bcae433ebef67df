"""The toy steering study (seed 002 §3.1; Krasheninnikov & Krueger 2024, Figure 1), one cell at
a time: for a number of example pairs N and a repeat, fit CAA, ACE, LoReFT and LoReST on the
activations of the pairs at the steered layer, choose each adapter's hyperparameter on fresh
validation samples, and score accuracy on the steered attribute and disturbance of the other
attributes on other fresh test samples ("none" is the unsteered model). Every adapter row also
records its dose: the push ‖edit(a) − a‖ / ‖a‖ on the test activations
(:func:`interp.steering.doses.relative_push`), and — with ``doses.n_controls`` > 0 — the same push
in random directions on every test sample beside it (all four adapters at their chosen setting).

:func:`dose_sweep` brackets the additive adapters' effect: CAA and ACE fitted on the same pairs
as the cell, at every strength of a geometric grid, scored on the same test samples, so the
report can show the strength from which nothing changes up to the one where the steered
attribute flips for most samples (the positive control) and the other attributes start to move.

    >>> model, info = train_toy(world, settings.train)
    >>> rows = run_cell(model, world, settings, n=64, rep=0)
    >>> doses = dose_sweep(model, world, settings, n=64, rep=0)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from interp.stats import bootstrap_ci
from interp.steering import ACEConfig, CAAConfig, LoReFTConfig, LoReSTConfig, make_adapter
from interp.steering.controls import compare_to_controls, random_unit_directions
from interp.steering.doses import geometric_doses, relative_push
from interp.toy.data import AttributeWorld
from interp.toy.model import TrainConfig
from interp.toy.steering import SteerTask, evaluate, example_pairs


@dataclass
class GridConfig:
    caa_strength: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0, 4.0])
    ace_alpha: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0])
    loreft_rank: list[int] = field(default_factory=lambda: [1, 4])
    lorest_rank: list[int] = field(default_factory=lambda: [1, 4])
    steps: list[int] = field(default_factory=lambda: [300])  # LoReFT / LoReST full-batch Adam steps
    lr: float = 1e-2
    temperature: float = 1.0  # LoReST's Gumbel temperature


@dataclass
class DoseSweepConfig:
    """Strength grid for the dose-response sweep (CAA λ, ACE α), geometric so that it spans
    "no change" to "most samples flip"; empty ``n_pairs`` switches the sweep off."""

    adapters: list[str] = field(default_factory=lambda: ["caa", "ace"])
    strengths: list[float] = field(default_factory=lambda: geometric_doses(1 / 64, 64.0, 13))  # ×2 steps
    n_pairs: list[int] = field(default_factory=lambda: [16, 1024])
    n_controls: int = 3  # random directions with the adapter's push on every sample, at every strength (0: none)


@dataclass
class ToySettings:
    ms: list[int] = field(default_factory=lambda: [60, 90, 120])
    train: TrainConfig = field(default_factory=TrainConfig)
    task: SteerTask = field(default_factory=SteerTask)
    n_pairs: list[int] = field(default_factory=lambda: [2**k for k in range(2, 13)])  # 4 ... 4096
    repeats: int = 5
    n_val: int = 1000  # fresh samples to choose hyperparameters on
    n_test: int = 1000  # fresh samples to report on
    grid: GridConfig = field(default_factory=GridConfig)
    doses: DoseSweepConfig = field(default_factory=DoseSweepConfig)


ADAPTERS = ["caa", "ace", "loreft", "lorest"]


def candidates(name: str, g: GridConfig, seed: int):
    """(label, config) for each hyperparameter setting of one adapter."""
    if name == "caa":
        return [(f"λ={s}", CAAConfig(strength=s)) for s in g.caa_strength]
    if name == "ace":
        return [(f"α={a}", ACEConfig(alpha=a)) for a in g.ace_alpha]
    if not g.steps or min(g.steps) < 1:
        raise ValueError(f"grid.steps={g.steps}; need a non-empty list of positive step counts")
    label = lambda r, s: f"r={r}" + (f",steps={s}" if len(g.steps) > 1 else "")  # noqa: E731
    if name == "loreft":
        return [
            (label(r, s), LoReFTConfig(rank=r, steps=s, lr=g.lr, seed=seed)) for r in g.loreft_rank for s in g.steps
        ]
    return [
        (label(r, s), LoReSTConfig(rank=r, steps=s, lr=g.lr, temperature=g.temperature, seed=seed))
        for r in g.lorest_rank
        for s in g.steps
    ]


def diagnostics(adapter) -> dict:
    """What the trained adapters did: training loss at the start and end (under-training shows
    as a last loss far from converged), and LoReST's mean noise-free gate (0: pure bias)."""
    out = {}
    if getattr(adapter, "losses", None):
        out |= {"loss_first": adapter.losses[0], "loss_last": adapter.losses[-1]}
    if hasattr(adapter, "gates"):
        out["mean_gate"] = float(adapter.gates.mean())
    return out


def _cell_data(model, world: AttributeWorld, cfg: ToySettings, n: int, rep: int):
    """The cell's pairs' activations and its validation and test samples (seeded per m, N, repeat)."""
    g = torch.Generator().manual_seed(1_000_003 * world.m + 1009 * n + rep)
    neg_x, pos_x = example_pairs(world, cfg.task, n, g)
    val_x, _ = world.sample(cfg.n_val, g)
    test_x, _ = world.sample(cfg.n_test, g)
    with torch.no_grad():
        neg, pos = model.activations(neg_x, cfg.task.layer), model.activations(pos_x, cfg.task.layer)
        test_acts = model.activations(test_x, cfg.task.layer)
    return neg, pos, val_x, test_x, test_acts


def _push(adapter, acts: torch.Tensor) -> float:
    """Mean relative push of ``adapter`` on ``acts`` (its dose in units of the activation norm)."""
    with torch.no_grad():
        return float(relative_push(acts, adapter(acts)).mean())


def run_cell(model, world: AttributeWorld, cfg: ToySettings, n: int, rep: int) -> list[dict]:
    """One (N, repeat) cell: every adapter with validation-chosen hyperparameters."""
    neg, pos, val_x, test_x, test_acts = _cell_data(model, world, cfg, n, rep)
    rows = [{"adapter": "none", "setting": "-", "push": 0.0, **evaluate(model, test_x, cfg.task)}]
    for name in ADAPTERS:
        best = None
        for label, acfg in candidates(name, cfg.grid, rep):
            try:
                adapter = make_adapter(name, acfg).fit(neg, pos)
            except ValueError as err:  # e.g. ACE with a zero mean difference: record, do not crash
                rows.append(
                    {
                        "adapter": name,
                        "setting": label,
                        "accuracy": float("nan"),
                        "disturbance": float("nan"),
                        "error": str(err),
                    }
                )
                continue
            val = evaluate(model, val_x, cfg.task, adapter)
            key = (val["accuracy"], -val["disturbance"])
            if best is None or key > best[0]:
                best = (key, label, adapter)
        if best is not None:
            rows.append(
                {
                    "adapter": name,
                    "setting": best[1],
                    "push": _push(best[2], test_acts),
                    **evaluate(model, test_x, cfg.task, best[2]),
                    **diagnostics(best[2]),
                    **_controls(model, test_x, cfg, best[2], cfg.doses.n_controls, rep),
                }
            )
    return [{**r, "m": world.m, "n_pairs": n, "repeat": rep} for r in rows]


def dose_sweep(model, world: AttributeWorld, cfg: ToySettings, n: int, rep: int) -> list[dict]:
    """CAA / ACE on the cell's pairs at every strength of ``cfg.doses.strengths``: raw strength,
    relative push, accuracy and disturbance on the cell's test samples (no selection: every
    strength is reported)."""
    d = cfg.doses
    for a in d.adapters:
        if a not in ("caa", "ace"):
            raise ValueError(f"doses.adapters contains {a!r}; the strength sweep is for 'caa' (λ) and 'ace' (α)")
    if not d.strengths or min(d.strengths) <= 0:
        raise ValueError(f"doses.strengths={d.strengths}; need positive strengths")
    neg, pos, _, test_x, test_acts = _cell_data(model, world, cfg, n, rep)
    rows = []
    for name in d.adapters:
        for s in d.strengths:
            acfg = CAAConfig(strength=s) if name == "caa" else ACEConfig(alpha=s)
            try:
                adapter = make_adapter(name, acfg).fit(neg, pos)
            except ValueError as err:  # a zero mean difference: recorded, not a crash
                rows.append(
                    {
                        "adapter": name,
                        "strength": s,
                        "push": float("nan"),
                        "accuracy": float("nan"),
                        "disturbance": float("nan"),
                        "error": str(err),
                    }
                )
                continue
            row = {"adapter": name, "strength": s, "push": _push(adapter, test_acts)}
            row |= evaluate(model, test_x, cfg.task, adapter) | _controls(
                model, test_x, cfg, adapter, d.n_controls, rep
            )
            rows.append(row)
    return [{**r, "m": world.m, "n_pairs": n, "repeat": rep} for r in rows]


def _controls(model, x, cfg: ToySettings, adapter, n_controls: int, seed: int) -> dict:
    """The adapter against ``n_controls`` random directions with its own push on every sample
    (the same dose, no direction): their mean accuracy and disturbance, and accuracy adapter −
    controls with a paired CI over the test samples."""
    if n_controls < 1:
        return {}
    task = cfg.task
    width = model.hidden[task.layer]
    dirs = random_unit_directions(width, n_controls, seed=seed)
    with torch.no_grad():
        plain = model(x).argmax(-1)
        hit = lambda edit: (model(x, task.layer, edit).argmax(-1)[:, task.attribute] == task.target).float()  # noqa: E731
        vec = hit(adapter)
        ctrl, dist = [], []
        for u in dirs:
            edit = lambda a, u=u: a + (adapter(a) - a).norm(dim=-1, keepdim=True) * u  # noqa: E731
            ctrl.append(hit(edit))
            steered = model(x, task.layer, edit).argmax(-1)
            others = torch.arange(model.m) != task.attribute
            dist.append(float((steered[:, others] != plain[:, others]).float().mean()))
    c = compare_to_controls(vec.numpy(), torch.stack(ctrl).numpy())
    return {
        "control_accuracy": c.control_mean,
        "control_accuracy_sd": c.control_sd,
        "control_disturbance": float(np.mean(dist)),
        "accuracy_minus_control": c.difference,
        "accuracy_minus_control_ci": list(c.ci),
    }


def bracket(
    rows: list[dict], adapter: str, n: int, none_accuracy: float, control: float = 0.9, tol: float = 0.02
) -> dict:
    """Whether a dose sweep brackets the effect for one adapter and N (means over repeats):
    the smallest dose leaves accuracy within ``tol`` of the unsteered model's (no effect), and
    some dose reaches ``control`` accuracy (positive control); with the relative push there."""
    sub = [r for r in rows if r["adapter"] == adapter and r["n_pairs"] == n and "error" not in r]
    strengths = sorted({r["strength"] for r in sub})
    if not strengths:
        return {"defined": False}
    mean = {
        s: (
            float(np.mean([r["accuracy"] for r in sub if r["strength"] == s])),
            float(np.mean([r["push"] for r in sub if r["strength"] == s])),
            float(np.mean([r["disturbance"] for r in sub if r["strength"] == s])),
        )
        for s in strengths
    }
    low = mean[strengths[0]]
    reached = [s for s in strengths if mean[s][0] >= control]
    first = reached[0] if reached else None
    return {
        "defined": True,
        "low_strength": strengths[0],
        "low_push": low[1],
        "low_accuracy": low[0],
        "no_effect": abs(low[0] - none_accuracy) <= tol,
        "control_strength": first,
        "control_push": mean[first][1] if first else float("nan"),
        "control_disturbance": mean[first][2] if first else float("nan"),
        "max_accuracy": max(v[0] for v in mean.values()),
        "max_push": max(v[1] for v in mean.values()),
    }


def cell_estimate(rows: list[dict], adapter: str, n: int, key: str):
    """Mean and bootstrap CI over repeats of ``key`` ("accuracy" / "disturbance") for one adapter
    and N (cells that failed to fit are left out)."""
    vals = [r[key] for r in rows if r["adapter"] == adapter and r["n_pairs"] == n and "error" not in r]
    return bootstrap_ci(np.array(vals, dtype=float), n_boot=1000)
