"""Context managers that add, replace, ablate or capture activations at hook points.

Every manager installs its hooks on entry and removes exactly those hooks on exit, also when
the body raises, so a failed experiment never leaves a model silently patched.

Hook points are given by full name (``"blocks.3.hook_resid_post"``) or as ``(name, layer)``
(``("resid_post", 3)``, ``("z", 5)``), resolved with :func:`hook_name`.

Positions (``positions=``) select sequence positions:

- ``None``: all positions;
- an ``int`` or a list of ints: the same positions in every prompt (negative counts from the end);
- an int tensor ``[batch]``: one position per prompt, e.g. ``TokenBatch.last_index`` for the
  last real token of left- or right-padded prompts;
- an int tensor ``[batch, k]``: k positions per prompt.

Heads (``heads=``) select heads on head-indexed hook points (``hook_z``, ``hook_result``,
``hook_q``; for ``hook_k``/``hook_v`` of GQA models the index is over key-value heads).

Example:
    >>> with add_vector(model, ("resid_post", 1), v, positions=batch.last_index, scale=4.0):
    ...     logits = model(batch.tokens)
    >>> with capture(model, ["blocks.0.hook_z"]) as acts:
    ...     model(tokens)
    >>> acts["blocks.0.hook_z"].shape  # [batch pos head_index d_head]
"""

from __future__ import annotations

import contextlib
import math
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Union

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint

HookRef = Union[str, tuple[str, int]]
Positions = Union[None, int, Sequence[int], Int[Tensor, " batch"], Int[Tensor, "batch k"]]
Heads = Union[None, int, Sequence[int], Int[Tensor, " k"]]

# hook names whose activation has a head axis at dim 2
_HEAD_SUFFIXES = ("hook_z", "hook_result", "hook_q", "hook_k", "hook_v", "hook_rot_q", "hook_rot_k")


# --------------------------------------------------------------------------- name resolution


def act_name(site: str, layer: int) -> str:
    """Full hook name of a TransformerLens short ``site`` name in block ``layer``:
    ``act_name("resid_post", 3) == "blocks.3.hook_resid_post"``, ``act_name("z", 3) ==
    "blocks.3.attn.hook_z"``; a dotted path inside the block is taken as is:
    ``act_name("ln1_post.hook_scale", 3) == "blocks.3.ln1_post.hook_scale"``. No model needed;
    :func:`hook_name` also checks it exists."""
    from transformer_lens.utilities import get_act_name

    if "." in site:
        return f"blocks.{layer}.{site}"
    return get_act_name(site, layer)


def hidden_state_hook(layer: int) -> str:
    """Hook of hidden state ``layer`` in HF numbering (0 = the embeddings, ``j`` = after block
    ``j - 1``), the numbering DoLa's premature layers use."""
    return act_name("resid_pre", 0) if layer == 0 else act_name("resid_post", layer - 1)


def hook_name(model: HookedTransformer, ref: HookRef) -> str:
    """Resolve ``ref`` to a full hook name that exists in ``model``, or raise a ValueError
    naming the value and what is allowed."""
    if isinstance(ref, tuple):
        if len(ref) != 2 or not isinstance(ref[0], str):
            raise ValueError(
                f"hook={ref!r}: a tuple hook is (name, layer), e.g. ('resid_pre', 3); or give the full name "
                "'blocks.3.hook_resid_pre'"
            )
        short, layer = ref
        check_layer(model, layer)
        name = act_name(short, layer % model.cfg.n_layers)
    elif isinstance(ref, str):
        name = ref
    else:
        raise TypeError(f"hook={ref!r}: expected a hook name or (name, layer), got {type(ref).__name__}")
    if name not in model.hook_dict:
        raise ValueError(
            f"hook={ref!r} resolves to {name!r}, which is not a hook point of this model. {_hook_hint(model, name)}"
        )
    flag = next((f for suffix, f in _FLAGGED_HOOKS.items() if name.endswith(suffix)), None)
    if flag is not None and not getattr(model.cfg, flag, False):
        # the hook point exists but TransformerLens only runs it with the flag on: a capture would stay empty
        raise ValueError(
            f"hook={ref!r} ({name}) only fires with model.cfg.{flag}=True (now False); set it first "
            f"(e.g. model.set_{flag}(True))" + (" or use interp.heads for per-head outputs" if "result" in name else "")
        )
    return name


