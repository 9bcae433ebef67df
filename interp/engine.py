"""Batched patching engine: many patched variants of one batch of prompts, few forward passes.

A *variant* overwrites one activation site (a hook, optionally one position and/or one head)
with values from a *source* (the clean run for denoising, the corrupted run for noising, a
mean activation for causal mediation). The engine

1. runs the base batch once and caches its residual stream before every layer;
2. sorts the variants by the first layer they change and stacks them along the batch axis,
   ``copies × batch`` rows per forward, chunked so a forward stays within ``memory_budget_gb``;
3. starts each chunk from the cached residual at its first changed layer
   (``HookedTransformer.forward(start_at_layer=...)``) instead of from the embedding, since
   every layer before it is identical to the base run;
4. with causal attention, recomputes only the positions from the first one a chunk changes:
   earlier positions equal the base run's, so they enter as TL's key/value cache;
5. stops before the final norm and unembeds only the position each metric reads (the last
   real token), not the whole sequence.

The result equals running one forward per variant with a hook (``transformer_lens.patching``
does that; ``tests/integration/test_patching_engine.py`` checks parity to 1e-4).

Example:
    >>> variants = [Variant(f"blocks.{l}.attn.hook_z", l, head=h) for l in range(L) for h in range(H)]
    >>> m = run_variants(model, corrupted, {v.hook: clean_z[v.hook] for v in variants}, variants, metric)
    >>> m.shape  # [variant batch]
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float
from torch import Tensor, nn
from transformer_lens import HookedTransformer
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry

from interp.data.tokenize import TokenBatch
from interp.hooks import act_name, capture, check_finite, has_head_axis, hooks
from interp.progress import log, progress

Metric = Callable[[Float[Tensor, "batch d_vocab"]], Float[Tensor, " batch"]]

DEFAULT_MEMORY_BUDGET_GB = 4.0
# below this many stacked rows a forward is dominated by per-call overhead: merge a small
# layer group into the next one rather than run it alone
MIN_ROWS_PER_FORWARD = 64


@dataclass(frozen=True)
class Variant:
    """One patched run: overwrite ``hook`` (in block ``layer``) at ``pos`` (None: every
    selected position) and ``head`` (None: every head, or a hook without a head axis)."""

    hook: str
    layer: int
    pos: int | None = None
    head: int | None = None


def layer_of(hook: str) -> int:
    """Block index of a ``blocks.<i>.…`` hook name."""
    parts = hook.split(".")
    if len(parts) < 2 or parts[0] != "blocks" or not parts[1].isdigit():
        raise ValueError(f"hook={hook!r} is not inside a transformer block (expected 'blocks.<layer>.…')")
    return int(parts[1])


def bytes_per_row(model: HookedTransformer, seq: int) -> int:
    """Rough peak bytes one stacked row of length ``seq`` costs in a no-grad forward.

    Counts what is alive at once inside a block (residual copies, q/k/v/z with GQA keys and
    values expanded to every query head, attention scores and pattern, the gated MLP's hidden
    activations), the patch's where-copies, and the final-position logits. Deliberately
    generous: the budget is a ceiling, not a target."""
    c = model.cfg
    elem = torch.finfo(c.dtype).bits // 8 if c.dtype.is_floating_point else 4
    d_head_total = c.n_heads * c.d_head
    per_pos = 8 * c.d_model + 6 * d_head_total + 4 * (c.d_mlp or 4 * c.d_model)
    attn = 4 * c.n_heads * seq * seq
    return elem * (seq * per_pos + attn + 2 * c.d_vocab)


def plan_chunks(
    variants: Sequence[Variant],
    batch: int,
    max_rows: int,
    min_rows: int = MIN_ROWS_PER_FORWARD,
    first: Sequence[int] | None = None,
) -> list[list[int]]:
    """Indices of ``variants`` grouped into forwards: sorted by layer (then first changed
    position), at most ``max_rows`` rows (copies × batch) each; a chunk spans several layers
    only while it is below ``min_rows`` (it then starts at its lowest layer)."""
    max_copies = max(1, max_rows // max(batch, 1))
    first = [0] * len(variants) if first is None else first
    order = sorted(range(len(variants)), key=lambda i: (variants[i].layer, first[i]))
    chunks: list[list[int]] = []
    for i in order:
        cur = chunks[-1] if chunks else None
        if (
            cur is None
            or len(cur) >= max_copies
            or (variants[i].layer != variants[cur[0]].layer and len(cur) * batch >= min_rows)
        ):
            chunks.append([i])
        else:
            cur.append(i)
    return chunks


def final_logits(
    model: HookedTransformer, resid: Float[Tensor, "*rows d_model"], columns: Tensor | None = None
) -> Float[Tensor, "*rows d_vocab"]:
    """The model's output head (final norm, unembedding, logit soft-cap) on residual vectors of
    any leading shape: the same ops ``HookedTransformer.forward`` applies after the last block
    (the logit lens reads intermediate layers through it too).

    ``columns`` (token ids): unembed only those; the other logits are NaN, so a metric that
    reads any other token gives NaN rather than a wrong number. For a logit difference this
    skips nearly all of the unembedding (49k columns for SmolLM2)."""
    if columns is not None and len(columns) and (int(columns.min()) < 0 or int(columns.max()) >= model.cfg.d_vocab):
        bad = [int(c) for c in columns if not 0 <= int(c) < model.cfg.d_vocab]
        raise ValueError(
            f"metric reads token ids {bad[:5]} that are not in the vocabulary (0..{model.cfg.d_vocab - 1})"
        )
    lead = resid.shape[:-1]
    x = resid.reshape(-1, 1, resid.shape[-1])  # [rows 1 d_model]: the norms expect a position axis
    if model.cfg.normalization_type is not None:
        x = model.ln_final(x)
    x = x[:, 0]
    w, b = model.unembed.W_U, model.unembed.b_U
    cap = getattr(model.cfg, "output_logits_soft_cap", -1.0) or -1.0
    if columns is None:
        # the same F.linear call as TL's Unembed.forward
        logits = torch.nn.functional.linear(x, w.T.contiguous(), b)
        logits = cap * torch.tanh(logits / cap) if cap > 0 else logits
        return logits.reshape(*lead, -1)
    cols = columns.to(w.device)
    sub = torch.nn.functional.linear(x, w[:, cols].T, b[cols])
    sub = cap * torch.tanh(sub / cap) if cap > 0 else sub
    logits = torch.full((x.shape[0], w.shape[1]), float("nan"), dtype=sub.dtype, device=sub.device)
    logits[:, cols] = sub
    return logits.reshape(*lead, -1)


def metric_columns(metric) -> Tensor | None:
    """Token ids a metric declares it reads (``metric.columns``: a 1-d integer tensor), or None for all."""
    cols = getattr(metric, "columns", None)
    if cols is None:
        return None
    if not isinstance(cols, Tensor) or cols.ndim != 1 or cols.dtype.is_floating_point or cols.dtype == torch.bool:
        raise TypeError(f"metric.columns={cols!r:.80}; expected a 1-d integer tensor of token ids (or no attribute)")
    return cols


def apply_metric(metric: Metric, logits: Float[Tensor, "batch d_vocab"]) -> Float[Tensor, " batch"]:
    """``metric(logits)`` held to the metric contract: a finite float tensor of shape
    ``[batch]``, one number per prompt. Anything else is an error naming what came back — a
    metric that averages over prompts would otherwise be broadcast into identical per-prompt
    recoveries and zero-width confidence intervals."""
    batch = logits.shape[0]
    out = metric(logits)
    if not isinstance(out, Tensor):
        raise TypeError(
            f"metric returned a {type(out).__name__}; a metric must return a float tensor of shape [batch={batch}], "
            "one number per prompt"
        )
    if not out.is_floating_point():
        raise TypeError(
            f"metric returned a {out.dtype} tensor; a metric must return a float tensor of shape [batch={batch}] (cast "
            "with .float())"
        )
    if tuple(out.shape) != (batch,):
        raise ValueError(
            f"metric returned shape {tuple(out.shape)}; expected [batch={batch}], one number per prompt "
            "(do not average over prompts: recovery and its CI are per prompt)"
        )
    bad = ~torch.isfinite(out)
    if bad.any():
        cols = metric_columns(metric)
        if cols is not None and not torch.isfinite(logits[:, cols.to(logits.device)]).all():
            raise ValueError(
                f"the model's logits at the declared columns are not finite for {int(bad.sum())} prompt(s)"
            )
        if cols is not None:
            raise ValueError(
                f"metric returned NaN/inf for {int(bad.sum())} of {batch} prompts. It declares metric.columns="
                f"{cols.tolist()}: only those token ids are unembedded and every other logit is NaN, so a metric "
                "that reads another token id must list it in metric.columns (or have no .columns for the full "
                "vocabulary)"
            )
        raise ValueError(
            f"metric returned NaN/inf for {int(bad.sum())} of {batch} prompts; a metric must be finite on finite logits"
        )
    return out


# TransformerLens modules whose forward calls F.linear(x, W.T.contiguous()) on these weights
_TRANSPOSED_LINEAR = {"GatedMLP": ("W_gate", "W_in", "W_out"), "Unembed": ("W_U",)}


def _swappable(model: HookedTransformer, unembed: bool = True):
    for module in model.modules():
        if not unembed and type(module).__name__ == "Unembed":
            continue
        for name in _TRANSPOSED_LINEAR.get(type(module).__name__, ()):
            param = module._parameters.get(name)
            if param is not None and param.ndim == 2:
                yield module, name, param


def swapped_weight_bytes(model: HookedTransformer) -> int:
    """Bytes of the extra weight copies :func:`linear_friendly_weights` currently holds."""
    return sum(p.numel() * p.element_size() for _, _, p in _swappable(model) if p.T.is_contiguous())


@contextlib.contextmanager
def linear_friendly_weights(
    model: HookedTransformer, max_bytes: float = float("inf"), unembed: bool = True
) -> Iterator[None]:
    """Store the weights that TL's gated MLP and unembedding transpose on every call in
    transposed memory layout, so their ``W.T.contiguous()`` costs nothing.

    TL copies each of these matrices on every forward (for SmolLM2 the 113 MB ``W_U`` alone
    takes ~0.15 s on 2 cores), which dominates a patching sweep made of many forwards. The
    values and the tensors handed to ``F.linear`` are the same, so outputs are bit-identical.
    The original Parameter objects are put back on exit, also when the body raises; while
    inside, the swapped weights cost one extra copy of those matrices in memory, so nothing is
    swapped when that copy would exceed ``max_bytes``. ``unembed=False`` leaves the
    unembedding alone (metrics that read a few columns never use all of it; see
    :func:`final_logits`).
    """
    swapped: list[tuple[nn.Module, str, nn.Parameter]] = []
    todo = [(m, n, p) for m, n, p in _swappable(model, unembed) if not p.T.is_contiguous()]
    if sum(p.numel() * p.element_size() for _, _, p in todo) > max_bytes:
        todo = []
    try:
        for module, name, param in todo:
            module._parameters[name] = nn.Parameter(param.detach().T.contiguous().T, requires_grad=param.requires_grad)
            swapped.append((module, name, param))
        yield
    finally:
        for module, name, param in reversed(swapped):
            module._parameters[name] = param


@torch.no_grad()
def base_run(
    model: HookedTransformer,
    base: TokenBatch,
    extra_hooks: Sequence[str] = (),
    columns: Tensor | None = None,
    resid: bool = True,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Forward ``base`` once; return its last-token logits and the captured activations
    (``extra_hooks``, plus the residual before every layer when ``resid``: the engine starts
    patched runs from it, a source run does not need it)."""
    names = [act_name("resid_pre", layer) for layer in range(model.cfg.n_layers)] if resid else []
    names += [n for n in extra_hooks if n not in names]
    with capture(model, names) as acts:
        resid = model(
            batch_tokens(model, base), stop_at_layer=model.cfg.n_layers, attention_mask=batch_mask(model, base)
        )
    logits = final_logits(model, last_rows(resid, base), columns)
    return logits, dict(acts)


