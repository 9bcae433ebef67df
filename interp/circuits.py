"""Circuit discovery over edges: the computational graph of a HookedTransformer, exact edge
patching, edge attribution patching (EAP, Syed et al. 2023), EAP with integrated gradients
(EAP-IG, Hanna et al. 2024) and circuit faithfulness.

**The graph.** Senders are the input embedding (``blocks.0.hook_resid_pre``: token plus
positional embedding), every attention head (its additive contribution to the residual,
:mod:`interp.heads`: ``z_h W_O[h]``, through ``ln1_post`` with that run's scale on Gemma-2/3)
and every MLP (``hook_mlp_out``). Receivers are every head's query, key and value input (the
residual *before* ``ln1``, TransformerLens' split-QKV inputs), every MLP's input
(``hook_mlp_in``) and the logits (the final residual, before ``ln_final``). An edge runs from
every sender to every receiver downstream of it: heads of layer ``l`` feed layer ``l``'s MLP and
everything in later layers.

*Grouped-query attention* (SmolLM2: 3 key/value heads shared by 9 query heads): a key or value
receiver is a *key/value head*, so an edge into ``L5.K1`` changes the keys that every query head
of group 1 reads — one edge, several heads affected. Query receivers are per query head.

*Post-attention norms* (Gemma-3): a head's contribution is taken with the norm scale of the run
it comes from, so a run's head contributions plus the layer's bias term sum to its
``hook_attn_out`` exactly; patching an edge swaps the sender's contribution computed that way.

**Exact edge patching** (direction ``"noise"``): the clean run, except that receiver ``r`` sees
``resid_r − out_s + out_s^corr`` — the sender's contribution taken from the corrupted run, the
rest of its input as the run computes it. Patching a *set* of edges keeps that rule at every
receiver, with ``out_s`` the sender's output in the patched run itself (effects propagate
along unpatched edges, as in ACDC and auto-circuit), so patching every edge gives the corrupted
run and patching every edge out of one head equals patching that head's ``hook_z``. Direction
``"denoise"`` swaps the roles of the two runs. Scores use the patching engine's metric contract
(``metric(last_logits) -> [batch]``) and recovery scale.

**Attribution.** EAP: ``score(s → r) = Σ_{prompts, positions} (out_s^corr − out_s) · ∂M/∂in_r``
from one clean forward and backward and one corrupted forward (``M`` = mean metric). EAP-IG
averages the gradient over ``steps`` runs whose input embeddings interpolate from the corrupted
to the clean ones (``k / steps``, k = 1 … steps; steps = 1 is EAP).

    >>> g = Graph.of(model)
    >>> scores = eap(model, g, clean, corrupted, metric)            # EdgeScores over every edge
    >>> exact = edge_patching(model, g, clean, corrupted, metric, edges=scores.top(20).edges)
    >>> faithfulness(model, g, clean, corrupted, metric, circuit=scores.top(200).edges)
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.components import LayerNorm, LayerNormPre, RMSNorm, RMSNormPre
from transformer_lens.utilities.architectures import POST_NORM_ARCHITECTURES

from interp.data.tokenize import TokenBatch
from interp.engine import Metric
from interp.heads import has_post_attn_norm, head_contributions
from interp.hooks import act_name, capture, check_finite, hooks
from interp.patching import DIRECTIONS, check_pair_shapes, check_tol, last_logits, recovery
from interp.stats import ratio_ci

RECEIVER_KINDS = ("q", "k", "v", "mlp", "logits")


# --------------------------------------------------------------------------- the graph


@dataclass(frozen=True)
class Node:
    """One node of the edge graph: a sender (embedding, head, MLP) or a receiver (a head's Q/K/V input, an MLP
    input, the logits)."""

    name: str  # "embed", "L3H2", "L3.mlp" (senders); "L3H2.q", "L3.K1", "L3.mlp_in", "logits" (receivers)
    layer: int  # -1 for the embedding, n_layers for the logits
    kind: str  # sender: "embed" / "head" / "mlp"; receiver: one of RECEIVER_KINDS
    index: int = 0  # head (or key/value head) index; 0 otherwise


@dataclass
class Graph:
    """Senders, receivers and the edge mask ``[sender, receiver]`` (True where an edge exists)."""

    senders: list[Node]
    receivers: list[Node]
    mask: Bool[Tensor, "sender receiver"]
    n_layers: int
    n_heads: int
    n_kv_heads: int
    has_mlp: bool

    @classmethod
    def of(cls, model: HookedTransformer) -> Graph:
        cfg = model.cfg
        n, h = cfg.n_layers, cfg.n_heads
        kv = cfg.n_key_value_heads if getattr(cfg, "n_key_value_heads", None) else h
        has_mlp = not cfg.attn_only
        if getattr(cfg, "parallel_attn_mlp", False):
            raise ValueError("parallel attention/MLP blocks (GPT-J, NeoX) are not supported by the edge graph yet")
        if cfg.original_architecture in POST_NORM_ARCHITECTURES:
            raise ValueError(
                f"{cfg.original_architecture} normalises after attention (post-norm): the edge graph reads a head's "
                "inputs before ln1 and supports pre-norm blocks only"
            )
        if getattr(cfg, "ungroup_grouped_query_attention", False):
            kv = h  # TransformerLens expands the key/value heads: one K and one V receiver per query head
        senders = [Node("embed", -1, "embed")]
        receivers = []
        for layer in range(n):
            senders += [Node(f"L{layer}H{i}", layer, "head", i) for i in range(h)]
            if has_mlp:
                senders.append(Node(f"L{layer}.mlp", layer, "mlp"))
            receivers += [Node(f"L{layer}H{i}.q", layer, "q", i) for i in range(h)]
            receivers += [Node(f"L{layer}.K{i}", layer, "k", i) for i in range(kv)]
            receivers += [Node(f"L{layer}.V{i}", layer, "v", i) for i in range(kv)]
            if has_mlp:
                receivers.append(Node(f"L{layer}.mlp_in", layer, "mlp"))
        receivers.append(Node("logits", n, "logits"))
        mask = torch.zeros(len(senders), len(receivers), dtype=torch.bool)
        for si, s in enumerate(senders):
            for ri, r in enumerate(receivers):
                mask[si, ri] = r.layer > s.layer or (r.layer == s.layer and s.kind == "head" and r.kind == "mlp")
        return cls(senders, receivers, mask, n, h, kv, has_mlp)

    @property
    def n_edges(self) -> int:
        return int(self.mask.sum())

    def edges(self) -> list[tuple[int, int]]:
        """Every edge as ``(sender index, receiver index)``, in a fixed order."""
        return [tuple(x) for x in self.mask.nonzero().tolist()]

    def edge_name(self, edge: tuple[int, int]) -> str:
        return f"{self.senders[edge[0]].name} -> {self.receivers[edge[1]].name}"

    def edge_mask(self, edges: Sequence[tuple[int, int]]) -> Bool[Tensor, "sender receiver"]:
        """A boolean ``[sender, receiver]`` mask of ``edges`` (each checked to exist)."""
        out = torch.zeros_like(self.mask)
        for s, r in edges:
            if not (0 <= s < len(self.senders) and 0 <= r < len(self.receivers)) or not self.mask[s, r]:
                raise ValueError(f"edge ({s}, {r}) is not an edge of this graph (sender before receiver)")
            out[s, r] = True
        return out

    def receiver_slices(self) -> dict[tuple[int, str], tuple[int, int]]:
        """(layer, kind) -> the [start, stop) range of its receivers in ``receivers``."""
        out: dict[tuple[int, str], list[int]] = {}
        for i, r in enumerate(self.receivers):
            out.setdefault((r.layer, r.kind), []).append(i)
        return {k: (v[0], v[-1] + 1) for k, v in out.items()}


# --------------------------------------------------------------------------- hook plumbing


@contextlib.contextmanager
def _mlp_in_hook(model: HookedTransformer) -> Iterator[None]:
    """``hook_mlp_in`` on (one ``[b p d]`` copy per layer; none in an attention-only model), restored on exit."""
    old = model.cfg.use_hook_mlp_in
    if not model.cfg.attn_only:
        model.set_use_hook_mlp_in(True)
    try:
        yield
    finally:
        if not model.cfg.attn_only:
            model.set_use_hook_mlp_in(old)


@contextlib.contextmanager
def split_inputs(model: HookedTransformer) -> Iterator[None]:
    """Turn on TransformerLens' per-head Q/K/V inputs and ``hook_mlp_in`` (same numbers, extra
    hook points), restoring the model's settings on exit, also when the body raises."""
    old = model.cfg.use_split_qkv_input
    model.set_use_split_qkv_input(True)
    try:
        with _mlp_in_hook(model):
            yield
    finally:
        model.set_use_split_qkv_input(old)


