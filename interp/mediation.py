"""Causal mediation over attention heads (Todd et al., "Function vectors in large language models").

1. ``ā_{l,h}``: each head's output ``z`` at the last token, averaged over clean ICL prompts
   (:func:`mean_head_outputs`).
2. Corrupted prompts: the same ICL format with the demonstrations' labels shuffled, so the
   prompt no longer shows the task (:func:`icl_prompts` with ``shuffle_labels=True``).
3. ``CIE_{l,h} = P(correct first token | corrupted, z_{l,h}@last := ā_{l,h}) − P(correct | corrupted)``,
   per prompt and averaged over prompts (trials) (:func:`causal_indirect_effect`). Every
   (layer, head) runs on the batched engine; only the last position is patched, so each
   patched run recomputes only that position from the patched layer on.

Example:
    >>> clean = icl_prompts(pairs, n_prompts=25, n_shots=10, seed=0)
    >>> corr = icl_prompts(pairs, n_prompts=25, n_shots=10, seed=0, shuffle_labels=True)
    >>> mean_z = mean_head_outputs(model, tokenize(model, clean.prompts, padding_side="left"))
    >>> res = causal_indirect_effect(model, tokenize(model, corr.prompts), answer_ids, mean_z)
    >>> res.top(10)   # [(layer, head, CIE), ...]
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from interp.data.tokenize import TokenBatch
from interp.engine import (
    DEFAULT_MEMORY_BUDGET_GB,
    Variant,
    apply_metric,
    base_run,
    linear_friendly_weights,
    metric_columns,
    run_variants,
)
from interp.hooks import act_name, position_mask
from interp.patching import prob_metric
from interp.stats import Estimate, bootstrap_ci


@dataclass
class ICLPrompts:
    """In-context-learning prompts of one task: the prompt texts, the queries and their correct answers."""

    prompts: list[str]
    answers: list[str]  # the query's correct output (not shuffled), with the answer prefix
    queries: list[str]


def _check_icl_args(pairs, n_prompts: int, n_shots: int, template: str, queries) -> int:
    """Named errors for :func:`icl_prompts`' arguments; the number of pairs each prompt draws."""
    if "{x}" not in template or "{y}" not in template:
        raise ValueError(f"template={template!r} must contain {{x}} and {{y}}")
    if not template.endswith("{y}"):
        raise ValueError(f"template={template!r} must end with {{y}} (the query's answer is predicted there)")
    if n_prompts < 1 or n_shots < 0:
        raise ValueError(f"n_prompts={n_prompts}, n_shots={n_shots}; need n_prompts >= 1 and n_shots >= 0")
    if queries is not None and len(queries) != n_prompts:
        raise ValueError(f"queries has {len(queries)} entries but n_prompts={n_prompts}")
    if queries is None and n_prompts > len(pairs):
        raise ValueError(
            f"n_prompts={n_prompts} but pairs has {len(pairs)} entries; more prompts than pairs only repeats "
            f"queries — ask for at most {len(pairs)}"
        )
    need = n_shots if queries is not None else n_shots + 1
    if len(pairs) < need:
        raise ValueError(
            f"pairs has {len(pairs)} entries; {n_shots} shots{'' if queries is not None else ' plus a query'} need at "
            f"least {need}"
        )
    return need


def icl_prompts(
    pairs: Sequence[dict[str, str]],
    n_prompts: int,
    n_shots: int,
    seed: int = 0,
    shuffle_labels: bool = False,
    template: str = "Q: {x}\nA: {y}",
    separator: str = "\n\n",
    answer_prefix: str = " ",
    queries: Sequence[dict[str, str]] | None = None,
) -> ICLPrompts:
    """``n_prompts`` prompts of ``n_shots`` demonstrations and a query, drawn from ``pairs``
    (``{"input", "output"}``). With ``shuffle_labels`` the demonstrations' outputs are
    permuted among themselves (the query's answer stays correct). The same ``seed`` gives the
    same demonstrations and queries with and without shuffling, so prompts pair up.

    ``queries`` fixes the query of each prompt (then ``n_prompts`` must equal its length and
    demonstrations come from ``pairs`` only); ``n_shots=0`` gives zero-shot prompts."""
    need = _check_icl_args(pairs, n_prompts, n_shots, template, queries)
    rng = random.Random(seed)
    out = ICLPrompts([], [], [])
    stem = template[: template.index("{y}")].rstrip(" ")
    for i in range(n_prompts):
        chosen = rng.sample(range(len(pairs)), need)
        demos = [pairs[j] for j in chosen[:n_shots]]
        query = queries[i] if queries is not None else pairs[chosen[-1]]
        labels = [d["output"] for d in demos]
        key = rng.random()  # drawn in both modes, so clean and shuffled prompts share demos and query
        if shuffle_labels:
            random.Random(key).shuffle(labels)
        shots = [template.format(x=d["input"], y=y) for d, y in zip(demos, labels)]
        shots.append(stem.format(x=query["input"]))
        out.prompts.append(separator.join(shots))
        out.answers.append(answer_prefix + query["output"])
        out.queries.append(query["input"])
    return out


