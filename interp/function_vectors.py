"""Function vectors (Todd et al. 2024) and task vectors (Hendel et al. 2023).

- **Function vector**: the top-k heads by causal indirect effect (:mod:`interp.mediation`);
  ``FV = Σ_{(l,h) in top-k} ā_{l,h} W_O^{l,h}`` — each head's mean last-token output ``z``
  over clean ICL prompts, mapped to the residual stream by its own slice of ``W_O``.
  Steering adds ``λ · FV`` to the residual stream after layer ``l`` (``resid_post``) at the
  last token of a zero-shot (or shuffled-label) prompt.
- **Task vector**: the mean over ICL prompts of the residual after layer ``l`` at the last
  token; steering *replaces* that residual in a zero-shot prompt.
- **Accuracy**: the first answer token is the top-1 prediction at the last position.

Layers are block indices ``0 .. n_layers-1``; the vector enters after block ``l``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from interp.data.tokenize import TokenBatch, run_batch
from interp.engine import final_logits, linear_friendly_weights, prefix_cache, repeat_cache
from interp.hooks import add_vector, capture, check_finite, check_layer, hook_name, hooks, replace_activation


def _hook(layer: int) -> str:
    return f"blocks.{layer}.hook_resid_post"


def function_vector(model: HookedTransformer, mean_z: Float[Tensor, "layer head_index d_head"],
                    heads: Sequence[tuple[int, int]]) -> Float[Tensor, " d_model"]:  # fmt: skip
    """Sum over ``heads`` ((layer, head) pairs, e.g. ``CIEResult.top(k)``) of each head's mean
    output through its slice of ``W_O``."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    if tuple(mean_z.shape) != (n_layers, n_heads, model.cfg.d_head):
        raise ValueError(f"mean_z has shape {tuple(mean_z.shape)}; expected [{n_layers}, {n_heads}, {model.cfg.d_head}]")
    if len(heads) == 0:
        raise ValueError("heads is empty; a function vector needs at least one head")
    fv = torch.zeros(model.cfg.d_model)
    for item in heads:
        layer, head = check_layer(model, int(item[0])), int(item[1])
        if not 0 <= head < n_heads:
            raise ValueError(f"head={head} out of range 0..{n_heads - 1}")
        w_o = model.blocks[layer].attn.W_O[head].detach().float().cpu()  # [d_head d_model]
        fv += mean_z[layer, head].float() @ w_o
    return fv


@torch.no_grad()
def task_vectors(model: HookedTransformer, icl: TokenBatch, layers: Iterable[int] | None = None) -> Float[Tensor, "layer d_model"]:
    """Mean over the ICL prompts of the residual after each layer at the last real token
    (one forward; row ``i`` is the ``i``-th of ``layers``, default all)."""
    layers = list(range(model.cfg.n_layers)) if layers is None else [check_layer(model, layer) for layer in layers]
    names = [_hook(layer) for layer in layers]
    with capture(model, names, positions=icl.last_index) as acts:
        # stop after the last layer asked for: the unembedding of every position (262k columns
        # for Gemma) would otherwise cost more than the layers
        run_batch(model, icl, stop_at_layer=max(layers) + 1)
    return torch.stack([acts[n][:, 0].float().mean(0) for n in names]).cpu()


def _top1_correct(model: HookedTransformer, batch: TokenBatch, answer_ids: Tensor) -> Tensor:
    # unembed only each prompt's last position (the full-vocabulary unembedding of every
    # position would dominate a sweep of many short forwards)
    resid = run_batch(model, batch, stop_at_layer=model.cfg.n_layers)
    rows = torch.arange(len(batch), device=resid.device)
    last = final_logits(model, resid[rows, batch.last_index.to(resid.device)])
    return (last.argmax(-1).cpu() == answer_ids.cpu()).float()


def _check_answers(batch: TokenBatch, answer_ids: Tensor) -> None:
    if answer_ids.shape != (len(batch),):
        raise ValueError(f"answer_ids has shape {tuple(answer_ids.shape)}; expected one id per prompt ({len(batch)},)")


@torch.no_grad()
def top1_accuracy(model: HookedTransformer, batch: TokenBatch, answer_ids: Int[Tensor, " batch"]) -> Float[Tensor, " batch"]:
    """Per prompt: 1 if the first answer token is the top-1 prediction at the last position
    (the zero-shot / ICL baselines)."""
    _check_answers(batch, answer_ids)
    return _top1_correct(model, batch, answer_ids)


