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

from interp.data.tokenize import TokenBatch, read_positions, run_batch
from interp.engine import final_logits
from interp.hooks import act_name, capture


def token_ranks(logits: Float[Tensor, "... d_vocab"], ids: Int[Tensor, "..."]) -> Int[Tensor, "..."]:
    """0-based rank of ``ids`` under ``logits`` (0 = top-1); ties count in the token's favour."""
    chosen = logits.gather(-1, ids[..., None])
    return (logits > chosen).sum(-1)


@dataclass
class LensResult:
    """Per read-out site and prompt, at the read position (by default each prompt's last real
    token). ``sites`` names the rows (``L0.post``, or ``L0.mid``, ``L0.post``, … with
    ``mid=True``); the last row equals the model's own output. ``top_ids`` / ``top_probs`` hold the
    ``top_k`` most likely tokens at every site and ``top_tokens[site][prompt]`` their decoded text,
    so a "top-1 token" curve can always say which token it is."""

    probs: dict[str, Float[Tensor, "layer batch"]]
    ranks: dict[str, Int[Tensor, "layer batch"]]
    top_ids: Int[Tensor, "layer batch k"]
    top_probs: Float[Tensor, "layer batch k"]
    sites: list[str]
    positions: Int[Tensor, " batch"]
    top_tokens: list[list[list[str]]]

    @property
    def top1_ids(self) -> Int[Tensor, "layer batch"]:
        return self.top_ids[..., 0]

    @property
    def top1_probs(self) -> Float[Tensor, "layer batch"]:
        return self.top_probs[..., 0]

    def table(self, prompt: int = 0) -> list[list[str]]:
        """Rows ``[site, "tok (p)", …]`` for one prompt: the decoded top-k at every site."""
        return [
            [site] + [f"{tok!r} ({p:.2f})" for tok, p in zip(self.top_tokens[i][prompt], self.top_probs[i, prompt])]
            for i, site in enumerate(self.sites)
        ]


@torch.no_grad()
def logit_lens(
    model: HookedTransformer,
    batch: TokenBatch,
    tokens: dict[str, Int[Tensor, " batch"]] | None = None,
    mid: bool = False,
    position: int | Tensor | None = None,
    top_k: int = 5,
) -> LensResult:
    """Probability and rank of the named tokens (one id per prompt) after every layer, and with
    ``mid=True`` also after each layer's attention (``resid_mid``), with the decoded ``top_k``
    tokens at every site. ``position`` picks the read-out position (:func:`read_positions`;
    default: each prompt's last real token)."""
    if not isinstance(top_k, int) or not 1 <= top_k <= model.cfg.d_vocab:
        raise ValueError(f"top_k={top_k!r}; expected an int from 1 to d_vocab={model.cfg.d_vocab}")
    tokens = tokens or {}
    names, sites = [], []
    for layer in range(model.cfg.n_layers):
        if mid:
            names.append(act_name("resid_mid", layer))
            sites.append(f"L{layer}.mid")
        names.append(act_name("resid_post", layer))
        sites.append(f"L{layer}.post")
    for key, ids in tokens.items():
        if ids.shape != (len(batch),):
            raise ValueError(
                f"tokens[{key!r}] has shape {tuple(ids.shape)}; expected one id per prompt: ({len(batch)},)"
            )
    pos = read_positions(batch, position)
    with capture(model, names, positions=pos) as acts:
        run_batch(model, batch)
    resid = torch.stack([acts[n][:, 0] for n in names])  # [layer batch d_model]
    logits = final_logits(model, resid).float()
    probs = logits.softmax(-1)
    out_p, out_r = {}, {}
    for key, ids in tokens.items():
        ids = ids.to(logits.device)[None].expand(logits.shape[0], -1)
        out_p[key] = probs.gather(-1, ids[..., None])[..., 0].cpu()
        out_r[key] = token_ranks(logits, ids).cpu()
    top_p, top_i = probs.topk(top_k, dim=-1)
    top_i = top_i.cpu()
    decode = model.tokenizer.decode if model.tokenizer is not None else str
    decoded = [[[decode([int(t)]) for t in row] for row in site] for site in top_i.tolist()]
    return LensResult(out_p, out_r, top_i, top_p.cpu(), sites, pos.cpu(), decoded)


# ----------------------------------------------------------------------------- apathy


def apathy(a: Float[Tensor, "... d"], b: Float[Tensor, "... d"]) -> Float[Tensor, "..."]:
    """``(1 + cos(a, b)) · (‖a‖ − ‖b‖)`` (seed 001's "steering off course" code): large when a
    sublayer's output ``b`` is small next to the stream ``a`` it is added to, or points along
    it — the stream is "set" and the sublayer barely turns it. Zero vectors give cos = 0."""
    if a.shape != b.shape:
        raise ValueError(f"a has shape {tuple(a.shape)} but b has {tuple(b.shape)}")
    na, nb = a.norm(dim=-1), b.norm(dim=-1)
    cos = (a * b).sum(-1) / (na * nb).clamp_min(1e-12)
    return (1 + cos) * (na - nb)


@dataclass
class ApathyResult:
    """Apathy per layer and prompt at the last real token: ``attn`` for (resid_pre, attn_out),
    ``mlp`` for (resid_mid, mlp_out)."""

    attn: Float[Tensor, "layer batch"]
    mlp: Float[Tensor, "layer batch"]

    def normalised(self) -> tuple[Float[Tensor, " layer"], Float[Tensor, " layer"]]:
        """Means over prompts, min-max normalised jointly across layers and both components
        (as seed 001 plots them). A flat curve (max = min) is undefined: NaN."""
        a, m = self.attn.mean(1), self.mlp.mean(1)
        lo, hi = torch.minimum(a.min(), m.min()), torch.maximum(a.max(), m.max())
        if hi - lo <= 0:
            return torch.full_like(a, float("nan")), torch.full_like(m, float("nan"))
        return (a - lo) / (hi - lo), (m - lo) / (hi - lo)


@torch.no_grad()
def apathy_curves(model: HookedTransformer, batch: TokenBatch) -> ApathyResult:
    """Apathy of every layer's attention and MLP at each prompt's last real token."""
    L = model.cfg.n_layers
    names = [act_name(site, i) for i in range(L) for site in ("resid_pre", "attn_out", "resid_mid", "mlp_out")]
    with capture(model, names, positions=batch.last_index) as acts:
        run_batch(model, batch)
    get = lambda i, site: acts[act_name(site, i)][:, 0].float()  # noqa: E731
    attn = torch.stack([apathy(get(i, "resid_pre"), get(i, "attn_out")) for i in range(L)])
    mlp = torch.stack([apathy(get(i, "resid_mid"), get(i, "mlp_out")) for i in range(L)])
    return ApathyResult(attn.cpu(), mlp.cpu())