def first_token_ids(model: HookedTransformer, answers: Sequence[str]) -> Int[Tensor, " batch"]:
    """First token of each answer: the token whose probability the CIE and FV accuracy read."""
    if len(answers) == 0:
        raise ValueError("answers is empty")
    ids = []
    for i, a in enumerate(answers):
        toks = model.tokenizer.encode(a, add_special_tokens=False)
        if not toks:
            raise ValueError(f"answers[{i}]={a!r} tokenises to nothing")
        ids.append(toks[0])
    return torch.tensor(ids)


@torch.no_grad()
def mean_head_outputs(
    model: HookedTransformer, batch: TokenBatch, layers: Sequence[int] | None = None
) -> Float[Tensor, "layer head_index d_head"]:
    """Mean over prompts of every head's ``z`` at each prompt's last real token."""
    names = [act_name("z", layer) for layer in (range(model.cfg.n_layers) if layers is None else layers)]
    _, acts = base_run(model, batch, names, resid=False)
    rows = torch.arange(len(batch))
    last = batch.last_index.to(acts[names[0]].device)
    return torch.stack([acts[n][rows, last].float().mean(0) for n in names]).cpu()


@dataclass
class CIEResult:
    """Causal indirect effect per head (Todd et al.): the mean over prompts, the per-prompt values and the corrupted
    baseline; ``top(k)`` ranks heads."""

    cie: Float[Tensor, "layer head_index"]  # mean over prompts
    per_prompt: Float[Tensor, "layer head_index batch"]  # P(correct | patched) - P(correct | corrupted)
    p_corrupted: Float[Tensor, " batch"]

    def top(self, k: int = 10) -> list[tuple[int, int, float]]:
        """The ``k`` heads of largest mean CIE as ``(layer, head, cie)``."""
        n_heads = self.cie.shape[1]
        order = self.cie.flatten().argsort(descending=True)[:k]
        return [(int(i) // n_heads, int(i) % n_heads, float(self.cie.flatten()[i])) for i in order]

    def estimate(self, layer: int, head: int, n_boot: int = 2000) -> Estimate:
        return bootstrap_ci(self.per_prompt[layer, head].numpy(), n_boot=n_boot)


@torch.no_grad()
def causal_indirect_effect(
    model: HookedTransformer,
    corrupted: TokenBatch,
    answer_ids: Int[Tensor, " batch"],
    mean_z: Float[Tensor, "layer head_index d_head"],
    memory_budget_gb: float = DEFAULT_MEMORY_BUDGET_GB,
    progress: bool = True,
) -> CIEResult:
    """CIE of every (layer, head): put the head's mean clean output at the last token of each
    corrupted prompt and measure the gain in probability of the correct first answer token."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    if tuple(mean_z.shape) != (n_layers, n_heads, model.cfg.d_head):
        raise ValueError(
            f"mean_z has shape {tuple(mean_z.shape)}; expected [n_layers={n_layers}, n_heads={n_heads}, "
            f"d_head={model.cfg.d_head}]"
        )
    if answer_ids.shape != (len(corrupted),):
        raise ValueError(
            f"answer_ids has shape {tuple(answer_ids.shape)}; expected one id per corrupted prompt ({len(corrupted)})"
        )
    metric = prob_metric(answer_ids)
    names = [act_name("z", layer) for layer in range(n_layers)]
    with linear_friendly_weights(model, max_bytes=memory_budget_gb * 2**30 / 4, unembed=metric_columns(metric) is None):
        logits, base_acts = base_run(model, corrupted, names)
        p_corr = apply_metric(metric, logits).float().cpu()
        sources = {
            n: mean_z[layer][None, None] for layer, n in enumerate(names)
        }  # broadcast to [batch pos head d_head]
        variants = [Variant(n, layer, head=h) for layer, n in enumerate(names) for h in range(n_heads)]
        slots = position_mask(corrupted.last_index, len(corrupted), corrupted.tokens.shape[1])
        p = run_variants(
            model,
            corrupted,
            sources,
            variants,
            metric,
            slots=slots,
            memory_budget_gb=memory_budget_gb,
            progress=progress,
            desc="causal indirect effect",
            base_cache=base_acts,
        )
    per_prompt = (p - p_corr).view(n_layers, n_heads, len(corrupted))
    return CIEResult(per_prompt.mean(-1), per_prompt, p_corr)
