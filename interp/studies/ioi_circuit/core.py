"""The IOI circuit on a real model (issue 29): edges ranked on a selection half of the pairs by
EAP, EAP-IG and exact edge patching (of the top edges), circuits of growing size from each
ranking, and their faithfulness on the other half.

    >>> r = ioi_circuit(model, CircuitSettings())
    >>> r.curves["EAP-IG"]            # [(n edges, faithfulness on the test pairs)]
    >>> r.smallest["EAP-IG"]          # the smallest circuit reaching ``target`` (or None)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

import interp
from interp.circuits import (
    EdgeScores,
    Graph,
    circuit_from_scores,
    eap,
    eap_ig,
    edge_patching,
    faithfulness,
    faithfulness_reference,
)
from interp.data.ioi import ioi_pairs
from interp.patching import logit_diff_metric
from interp.selection import SelectionConfig, split_items
from interp.studies.head_patching.core import IOITaskConfig


@dataclass
class CircuitSettings:
    task: IOITaskConfig = field(default_factory=lambda: IOITaskConfig(n_pairs=8))
    ig_steps: int = 5
    exact_top: int = 200  # edges scored by exact edge patching: the top ones by EAP-IG
    sizes: list[int] = field(default_factory=lambda: [5, 10, 20, 50, 100, 200, 500, 1000, 2000])
    target: float = 0.8  # the faithfulness the smallest circuit must reach
    edges_per_forward: int = 16
    selection: SelectionConfig = field(default_factory=SelectionConfig)  # pairs that rank; the rest measure


@dataclass
class CircuitResult:
    n_edges: int
    n_selection: int
    n_test: int
    scores: dict[str, list[tuple[str, float]]]  # method -> top edges (name, score), by |score|
    curves: dict[str, list[tuple[int, int, float]]]  # method -> (n requested, n kept, faithfulness on test)
    smallest: dict[str, tuple[int, float] | None]  # method -> (edges, faithfulness) of the smallest ≥ target
    heads: dict[str, list[str]]  # method -> sender heads of that smallest circuit
    rank_agreement: float  # Spearman r between EAP-IG and exact scores over the exact edges
    clean_accuracy: float
    circuit_edges: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # method -> smallest circuit


def _batches(model, s: CircuitSettings):
    t = s.task
    pairs = ioi_pairs(t.n_pairs, t.seed, t.templates, t.names, t.orders)
    split = split_items(len(pairs.clean), s.selection.test_fraction, s.selection.seed, groups=pairs.order)
    io = interp.single_token_ids(model, pairs.io, "task.names (IO)")
    sub = interp.single_token_ids(model, pairs.s, "task.names (S)")

    def part(idx):
        idx = list(map(int, idx))
        clean = interp.tokenize(model, [pairs.clean[i] for i in idx])
        corr = interp.tokenize(model, [pairs.corrupted[i] for i in idx])
        return clean, corr, logit_diff_metric(io[idx], sub[idx])

    return part(split.selection), part(split.test), io[list(map(int, split.test))]


def _ranked(scores: EdgeScores, k: int) -> list[tuple[str, float]]:
    top = scores.top(min(k, len(scores.edges)))
    return list(zip(top.names(), top.scores.tolist()))


def ioi_circuit(model, s: CircuitSettings) -> CircuitResult:
    """See the module doc."""
    graph = Graph.of(model)
    (c_sel, x_sel, m_sel), (c_test, x_test, m_test), io_test = _batches(model, s)
    ranked = {
        "EAP": eap(model, graph, c_sel, x_sel, m_sel),
        "EAP-IG": eap_ig(model, graph, c_sel, x_sel, m_sel, s.ig_steps),
    }
    top = ranked["EAP-IG"].top(min(s.exact_top, graph.n_edges))
    exact = edge_patching(model, graph, c_sel, x_sel, m_sel, edges=top.edges, edges_per_forward=s.edges_per_forward)
    ranked["exact (top EAP-IG edges)"] = exact
    curves, smallest, heads, kept_edges = {}, {}, {}, {}
    ref = faithfulness_reference(model, graph, c_test, x_test, m_test)  # shared by every size and ranking
    for method, sc in ranked.items():
        curve = []
        for n in [n for n in s.sizes if n <= len(sc.edges)]:
            keep = circuit_from_scores(sc, n)
            f = faithfulness(model, graph, c_test, x_test, m_test, keep, reference=ref).mean
            curve.append((n, int(keep.sum()), f))
            if smallest.get(method) is None and np.isfinite(f) and f >= s.target:
                smallest[method] = (int(keep.sum()), f)
                kept_edges[method] = [tuple(e) for e in keep.nonzero().tolist()]
                heads[method] = sorted(
                    {graph.senders[e[0]].name for e in kept_edges[method] if "H" in graph.senders[e[0]].name}
                )
        smallest.setdefault(method, None)
        heads.setdefault(method, [])
        curves[method] = curve
    from scipy.stats import spearmanr

    ig_on_exact = torch.stack([ranked["EAP-IG"].scores[ranked["EAP-IG"].edges.index(e)] for e in exact.edges])
    rho = (
        float(spearmanr(ig_on_exact.numpy(), exact.scores.numpy()).statistic) if len(exact.edges) > 2 else float("nan")
    )
    with torch.no_grad():
        acc = float((interp.last_logits(model, c_test).argmax(-1).cpu() == io_test).float().mean())
    return CircuitResult(
        graph.n_edges,
        len(c_sel),
        len(c_test),
        {m: _ranked(sc, 20) for m, sc in ranked.items()},
        curves,
        smallest,
        heads,
        rho,
        acc,
        kept_edges,
    )
