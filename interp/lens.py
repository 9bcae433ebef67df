"""Logit lens: the final norm and unembedding applied to the residual stream after each layer.

Example:
    >>> res = logit_lens(model, batch, {"correct": paris_ids, "wrong": rome_ids})
    >>> res.probs["correct"].shape   # [layer batch]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from interp.data.tokenize import TokenBatch, run_batch
from interp.hooks import capture


def unembed_resid(model: HookedTransformer, resid: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_vocab"]:
    """Logits the model would produce if ``resid`` were the final residual stream."""
    return model.unembed(model.ln_final(resid))


def token_ranks(logits: Float[Tensor, "... d_vocab"], ids: Int[Tensor, "..."]) -> Int[Tensor, "..."]:
    """0-based rank of ``ids`` under ``logits`` (0 = top-1); ties count in the token's favour."""
    chosen = logits.gather(-1, ids[..., None])
    return (logits > chosen).sum(-1)


@dataclass
class LensResult:
    """Per layer and prompt, at each prompt's last real token. Layer ``L-1`` equals the model."""

    probs: dict[str, Float[Tensor, "layer batch"]]
    ranks: dict[str, Int[Tensor, "layer batch"]]
    top1_ids: Int[Tensor, "layer batch"]
    top1_probs: Float[Tensor, "layer batch"]


@torch.no_grad()
def logit_lens(model: HookedTransformer, batch: TokenBatch, tokens: dict[str, Int[Tensor, " batch"]]) -> LensResult:
    """Probability and rank of the named tokens (one id per prompt) after every layer."""
    names = [f"blocks.{layer}.hook_resid_post" for layer in range(model.cfg.n_layers)]
    with capture(model, names, positions=batch.last_index) as acts:
        run_batch(model, batch)
    resid = torch.stack([acts[n][:, 0] for n in names])  # [layer batch d_model]
    logits = unembed_resid(model, resid).float()
    probs = logits.softmax(-1)
    out_p, out_r = {}, {}
    for key, ids in tokens.items():
        ids = ids.to(logits.device)[None].expand(logits.shape[0], -1)
        out_p[key] = probs.gather(-1, ids[..., None])[..., 0].cpu()
        out_r[key] = token_ranks(logits, ids).cpu()
    top_p, top_i = probs.max(-1)
    return LensResult(out_p, out_r, top_i.cpu(), top_p.cpu())