def batch_tokens(model, batch: TokenBatch) -> Tensor:
    """The batch's token ids on the model's device."""
    return batch.tokens.to(model.cfg.device)


def batch_mask(model, batch: TokenBatch) -> Tensor | None:
    """The attention mask on the model's device, or None when nothing is padded."""
    return batch.attention_mask.to(model.cfg.device) if batch.is_padded else None


def last_rows(resid: Tensor, batch: TokenBatch, offset: int = 0) -> Tensor:
    """Each prompt's last real position (minus ``offset``) of ``resid`` ``[copies*batch, pos, ...]``."""
    n = batch.last_index.shape[0]
    copies = resid.shape[0] // n
    idx = (batch.last_index.to(resid.device) - offset).repeat(copies)
    return resid[torch.arange(resid.shape[0], device=resid.device), idx]


def _check_variants(model, sources: Mapping[str, Tensor], variants: Sequence[Variant], memory_budget_gb) -> None:
    if not variants:
        raise ValueError("variants is empty; nothing to patch")
    if isinstance(memory_budget_gb, bool) or not isinstance(memory_budget_gb, (int, float)) or not memory_budget_gb > 0:
        raise ValueError(f"memory_budget_gb={memory_budget_gb!r}; must be a number > 0")
    n_layers = model.cfg.n_layers
    for v in variants:
        if v.hook not in sources:
            raise ValueError(f"no source activation for hook {v.hook!r}; sources has {sorted(sources)[:5]}…")
        if v.hook not in model.hook_dict:
            raise ValueError(f"hook {v.hook!r} is not a hook point of this model")
        if not 0 <= v.layer < n_layers:
            raise ValueError(f"variant layer={v.layer} out of range 0..{n_layers - 1}")
    for name, src in sources.items():
        check_finite(src, f"source activation for {name!r}")


