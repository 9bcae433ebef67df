"""The IOI circuit on a real model (issue 29): edges ranked on a selection half of the pairs by
EAP, EAP-IG and exact edge patching (of the top edges), circuits of growing size from each
ranking, and their faithfulness on both halves: the smallest circuit reaching ``target`` is
chosen on the selection half, and its faithfulness reported on the other, with a bootstrap CI.

    >>> r = ioi_circuit(model, CircuitSettings())
    >>> r.curves["EAP-IG"]            # [(n, edges kept, faithfulness on the test pairs, CI low, high)]
    >>> r.smallest["EAP-IG"]          # (edges, selection faithfulness, test faithfulness, CI) or None
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
    # method -> (n requested, n kept, faithfulness on the test pairs, its 95% CI low, high)
    curves: dict[str, list[tuple[int, int, float, float, float]]]
    # method -> (n requested, n kept, faithfulness on the selection pairs): where the size is chosen
    selection_curves: dict[str, list[tuple[int, int, float]]]
    # method -> (edges, faithfulness on selection, on test, test CI low, high) of the smallest circuit whose
    # selection faithfulness reaches the target; None when no size reaches it
    smallest: dict[str, tuple[int, float, float, float, float] | None]
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
    curves, sel_curves, smallest, heads, kept_edges = {}, {}, {}, {}, {}
    # shared by every size and ranking: the corrupted run's sender outputs and both metrics, per split
    ref_sel = faithfulness_reference(model, graph, c_sel, x_sel, m_sel)
    ref_test = faithfulness_reference(model, graph, c_test, x_test, m_test)
    for method, sc in ranked.items():
        curve, sel_curve = [], []
        for n in [n for n in s.sizes if n <= len(sc.edges)]:
            keep = circuit_from_scores(sc, n)
            f_sel = faithfulness(model, graph, c_sel, x_sel, m_sel, keep, reference=ref_sel).mean
            test = faithfulness(model, graph, c_test, x_test, m_test, keep, reference=ref_test)
            lo, hi = test.ci(seed=s.selection.seed)
            sel_curve.append((n, int(keep.sum()), f_sel))
            curve.append((n, int(keep.sum()), test.mean, lo, hi))
            # the size is chosen on the selection pairs (where the edges were ranked); test only reports it
            if smallest.get(method) is None and np.isfinite(f_sel) and f_sel >= s.target:
                smallest[method] = (int(keep.sum()), f_sel, test.mean, lo, hi)
                kept_edges[method] = [tuple(e) for e in keep.nonzero().tolist()]
                heads[method] = sorted(
                    {graph.senders[e[0]].name for e in kept_edges[method] if "H" in graph.senders[e[0]].name}
                )
        smallest.setdefault(method, None)
        heads.setdefault(method, [])
        curves[method], sel_curves[method] = curve, sel_curve
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
        sel_curves,
        smallest,
        heads,
        rho,
        acc,
        kept_edges,
    )
