"""The toy steering study (seed 002 §3.1; Krasheninnikov & Krueger 2024, Figure 1), one cell at
a time: for a number of example pairs N and a repeat, fit CAA, ACE, LoReFT and LoReST on the
activations of the pairs at the steered layer, choose each adapter's hyperparameter on fresh
validation samples, and score accuracy on the steered attribute and disturbance of the other
attributes on other fresh test samples ("none" is the unsteered model).

    >>> model, info = train_toy(world, settings.train)
    >>> rows = run_cell(model, world, settings, n=64, rep=0)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from interp.stats import bootstrap_ci
from interp.steering import ACEConfig, CAAConfig, LoReFTConfig, LoReSTConfig, make_adapter
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
class ToySettings:
    ms: list[int] = field(default_factory=lambda: [60, 90, 120])
    train: TrainConfig = field(default_factory=TrainConfig)
    task: SteerTask = field(default_factory=SteerTask)
    n_pairs: list[int] = field(default_factory=lambda: [2**k for k in range(2, 13)])  # 4 ... 4096
    repeats: int = 5
    n_val: int = 1000  # fresh samples to choose hyperparameters on
    n_test: int = 1000  # fresh samples to report on
    grid: GridConfig = field(default_factory=GridConfig)


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
        return [(label(r, s), LoReFTConfig(rank=r, steps=s, lr=g.lr, seed=seed)) for r in g.loreft_rank for s in g.steps]
    return [(label(r, s), LoReSTConfig(rank=r, steps=s, lr=g.lr, temperature=g.temperature, seed=seed))
            for r in g.lorest_rank for s in g.steps]  # fmt: skip


def diagnostics(adapter) -> dict:
    """What the trained adapters did: training loss at the start and end (under-training shows
    as a last loss far from converged), and LoReST's mean noise-free gate (0: pure bias)."""
    out = {}
    if getattr(adapter, "losses", None):
        out |= {"loss_first": adapter.losses[0], "loss_last": adapter.losses[-1]}
    if hasattr(adapter, "gates"):
        out["mean_gate"] = float(adapter.gates.mean())
    return out


def run_cell(model, world: AttributeWorld, cfg: ToySettings, n: int, rep: int) -> list[dict]:
    """One (N, repeat) cell: every adapter with validation-chosen hyperparameters."""
    g = torch.Generator().manual_seed(1_000_003 * world.m + 1009 * n + rep)
    neg_x, pos_x = example_pairs(world, cfg.task, n, g)
    val_x, _ = world.sample(cfg.n_val, g)
    test_x, _ = world.sample(cfg.n_test, g)
    with torch.no_grad():
        neg, pos = model.activations(neg_x, cfg.task.layer), model.activations(pos_x, cfg.task.layer)
    rows = [{"adapter": "none", "setting": "-", **evaluate(model, test_x, cfg.task)}]
    for name in ADAPTERS:
        best = None
        for label, acfg in candidates(name, cfg.grid, rep):
            try:
                adapter = make_adapter(name, acfg).fit(neg, pos)
            except ValueError as err:  # e.g. ACE with a zero mean difference: record, do not crash
                rows.append({"adapter": name, "setting": label, "accuracy": float("nan"), "disturbance": float("nan"), "error": str(err)})
                continue
            val = evaluate(model, val_x, cfg.task, adapter)
            key = (val["accuracy"], -val["disturbance"])
            if best is None or key > best[0]:
                best = (key, label, adapter)
        if best is not None:
            rows.append({"adapter": name, "setting": best[1], **evaluate(model, test_x, cfg.task, best[2]), **diagnostics(best[2])})
    return [{**r, "m": world.m, "n_pairs": n, "repeat": rep} for r in rows]


def cell_estimate(rows: list[dict], adapter: str, n: int, key: str):
    """Mean and bootstrap CI over repeats of ``key`` ("accuracy" / "disturbance") for one adapter
    and N (cells that failed to fit are left out)."""
    vals = [r[key] for r in rows if r["adapter"] == adapter and r["n_pairs"] == n and "error" not in r]
    return bootstrap_ci(np.array(vals, dtype=float), n_boot=1000)