@torch.no_grad()
def run_variants(
    model: HookedTransformer,
    base: TokenBatch,
    sources: Mapping[str, Tensor],
    variants: Sequence[Variant],
    metric: Metric,
    slots: Bool[Tensor, "batch pos"] | None = None,
    memory_budget_gb: float = DEFAULT_MEMORY_BUDGET_GB,
    progress: bool = True,
    desc: str = "patching",
    base_cache: Mapping[str, Tensor] | None = None,
    share_prefix: bool = True,
) -> Float[Tensor, "variant batch"]:
    """The metric of every patched variant, per prompt.

    ``sources[hook]`` has the base activation's shape (``[batch, pos, ...]``) or is
    broadcastable to it; variant ``v`` writes it into the base run at ``v.hook`` on the slots
    ``slots`` (default: every position) narrowed to ``v.pos`` / ``v.head``.

    ``base_cache`` holds the base run's ``blocks.<l>.hook_resid_pre`` and, for prefix sharing,
    the base activations at the variants' hooks (see :func:`base_run`); it is computed when
    not given. With ``share_prefix`` (causal models, not left-padded), positions before the
    first one a variant changes are not recomputed: they are identical to the base run, so
    the patched rows attend to the base run's cached keys and values there.
    """
    _check_variants(model, sources, variants, memory_budget_gb)
    batch, seq = len(base), base.tokens.shape[1]
    if slots is None:
        slots = torch.ones(batch, seq, dtype=torch.bool)
    slots = slots.to(model.cfg.device)
    if tuple(slots.shape) != (batch, seq):
        raise ValueError(f"slots has shape {tuple(slots.shape)}; expected [batch={batch}, pos={seq}]")
    hook_names = sorted({v.hook for v in variants})
    if base_cache is None:
        _, base_cache = base_run(model, base, hook_names if share_prefix else ())
    share_prefix = (
        share_prefix and model.cfg.attention_dir == "causal" and not (base.is_padded and base.padding_side == "left")
    )
    first = _first_changed(variants, sources, base_cache, slots, base) if share_prefix else [0] * len(variants)

    return _run_chunks(
        model, base, base_cache, sources, variants, first, slots, metric, memory_budget_gb, (desc, progress)
    )


