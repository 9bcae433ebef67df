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

from interp.data.tokenize import TokenBatch, run_batch
from interp.engine import Metric
from interp.heads import has_post_attn_norm, head_contributions
from interp.hooks import act_name, capture, check_finite, hooks
from interp.patching import DIRECTIONS, check_pair_shapes, check_tol, recovery

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
def split_inputs(model: HookedTransformer) -> Iterator[None]:
    """Turn on TransformerLens' per-head Q/K/V inputs and ``hook_mlp_in`` (same numbers, extra
    hook points), restoring the model's settings on exit, also when the body raises."""
    old = (model.cfg.use_split_qkv_input, model.cfg.use_hook_mlp_in)
    model.set_use_split_qkv_input(True)
    if not model.cfg.attn_only:  # an attention-only model has no MLP input to hook
        model.set_use_hook_mlp_in(True)
    try:
        yield
    finally:
        model.set_use_split_qkv_input(old[0])
        if not model.cfg.attn_only:
            model.set_use_hook_mlp_in(old[1])


def _receiver_hook(model: HookedTransformer, layer: int, kind: str) -> str:
    if kind == "logits":
        return act_name("resid_post", model.cfg.n_layers - 1)
    return act_name({"q": "q_input", "k": "k_input", "v": "v_input", "mlp": "mlp_in"}[kind], layer)


class _SenderTracker:
    """Hooks that record every sender's output ``[b, p, d_model]`` as the forward computes it."""

    def __init__(self, model: HookedTransformer, graph: Graph, keep_graph: bool = False):
        self.model, self.graph, self.keep = model, graph, keep_graph
        self.out: dict[int, Tensor] = {}  # sender index -> output
        self._z: dict[int, Tensor] = {}
        self.index = {(s.layer, s.kind, s.index): i for i, s in enumerate(graph.senders)}
        self.post = has_post_attn_norm(model)

    def _put(self, i: int, x: Tensor) -> None:
        self.out[i] = x if self.keep else x.detach()

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


def _stack(outputs: dict[int, Tensor], idx: Sequence[int]) -> Tensor:
    return torch.stack([outputs[i] for i in idx])  # [s b p d]


# --------------------------------------------------------------------------- exact edge patching


def _check_pairs(model, clean: TokenBatch, corrupted: TokenBatch, metric: Metric) -> None:
    check_pair_shapes(clean, corrupted)
    if not callable(metric):
        raise TypeError(f"metric must be callable (last-position logits -> [batch]); got {type(metric).__name__}")


def _last(model, batch: TokenBatch, logits: Tensor) -> Tensor:
    rows = torch.arange(len(batch), device=logits.device)
    return logits[rows, batch.last_index.to(logits.device)]


@torch.no_grad()
def sender_outputs(model: HookedTransformer, graph: Graph, batch: TokenBatch) -> tuple[Tensor, Tensor]:
    """(every sender's output ``[sender b p d_model]``, the metric-ready last logits) of one run."""
    out, last, _ = _sender_run(model, graph, batch)
    return out, last