@contextlib.contextmanager
def _frozen_params(model: HookedTransformer) -> Iterator[None]:
    """Parameters stop requiring gradients for the body (attribution needs activation gradients
    only: the weight gradients would double the backward), restored on exit, also on error."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@contextlib.contextmanager
def _ln1_pre_hooks(model: HookedTransformer, fns: dict[int, Callable]) -> Iterator[None]:
    """``fns[layer](x) -> x | None`` on the input of ``blocks[layer].ln1`` (the residual that
    feeds the layer's queries, keys and values, not its skip connection); removed on exit."""
    handles = []
    try:
        for layer, fn in fns.items():
            handles.append(model.blocks[layer].ln1.register_forward_pre_hook(lambda m, args, fn=fn: _pre(fn, args)))
        yield
    finally:
        for h in handles:
            h.remove()


def _pre(fn: Callable, args: tuple) -> tuple | None:
    x = fn(args[0])
    return None if x is None else (x, *args[1:])


def _run_last(model: HookedTransformer, batch: TokenBatch, fwd: list[tuple[str, Callable]]) -> Tensor:
    """The last-position logits ``[b, d_vocab]`` of ``batch`` under the hooks ``fwd``."""
    with hooks(model, fwd):
        return last_logits(model, batch)


def _receiver_hook(model: HookedTransformer, layer: int, kind: str) -> str:
    if kind == "logits":
        return act_name("resid_post", model.cfg.n_layers - 1)
    return act_name({"q": "q_input", "k": "k_input", "v": "v_input", "mlp": "mlp_in"}[kind], layer)


class _SenderTracker:
    """Hooks that record every sender's output ``[b, p, d_model]`` as the forward computes it,
    detached, into one ``[sender b p d_model]`` buffer (senders are layer-ordered, so the outputs
    upstream of a receiver are a prefix: a view, not a copy)."""

    def __init__(self, model: HookedTransformer, graph: Graph):
        self.model, self.graph = model, graph
        self.buf: Tensor | None = None
        self._z: dict[int, Tensor] = {}
        self.index = {(s.layer, s.kind, s.index): i for i, s in enumerate(graph.senders)}
        self.post = has_post_attn_norm(model)

    def _put(self, i: int, x: Tensor) -> None:
        if self.buf is None:
            self.buf = torch.zeros(len(self.graph.senders), *x.shape, dtype=torch.float32, device=x.device)
        self.buf[i] = x.detach()

    def outputs(self) -> Tensor:
        """Every sender's output ``[sender b p d_model]`` of the last forward."""
        if self.buf is None:
            raise RuntimeError("no forward has run through the sender hooks")
        return self.buf

    def hooks(self) -> list[tuple[str, Callable]]:
        n = self.graph.n_layers
        out = [(act_name("resid_pre", 0), lambda a, hook: self._put(0, a.float()))]
        for layer in range(n):
            out.append((act_name("z", layer), lambda a, hook, layer=layer: self._heads(layer, a)))
            if self.post:
                out.append(
                    (act_name("ln1_post.hook_scale", layer), lambda a, hook, layer=layer: self._scaled(layer, a))
                )
            if self.graph.has_mlp:
                i = self.index[(layer, "mlp", 0)]
                out.append((act_name("mlp_out", layer), lambda a, hook, i=i: self._put(i, a.float())))
        return out

    def _heads(self, layer: int, z: Tensor) -> None:
        if self.post:
            self._z[layer] = z  # its contribution needs ln1_post's scale, which comes next
            return
        self._store_heads(layer, head_contributions(self.model, layer, z))

    def _scaled(self, layer: int, scale: Tensor) -> None:
        self._store_heads(layer, head_contributions(self.model, layer, self._z.pop(layer), scale[..., 0]))

    def _store_heads(self, layer: int, contrib: Tensor) -> None:
        for h in range(self.graph.n_heads):
            self._put(self.index[(layer, "head", h)], contrib[:, :, h])


# --------------------------------------------------------------------------- exact edge patching


def _check_pairs(model, clean: TokenBatch, corrupted: TokenBatch, metric: Metric) -> None:
    check_pair_shapes(clean, corrupted)
    if not callable(metric):
        raise TypeError(f"metric must be callable (last-position logits -> [batch]); got {type(metric).__name__}")


@torch.no_grad()
def sender_outputs(model: HookedTransformer, graph: Graph, batch: TokenBatch) -> tuple[Tensor, Tensor]:
    """(every sender's output ``[sender b p d_model]``, the metric-ready last logits) of one run."""
    out, last, _ = _sender_run(model, graph, batch)
    return out, last


@torch.no_grad()
def _sender_run(
    model: HookedTransformer, graph: Graph, batch: TokenBatch, receiver_inputs: bool = False
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """:func:`sender_outputs` and, with ``receiver_inputs``, what every receiver reads from the
    same forward: each layer's ``ln1`` input (shared by its Q/K/V receivers), its MLP input and the
    final residual, keyed by hook name."""
    tracker = _SenderTracker(model, graph)
    keep = capture(model, _receiver_input_hooks(model, graph)) if receiver_inputs else contextlib.nullcontext({})
    with _mlp_in_hook(model), keep as acts:
        last = _run_last(model, batch, tracker.hooks())
    return tracker.outputs(), last, dict(acts)


def _receiver_input_hooks(model: HookedTransformer, graph: Graph) -> list[str]:
    """Hook points holding each receiver group's input: ``resid_pre`` (the ``ln1`` input of a
    pre-norm block) for Q/K/V, ``mlp_in``, and the final ``resid_post`` for the logits."""
    names = []
    for layer, kind in graph.receiver_slices():
        if kind in ("mlp", "logits"):
            names.append(_receiver_hook(model, layer, kind))
        elif kind == "q":
            names.append(act_name("resid_pre", layer))
    return names


@torch.no_grad()
def patch_edges(
    model: HookedTransformer,
    graph: Graph,
    base: TokenBatch,
    source: TokenBatch,
    edges: Bool[Tensor, "sender receiver"],
    metric: Metric,
    source_outputs: Tensor | None = None,
) -> Float[Tensor, " batch"]:
    """The metric of ``base`` with every edge in ``edges`` taking its sender's output from
    ``source`` (module doc: effects propagate along unpatched edges)."""
    _check_pairs(model, base, source, metric)
    if edges.shape != graph.mask.shape or bool((edges & ~graph.mask).any()):
        raise ValueError(f"edges must be a [sender, receiver] mask {tuple(graph.mask.shape)} within graph.mask")
    src = sender_outputs(model, graph, source)[0] if source_outputs is None else source_outputs
    tracker = _SenderTracker(model, graph)
    fwd = tracker.hooks()
    for (layer, kind), (a, b) in graph.receiver_slices().items():
        sub = edges[:, a:b]
        if not bool(sub.any()):
            continue
        used = sub.any(1).nonzero()[:, 0]
        lo, hi = int(used.min()), int(used.max()) + 1
        weights = sub[lo:hi].float()  # [s, r]: a sender range (views of both runs' outputs), unused rows 0

        def fn(act: Tensor, hook, lo=lo, hi=hi, weights=weights, kind=kind) -> Tensor:
            delta = src[lo:hi].to(act.device) - tracker.buf[lo:hi].to(act.device)  # [s b p d]
            add = torch.einsum("sbpd,sr->bprd", delta, weights.to(act.device))
            return act + (add[:, :, 0] if kind in ("mlp", "logits") else add).to(act.dtype)

        fwd.append((_receiver_hook(model, layer, kind), fn))
    with split_inputs(model):
        out = metric(_run_last(model, base, fwd))
    check_finite(out, "metric of the patched run")
    return out.float().cpu()


@dataclass
class EdgeScores:
    """A score per edge (higher = more important under the method's sign convention)."""

    graph: Graph
    edges: list[tuple[int, int]]
    scores: Float[Tensor, " edge"]
    method: str

    def top(self, k: int) -> EdgeScores:
        """The ``k`` edges with the largest |score| (largest first)."""
        if k < 1:
            raise ValueError(f"k={k}; must be >= 1")
        order = self.scores.abs().argsort(descending=True)[:k]
        return EdgeScores(self.graph, [self.edges[i] for i in order], self.scores[order], self.method)

    def names(self) -> list[str]:
        return [self.graph.edge_name(e) for e in self.edges]

    def mask(self) -> Bool[Tensor, "sender receiver"]:
        return self.graph.edge_mask(self.edges)


def _roles(clean: TokenBatch, corrupted: TokenBatch, direction: str) -> tuple[TokenBatch, TokenBatch]:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction={direction!r}; allowed: {list(DIRECTIONS)}")
    return (clean, corrupted) if direction == "noise" else (corrupted, clean)


@torch.no_grad()
def edge_patching(
    model: HookedTransformer,
    graph: Graph,
    clean: TokenBatch,
    corrupted: TokenBatch,
    metric: Metric,
    edges: Sequence[tuple[int, int]] | None = None,
    direction: str = "noise",
    edges_per_forward: int = 32,
) -> EdgeScores:
    """Each edge patched alone: score = mean over prompts of metric(patched) − metric(base)
    (``base`` = clean for ``"noise"``, corrupted for ``"denoise"``). Many edges run per forward:
    the batch holds one copy of the prompts per edge, and with one edge patched its sender's
    output is the base run's, so the receiver's shift is a precomputed difference."""
    _check_pairs(model, clean, corrupted, metric)
    base, source = _roles(clean, corrupted, direction)
    edges = graph.edges() if edges is None else list(edges)
    graph.edge_mask(edges)  # checks every edge
    out_base, last_base = sender_outputs(model, graph, base)
    out_src, _ = sender_outputs(model, graph, source)
    delta = out_src - out_base  # [s b p d]
    m_base = metric(last_base).float().cpu()
    scores = []
    for start in range(0, len(edges), edges_per_forward):
        chunk = edges[start : start + edges_per_forward]
        m = _stacked_edge_sets(model, graph, base, metric, [[e] for e in chunk], delta)
        scores.append((m - m_base[None]).mean(1))
    return EdgeScores(graph, edges, torch.cat(scores), f"exact ({direction})")


@dataclass
class PathPatchingResult:
    """Path patching (Wang et al. 2022): per sender set, the metric with only its paths into the
    receivers patched, per prompt (``metric [variant, batch]``), beside the base and source runs."""

    senders: list[list[str]]  # the sender names of each variant
    receivers: list[str]
    metric: Float[Tensor, "variant batch"]
    m_base: Float[Tensor, " batch"]
    m_source: Float[Tensor, " batch"]
    direction: str

    @property
    def effect(self) -> Float[Tensor, " variant"]:
        """Mean over prompts of metric(patched) − metric(base)."""
        return (self.metric - self.m_base[None]).mean(1)

    @property
    def share(self) -> Float[Tensor, " variant"]:
        """The effect as a share of the base → source change of the mean metric (NaN when that is 0)."""
        gap = float((self.m_source - self.m_base).mean())
        return self.effect / gap if gap != 0 else torch.full_like(self.effect, float("nan"))

    def top(self, k: int = 10) -> list[tuple[str, float, float]]:
        """The ``k`` sender sets of largest |effect|: ``(names, effect, share)``."""
        order = self.effect.abs().argsort(descending=True)[:k].tolist()
        return [("+".join(self.senders[i]), float(self.effect[i]), float(self.share[i])) for i in order]


def _receiver_indices(graph: Graph, receivers: Sequence[str]) -> list[int]:
    """Receiver names (``L9H6.q``, ``L9.K2``, ``L3.mlp_in``, ``logits``) or a head name (``L9H6``:
    its query and the key/value heads it reads) as receiver indices."""
    by_name = {r.name: i for i, r in enumerate(graph.receivers)}
    group = graph.n_heads // graph.n_kv_heads
    out: list[int] = []
    for name in receivers:
        if name in by_name:
            out.append(by_name[name])
            continue
        m = re.fullmatch(r"L(\d+)H(\d+)", name)
        if m is None or f"{name}.q" not in by_name:
            raise ValueError(
                f"receivers: {name!r} is not a receiver of this graph; e.g. {graph.receivers[0].name!r}, "
                f"'L{graph.n_layers - 1}.mlp_in', 'logits', or a head 'L{{layer}}H{{head}}' for its Q, K and V"
            )
        layer, head = int(m[1]), int(m[2])
        out += [by_name[f"{name}.q"], by_name[f"L{layer}.K{head // group}"], by_name[f"L{layer}.V{head // group}"]]
    if not out:
        raise ValueError("receivers is empty; name at least one receiver")
    return sorted(set(out))


def _sender_indices(graph: Graph, senders: Sequence[str | Sequence[str]] | None) -> list[list[int]]:
    by_name = {s.name: i for i, s in enumerate(graph.senders)}
    if senders is None:
        return [[i] for i, s in enumerate(graph.senders) if s.kind == "head"]
    out = []
    for item in senders:
        names = [item] if isinstance(item, str) else list(item)
        bad = [n for n in names if n not in by_name]
        if bad or not names:
            raise ValueError(f"senders: {bad or item!r} not senders of this graph; e.g. 'embed', 'L3H2', 'L3.mlp'")
        out.append([by_name[n] for n in names])
    if not out:
        raise ValueError("senders is empty; pass None for every head, or names / lists of names")
    return out


@torch.no_grad()
def path_patching(
    model: HookedTransformer,
    graph: Graph,
    clean: TokenBatch,
    corrupted: TokenBatch,
    metric: Metric,
    receivers: Sequence[str],
    senders: Sequence[str | Sequence[str]] | None = None,
    direction: str = "noise",
    variants_per_forward: int = 32,
) -> PathPatchingResult:
    """Path patching as in the IOI paper: for each sender set (default: every head alone), its
    output reaches the ``receivers`` (e.g. a head's Q/K/V inputs, ``"L9H6"`` for all three, or
    ``"logits"``) from the ``source`` run while every other path keeps the base run's values; the
    receivers' changed outputs then flow through the rest of the model as usual. It is
    :func:`patch_edges` of the edges sender → receiver. When every sender comes before every
    receiver, a patched sender's own output is the base run's, so many variants share one
    stacked forward; otherwise each variant runs through :func:`patch_edges` (exact, one forward).
    ``base`` = clean for ``"noise"`` (the IOI paper's setting), corrupted for ``"denoise"``."""
    _check_pairs(model, clean, corrupted, metric)
    base, source = _roles(clean, corrupted, direction)
    rec = _receiver_indices(graph, receivers)
    variants = _sender_indices(graph, senders)
    out_base, last_base = sender_outputs(model, graph, base)
    out_src, last_src = sender_outputs(model, graph, source)
    m_base, m_src = metric(last_base).float().cpu(), metric(last_src).float().cpu()
    edge_sets = [[(s, r) for s in v for r in rec if graph.mask[s, r]] for v in variants]
    rows = []
    for start in range(0, len(variants), variants_per_forward):
        chunk = list(range(start, min(start + variants_per_forward, len(variants))))
        fast = all(_upstream_of_all(graph, variants[i], rec) for i in chunk)
        if fast:
            rows.append(
                _stacked_edge_sets(model, graph, base, metric, [edge_sets[i] for i in chunk], out_src - out_base)
            )
        else:
            for i in chunk:
                mask = graph.edge_mask(edge_sets[i]) if edge_sets[i] else torch.zeros_like(graph.mask)
                rows.append(patch_edges(model, graph, base, source, mask, metric, source_outputs=out_src)[None])
    names = [[graph.senders[s].name for s in v] for v in variants]
    return PathPatchingResult(names, [graph.receivers[r].name for r in rec], torch.cat(rows), m_base, m_src, direction)


def _upstream_of_all(graph: Graph, senders: list[int], receivers: list[int]) -> bool:
    """No sender can be moved by a receiver: each sender sits before the earliest receiver."""
    first = min(graph.receivers[r].layer for r in receivers)
    return all(graph.senders[s].layer < first for s in senders)


def _stacked_edge_sets(model, graph: Graph, base: TokenBatch, metric: Metric, sets: list, delta: Tensor) -> Tensor:
    """``[len(sets), batch]``: the metric with each edge set patched, one copy of the prompts per
    set in one forward; each receiver adds its senders' precomputed source − base differences."""
    b = len(base)
    by_hook: dict[str, list[tuple[int, int, int]]] = {}
    for ci, edges in enumerate(sets):
        for s, r in edges:
            node = graph.receivers[r]
            by_hook.setdefault(_receiver_hook(model, node.layer, node.kind), []).append((ci, s, node.index))
    fwd = []
    for name, items in by_hook.items():

        def fn(act: Tensor, hook, items=items) -> Tensor:
            act = act.clone()
            for ci, s, idx in items:
                rows = slice(ci * b, (ci + 1) * b)
                d = delta[s].to(act.device, act.dtype)
                if act.ndim == 4:
                    act[rows, :, idx] += d
                else:
                    act[rows] += d
            return act

        fwd.append((name, fn))
    rep = _repeat(base, len(sets))
    with split_inputs(model):
        return metric_rows(metric, _run_last(model, rep, fwd), len(sets), b)


def metric_rows(metric: Metric, last: Tensor, copies: int, b: int) -> Tensor:
    """The metric of ``copies`` stacked copies of a ``b``-prompt batch, as ``[copies, b]`` (the
    metric sees one copy at a time: it may hold per-prompt answer ids)."""
    return torch.stack([metric(last[c * b : (c + 1) * b]).float().cpu() for c in range(copies)])


def _repeat(batch: TokenBatch, copies: int) -> TokenBatch:
    from dataclasses import replace

    return replace(
        batch,
        tokens=batch.tokens.repeat(copies, 1),
        attention_mask=batch.attention_mask.repeat(copies, 1),
        last_index=batch.last_index.repeat(copies),
        prompts=list(batch.prompts) * copies,
    )


# --------------------------------------------------------------------------- attribution


def _receiver_grads(
    model: HookedTransformer,
    graph: Graph,
    batch: TokenBatch,
    metric: Metric,
    embed: Tensor | None = None,
    mix: tuple[float, dict[str, Tensor]] | None = None,
) -> Tensor:
    """∂(mean metric)/∂(receiver input) ``[receiver b p d_model]`` of one run (see
    :func:`_gradient_pass`), every position kept."""
    shape = batch.tokens.shape
    out = torch.empty(0)

    def put(a: int, b: int, block: Tensor) -> None:
        nonlocal out
        if out.numel() == 0:
            out = torch.empty(len(graph.receivers), *shape, block.shape[-1], device=block.device)
        out[a:b] = block.unflatten(1, shape)

    _gradient_pass(model, graph, batch, metric, put, lambda: torch.ones(shape, dtype=torch.bool), embed, mix)
    return out


def _gradient_pass(
    model: HookedTransformer,
    graph: Graph,
    batch: TokenBatch,
    metric: Metric,
    consume: Callable[[int, int, Tensor], None],
    positions: Callable[[], Tensor],
    embed: Tensor | None = None,
    mix: tuple[float, dict[str, Tensor]] | None = None,
    tracker: _SenderTracker | None = None,
) -> None:
    """One forward and one backward of ``batch`` (weights frozen) that hands each receiver
    group's gradient ∂(mean metric)/∂(receiver input) to ``consume(start, stop, grads)``, with
    ``grads [stop − start, n, d_model]`` at the ``n`` positions of the mask ``positions()`` (called
    after the forward, so it may read ``tracker``'s sender outputs: only positions where some
    sender differs between the runs can score). ``embed`` replaces the input embedding
    (integrated gradients over inputs); ``mix = (α, source inputs)`` (:func:`_sender_run`) makes
    every receiver input ``(1 − α)·own + α·source`` — every edge α of the way to the source run
    (integrated gradients over activations); ``tracker`` records the run's sender outputs.

    The Q/K/V inputs are *not* split per head: a query receiver's gradient is ``ln1``'s
    vector-Jacobian product at the layer's input applied to ``W_Q[h] · ∂M/∂q_h`` (``hook_q``),
    keys and values likewise per key/value head — the number TransformerLens' split inputs give,
    without a per-head copy of every residual in the forward and the backward."""
    grads: dict[str, Tensor] = {}
    ln_in: dict[int, tuple[Tensor, Tensor]] = {}  # layer -> (ln1 input as computed, as mixed)
    src = mix[1] if mix is not None else {}
    alpha = 0.0 if mix is None else mix[0]

    def start(act: Tensor, hook) -> Tensor:
        # a leaf that needs a gradient, so every later activation carries one
        return (act if embed is None else embed.to(act)).detach().requires_grad_(True)

    def keep(act: Tensor, hook) -> Tensor:
        if hook.name in src:
            act = act + alpha * (src[hook.name].to(act) - act)
        act.register_hook(lambda g, name=hook.name: grads.__setitem__(name, g.detach()))
        return act

    def ln1_input(layer: int) -> Callable:
        name = act_name("resid_pre", layer)

        def fn(x: Tensor) -> Tensor | None:
            # ln1 runs three times on the same residual (Q, K, V): mix it once
            if layer in ln_in and ln_in[layer][0] is x:
                return ln_in[layer][1]
            mixed = x + alpha * (src[name].to(x) - x) if name in src else x
            ln_in[layer] = (x, mixed)
            return mixed if name in src else None

        return fn

    fwd = [(act_name("resid_pre", 0), start)] + (tracker.hooks() if tracker is not None else [])
    qkv_layers = sorted({layer for layer, kind in graph.receiver_slices() if kind == "q"})
    for layer, kind in graph.receiver_slices():
        if kind in ("mlp", "logits"):
            fwd.append((_receiver_hook(model, layer, kind), keep))
        elif kind in ("q", "k", "v"):
            fwd.append((act_name(kind, layer), keep))
    with torch.enable_grad(), _frozen_params(model), _mlp_in_hook(model):
        with _ln1_pre_hooks(model, {layer: ln1_input(layer) for layer in qkv_layers}):
            last = _run_last(model, batch, fwd)
        m = metric(last).float()
        check_finite(m, "metric")
        live = positions().to(last.device)
        m.mean().backward()
    with torch.no_grad():
        for (layer, kind), (a, b) in graph.receiver_slices().items():
            if kind == "q":
                block = _qkv_receiver_grads(model, layer, ln_in[layer][1][live], grads, live)
                consume(a, a + len(block), block)
            elif kind in ("mlp", "logits"):
                consume(a, b, _grad(grads, _receiver_hook(model, layer, kind))[live][None])


def _grad(grads: dict[str, Tensor], name: str) -> Tensor:
    if name not in grads:
        raise RuntimeError(f"no gradient reached {name!r}; is the metric differentiable?")
    return grads[name].float()


def _qkv_receiver_grads(
    model: HookedTransformer, layer: int, x: Tensor, grads: dict[str, Tensor], live: Tensor
) -> Tensor:
    """``[n_heads + 2·n_kv_heads, n, d_model]``: the gradients of layer ``layer``'s query
    receivers (per head), then key and value receivers (per key/value head), at the ``n`` live
    positions, whose ``ln1`` inputs are ``x [n, d_model]``."""
    attn = model.blocks[layer].attn
    grouped = hasattr(attn, "_W_K") and not model.cfg.ungroup_grouped_query_attention
    w_k, w_v = (attn._W_K, attn._W_V) if grouped else (attn.W_K, attn.W_V)
    parts = []
    for kind, w in (("q", attn.W_Q), ("k", w_k), ("v", w_v)):
        # ∂M/∂(ln1 output) through one head only: W[h] · ∂M/∂(its q / k / v)
        parts.append(torch.einsum("nhe,hde->hnd", _grad(grads, act_name(kind, layer))[live], w.float()))
    return _norm_vjp(model.blocks[layer].ln1, x.float(), torch.cat(parts))


def _norm_vjp(norm: torch.nn.Module, x: Float[Tensor, "*pos d"], u: Float[Tensor, "h *pos d"]) -> Tensor:
    """The vector-Jacobian product of the normalisation ``norm`` at ``x`` for each of the ``h``
    upstream gradients ``u`` (closed form for TransformerLens' LayerNorm / RMSNorm with or without
    a folded weight; autograd for anything else)."""
    if isinstance(norm, torch.nn.Identity):
        return u
    centred = isinstance(norm, (LayerNorm, LayerNormPre))
    if centred or isinstance(norm, (RMSNorm, RMSNormPre)):
        v = u * norm.w.float() if hasattr(norm, "w") else u
        xc = x - x.mean(-1, keepdim=True) if centred else x
        scale = (xc.pow(2).mean(-1, keepdim=True) + norm.eps).sqrt()
        n = xc / scale
        out = v - n * (v * n).mean(-1, keepdim=True)
        return (out - v.mean(-1, keepdim=True) if centred else out) / scale
    xr = x[None].expand_as(u).contiguous().requires_grad_(True)
    with torch.enable_grad():
        (gx,) = torch.autograd.grad(norm(xr), xr, u.to(xr.dtype))
    return gx.float()


class _Scores:
    """Edge scores accumulated over gradient passes: ``scores[s, r] += weight · Σ delta[s] ·
    grads[r]`` over the positions where some sender differs between the runs (elsewhere delta is
    exactly 0) and d_model; each receiver group is multiplied only by the senders upstream of it
    (a prefix of the layer-ordered senders, found once from the graph's mask)."""

    def __init__(self, graph: Graph, device, weight: float):
        self.scores = torch.zeros(len(graph.senders), len(graph.receivers), device=device)
        self.weight = weight
        self.upstream = {}
        for a, b in graph.receiver_slices().values():
            k = int(graph.mask[:, a].sum())
            prefix = bool(graph.mask[:k, a:b].all()) and not bool(graph.mask[k:, a:b].any())
            self.upstream[a] = k if prefix else len(graph.senders)
        self.delta: Tensor | None = None  # [s, n·d] at the live positions
        self.mask: Tensor | None = None  # [b p] the live positions

    def live(self, delta: Float[Tensor, "s b p d"]) -> Tensor:
        """``positions`` for :func:`_gradient_pass`: keeps the live deltas, returns their mask."""
        self.mask = (delta != 0).any(dim=(0, 3))
        self.delta = delta[:, self.mask].flatten(1)
        return self.mask

    def consume(self, a: int, b: int, block: Tensor) -> None:
        k = self.upstream[a]
        self.scores[:k, a:b] += self.weight * (self.delta[:k] @ block.flatten(1).T)


def eap(
    model: HookedTransformer,
    graph: Graph,
    clean: TokenBatch,
    corrupted: TokenBatch,
    metric: Metric,
    direction: str = "noise",
) -> EdgeScores:
    """Edge attribution patching: the first-order estimate of every edge's exact score."""
    return eap_ig(model, graph, clean, corrupted, metric, steps=1, direction=direction, _name="EAP")


def eap_ig(
    model: HookedTransformer,
    graph: Graph,
    clean: TokenBatch,
    corrupted: TokenBatch,
    metric: Metric,
    steps: int = 5,
    direction: str = "noise",
    interpolate: str = "inputs",
    _name: str = "EAP-IG",
) -> EdgeScores:
    """EAP with integrated gradients (Hanna et al. 2024), over one of two paths from the base run
    to the source run:

    - ``interpolate="inputs"`` (EAP-IG-inputs): the input embeddings go from the source's to the
      base's; the receiver gradients are averaged over ``k / steps``, k = 1 … steps, and multiply
      the fixed difference of sender outputs (source − base);
    - ``"activations"``: every edge is moved ``α`` of the way to the source run at once (each
      receiver's input ``(1 − α)·own + α·source``), for α = k / steps, k = 0 … steps; at each α
      the score is the receiver gradient times (source output − the sender's output in that very
      run), averaged over the ``steps + 1`` points. This is the mask-gradient integral of
      auto-circuit (``integrated_grad_samples=steps``), which sums the same points:
      ours × (steps + 1) = −theirs (their loss is the negated metric).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r}; need a positive integer number of interpolation steps")
    if interpolate not in ("inputs", "activations"):
        raise ValueError(f"interpolate={interpolate!r}; allowed: ['inputs', 'activations']")
    _check_pairs(model, clean, corrupted, metric)
    base, source = _roles(clean, corrupted, direction)
    # one source forward gives the sender outputs and (for the activation path) the receiver inputs
    out_src, _, src_inputs = _sender_run(model, graph, source, receiver_inputs=interpolate == "activations")
    if interpolate == "activations":
        scores = _activation_ig(model, graph, base, metric, steps, out_src, src_inputs)
    else:
        scores = _input_ig(model, graph, base, metric, steps, out_src)
    scores = scores.cpu()
    edges = graph.edges()
    # the mask's row-major True entries are graph.edges()' order: one gather, not 32k indexings
    return EdgeScores(graph, edges, scores[graph.mask], _name)


def _input_ig(model, graph: Graph, base: TokenBatch, metric: Metric, steps: int, out_src: Tensor) -> Tensor:
    """Mean over α = k / steps (k = 1 … steps) of grad_r(α) · (source_s − base_s), the input
    embedding at source + α·(base − source); α = 1 is the base run, whose forward also gives the
    base sender outputs."""
    acc, tracker = _Scores(graph, out_src.device, 1 / steps), _SenderTracker(model, graph)
    _gradient_pass(
        model, graph, base, metric, acc.consume, lambda: acc.live(out_src - tracker.outputs()), tracker=tracker
    )
    out_base0 = tracker.outputs()[0].clone()
    for k in range(1, steps):
        embed = out_src[0] + (k / steps) * (out_base0 - out_src[0])
        _gradient_pass(model, graph, base, metric, acc.consume, lambda: acc.mask, embed=embed)
    return acc.scores


def _activation_ig(model, graph: Graph, base: TokenBatch, metric: Metric, steps: int, out_src, src_inputs) -> Tensor:
    """Mean over α = k / steps (k = 0 … steps) of grad_r(α) · (source_s − own_s(α))."""
    acc = _Scores(graph, out_src.device, 1 / (steps + 1))
    for k in range(steps + 1):
        tracker = _SenderTracker(model, graph)
        live = lambda tracker=tracker: acc.live(out_src - tracker.outputs())  # noqa: E731
        _gradient_pass(model, graph, base, metric, acc.consume, live, mix=(k / steps, src_inputs), tracker=tracker)
    return acc.scores


# --------------------------------------------------------------------------- circuits


@dataclass
class Faithfulness:
    """The metric with a circuit kept (every other edge patched from the corrupted run) beside the clean and
    corrupted metrics, per prompt; ``mean`` is the pooled share of the clean − corrupted gap."""

    metric_circuit: Float[Tensor, " batch"]
    metric_clean: Float[Tensor, " batch"]
    metric_corrupted: Float[Tensor, " batch"]
    per_prompt: Float[Tensor, " batch"]  # recovery scale; NaN where the clean–corrupted gap is undefined
    n_edges: int

    @property
    def mean(self) -> float:
        """The pooled share of the gap: mean(circuit − corrupted) / mean(clean − corrupted)."""
        gap = float((self.metric_clean - self.metric_corrupted).mean())
        return float("nan") if abs(gap) < 1e-12 else float((self.metric_circuit - self.metric_corrupted).mean()) / gap

    def ci(self, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
        """Percentile-bootstrap CI of :attr:`mean`, resampling prompts with their circuit, clean and
        corrupted metrics together (the gap's own sampling error included); NaN when undefined."""
        num = (self.metric_circuit - self.metric_corrupted).double().numpy()
        den = (self.metric_clean - self.metric_corrupted).double().numpy()
        if den.mean() < 0:  # a metric that falls from clean to corrupted: the same share, signs flipped
            num, den = -num, -den
        return ratio_ci(num, den, 1e-12, paired=True, n_boot=n_boot, seed=seed, level=level)[1]


@dataclass
class FaithfulnessReference:
    """What every faithfulness of one clean / corrupted batch shares: the corrupted run's sender
    outputs and both runs' metrics (two forwards, computed once per curve)."""

    out_corrupted: Tensor
    m_clean: Float[Tensor, " batch"]
    m_corrupted: Float[Tensor, " batch"]


def faithfulness_reference(
    model: HookedTransformer, graph: Graph, clean: TokenBatch, corrupted: TokenBatch, metric: Metric
) -> FaithfulnessReference:
    """What every faithfulness evaluation on one pair set shares: the corrupted run's sender outputs and the clean
    and corrupted metrics (computed once for a whole curve)."""
    out_corr, last_corr = sender_outputs(model, graph, corrupted)
    with torch.no_grad():
        last_clean = _run_last(model, clean, [])
    return FaithfulnessReference(out_corr, metric(last_clean).float().cpu(), metric(last_corr).float().cpu())


def faithfulness(
    model: HookedTransformer,
    graph: Graph,
    clean: TokenBatch,
    corrupted: TokenBatch,
    metric: Metric,
    circuit: Bool[Tensor, "sender receiver"] | Sequence[tuple[int, int]],
    tol: float = 1e-3,
    reference: FaithfulnessReference | None = None,
) -> Faithfulness:
    """The clean run with every edge *outside* ``circuit`` patched from the corrupted run, as a
    share of the clean–corrupted gap (1 = the circuit alone carries the behaviour).
    ``reference``: :func:`faithfulness_reference` of the same batches, to skip its two forwards."""
    check_tol(tol)
    keep = circuit if isinstance(circuit, Tensor) else graph.edge_mask(circuit)
    ref = faithfulness_reference(model, graph, clean, corrupted, metric) if reference is None else reference
    m = patch_edges(model, graph, clean, corrupted, graph.mask & ~keep, metric, source_outputs=ref.out_corrupted)
    per, _ = recovery(m, ref.m_clean, ref.m_corrupted, tol)
    return Faithfulness(m, ref.m_clean, ref.m_corrupted, per, int(keep.sum()))


def faithfulness_curve(
    model: HookedTransformer,
    graph: Graph,
    clean: TokenBatch,
    corrupted: TokenBatch,
    metric: Metric,
    scores: EdgeScores,
    sizes: Sequence[int],
) -> list[tuple[int, float]]:
    """(circuit size, pooled faithfulness) for the top-``n`` edges of ``scores`` at every size."""
    ref = faithfulness_reference(model, graph, clean, corrupted, metric)
    return [
        (n, faithfulness(model, graph, clean, corrupted, metric, scores.top(n).edges, reference=ref).mean)
        for n in sizes
    ]


# --------------------------------------------------------------------------- circuits from scores


def _receiver_owner(graph: Graph) -> list[list[int]]:
    """For each receiver, the sender nodes whose computation it feeds (a K/V receiver of a GQA
    model feeds every query head of its group; the logits feed none)."""
    index = {(s.layer, s.kind, s.index): i for i, s in enumerate(graph.senders)}
    group = graph.n_heads // graph.n_kv_heads
    out = []
    for r in graph.receivers:
        if r.kind == "q":
            out.append([index[(r.layer, "head", r.index)]])
        elif r.kind in ("k", "v"):
            out.append([index[(r.layer, "head", h)] for h in range(r.index * group, (r.index + 1) * group)])
        elif r.kind == "mlp":
            out.append([index[(r.layer, "mlp", 0)]])
        else:
            out.append([])
    return out


def prune_dangling(graph: Graph, keep: Bool[Tensor, "sender receiver"]) -> Bool[Tensor, "sender receiver"]:
    """``keep`` without edges that lie on no path from the embedding to the logits: an edge's
    sender must be reached from the embedding through kept edges, and its receiver's node must
    reach the logits."""
    owner = _receiver_owner(graph)
    logits = len(graph.receivers) - 1
    keep = keep.clone()
    while True:
        reached = {0}  # the embedding; senders are in topological order
        for si in range(1, len(graph.senders)):
            feeds = [ri for ri in range(len(graph.receivers)) if si in owner[ri]]
            if any(bool(keep[sorted(reached), ri].any()) for ri in feeds):
                reached.add(si)
        useful = set()  # senders with a kept path to the logits
        for si in reversed(range(len(graph.senders))):
            targets = keep[si].nonzero()[:, 0].tolist()
            if any(ri == logits or any(o in useful for o in owner[ri]) for ri in targets):
                useful.add(si)
        new = keep.clone()
        for si in range(len(graph.senders)):
            if si not in reached or si not in useful:
                new[si] = False
        for ri in range(len(graph.receivers)):
            if ri != logits and not any(o in useful for o in owner[ri]):
                new[:, ri] = False
        if torch.equal(new, keep):
            return keep
        keep = new


def circuit_from_scores(scores: EdgeScores, n: int) -> Bool[Tensor, "sender receiver"]:
    """The ``n`` edges with the largest |score|, without those on no embedding-to-logits path
    (:func:`prune_dangling`; the circuit may end up smaller than ``n``)."""
    return prune_dangling(scores.graph, scores.top(n).mask())


def plot_circuit(
    graph: Graph, keep: Bool[Tensor, "sender receiver"], scores: EdgeScores | None = None, title: str = ""
):
    """Nodes by layer (embedding at the bottom, logits at the top, heads then the MLP left to
    right), kept edges drawn with width by |score| and colour by sign."""
    import matplotlib.pyplot as plt

    def pos_sender(s: Node) -> tuple[float, float]:
        if s.kind == "embed":
            return (graph.n_heads / 2, -1.0)
        return (float(s.index if s.kind == "head" else graph.n_heads + 0.5), s.layer + 0.5 * (s.kind == "mlp"))

    def pos_receiver(r: Node) -> tuple[float, float]:
        if r.kind == "logits":
            return (graph.n_heads / 2, graph.n_layers + 0.5)
        if r.kind == "mlp":
            return (graph.n_heads + 0.5, r.layer + 0.4)
        group = graph.n_heads // graph.n_kv_heads
        x = r.index if r.kind == "q" else (r.index + 0.5) * group - 0.5
        return (float(x), r.layer - 0.1)

    value = {} if scores is None else {e: float(v) for e, v in zip(scores.edges, scores.scores)}
    edges = keep.nonzero().tolist()
    top = max((abs(value.get(tuple(e), 1.0)) for e in edges), default=1.0) or 1.0
    fig, ax = plt.subplots(figsize=(8, 0.45 * graph.n_layers + 3))
    for s, r in edges:
        (x0, y0), (x1, y1) = pos_sender(graph.senders[s]), pos_receiver(graph.receivers[r])
        v = value.get((s, r), 1.0)
        ax.annotate(
            "",
            (x1, y1),
            (x0, y0),
            arrowprops={
                "arrowstyle": "-|>",
                "lw": 0.5 + 3 * abs(v) / top,
                "color": "tab:red" if v < 0 else "tab:blue",
                "alpha": 0.7,
            },
        )
    used = {s for s, _ in edges} | {o for _, r in edges for o in _receiver_owner(graph)[r]}
    for si in used:
        x, y = pos_sender(graph.senders[si])
        ax.scatter([x], [y], s=60, color="0.2", zorder=3)
        ax.text(x, y + 0.15, graph.senders[si].name, fontsize=7, ha="center")
    ax.text(graph.n_heads / 2, graph.n_layers + 0.7, "logits", ha="center", fontsize=8)
    ax.set_xlim(-1, graph.n_heads + 1.5)
    ax.set_ylim(-1.5, graph.n_layers + 1.2)
    ax.set_xlabel("head index (MLP at the right)")
    ax.set_ylabel("layer")
    ax.set_title(title or f"circuit: {len(edges)} edges (blue +, red −; width |score|)", fontsize=10)
    fig.tight_layout()
    return fig
