"""Cross-template function-vector transfer (seed 000), one task on one model.

For each prompt template (eight kinds, :mod:`interp.data.fv_templates`) the vector at every
studied layer is a mean difference of last-token residuals: clean ICL prompts minus
shuffled-label ICL prompts (``extraction="shuffled"``, seed 000's) or minus the same queries
without demonstrations (``"zero_shot"``). It is added × α at the last token of zero-shot
prompts; accuracy is the first answer token at top-1. α per (source template, layer) is chosen
on validation queries of the source's own template; every accuracy in the result is on other
(test) queries. The analysis of the result is :mod:`interp.transfer`.

    >>> r = task_transfer(model, "antonym", TransferSettings(), seed=0)
    >>> r.transfer[best_layer(r)]            # [source template, target template] test accuracy
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

import interp
from interp.data import load_fv_task
from interp.data.fv_templates import TEMPLATE_KINDS, task_templates
from interp.function_vectors import top1_accuracy
from interp.mediation import first_token_ids, icl_prompts
from interp.stats import pc1_variance
from interp.steering import SteeringBatch, mean_difference_vectors

EXTRACTIONS = ("shuffled", "zero_shot")


@dataclass
class TransferSettings:
    tasks: list[str] = field(default_factory=lambda: ["antonym", "capitalize", "sentiment", "country-capital", "english-french"])
    templates: list[str] = field(default_factory=lambda: list(TEMPLATE_KINDS))
    custom_templates: dict = field(default_factory=dict)  # {task: {kind: "... {x} ... {y}"}}: adds or overrides
    extraction: str = "shuffled"  # mean difference: clean ICL minus "shuffled" (shuffled-label ICL) or "zero_shot" (the same queries without demonstrations)
    n_icl: int = 20  # clean and baseline prompts per template for the mean difference
    n_shots: int = 5
    n_val: int = 20  # queries to choose α on (source template only)
    n_eval: int = 40  # test queries, shared by all templates (disjoint from val and from the ICL pool)
    alphas: list[float] = field(default_factory=lambda: [1.0, 2.0, 4.0, 8.0])
    layers: list[int] | None = None  # default: every layer_stride-th layer
    layer_stride: int = 1
    separator: str = "\n\n"
    cos_min: float = 0.8  # dissociation case: cos > cos_min and transfer < transfer_max
    transfer_max: float = 0.4
    iid_threshold: float = 0.5
    max_rows: int = 512


@dataclass
class TransferResult:
    layers: list[int]
    kinds: list[str]
    templates: dict[str, str]
    transfer: np.ndarray  # [layer source target] mean test accuracy
    cos: np.ndarray  # [layer source target] cosine between the two templates' vectors
    pc1: np.ndarray  # [layer] variance share of the first principal component of the template vectors
    alpha_star: np.ndarray  # [source layer] α chosen on validation queries
    val_acc: np.ndarray  # [source layer] validation accuracy at α*
    zero_shot: dict[str, np.ndarray]  # per template: unsteered zero-shot correctness per test query
    icl: dict[str, np.ndarray]  # per template: n_shots-shot correctness per test query


def check_settings(s: TransferSettings) -> None:
    if s.extraction not in EXTRACTIONS:
        raise ValueError(f"extraction={s.extraction!r}; allowed: {list(EXTRACTIONS)}")


def templates_for(task: str, s: TransferSettings) -> dict[str, str]:
    """The task's templates by kind, custom ones added or overriding."""
    custom = s.custom_templates.get(task, {})
    known = [k for k in s.templates if k not in custom]
    out = task_templates(task, known) if known else {}
    out.update(custom)
    if len(out) < 2:
        raise ValueError(f"task={task!r} has {len(out)} templates; transfer needs at least 2")
    return out


def cache_parts(s: TransferSettings) -> dict:
    """What a task's result depends on, for a cache key (analysis thresholds and max_rows change no number)."""
    keep = {k: v for k, v in vars(s).items() if k not in ("tasks", "cos_min", "transfer_max", "iid_threshold", "max_rows")}
    if s.extraction == "shuffled":
        keep.pop("extraction")  # the default: keeps the cache keys of runs from before the option existed
    return keep


def _split(task: str, s: TransferSettings, seed: int):
    pairs = load_fv_task(task)
    if len(pairs) < s.n_val + s.n_eval + s.n_shots + 1:
        raise ValueError(f"task {task!r} has {len(pairs)} pairs; n_val + n_eval + n_shots + 1 = {s.n_val + s.n_eval + s.n_shots + 1} needed")
    order = random.Random(seed).sample(range(len(pairs)), len(pairs))
    val_q = [pairs[i] for i in order[: s.n_val]]
    test_q = [pairs[i] for i in order[s.n_val : s.n_val + s.n_eval]]
    pool = [pairs[i] for i in order[s.n_val + s.n_eval :]]  # ICL demonstrations never contain a val/test query
    return val_q, test_q, pool