# hook points TransformerLens creates always but calls only when a config flag is on
_FLAGGED_HOOKS = {
    "attn.hook_result": "use_attn_result",
    "hook_q_input": "use_split_qkv_input",
    "hook_k_input": "use_split_qkv_input",
    "hook_v_input": "use_split_qkv_input",
    "hook_attn_in": "use_attn_in",
    "hook_mlp_in": "use_hook_mlp_in",
    "hook_tokens": "use_hook_tokens",
}


def _hook_hint(model: HookedTransformer, name: str) -> str:
    suffix = name.split(".")[-1]
    same = [n for n in model.hook_dict if n.endswith(suffix)]
    examples = same[:3] or [n for n in model.hook_dict if n.startswith("blocks.0.")][:12]
    kind = "Points with that suffix" if same else "Allowed (layer 0)"
    return f"{kind}: {examples}{' ...' if len(examples) >= 3 else ''}"


def check_layer(model: HookedTransformer, layer: int, argument: str = "layer") -> int:
    """Return ``layer`` as an int if it indexes a block of ``model`` (negatives count from the
    end). Integer types (``np.int64``, 0-d int tensors) are accepted; a float such as 0.5 is an
    error, never rounded to a layer."""
    n = model.cfg.n_layers
    if isinstance(layer, bool):
        raise TypeError(f"{argument}={layer!r}: a layer is an integer 0..{n - 1}, not a bool")
    try:
        index = operator.index(layer)
    except TypeError:
        raise TypeError(
            f"{argument}={layer!r} ({type(layer).__name__}): a layer is an integer 0..{n - 1} (or -{n}..-1)"
        ) from None
    if not -n <= index < n:
        raise ValueError(
            f"{argument}={layer!r} is out of range; this model has n_layers={n}, allowed 0..{n - 1} (or -{n}..-1)"
        )
    return index % n


def has_head_axis(name: str) -> bool:
    """True for hook points with a head axis (``hook_z``, ``hook_q`` …, ``hook_result``)."""
    return name.endswith(_HEAD_SUFFIXES)


# --------------------------------------------------------------------------- selections


def position_mask(positions: Positions, batch: int, seq: int, device=None) -> Bool[Tensor, "batch pos"]:
    """Boolean mask of the selected (prompt, position) slots; see the module docstring."""
    mask = torch.zeros(batch, seq, dtype=torch.bool, device=device)
    if positions is None:
        return mask.fill_(True)
    if isinstance(positions, (Sequence, Tensor)) and len(positions) == 0:
        raise ValueError(
            "positions is empty: it would select no slot and the hook would do nothing; pass None for every position"
        )
    if isinstance(positions, int) or (isinstance(positions, Sequence) and not isinstance(positions, Tensor)):
        cols = torch.tensor([positions] if isinstance(positions, int) else list(positions), dtype=torch.long)
        _check_positions(cols, seq)
        mask[:, cols.to(mask.device) % seq] = True
        return mask
    if not isinstance(positions, Tensor) or positions.dtype in (
        torch.float16,
        torch.float32,
        torch.float64,
        torch.bool,
    ):
        raise TypeError(
            f"positions={positions!r}: expected None, int, list of ints or an int tensor [batch] / [batch, k]"
        )
    idx = positions.to(device=mask.device, dtype=torch.long)
    idx = idx[:, None] if idx.ndim == 1 else idx
    if idx.ndim != 2 or idx.shape[0] != batch:
        raise ValueError(
            f"positions has shape {tuple(positions.shape)}; per-prompt positions must be [batch={batch}] or "
            f"[batch={batch}, k]"
        )
    _check_positions(idx, seq)
    return mask.scatter_(1, idx % seq, True)


