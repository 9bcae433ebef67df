"""Each attention head's contribution to the residual stream, right for both block types.

In a pre-norm block (Llama, GPT-2) head ``h`` of layer ``l`` adds ``z_h W_O[h]`` and the layer
adds ``b_O`` once: the heads' terms plus the bias are ``hook_attn_out``. Gemma-2/3 blocks
(TransformerLens ``use_normalization_before_and_after``) send the attention output through
``ln1_post`` before it joins the residual, so a head's output reaches the residual as

    RMSNorm:   (z_h W_O[h]) / s · w
    LayerNorm: (z_h W_O[h] − mean(z_h W_O[h])) / s · w

with ``s`` the norm's scale at that position (``ln1_post.hook_scale``). With ``s`` taken from
the same run the decomposition is exact: every head plus :func:`attn_bias_contribution` equals
``hook_attn_out``. Applied to a head's *mean* output (a function vector) ``s`` must be frozen at
some value — we freeze it at the mean scale over the clean prompts at the last token
(:func:`post_attn_scales`), as direct logit attribution freezes LayerNorm scales; the
approximation is that the norm's scale at the steered position would be that mean.

    >>> scales = post_attn_scales(model, clean_batch).mean(1)              # [layer]
    >>> c = head_contributions(model, 9, mean_z[9], scales[9])             # [head_index d_model]
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from interp.data.tokenize import TokenBatch, run_batch
from interp.hooks import act_name, capture, check_layer


def has_post_attn_norm(model: HookedTransformer) -> bool:
    """Does the attention output pass a norm (``ln1_post``) before the residual add?"""
    return (
        bool(getattr(model.cfg, "use_normalization_before_and_after", False))
        and model.cfg.normalization_type is not None
    )


def _post_norm(model: HookedTransformer, layer: int):
    return model.blocks[layer].ln1_post


def head_contributions(
    model: HookedTransformer,
    layer: int,
    z: Float[Tensor, "*rows head_index d_head"],
    scale: Float[Tensor, "*rows"] | float | None = None,
) -> Float[Tensor, "*rows head_index d_model"]:
    """Each head's additive contribution to the residual at one position (see module doc).
    ``scale`` (the post-norm's scale per row) is required for models with a post-attention
    norm and ignored otherwise."""
    layer = check_layer(model, layer)
    w_o = model.blocks[layer].attn.W_O.detach().to(z.device, torch.float32)  # [head d_head d_model]
    out = torch.einsum("...hd,hdm->...hm", z.float(), w_o)
    if not has_post_attn_norm(model):
        return out
    if scale is None:
        raise ValueError(
            f"layer {layer} has a post-attention norm (ln1_post): pass its scale (post_attn_scales) to turn head "
            "outputs into residual contributions"
        )
    norm = _post_norm(model, layer)
    s = torch.as_tensor(scale, dtype=torch.float32, device=out.device)[..., None, None]
    if model.cfg.normalization_type.startswith("LN"):
        out = out - out.mean(-1, keepdim=True)
    return out / s * norm.w.detach().float().to(out.device)


def attn_bias_contribution(
    model: HookedTransformer, layer: int, scale: Float[Tensor, "*rows"] | float | None = None
) -> Float[Tensor, "*rows d_model"]:
    """The part of ``hook_attn_out`` that belongs to no head: ``b_O`` (through the post norm,
    and its bias, when there is one)."""
    layer = check_layer(model, layer)
    b = model.blocks[layer].attn.b_O.detach().float()
    if not has_post_attn_norm(model):
        return b
    if scale is None:
        raise ValueError(f"layer {layer} has a post-attention norm (ln1_post): pass its scale")
    norm = _post_norm(model, layer)
    s = torch.as_tensor(scale, dtype=torch.float32, device=b.device)[..., None]
    if model.cfg.normalization_type.startswith("LN"):
        b = b - b.mean()
    out = b / s * norm.w.detach().float()
    return out + norm.b.detach().float() if hasattr(norm, "b") else out


@torch.no_grad()
def post_attn_scales(
    model: HookedTransformer, batch: TokenBatch, layers: Iterable[int] | None = None
) -> Float[Tensor, "layer batch"]:
    """``ln1_post``'s scale at each prompt's last real token, per layer (float, CPU)."""
    if not has_post_attn_norm(model):
        raise ValueError("this model has no post-attention norm (ln1_post); its head outputs need no scale")
    layers = list(range(model.cfg.n_layers)) if layers is None else [check_layer(model, layer) for layer in layers]
    names = [act_name("ln1_post.hook_scale", layer) for layer in layers]
    with capture(model, names, positions=batch.last_index) as acts:
        run_batch(model, batch, stop_at_layer=max(layers) + 1)
    return torch.stack([acts[n][:, 0, 0].float() for n in names]).cpu()