def _run_chunks(model, base, base_cache, sources, variants, first, slots, metric, memory_budget_gb, bar_args) -> Tensor:
    """Every variant's metric, in chunks that fit ``memory_budget_gb``."""
    batch, seq = len(base), base.tokens.shape[1]
    # the budget covers the stacked forwards and the weight copies made for speed
    free = memory_budget_gb * 2**30 - swapped_weight_bytes(model)
    budget_rows = int(max(free, 0) // bytes_per_row(model, seq))
    chunks = plan_chunks(variants, batch, budget_rows, first=first)
    out = torch.empty(len(variants), batch)
    attention_mask = base.attention_mask.to(model.cfg.device)
    prefix_caches: dict[int, TransformerLensKeyValueCache] = {}
    # the cost preview: said before the first forward, so a grid too large for the session shows at once
    rows = max(len(c) for c in chunks) * batch if chunks else 0
    preview = (
        f"{bar_args[0]}: {len(variants)} variants x {batch} prompts in {len(chunks)} forwards "
        f"(<= {rows} rows, ~{rows * bytes_per_row(model, seq) / 2**30:.2f} GiB each)"
    )
    if bar_args[1]:
        log(preview)
    bar = progress(total=len(variants), desc=preview, disable=not bar_args[1], leave=False)
    with linear_friendly_weights(model, max_bytes=memory_budget_gb * 2**30 / 4, unembed=metric_columns(metric) is None):
        for chunk in chunks:
            state = (base_cache, sources, variants, chunk, first, slots, attention_mask, prefix_caches)
            _run_chunk(model, base, *state, metric, out)
            bar.update(len(chunk))
    bar.close()
    return out


def _run_chunk(
    model, base, base_cache, sources, variants, chunk, first, slots, attention_mask, prefix_caches, metric, out
) -> None:
    """One stacked forward: copy ``c`` of the batch carries variant ``chunk[c]``."""
    batch, n_layers = len(base), model.cfg.n_layers
    copies = len(chunk)
    start = min(variants[i].layer for i in chunk)
    p0 = min(first[i] for i in chunk)
    resid = base_cache[act_name("resid_pre", start)][:, p0:].repeat(copies, 1, 1)
    kv = None
    if p0 > 0:
        if p0 not in prefix_caches:
            prefix_caches[p0] = prefix_cache(model, base, p0)
        kv = repeat_cache(prefix_caches[p0], copies, start)
    mask = attention_mask.repeat(copies, 1) if (base.is_padded or kv is not None) else None
    fwd = list(_chunk_hooks([variants[i] for i in chunk], sources, slots, batch, p0))
    with hooks(model, fwd):
        resid = model(resid, start_at_layer=start, stop_at_layer=n_layers, attention_mask=mask, past_kv_cache=kv)
    logits = final_logits(model, last_rows(resid, base, p0), metric_columns(metric))
    for c, i in enumerate(chunk):
        out[i] = apply_metric(metric, logits[c * batch : (c + 1) * batch]).float().cpu()


def _first_changed(variants, sources, base_cache, slots: Tensor, base: TokenBatch) -> list[int]:
    """Per variant, the first position whose activation can differ from the base run (a
    conservative bound: exact comparison of source and base values on the variant's slots),
    capped so the metric's position is always recomputed."""
    cap = int(base.last_index.min())
    per_hook: dict[str, Tensor] = {}  # hook -> [pos, heads or 1]: does any prompt differ here?
    for name in {v.hook for v in variants}:
        if name not in base_cache:
            continue
        act = base_cache[name]
        diff = sources[name].to(act).expand_as(act) != act
        diff = diff.flatten(3).any(-1) if has_head_axis(name) else diff.flatten(2).any(-1, keepdim=True)
        per_hook[name] = (diff & slots.to(diff.device)[:, :, None]).any(0)
    first = []
    for v in variants:
        if v.hook not in per_hook:
            first.append(0)
            continue
        if v.pos is not None:
            first.append(min(v.pos, cap))
            continue
        d = per_hook[v.hook] if v.head is None else per_hook[v.hook][:, v.head : v.head + 1]
        hits = d.any(-1).nonzero()
        first.append(min(int(hits[0, 0]) if len(hits) else cap, cap))
    return first


@torch.no_grad()
def prefix_cache(model: HookedTransformer, base: TokenBatch, length: int) -> TransformerLensKeyValueCache:
    """Keys and values of the base prompts' first ``length`` positions, in TL's own cache."""
    cache = TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, len(base))
    model(
        base.tokens[:, :length].to(model.cfg.device),
        attention_mask=base.attention_mask[:, :length].to(model.cfg.device),
        past_kv_cache=cache,
        stop_at_layer=model.cfg.n_layers,
    )
    return cache