def _check_positions(idx: Tensor, seq: int) -> None:
    if idx.numel() and (idx.max() >= seq or idx.min() < -seq):
        raise ValueError(
            f"positions={idx.tolist()} out of range for a sequence of length {seq} (allowed {-seq}..{seq - 1})"
        )


def head_mask(heads: Heads, n_heads: int, device=None) -> Bool[Tensor, " head_index"]:
    """Boolean ``[head_index]`` mask of ``heads`` (None: all), each checked to be in range."""
    mask = torch.zeros(n_heads, dtype=torch.bool, device=device)
    if heads is None:
        return mask.fill_(True)
    idx = torch.as_tensor([heads] if isinstance(heads, int) else heads, dtype=torch.long).flatten()
    if idx.numel() and (idx.max() >= n_heads or idx.min() < -n_heads):
        raise ValueError(
            f"heads={idx.tolist()} out of range; this hook point has {n_heads} heads (allowed 0..{n_heads - 1})"
        )
    mask[idx.to(mask.device) % n_heads] = True
    return mask


def slot_mask(act: Tensor, name: str, positions: Positions, heads: Heads) -> Tensor:
    """Mask broadcastable to ``act``: True where the hook should act."""
    mask = position_mask(positions, act.shape[0], act.shape[1], act.device)[:, :, None]
    if heads is None:
        return mask.view(*mask.shape[:2], *([1] * (act.ndim - 2)))
    if not has_head_axis(name):
        raise ValueError(
            f"heads={heads!r} given for {name!r}, which has no head axis; heads apply to {list(_HEAD_SUFFIXES)}"
        )
    hm = head_mask(heads, act.shape[2], act.device)
    return (mask & hm[None, None, :]).unsqueeze(-1)


# --------------------------------------------------------------------------- installing hooks


@contextlib.contextmanager
def hooks(model: HookedTransformer, fwd_hooks: Sequence[tuple[str, Callable]]) -> Iterator[None]:
    """Install ``(hook_name, fn(act, hook))`` forward hooks; remove exactly these on exit.

    Unlike ``model.reset_hooks()``, hooks installed by an enclosing context survive, so
    managers nest.
    """
    installed: list[tuple[HookPoint, object]] = []
    try:
        for name, fn in fwd_hooks:
            point = model.hook_dict[name]
            point.add_hook(fn, dir="fwd")
            installed.append((point, point.fwd_hooks[-1]))
        yield
    finally:
        for point, handle in reversed(installed):
            handle.hook.remove()
            if handle in point.fwd_hooks:
                point.fwd_hooks.remove(handle)


def active_hook_count(model: HookedTransformer) -> int:
    """Number of torch hooks registered on ``model``'s hook points (0 for a clean model).

    Counted at the torch level so hooks added by any route (ours, TL's, raw torch) show up."""
    return sum(len(p._forward_hooks) + len(p._backward_hooks) for p in model.hook_dict.values())


# --------------------------------------------------------------------------- the managers


def check_finite(value: Tensor, argument: str) -> None:
    """Raise a ValueError naming ``argument`` when ``value`` holds NaN or inf."""
    if not torch.isfinite(value).all():
        raise ValueError(f"{argument} contains NaN or inf values ({int((~torch.isfinite(value)).sum())} entries)")


LAYOUTS = ("all", "prompt", "position")


