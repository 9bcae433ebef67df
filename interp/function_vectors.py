"""Function vectors (Todd et al. 2024) and task vectors (Hendel et al. 2023).

- **Function vector**: the top-k heads by causal indirect effect (:mod:`interp.mediation`);
  ``FV = Σ_{(l,h) in top-k} ā_{l,h} W_O^{l,h}`` — each head's mean last-token output ``z``
  over clean ICL prompts, mapped to the residual stream by its own slice of ``W_O`` (and, in
  Gemma-2/3 blocks, through the post-attention norm with its scale frozen: :mod:`interp.heads`).
  Steering adds ``λ · FV`` to the residual stream after layer ``l`` (``resid_post``) at the
  last token of a zero-shot (or shuffled-label) prompt.
- **Task vector**: the mean over ICL prompts of the residual after layer ``l`` at the last
  token; steering *replaces* that residual in a zero-shot prompt.
- **Accuracy**: the first answer token is the top-1 prediction at the last position.

Layers are block indices ``0 .. n_layers-1``; the vector enters after block ``l``. Many
vectors at once: :class:`interp.steering.SteeringBatch`.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from interp.data.tokenize import TokenBatch, read_positions, run_batch
from interp.engine import final_logits
from interp.heads import has_post_attn_norm, head_contributions
from interp.hooks import act_name, add_vector, capture, check_layer, replace_activation


def function_vector(
    model: HookedTransformer,
    mean_z: Float[Tensor, "layer head_index d_head"],
    heads: Sequence[tuple[int, int]],
    post_scale: Float[Tensor, " layer"] | None = None,
) -> Float[Tensor, " d_model"]:
    """Sum over ``heads`` ((layer, head) pairs, e.g. ``CIEResult.top(k)``) of each head's
    contribution to the residual stream from its mean output: ``ā W_O[h]`` through its slice of
    ``W_O``, and — in blocks with a post-attention norm (Gemma-2/3) — through that norm with its
    scale frozen at ``post_scale[layer]`` (:mod:`interp.heads`; e.g. the mean over the clean
    prompts at the last token, ``post_attn_scales(model, clean).mean(1)``). The attention bias
    ``b_O`` belongs to no head and is not added (Todd et al.'s code adds o_proj's bias per head)."""
    if has_post_attn_norm(model):
        if post_scale is None or tuple(post_scale.shape) != (model.cfg.n_layers,):
            raise ValueError(
                "this model puts attention output through a post norm (ln1_post): pass post_scale "
                f"[n_layers={model.cfg.n_layers}], "
                "e.g. interp.heads.post_attn_scales(model, clean_batch).mean(1); got "
                f"{None if post_scale is None else tuple(post_scale.shape)}"
            )
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    if tuple(mean_z.shape) != (n_layers, n_heads, model.cfg.d_head):
        raise ValueError(
            f"mean_z has shape {tuple(mean_z.shape)}; expected [{n_layers}, {n_heads}, {model.cfg.d_head}]"
        )
    if len(heads) == 0:
        raise ValueError("heads is empty; a function vector needs at least one head")
    fv = torch.zeros(model.cfg.d_model)
    for item in heads:
        layer, head = check_layer(model, item[0]), operator.index(item[1])
        if not 0 <= head < n_heads:
            raise ValueError(f"head={head} out of range 0..{n_heads - 1}")
        # pre-norm blocks keep the plain product (what head_contributions gives there, without
        # the einsum's different summation order, so earlier FV numbers stay bit-identical)
        if post_scale is not None and has_post_attn_norm(model):
            fv += head_contributions(model, layer, mean_z[layer].cpu(), float(post_scale[layer]))[head].cpu()
        else:
            w_o = model.blocks[layer].attn.W_O[head].detach().float().cpu()  # [d_head d_model]
            fv += mean_z[layer, head].float() @ w_o
    return fv


@torch.no_grad()
def task_vectors(
    model: HookedTransformer, icl: TokenBatch, layers: Iterable[int] | None = None, position=None
) -> Float[Tensor, "layer d_model"]:
    """Mean over the ICL prompts of the residual after each layer at the last real token, or at
    ``position`` (:func:`interp.data.tokenize.read_positions`: ``-2`` = the token before the
    last; one forward; row ``i`` is the ``i``-th of ``layers``, default all)."""
    layers = list(range(model.cfg.n_layers)) if layers is None else [check_layer(model, layer) for layer in layers]
    names = [act_name("resid_post", layer) for layer in layers]
    with capture(model, names, positions=read_positions(icl, position)) as acts:
        # stop after the last layer asked for: the unembedding of every position (262k columns
        # for Gemma) would otherwise cost more than the layers
        run_batch(model, icl, stop_at_layer=max(layers) + 1)
    return torch.stack([acts[n][:, 0].float().mean(0) for n in names]).cpu()


def top1_correct(model: HookedTransformer, batch: TokenBatch, answer_ids: Tensor) -> Tensor:
    """1.0 where ``answer_ids`` is the top-1 prediction at each prompt's last position."""
    # unembed only each prompt's last position (the full-vocabulary unembedding of every
    # position would dominate a sweep of many short forwards)
    resid = run_batch(model, batch, stop_at_layer=model.cfg.n_layers)
    rows = torch.arange(len(batch), device=resid.device)
    last = final_logits(model, resid[rows, batch.last_index.to(resid.device)])
    return (last.argmax(-1).cpu() == answer_ids.cpu()).float()


def check_answers(batch: TokenBatch, answer_ids: Tensor, d_vocab: int | None = None) -> None:
    """One integer answer id per prompt, each a token id of the vocabulary (``0 <= id < d_vocab``),
    or a ValueError naming the shape, dtype or first bad id (an id of -1 would silently read the
    last vocabulary entry; one past the vocabulary would never be predicted)."""
    if not isinstance(answer_ids, Tensor) or answer_ids.shape != (len(batch),):
        shape = tuple(answer_ids.shape) if isinstance(answer_ids, Tensor) else type(answer_ids).__name__
        raise ValueError(f"answer_ids has shape {shape}; expected one id per prompt ({len(batch)},)")
    if answer_ids.dtype.is_floating_point or answer_ids.dtype == torch.bool:
        raise ValueError(f"answer_ids has dtype {answer_ids.dtype}; expected integer token ids")
    if d_vocab is not None:
        bad = ((answer_ids < 0) | (answer_ids >= d_vocab)).nonzero()
        if len(bad):
            i = int(bad[0])
            raise ValueError(f"answer_ids[{i}]={int(answer_ids[i])} is not a token id; allowed 0..{d_vocab - 1}")


@torch.no_grad()
def top1_accuracy(
    model: HookedTransformer, batch: TokenBatch, answer_ids: Int[Tensor, " batch"]
) -> Float[Tensor, " batch"]:
    """Per prompt: 1 if the first answer token is the top-1 prediction at the last position
    (the zero-shot / ICL baselines)."""
    check_answers(batch, answer_ids, model.cfg.d_vocab)
    return top1_correct(model, batch, answer_ids)


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
    check_answers(batch, answer_ids)
    layer = check_layer(model, layer)
    if mode not in ("add", "replace"):
        raise ValueError(f"mode={mode!r}; allowed: ['add', 'replace']")
    vec = vector.to(model.cfg.device, model.cfg.dtype)
    ctx = (
        add_vector(model, act_name("resid_post", layer), vec, positions=batch.last_index, scale=scale)
        if mode == "add"
        else replace_activation(model, act_name("resid_post", layer), vec, positions=batch.last_index)
    )
    with ctx:
        return top1_correct(model, batch, answer_ids)