@torch.no_grad()
def steered_accuracy(
    model: HookedTransformer,
    batch: TokenBatch,
    answer_ids: Int[Tensor, " batch"],
    layer: int,
    vector: Float[Tensor, " d_model"],
    mode: str = "add",
    scale: float = 1.0,
) -> Float[Tensor, " batch"]:
    """Per-prompt top-1 correctness with ``vector`` put into the residual after ``layer`` at
    each prompt's last token: ``mode="add"`` adds ``scale · vector`` (function vector),
    ``mode="replace"`` overwrites the residual with it (task vector)."""
    _check_answers(batch, answer_ids)
    layer = check_layer(model, layer)
    if mode not in ("add", "replace"):
        raise ValueError(f"mode={mode!r}; allowed: ['add', 'replace']")
    vec = vector.to(model.cfg.device, model.cfg.dtype)
    ctx = (add_vector(model, _hook(layer), vec, positions=batch.last_index, scale=scale) if mode == "add"
           else replace_activation(model, _hook(layer), vec, positions=batch.last_index))  # fmt: skip
    with ctx:
        return _top1_correct(model, batch, answer_ids)


@dataclass
class SweepResult:
    """Mean accuracy per (scale, layer); ``layers`` and ``scales`` label the axes."""

    accuracy: Float[Tensor, "scale layer"]
    layers: list[int]
    scales: list[float]

    def best(self) -> tuple[float, int, float]:
        """(accuracy, layer, scale) of the best cell."""
        i = int(self.accuracy.argmax())
        s, layer = divmod(i, len(self.layers))
        return float(self.accuracy.flatten()[i]), self.layers[layer], self.scales[s]


def sweep(model: HookedTransformer, batch: TokenBatch, answer_ids: Tensor, vector_by_layer, layers: Sequence[int],
          scales: Sequence[float] = (1.0,), mode: str = "add", progress: bool = False) -> SweepResult:  # fmt: skip
    """:func:`steered_accuracy` for every layer and scale. ``vector_by_layer(layer)`` gives the
    vector for a layer (a function vector is the same at every layer, a task vector is not)."""
    from tqdm.auto import tqdm

    if not layers or not scales:
        raise ValueError(f"layers={list(layers)} and scales={list(scales)} must be non-empty")
    acc = torch.zeros(len(scales), len(layers))
    cells = [(si, li) for si in range(len(scales)) for li in range(len(layers))]
    with linear_friendly_weights(model):  # TL would copy the MLP/unembedding weights on every forward
        for si, li in tqdm(cells, desc=f"{mode} sweep", disable=not progress):
            acc[si, li] = steered_accuracy(model, batch, answer_ids, layers[li], vector_by_layer(layers[li]), mode, scales[si]).mean()
    return SweepResult(acc, list(layers), list(scales))


# --------------------------------------------------------------------------- many vectors at once


@torch.no_grad()
def mean_difference_vectors(model: HookedTransformer, positive: TokenBatch, negative: TokenBatch,
                            layers: Iterable[int] | None = None) -> Float[Tensor, "layer d_model"]:  # fmt: skip
    """Per layer, the mean last-token residual after the layer over ``positive`` prompts minus
    the same over ``negative`` prompts (seed 000's mean-difference function vector: clean ICL
    minus shuffled-label ICL of the same template isolates the task from the format)."""
    vec = task_vectors(model, positive, layers) - task_vectors(model, negative, layers)
    check_finite(vec, "mean-difference vectors")
    return vec