def _broadcast_value(value: Tensor, act: Tensor, argument: str, layout: str | None = None) -> Tensor:
    """``value`` as ``[*rest]`` (``layout="all"``: every prompt and position), ``[batch, *rest]``
    (``"prompt"``) or ``[pos, *rest]`` (``"position"``) -> act's shape. Without ``layout`` a
    ``[n, *rest]`` value is read per prompt, and refused when ``n`` is both the batch size and the
    number of positions (it could be read two ways); per position is only ever read when asked."""
    rest, batch, seq = tuple(act.shape[2:]), act.shape[0], act.shape[1]
    if layout not in (None, *LAYOUTS):
        raise ValueError(f"layout={layout!r}; allowed: {list(LAYOUTS)} (or None to infer all / prompt)")
    shape = tuple(value.shape)
    if shape == rest and layout in (None, "all"):
        return value.to(act).expand_as(act)
    if shape == (batch, *rest) and layout in (None, "prompt"):
        if layout is None and batch == seq:
            raise ValueError(
                f"{argument} has shape {shape}: {batch} is both the batch size and the number of positions, so it "
                "could be per prompt or per position; say layout='prompt' or layout='position'"
            )
        return value.to(act)[:, None].expand_as(act)
    if shape == (seq, *rest) and layout == "position":
        return value.to(act)[None].expand_as(act)
    want = {
        None: f"{rest} (same for every prompt), [batch={batch}, *{rest}] (per prompt)",
        "all": f"{rest} (same for every prompt)",
        "prompt": f"[batch={batch}, *{rest}] (per prompt)",
        "position": f"[pos={seq}, *{rest}] (per position)",
    }
    raise ValueError(
        f"{argument} has shape {shape}; expected {want[layout]}"
        + ("" if layout is None else f" for layout={layout!r}")
        + f", or the full activation shape {tuple(act.shape)}"
    )


@contextlib.contextmanager
def add_vector(
    model: HookedTransformer,
    hook: HookRef,
    vector: Float[Tensor, "..."],
    positions: Positions = None,
    scale: float = 1.0,
    heads: Heads = None,
    layout: str | None = None,
) -> Iterator[None]:
    """Add ``scale * vector`` to the activation at ``hook`` at the chosen positions (and heads).

    ``vector`` has the activation's trailing shape (``[d_model]``, or ``[head_index d_head]``
    for head hooks) or one such row per prompt (``[batch, ...]``); ``layout`` as in
    :func:`replace_activation` (say ``"prompt"`` when the batch size can equal the number of
    positions, e.g. while decoding one token at a time).
    """
    name = hook_name(model, hook)
    check_finite(vector, "vector")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(float(scale)):
        raise ValueError(f"scale={scale!r}; must be a finite number (a NaN / inf scale makes every logit NaN)")

    def fn(act: Tensor, hook) -> Tensor:
        delta = _broadcast_value(vector, act, "vector", layout) * scale
        return torch.where(slot_mask(act, name, positions, heads), act + delta, act)

    with hooks(model, [(name, fn)]):
        yield


@contextlib.contextmanager
def add_vectors(
    model: HookedTransformer,
    vectors: Mapping[HookRef, Tensor] | Sequence[tuple[HookRef, Tensor]],
    positions: Positions = None,
    scale: float = 1.0,
) -> Iterator[None]:
    """Several steering vectors at once, e.g. ``{("resid_post", 6): v6, ("resid_post", 12): v12}``
    (or ``(hook, vector)`` pairs, so one hook may take two): each as :func:`add_vector` with the
    same ``positions`` and ``scale``. Every hook is removed on exit, also when the body raises or
    a later vector fails its checks."""
    pairs = list(vectors.items()) if isinstance(vectors, Mapping) else list(vectors)
    if not pairs:
        raise ValueError("vectors is empty; give at least one (hook, vector) pair")
    with contextlib.ExitStack() as stack:
        for hook, vector in pairs:
            stack.enter_context(add_vector(model, hook, vector, positions=positions, scale=scale))
        yield


def _gather_source(value: Tensor, act: Tensor, positions: Positions, source_positions: Positions) -> Tensor:
    """Full-shaped ``value`` -> a tensor shaped like ``act`` carrying ``value``'s entries at the
    target slots. When the source run is shorter/longer (clean and corrupted prompts of
    different lengths) per-prompt ``positions``/``source_positions`` map slots one to one."""
    if value.shape[0] != act.shape[0] or value.shape[2:] != act.shape[2:]:
        raise ValueError(f"value has shape {tuple(value.shape)}, incompatible with the activation {tuple(act.shape)}")
    if source_positions is None and value.shape[1] == act.shape[1]:
        return value.to(act)
    if positions is None:
        raise ValueError(
            f"value covers {value.shape[1]} positions but the activation has {act.shape[1]}; "
            "pass per-prompt positions (and source_positions) to map one onto the other"
        )
    src_pos = positions if source_positions is None else source_positions
    tgt = as_index(positions, act.shape[0], act.shape[1], act.device)
    src = as_index(src_pos, value.shape[0], value.shape[1], act.device)
    if tgt.shape != src.shape:
        raise ValueError(f"positions select {tuple(tgt.shape)} slots but source_positions select {tuple(src.shape)}")
    out = act.clone()
    rows = torch.arange(act.shape[0], device=act.device)[:, None]
    out[rows, tgt] = value.to(act)[rows, src]
    return out