def repeat_cache(
    cache: TransformerLensKeyValueCache, copies: int, start: int = 0, frozen: bool = True, expand: bool = False
) -> TransformerLensKeyValueCache:
    """A copy for ``copies`` stacked repeats (layers before ``start`` are never read, so they
    are not copied). ``frozen=False`` gives a cache that grows, for generation (``start=0``).
    ``expand=True`` (a batch-1 cache, frozen): views instead of copies, no memory per copy."""
    if expand and not frozen:
        raise ValueError("expand=True gives read-only views; it needs frozen=True")

    def rep(t: Tensor) -> Tensor:
        return t.expand(copies, *t.shape[1:]) if expand else t.repeat(copies, *[1] * (t.ndim - 1))

    entries = [
        e if i < start else TransformerLensKeyValueCacheEntry(rep(e.past_keys), rep(e.past_values), frozen=frozen)
        for i, e in enumerate(cache.entries)
    ]
    return TransformerLensKeyValueCache(entries, rep(cache.previous_attention_mask), frozen=frozen)


def _chunk_hooks(chunk: list[Variant], sources, slots: Tensor, batch: int, p0: int):
    """One hook per hook name in the chunk; copy ``c`` of the stacked batch gets variant ``c``.
    The chunk computes positions ``p0:`` only, so sources, slots and positions shift by p0."""
    copies = len(chunk)
    by_hook: dict[str, list[int]] = {}
    for c, v in enumerate(chunk):
        by_hook.setdefault(v.hook, []).append(c)
    for name, members in by_hook.items():
        src = sources[name]
        src = src[:, p0:] if src.ndim > 1 and src.shape[1] > 1 else src
        shifted = [
            (
                c,
                Variant(
                    chunk[c].hook, chunk[c].layer, None if chunk[c].pos is None else chunk[c].pos - p0, chunk[c].head
                ),
            )
            for c in members
        ]
        yield name, _patch_fn(name, shifted, copies, src, slots[:, p0:], batch)


def _patch_fn(name: str, members: list[tuple[int, Variant]], copies: int, source: Tensor, slots: Tensor, batch: int):
    head_axis = has_head_axis(name)

    def fn(act: Tensor, hook) -> Tensor:
        seq = act.shape[1]
        shape = (copies, batch, seq, act.shape[2]) if head_axis else (copies, batch, seq)
        mask = torch.zeros(shape, dtype=torch.bool, device=act.device)
        positions = torch.arange(seq, device=act.device)
        for c, v in members:
            sel = slots if v.pos is None else slots & (positions == v.pos)[None]
            if head_axis:
                heads = torch.ones(act.shape[2], dtype=torch.bool, device=act.device)
                if v.head is not None:
                    heads = torch.arange(act.shape[2], device=act.device) == v.head
                mask[c] = sel[:, :, None] & heads
            else:
                mask[c] = sel
        mask = mask.view(*shape, *([1] * (act.ndim - len(shape) + 1)))
        view = act.view(copies, batch, *act.shape[1:])
        src = source.to(device=act.device, dtype=act.dtype).expand(batch, *act.shape[1:])
        return torch.where(mask, src[None], view).view_as(act)

    return fn