class SteeringBatch:
    """Zero-shot prompts prepared for many steered runs: one forward keeps the residual after
    every layer at the last token and the keys/values of every earlier position. A vector added
    at the last token after layer ``l`` changes nothing before it, so each steered run only
    recomputes that one position through layers ``l+1 ..`` (left padding puts every prompt's
    last token in the same column). Same numbers as :func:`steered_accuracy` per vector."""

    @torch.no_grad()  # without it autograd keeps every layer's activations of the batch (GBs)
    def __init__(self, model: HookedTransformer, batch: TokenBatch, answer_ids: Int[Tensor, " batch"], max_rows: int = 256):
        _check_answers(batch, answer_ids)
        if batch.padding_side != "left" and batch.is_padded:
            raise ValueError("batch must be left-padded (tokenize(..., padding_side='left')) so every last token shares a column")
        if max_rows < 1:
            raise ValueError(f"max_rows={max_rows}; must be >= 1")
        self.model, self.batch, self.answer_ids, self.max_rows = model, batch, answer_ids.cpu(), max_rows
        n, width = model.cfg.n_layers, batch.tokens.shape[1]
        dev = model.cfg.device
        self.mask = batch.attention_mask.to(dev)
        # one pass over the batch: the prefix's keys/values, then the last column on top of a
        # growing copy of them, capturing the residual after every layer there
        self.prefix = prefix_cache(model, batch, width - 1) if width > 1 else None
        names = [_hook(layer) for layer in range(n)]
        last = batch.tokens[:, -1:].to(dev)
        with capture(model, names) as acts:
            if self.prefix is None:
                model(last, stop_at_layer=n)
            else:
                ones = torch.ones(len(batch), 1, dtype=self.mask.dtype, device=dev)
                model(last, stop_at_layer=n, past_kv_cache=repeat_cache(self.prefix, 1, 0, frozen=False), attention_mask=ones)
        self.last_resid = torch.stack([acts[name][:, -1] for name in names])  # [layer batch d_model], model dtype/device

    def __len__(self) -> int:
        return len(self.batch)

    @torch.no_grad()
    def baseline_accuracy(self) -> Float[Tensor, " batch"]:
        """Unsteered top-1 correctness per prompt, from the cached final residual (no forward)."""
        pred = final_logits(self.model, self.last_resid[-1]).argmax(-1).cpu()
        return (pred == self.answer_ids).float()

    def _check_vectors(self, vectors: Tensor) -> None:
        d = self.model.cfg.d_model
        if vectors.ndim != 2 or vectors.shape[1] != d:
            raise ValueError(f"vectors has shape {tuple(vectors.shape)}; expected [n_vectors, d_model={d}]")
        check_finite(vectors, "vectors")

    @torch.no_grad()
    def logits(self, layer: int, vectors: Float[Tensor, "vector d_model"], mode: str = "add",
               columns: Int[Tensor, " k"] | None = None) -> Float[Tensor, "vector batch k"]:  # fmt: skip
        """Final-position logits of every prompt with ``vectors[v]`` (already scaled) added to
        (``mode="add"``) or written over (``"replace"``, task vectors) the residual after
        ``layer`` at the last token; row ``v`` for vector ``v``. ``columns``: only these token
        ids (the last axis follows their order), e.g. the two answer letters."""
        model, n = self.model, self.model.cfg.n_layers
        layer = check_layer(model, layer)
        if mode not in ("add", "replace"):
            raise ValueError(f"mode={mode!r}; allowed: ['add', 'replace']")
        self._check_vectors(vectors)
        b = len(self.batch)
        per = max(1, self.max_rows // b)  # vectors per stacked forward
        cols = None if columns is None else columns.to(self.last_resid.device)
        out = []
        for start in range(0, vectors.shape[0], per):
            vec = vectors[start : start + per].to(self.last_resid)
            c = vec.shape[0]
            x = vec.repeat_interleave(b, 0)
            x = (x if mode == "replace" else self.last_resid[layer].repeat(c, 1) + x)[:, None]  # [c*b 1 d_model]
            if layer < n - 1:
                kv = repeat_cache(self.prefix, c, layer + 1) if self.prefix is not None else None
                x = model(x, start_at_layer=layer + 1, stop_at_layer=n, attention_mask=self.mask.repeat(c, 1), past_kv_cache=kv)
            logits = final_logits(model, x[:, -1], cols)
            logits = logits if cols is None else logits[:, cols]
            out.append(logits.float().cpu().view(c, b, -1))
        return torch.cat(out)

    def predictions(self, layer: int, vectors: Float[Tensor, "vector d_model"], mode: str = "add") -> Int[Tensor, "vector batch"]:
        """Top-1 token of every prompt under each vector (see :meth:`logits`)."""
        return self.logits(layer, vectors, mode).argmax(-1)

    @torch.no_grad()
    def generate(self, layer: int, vectors: Float[Tensor, "vector d_model"], max_new_tokens: int,
                 steer_generated: bool = True) -> Int[Tensor, "vector batch new"]:  # fmt: skip
        """Greedy continuation of every prompt under each vector: the vector is added after
        ``layer`` at the last prompt token and (``steer_generated``) at every generated token —
        CAA's "all positions after the instruction". The prompt prefix's keys and values are
        computed once for all vectors; each vector recomputes the last prompt token and then
        decodes with a growing cache."""
        model, n = self.model, self.model.cfg.n_layers
        layer = check_layer(model, layer)
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={max_new_tokens}; must be >= 1")
        self._check_vectors(vectors)
        if self.prefix is None:
            raise ValueError("generate needs prompts of at least two tokens (a cached prefix)")
        b = len(self.batch)
        per = max(1, self.max_rows // b)
        out = []
        for start in range(0, vectors.shape[0], per):
            vec = vectors[start : start + per].to(self.last_resid)
            rows_vec = vec.repeat_interleave(b, 0)  # [c*b d_model]
            ctx = add_vector(model, _hook(layer), rows_vec) if steer_generated else contextlib.nullcontext()
            out.append(self._decode(layer, vec.shape[0], lambda x: x + rows_vec[:, None], ctx, max_new_tokens))
        return torch.cat(out)

    @torch.no_grad()
    def generate_transformed(self, layer: int, transform: Callable[[Tensor], Tensor], max_new_tokens: int,
                             steer_generated: bool = True) -> Int[Tensor, " batch new"]:  # fmt: skip
        """:meth:`generate` with the residual after ``layer`` replaced by ``transform(residual)``
        (any steering adapter, e.g. ACE or LoReFT) instead of a vector added: at the last prompt
        token and (``steer_generated``) at every generated token. Shares the cached prefix."""
        model = self.model
        layer = check_layer(model, layer)
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={max_new_tokens}; must be >= 1")
        if self.prefix is None:
            raise ValueError("generate needs prompts of at least two tokens (a cached prefix)")

        def fn(act: Tensor, hook) -> Tensor:
            with torch.no_grad():
                return transform(act)

        ctx = hooks(model, [(hook_name(model, _hook(layer)), fn)]) if steer_generated else contextlib.nullcontext()
        return self._decode(layer, 1, transform, ctx, max_new_tokens)[0]

    def _decode(self, layer: int, copies: int, steer: Callable[[Tensor], Tensor], ctx, max_new_tokens: int) -> Tensor:
        """Greedy decoding of ``copies`` stacked copies of the batch: the last prompt token runs
        through layers 0..layer on the cached prefix, ``steer`` edits its residual there, the rest
        of the model finishes it; further tokens decode inside ``ctx`` (the hook, or none)."""
        model, n, b, dev = self.model, self.model.cfg.n_layers, len(self.batch), self.model.cfg.device
        cache = repeat_cache(self.prefix, copies, 0, frozen=False)
        last_tok = self.batch.tokens[:, -1:].to(dev).repeat(copies, 1)
        ones = torch.ones(copies * b, 1, dtype=self.mask.dtype, device=dev)
        # the last prompt token through layers 0..layer (unsteered there; appends its keys/values)
        x = model(last_tok, stop_at_layer=layer + 1, past_kv_cache=cache, attention_mask=ones)
        x = steer(x)
        if layer < n - 1:
            x = model(x, start_at_layer=layer + 1, stop_at_layer=n, attention_mask=self.mask.repeat(copies, 1), past_kv_cache=cache)
        nxt = final_logits(model, x[:, -1]).argmax(-1)
        steps = [nxt]
        with ctx:
            for _ in range(max_new_tokens - 1):
                x = model(nxt[:, None], stop_at_layer=n, past_kv_cache=cache, attention_mask=ones)
                nxt = final_logits(model, x[:, -1]).argmax(-1)
                steps.append(nxt)
        return torch.stack(steps, 1).cpu().view(copies, b, -1)

    def accuracy(self, layer: int, vectors: Float[Tensor, "vector d_model"], mode: str = "add") -> Float[Tensor, "vector batch"]:
        """Per (vector, prompt): 1 if the first answer token is the steered top-1."""
        return (self.predictions(layer, vectors, mode) == self.answer_ids[None]).float()