def as_index(positions: Positions, batch: int, seq: int, device) -> Int[Tensor, "batch k"]:
    """``positions`` as a ``[batch, k]`` index (the same number of slots in every prompt)."""
    mask = position_mask(positions, batch, seq, device)
    counts = mask.sum(1)
    if not (counts == counts[0]).all():
        raise ValueError("positions must select the same number of slots in every prompt")
    return mask.nonzero()[:, 1].view(batch, -1)


@contextlib.contextmanager
def replace_activation(
    model: HookedTransformer,
    hook: HookRef,
    value: Float[Tensor, "..."],
    positions: Positions = None,
    heads: Heads = None,
    source_positions: Positions = None,
    layout: str | None = None,
) -> Iterator[None]:
    """Overwrite the activation at ``hook`` with ``value`` at the chosen positions/heads.

    ``value`` is either a full activation from another run (``cache[name]``, shape
    ``[batch, pos_src, ...]``) — read at ``source_positions`` (default: the same positions) —
    or a tensor with the activation's trailing shape written into every selected slot: the same
    for all (``layout="all"``), per prompt (``[batch, ...]``, ``"prompt"``) or per position
    (``[pos, ...]``, ``"position"``; see :func:`mean_activation`'s ``per``). A ``[n, ...]`` value
    whose ``n`` is both the batch size and the number of positions needs ``layout``.
    """
    name = hook_name(model, hook)
    check_finite(value, "value")

    def fn(act: Tensor, hook) -> Tensor:
        if value.ndim == act.ndim and layout is None:
            src = _gather_source(value, act, positions, source_positions)
        else:
            src = _broadcast_value(value, act, "value", layout)
        return torch.where(slot_mask(act, name, positions, heads), src, act)

    with hooks(model, [(name, fn)]):
        yield


@contextlib.contextmanager
def zero_ablate(
    model: HookedTransformer, hook: HookRef, positions: Positions = None, heads: Heads = None
) -> Iterator[None]:
    """Set the activation at ``hook`` to zero at the chosen positions/heads."""
    name = hook_name(model, hook)

    def fn(act: Tensor, hook) -> Tensor:
        return torch.where(slot_mask(act, name, positions, heads), torch.zeros_like(act), act)

    with hooks(model, [(name, fn)]):
        yield


@contextlib.contextmanager
def mean_ablate(
    model: HookedTransformer,
    hook: HookRef,
    mean: Float[Tensor, "..."],
    positions: Positions = None,
    heads: Heads = None,
    layout: str | None = None,
) -> Iterator[None]:
    """Replace the activation at ``hook`` by ``mean`` (e.g. from :func:`mean_activation` over a
    reference dataset) at the chosen positions/heads; ``layout`` as in :func:`replace_activation`
    (``mean_activation(..., per=p)`` pairs with ``layout=p``)."""
    with replace_activation(model, hook, mean, positions=positions, heads=heads, layout=layout):
        yield


class Captured(dict):
    """``dict`` of hook name -> captured activation, filled during the forward pass; also
    indexable by ``(site, layer)`` as TransformerLens' cache is: ``acts["resid_post", 3]``."""

    def __getitem__(self, key) -> Tensor:
        if isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str) and isinstance(key[1], int):
            key = act_name(*key)
        if key not in self:
            raise KeyError(f"{key!r} was not captured (or no forward pass ran); captured: {list(self)}")
        return super().__getitem__(key)


