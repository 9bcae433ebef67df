"""Activation patching: metrics, recovery, and head-level patching.

Denoising: run the corrupted prompt and write one activation from the clean run into it.
Recovery ``R = (m_patched - m_corr) / (m_clean - m_corr)``: 1 = the patch restores clean
behaviour, 0 = no effect. When ``|m_clean - m_corr| < tol`` the ratio is meaningless: it is
returned as NaN and flagged, never computed from a tiny denominator.

Example:
    >>> metric = logit_diff_metric(correct_ids, wrong_ids)
    >>> res = patch_heads(model, clean, corrupted, metric)
    >>> res.recovery.shape  # [layer head_index batch]
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from interp.data.tokenize import TokenBatch, run_batch
from interp.hooks import capture, hooks

# metric: logits at each prompt's last real token [batch d_vocab] -> one number per prompt
Metric = Callable[[Float[Tensor, "batch d_vocab"]], Float[Tensor, " batch"]]


def logit_diff_metric(correct: Int[Tensor, " batch"], wrong: Int[Tensor, " batch"]) -> Metric:
    """``logit[correct] - logit[wrong]`` per prompt."""

    def metric(logits: Float[Tensor, "batch d_vocab"]) -> Float[Tensor, " batch"]:
        rows = torch.arange(logits.shape[0], device=logits.device)
        return logits[rows, correct.to(logits.device)] - logits[rows, wrong.to(logits.device)]

    return metric


def logprob_metric(target: Int[Tensor, " batch"]) -> Metric:
    """Log-probability of ``target`` per prompt."""

    def metric(logits: Float[Tensor, "batch d_vocab"]) -> Float[Tensor, " batch"]:
        logp = logits.float().log_softmax(-1)
        return logp[torch.arange(logits.shape[0], device=logits.device), target.to(logits.device)]

    return metric


def prob_metric(target: Int[Tensor, " batch"]) -> Metric:
    """Probability of ``target`` per prompt."""
    logprob = logprob_metric(target)
    return lambda logits: logprob(logits).exp()


def recovery(
    m_patched: Float[Tensor, "*grid batch"], m_clean: Float[Tensor, " batch"], m_corr: Float[Tensor, " batch"], tol: float = 1e-3
) -> tuple[Float[Tensor, "*grid batch"], Bool[Tensor, " batch"]]:
    """Recovery per prompt and the mask of prompts where it is undefined (NaN there)."""
    gap = m_clean - m_corr
    undefined = gap.abs() < tol
    safe_gap = torch.where(undefined, torch.ones_like(gap), gap)
    r = (m_patched - m_corr) / safe_gap
    return torch.where(undefined, torch.full_like(r, float("nan")), r), undefined


def check_pair_shapes(clean: TokenBatch, corrupted: TokenBatch) -> None:
    if clean.tokens.shape != corrupted.tokens.shape:
        raise ValueError(
            f"clean tokens have shape {tuple(clean.tokens.shape)} but corrupted tokens have "
            f"{tuple(corrupted.tokens.shape)}; patching every position needs equal shapes "
            "(use prompts of equal token length, or patch per-prompt positions)"
        )


def last_logits(model: HookedTransformer, batch: TokenBatch, **kw) -> Float[Tensor, "batch d_vocab"]:
    logits = run_batch(model, batch, **kw)
    return logits[torch.arange(len(batch), device=logits.device), batch.last_index.to(logits.device)]


@dataclass
class HeadPatchingResult:
    metric: Float[Tensor, "layer head_index batch"]  # metric of the patched run
    recovery: Float[Tensor, "layer head_index batch"]  # NaN where undefined
    m_clean: Float[Tensor, " batch"]
    m_corr: Float[Tensor, " batch"]
    undefined: Bool[Tensor, " batch"]


@torch.no_grad()
def patch_heads(
    model: HookedTransformer, clean: TokenBatch, corrupted: TokenBatch, metric: Metric, tol: float = 1e-3, progress: bool = True
) -> HeadPatchingResult:
    """Denoise each head's output ``z`` (all positions) from clean into corrupted, per (layer, head).

    One forward per layer: the corrupted batch is repeated once per head and copy ``h`` gets
    head ``h`` patched, so a layer's heads are evaluated together.
    """
    check_pair_shapes(clean, corrupted)
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]
    with capture(model, names) as clean_z:
        m_clean = metric(last_logits(model, clean))
    m_corr = metric(last_logits(model, corrupted))
    n_heads, batch = model.cfg.n_heads, len(corrupted)
    stacked = _repeat_batch(corrupted, n_heads)
    out = torch.empty(model.cfg.n_layers, n_heads, batch)
    for layer, name in enumerate(tqdm(names, desc="head patching", disable=not progress)):
        with hooks(model, [(name, _one_head_per_copy(clean_z[name], n_heads))]):
            out[layer] = metric_repeated(model, stacked, metric, n_heads).cpu()
    rec, undefined = recovery(out, m_clean.cpu(), m_corr.cpu(), tol)
    return HeadPatchingResult(out, rec, m_clean.cpu(), m_corr.cpu(), undefined)


def _repeat_batch(batch: TokenBatch, n: int) -> TokenBatch:
    """Copies ordered copy-major: row ``c * batch + b`` is prompt b in copy c."""
    return TokenBatch(batch.tokens.repeat(n, 1), batch.attention_mask.repeat(n, 1), batch.last_index.repeat(n),
                      batch.padding_side, batch.prompts * n)  # fmt: skip


def metric_repeated(model, stacked: TokenBatch, metric: Metric, n: int) -> Float[Tensor, "copy batch"]:
    logits = last_logits(model, stacked)
    batch = logits.shape[0] // n
    return torch.stack([metric(logits[c * batch : (c + 1) * batch]) for c in range(n)])


def _one_head_per_copy(clean_z: Float[Tensor, "batch pos head_index d_head"], n_heads: int):
    def fn(z: Tensor, hook) -> Tensor:
        copies = z.view(n_heads, -1, *z.shape[1:])  # [copy batch pos head d_head]
        eye = torch.eye(n_heads, dtype=torch.bool, device=z.device)[:, None, None, :, None]
        return torch.where(eye, clean_z.to(z)[None], copies).view_as(z)

    return fn