@torch.no_grad()
def _sender_run(
    model: HookedTransformer, graph: Graph, batch: TokenBatch, receiver_inputs: bool = False
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """:func:`sender_outputs` and, with ``receiver_inputs``, every receiver hook's input (per-head
    Q/K/V inputs, MLP inputs, the final residual) from the same forward."""
    tracker = _SenderTracker(model, graph)
    names = sorted({_receiver_hook(model, layer, kind) for layer, kind in graph.receiver_slices()})
    keep = capture(model, names) if receiver_inputs else contextlib.nullcontext({})
    with split_inputs(model), hooks(model, tracker.hooks()), keep as acts:
        logits = run_batch(model, batch)
    return _stack(tracker.out, range(len(graph.senders))), _last(model, batch, logits), dict(acts)


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
        users = sub.any(1).nonzero()[:, 0].tolist()
        weights = sub[users].float()  # [s_used, r]

        def fn(act: Tensor, hook, users=users, weights=weights, kind=kind) -> Tensor:
            delta = src[users].to(act.device) - _stack(tracker.out, users).to(act.device)  # [s b p d]
            add = torch.einsum("sbpd,sr->bprd", delta, weights.to(act.device))
            return act + (add[:, :, 0] if kind in ("mlp", "logits") else add).to(act.dtype)

        fwd.append((_receiver_hook(model, layer, kind), fn))
    with split_inputs(model), hooks(model, fwd):
        logits = run_batch(model, base)
    out = metric(_last(model, base, logits))
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
    with split_inputs(model), hooks(model, fwd):
        logits = run_batch(model, rep)
    return metric_rows(metric, _last(model, rep, logits), len(sets), b)


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
    tracker: _SenderTracker | None = None,
) -> Tensor:
    """∂(mean metric)/∂(receiver input) ``[receiver b p d_model]`` of one run — the full
    derivative through every later path (``embed``: replaces the input embedding, for
    integrated gradients over inputs; ``mix = (α, source inputs)``: every receiver input becomes
    ``(1 − α)·own + α·source`` — every edge α of the way to the source run, for integrated
    gradients over activations; ``tracker``: records the run's sender outputs too)."""
    grads: dict[int, Tensor] = {}

    def start(act: Tensor, hook) -> Tensor:
        # a leaf that needs a gradient, so every later activation carries one
        return (act if embed is None else embed.to(act)).detach().requires_grad_(True)

    fwd = [(act_name("resid_pre", 0), start)] + (tracker.hooks() if tracker is not None else [])
    for (layer, kind), (a, b) in graph.receiver_slices().items():

        def fn(act: Tensor, hook, a=a, b=b, kind=kind) -> Tensor:
            if mix is not None:
                act = act + mix[0] * (mix[1][hook.name].to(act) - act)

            def keep(g: Tensor) -> None:
                g = g.detach().float()
                for j, ri in enumerate(range(a, b)):
                    grads[ri] = g if kind in ("mlp", "logits") else g[:, :, j]

            act.register_hook(keep)
            return act

        fwd.append((_receiver_hook(model, layer, kind), fn))
    with torch.enable_grad(), split_inputs(model), hooks(model, fwd):
        logits = run_batch(model, batch)
        m = metric(_last(model, batch, logits)).float()
        check_finite(m, "metric")
        m.mean().backward()
    missing = [graph.receivers[i].name for i in range(len(graph.receivers)) if i not in grads]
    if missing:
        raise RuntimeError(f"no gradient reached receivers {missing[:5]}; is the metric differentiable?")
    return torch.stack([grads[i] for i in range(len(graph.receivers))])


def _attribution_scores(graph: Graph, delta: Tensor, grads: Tensor) -> Tensor:
    """score[s, r] = Σ_{b, p, d} delta[s] · grads[r], on the graph's edges."""
    full = torch.einsum("sbpd,rbpd->sr", delta, grads)
    return full.masked_fill(~graph.mask, 0.0)


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
        out_base, _ = sender_outputs(model, graph, base)
        grads = torch.zeros(len(graph.receivers), *out_base.shape[1:])
        for k in range(1, steps + 1):
            a = k / steps  # a = 1: the base run itself
            embed = None if steps == 1 else out_src[0] + a * (out_base[0] - out_src[0])
            grads += _receiver_grads(model, graph, base, metric, embed).cpu() / steps
        scores = _attribution_scores(graph, (out_src - out_base).cpu(), grads)
    edges = graph.edges()
    # the mask's row-major True entries are graph.edges()' order: one gather, not 32k indexings
    return EdgeScores(graph, edges, scores[graph.mask], _name)


def _activation_ig(model, graph: Graph, base: TokenBatch, metric: Metric, steps: int, out_src, src_inputs) -> Tensor:
    """Mean over α = k / steps (k = 0 … steps) of grad_r(α) · (source_s − own_s(α))."""
    scores = torch.zeros(len(graph.senders), len(graph.receivers))
    for k in range(steps + 1):
        tracker = _SenderTracker(model, graph)
        grads = _receiver_grads(model, graph, base, metric, mix=(k / steps, src_inputs), tracker=tracker)
        own = _stack(tracker.out, range(len(graph.senders)))
        scores += _attribution_scores(graph, (out_src - own).cpu(), grads.cpu()) / (steps + 1)
    return scores


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
        last_clean = _last(model, clean, run_batch(model, clean))
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