def template_vectors(model, pool: list[dict], tpl: str, layers: list[int], s: TransferSettings, seed: int) -> torch.Tensor:
    """Mean-difference vector per layer [layer d_model] of one template (see module doc)."""
    tok = lambda prompts: interp.tokenize(model, prompts, padding_side="left")  # noqa: E731
    clean = icl_prompts(pool, s.n_icl, s.n_shots, seed=seed + 1, template=tpl, separator=s.separator)
    if s.extraction == "shuffled":
        base = icl_prompts(pool, s.n_icl, s.n_shots, seed=seed + 1, template=tpl, separator=s.separator, shuffle_labels=True)
    else:
        base = icl_prompts(pool, s.n_icl, 0, template=tpl, queries=[{"input": q, "output": ""} for q in clean.queries])
    return mean_difference_vectors(model, tok(clean.prompts), tok(base.prompts), layers)


def task_transfer(model, task: str, s: TransferSettings, seed: int) -> TransferResult:
    """Vectors of every template, α chosen on validation queries, the transfer matrix at every layer."""
    check_settings(s)
    val_q, test_q, pool = _split(task, s, seed)
    templates = templates_for(task, s)
    kinds = list(templates)
    layers = s.layers if s.layers is not None else list(range(0, model.cfg.n_layers, s.layer_stride))
    ans_val = first_token_ids(model, [" " + q["output"] for q in val_q])
    ans_test = first_token_ids(model, [" " + q["output"] for q in test_q])
    tok = lambda prompts: interp.tokenize(model, prompts, padding_side="left")  # noqa: E731
    vectors, val_sb, test_sb, zero_shot, icl = {}, {}, {}, {}, {}
    for kind in tqdm(kinds, desc=f"{task}: vectors", leave=False):
        tpl = templates[kind]
        vectors[kind] = template_vectors(model, pool, tpl, layers, s, seed)
        val_sb[kind] = SteeringBatch(model, tok(icl_prompts(pool, len(val_q), 0, template=tpl, queries=val_q).prompts), ans_val, max_rows=s.max_rows)
        test_sb[kind] = SteeringBatch(model, tok(icl_prompts(pool, len(test_q), 0, template=tpl, queries=test_q).prompts), ans_test, max_rows=s.max_rows)
        zero_shot[kind] = test_sb[kind].baseline_accuracy().numpy()
        shots = icl_prompts(pool, len(test_q), s.n_shots, seed=seed + 2, template=tpl, separator=s.separator, queries=test_q)
        icl[kind] = top1_accuracy(model, tok(shots.prompts), ans_test).numpy()
    alpha_star, val_acc, transfer = _sweep(kinds, layers, vectors, val_sb, test_sb, s.alphas)
    stack = torch.stack([vectors[kind] for kind in kinds], 1)  # [layer kind d_model]
    unit = stack / stack.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    cos = (unit @ unit.transpose(1, 2)).numpy()  # [layer source target]
    pc1 = np.array([pc1_variance(stack[li].numpy()) for li in range(len(layers))])
    return TransferResult(layers, kinds, templates, transfer, cos, pc1, alpha_star, val_acc, zero_shot, icl)


def _sweep(kinds, layers, vectors, val_sb, test_sb, alphas_list):
    """α* per (source, layer) on validation queries, then every source's steered accuracy on every target's test queries."""
    alphas = torch.tensor(alphas_list)
    k, L = len(kinds), len(layers)
    alpha_star, val_acc = np.zeros((k, L)), np.zeros((k, L))
    transfer = np.zeros((L, k, k))
    with contextlib.ExitStack() as stack:
        for sb in [*val_sb.values(), *test_sb.values()]:
            stack.enter_context(sb)  # one fast weight layout for the whole sweep
        for li, layer in enumerate(tqdm(layers, desc="layers", leave=False)):
            for si, src in enumerate(kinds):
                acc = val_sb[src].accuracy(layer, alphas[:, None] * vectors[src][li]).mean(1)
                best = int(acc.argmax())  # first maximum: the smallest α among ties
                alpha_star[si, li], val_acc[si, li] = alphas_list[best], float(acc[best])
            steer = torch.stack([float(alpha_star[si, li]) * vectors[src][li] for si, src in enumerate(kinds)])
            for ti, tgt in enumerate(kinds):
                transfer[li, :, ti] = test_sb[tgt].accuracy(layer, steer).mean(1).numpy()
    return alpha_star, val_acc, transfer