@contextlib.contextmanager
def capture(
    model: HookedTransformer,
    hook_refs: Sequence[HookRef],
    positions: Positions = None,
    detach: bool = True,
) -> Iterator[Captured]:
    """Record only the named activations (no full cache). With ``positions`` given per prompt
    (``[batch]``/``[batch, k]``) or as a list, only those positions are kept:
    ``[batch, k, ...]``. ``detach=False`` keeps the graph for gradients."""
    names = [hook_name(model, r) for r in hook_refs]
    if not names:
        raise ValueError("hook_refs is empty; name at least one hook point to capture")
    store = Captured()

    def fn(act: Tensor, hook) -> None:
        out = act.detach() if detach else act
        if positions is not None:
            out = _take_positions(out, positions)
        store[hook.name] = out

    with hooks(model, [(n, fn) for n in names]):
        yield store


def run_with_cache(
    model: HookedTransformer, batch, hook_refs: Sequence[HookRef], positions: Positions = None
) -> tuple[Float[Tensor, "batch pos d_vocab"], Captured]:
    """Padding-aware ``run_with_cache``: forward a :class:`~interp.data.tokenize.TokenBatch` with
    its attention mask and keep only the named activations (``(site, layer)`` pairs or hook names),
    optionally only at ``positions`` (e.g. ``batch.last_index``). Returns ``(logits, acts)``."""
    from interp.data.tokenize import TokenBatch, run_batch

    if not isinstance(batch, TokenBatch):
        raise TypeError(
            f"batch is a {type(batch).__name__}; expected a TokenBatch from interp.tokenize(model, prompts)"
        )
    with capture(model, hook_refs, positions=positions) as acts:
        logits = run_batch(model, batch)
    return logits, acts


def _take_positions(act: Tensor, positions: Positions) -> Tensor:
    idx = as_index(positions, act.shape[0], act.shape[1], act.device)
    rows = torch.arange(act.shape[0], device=act.device)[:, None]
    return act[rows, idx]


@torch.no_grad()
def mean_activation(
    model: HookedTransformer,
    tokens,
    hook: HookRef,
    positions: Positions = None,
    attention_mask: Int[Tensor, "batch pos"] | None = None,
    per: str = "all",
) -> Tensor:
    """Mean of the activation at ``hook`` over real tokens (padding left out), the usual input
    to :func:`mean_ablate`. ``tokens``: a :class:`~interp.data.tokenize.TokenBatch` (its mask is
    used) or a token tensor (with ``attention_mask`` when padded).

    ``per="all"``: over prompts and selected positions -> ``[*rest]``; ``"prompt"``: each prompt
    over its selected positions -> ``[batch, *rest]``; ``"position"``: each position over the
    prompts that have a real token there -> ``[pos, *rest]`` (pass the same ``layout`` to
    :func:`mean_ablate`)."""
    from interp.data.tokenize import TokenBatch

    if per not in LAYOUTS:
        raise ValueError(f"per={per!r}; allowed: {list(LAYOUTS)}")
    if isinstance(tokens, TokenBatch):
        tokens, attention_mask = tokens.tokens, tokens.attention_mask
    name = hook_name(model, hook)
    with capture(model, [name]) as acts:
        tokens = tokens.to(model.cfg.device)
        model(tokens, attention_mask=attention_mask.to(model.cfg.device)) if attention_mask is not None else model(
            tokens
        )
    act = acts[name]
    mask = position_mask(positions, act.shape[0], act.shape[1], act.device)
    if attention_mask is not None:
        mask &= attention_mask.to(act.device).bool()
    if not mask.any():
        raise ValueError("positions select no real tokens; cannot take a mean over nothing")
    if per == "all":
        return act[mask].mean(0)
    axis = 1 if per == "prompt" else 0
    count = mask.sum(axis)
    if bool((count == 0).any()):
        raise ValueError(f"per={per!r}: {per} {int((count == 0).nonzero()[0])} has no selected real token")
    weights = mask.to(act.dtype).view(*mask.shape, *([1] * (act.ndim - 2)))
    return (act * weights).sum(axis) / count.view(-1, *([1] * (act.ndim - 2))).to(act.dtype)
