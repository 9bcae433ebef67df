"""Cross-template function-vector transfer (seed 000), one task on one model.

For each prompt template (eight kinds, :mod:`interp.data.fv_templates`) one vector per
studied layer, by one of three extractions:

- ``"shuffled"`` (seed 000's): mean last-token residual after the layer over clean ICL prompts
  minus the same over shuffled-label ICL prompts of the template;
- ``"zero_shot"``: clean ICL minus the same queries without demonstrations (keeps the output
  format and answer type, which the shuffled-label baseline shares with the clean prompts and so
  cancels);
- ``"fv"``: Todd et al.'s head-based function vector of the template: the ``fv_k`` heads with the
  largest causal indirect effect on the template's shuffled-label prompts, their mean clean
  outputs summed into the residual (:func:`interp.function_vectors.function_vector`, through
  Gemma-3's post-attention norm); one vector, added at each studied layer.

It is added at the last token of zero-shot prompts; accuracy is the first answer token at top-1.
``dose_units="raw"`` adds ``α · v``; ``"residual"`` adds ``α · r̄ · v/‖v‖`` with r̄ the mean
residual norm after the layer at the last token of the source template's validation prompts
(:mod:`interp.steering.doses`), so doses compare across extractions, layers and models. α per
(source template, layer) is chosen on validation queries of the source's own template; every
accuracy in the transfer matrices is on other (test) queries. The validation dose response
(accuracy and the share of predictions the vector changes, per α) is kept to show the grid
brackets the effect. The analysis of the result is :mod:`interp.transfer`.

**Specificity control** (``n_controls`` > 0): every steered cell (source template's vector at
its α*, target template's test queries) is repeated with ``n_controls`` random directions of the
same norm at the same dose (:func:`interp.steering.controls.random_directions`, seeded per layer
and source), so each accuracy sits beside what any push of that size does to the same queries.

    >>> r = task_transfer(model, "antonym", TransferSettings(), seed=0)
    >>> r.transfer[best_layer(r)]            # [source template, target template] test accuracy
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass, field

import numpy as np
import torch

import interp
from interp.data import load_fv_task
from interp.data.fv_templates import TEMPLATE_KINDS, task_templates
from interp.function_vectors import function_vector, top1_accuracy
from interp.heads import has_post_attn_norm, post_attn_scales
from interp.mediation import causal_indirect_effect, first_token_ids, icl_prompts, mean_head_outputs
from interp.progress import progress as tqdm
from interp.stats import pc1_variance
from interp.steering import SteeringBatch, mean_difference_vectors
from interp.steering.controls import random_directions
from interp.steering.doses import raw_strength, residual_norm

EXTRACTIONS = ("shuffled", "zero_shot", "fv")
DOSE_UNITS = ("raw", "residual")


@dataclass
class TransferSettings:
    tasks: list[str] = field(
        default_factory=lambda: ["antonym", "capitalize", "sentiment", "country-capital", "english-french"]
    )
    templates: list[str] = field(default_factory=lambda: list(TEMPLATE_KINDS))
    custom_templates: dict = field(default_factory=dict)  # {task: {kind: "... {x} ... {y}"}}: adds or overrides
    extraction: str = (
        "shuffled"  # "shuffled" | "zero_shot" (mean differences) | "fv" (head-based function vector); see module doc
    )
    fv_k: int = 10  # extraction="fv": heads in the function vector
    # "raw": alphas multiply the vector; "residual": alphas are fractions of the mean residual norm at the layer
    dose_units: str = "raw"
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
    n_controls: int = 3  # random directions of the vector's norm at the same dose, per steered cell (0: none)


@dataclass
class TransferResult:
    layers: list[int]
    kinds: list[str]
    templates: dict[str, str]
    transfer: np.ndarray  # [layer source target] mean test accuracy
    cos: np.ndarray  # [layer source target] cosine between the two templates' vectors
    pc1: np.ndarray  # [layer] variance share of the first principal component of the template vectors
    alpha_star: np.ndarray  # [source layer] α chosen on validation queries (in dose_units)
    val_acc: np.ndarray  # [source layer] validation accuracy at α*
    zero_shot: dict[str, np.ndarray]  # per template: unsteered zero-shot correctness per test query
    icl: dict[str, np.ndarray]  # per template: n_shots-shot correctness per test query
    val_curve: np.ndarray | None = None  # [source layer alpha] validation accuracy per α
    val_changed: np.ndarray | None = (
        None  # [source layer alpha] share of validation predictions that differ from unsteered
    )
    val_unsteered: np.ndarray | None = None  # [source] unsteered validation accuracy
    raw_per_unit: np.ndarray | None = None  # [source layer] raw multiplier of the vector per unit α (1 for raw doses)
    vector_norm: np.ndarray | None = None  # [source layer] ‖v‖
    resid_norm: np.ndarray | None = (
        None  # [source layer] mean residual norm at the last token of the source's validation prompts
    )
    heads: dict[str, list] | None = None  # extraction="fv": per template, the (layer, head, CIE) in its vector
    alphas: list[float] | None = None  # the α grid of val_curve / val_changed
    transfer_items: np.ndarray | None = None  # [layer source target query] steered test correctness
    control_items: np.ndarray | None = None  # [layer source target control query] the same with random directions


def check_settings(s: TransferSettings) -> None:
    if s.extraction not in EXTRACTIONS:
        raise ValueError(f"extraction={s.extraction!r}; allowed: {list(EXTRACTIONS)}")
    if s.dose_units not in DOSE_UNITS:
        raise ValueError(f"dose_units={s.dose_units!r}; allowed: {list(DOSE_UNITS)}")
    if not s.alphas or any(not a > 0 for a in s.alphas):
        raise ValueError(f"alphas={s.alphas}; need at least one, all > 0")
    if s.fv_k < 1:
        raise ValueError(f"fv_k={s.fv_k}; must be >= 1")
    if isinstance(s.n_controls, bool) or not isinstance(s.n_controls, int) or s.n_controls < 0:
        raise ValueError(f"n_controls={s.n_controls!r}; a number of random directions >= 0")


def templates_for(task: str, s: TransferSettings) -> dict[str, str]:
    """The task's templates by kind, custom ones added or overriding."""
    custom = s.custom_templates.get(task, {})
    known = [k for k in s.templates if k not in custom]
    out = task_templates(task, known) if known else {}
    out.update(custom)
    if len(out) < 2:
        raise ValueError(f"task={task!r} has {len(out)} templates; transfer needs at least 2")
    return out


def _split(task: str, s: TransferSettings, seed: int):
    pairs = load_fv_task(task)
    if len(pairs) < s.n_val + s.n_eval + s.n_shots + 1:
        raise ValueError(
            f"task {task!r} has {len(pairs)} pairs; n_val + n_eval + n_shots + 1 = "
            f"{s.n_val + s.n_eval + s.n_shots + 1} needed"
        )
    order = random.Random(seed).sample(range(len(pairs)), len(pairs))
    val_q = [pairs[i] for i in order[: s.n_val]]
    test_q = [pairs[i] for i in order[s.n_val : s.n_val + s.n_eval]]
    pool = [pairs[i] for i in order[s.n_val + s.n_eval :]]  # ICL demonstrations never contain a val/test query
    return val_q, test_q, pool


def template_fv(model, pool: list[dict], tpl: str, s: TransferSettings, seed: int) -> tuple[torch.Tensor, list]:
    """Head-based function vector [d_model] of one template and its heads ``(layer, head, CIE)``:
    CIE on the template's shuffled-label ICL prompts, mean head outputs over its clean ones."""
    clean = icl_prompts(pool, s.n_icl, s.n_shots, seed=seed + 1, template=tpl, separator=s.separator)
    shuffled = icl_prompts(
        pool, s.n_icl, s.n_shots, seed=seed + 1, template=tpl, separator=s.separator, shuffle_labels=True
    )
    clean_b, shuf_b = interp.tokenize(model, clean.prompts), interp.tokenize(model, shuffled.prompts)
    mean_z = mean_head_outputs(model, clean_b)
    cie = causal_indirect_effect(model, shuf_b, first_token_ids(model, clean.answers), mean_z, progress=False)
    post = post_attn_scales(model, clean_b).mean(1) if has_post_attn_norm(model) else None
    heads = cie.top(s.fv_k)
    return function_vector(model, mean_z, [(layer, h) for layer, h, _ in heads], post), heads


def template_vectors(
    model, pool: list[dict], tpl: str, layers: list[int], s: TransferSettings, seed: int
) -> torch.Tensor:
    """Mean-difference vector per layer [layer d_model] of one template (see module doc)."""
    if s.extraction == "fv":
        raise ValueError("extraction='fv' has one vector for all layers: use template_fv")
    tok = lambda prompts: interp.tokenize(model, prompts, padding_side="left")  # noqa: E731
    clean = icl_prompts(pool, s.n_icl, s.n_shots, seed=seed + 1, template=tpl, separator=s.separator)
    if s.extraction == "shuffled":
        base = icl_prompts(
            pool, s.n_icl, s.n_shots, seed=seed + 1, template=tpl, separator=s.separator, shuffle_labels=True
        )
    else:
        base = icl_prompts(pool, s.n_icl, 0, template=tpl, queries=[{"input": q, "output": ""} for q in clean.queries])
    return mean_difference_vectors(model, tok(clean.prompts), tok(base.prompts), layers)


@dataclass
class _TemplateRuns:
    vectors: dict
    val_sb: dict
    test_sb: dict
    zero_shot: dict
    icl: dict
    heads: dict


def _template_runs(model, task: str, s: TransferSettings, seed: int, layers: list[int], split) -> _TemplateRuns:
    """Per template: its vectors, the validation / test steering batches and the unsteered baselines."""
    val_q, test_q, pool, templates, ans_val, ans_test = split
    tok = lambda prompts: interp.tokenize(model, prompts, padding_side="left")  # noqa: E731
    out = _TemplateRuns({}, {}, {}, {}, {}, {})
    for kind in tqdm(list(templates), desc=f"{task}: vectors", leave=False):
        tpl = templates[kind]
        if s.extraction == "fv":
            fv, out.heads[kind] = template_fv(model, pool, tpl, s, seed)
            out.vectors[kind] = fv[None].expand(len(layers), -1).clone()
        else:
            out.vectors[kind] = template_vectors(model, pool, tpl, layers, s, seed)
        val = tok(icl_prompts(pool, len(val_q), 0, template=tpl, queries=val_q).prompts)
        test = tok(icl_prompts(pool, len(test_q), 0, template=tpl, queries=test_q).prompts)
        out.val_sb[kind] = SteeringBatch(model, val, ans_val, max_rows=s.max_rows)
        out.test_sb[kind] = SteeringBatch(model, test, ans_test, max_rows=s.max_rows)
        out.zero_shot[kind] = out.test_sb[kind].baseline_accuracy().numpy()
        shots = icl_prompts(
            pool, len(test_q), s.n_shots, seed=seed + 2, template=tpl, separator=s.separator, queries=test_q
        )
        out.icl[kind] = top1_accuracy(model, tok(shots.prompts), ans_test).numpy()
    return out


def task_transfer(model, task: str, s: TransferSettings, seed: int) -> TransferResult:
    """Vectors of every template, α chosen on validation queries, the transfer matrix at every layer."""
    check_settings(s)
    val_q, test_q, pool = _split(task, s, seed)
    templates = templates_for(task, s)
    kinds = list(templates)
    layers = s.layers if s.layers is not None else list(range(0, model.cfg.n_layers, s.layer_stride))
    ans_val = first_token_ids(model, [" " + q["output"] for q in val_q])
    ans_test = first_token_ids(model, [" " + q["output"] for q in test_q])
    t = _template_runs(model, task, s, seed, layers, (val_q, test_q, pool, templates, ans_val, ans_test))
    vectors, val_sb, zero_shot, icl, heads = t.vectors, t.val_sb, t.zero_shot, t.icl, t.heads
    # [source layer]
    resid = np.array([[residual_norm(val_sb[kind].last_resid[layer]) for layer in layers] for kind in kinds])
    vnorm = np.array([vectors[kind].float().norm(dim=-1).numpy() for kind in kinds])
    per_unit = (
        np.ones_like(resid)
        if s.dose_units == "raw"
        else np.array([raw_strength(vectors[kind], torch.tensor(resid[si])).numpy() for si, kind in enumerate(kinds)])
    )
    sweep = _sweep(kinds, layers, vectors, val_sb, t.test_sb, s.alphas, per_unit, ans_val, s.n_controls, seed)
    stack = torch.stack([vectors[kind] for kind in kinds], 1)  # [layer kind d_model]
    unit = stack / stack.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    cos = (unit @ unit.transpose(1, 2)).numpy()  # [layer source target]
    pc1 = np.array([pc1_variance(stack[li].numpy()) for li in range(len(layers))])
    unsteered = np.array([float(val_sb[kind].baseline_accuracy().mean()) for kind in kinds])
    return TransferResult(
        layers,
        kinds,
        templates,
        sweep["transfer"],
        cos,
        pc1,
        sweep["alpha_star"],
        sweep["val_acc"],
        zero_shot,
        icl,
        sweep["val_curve"],
        sweep["val_changed"],
        unsteered,
        per_unit,
        vnorm,
        resid,
        heads or None,
        list(s.alphas),
        sweep["transfer_items"],
        sweep["control_items"] if s.n_controls else None,
    )


def _sweep(
    kinds, layers, vectors, val_sb, test_sb, alphas_list, per_unit, ans_val, n_controls: int = 0, seed: int = 0
) -> dict[str, np.ndarray]:
    """Validation dose response and α* per (source, layer), then every source's steered
    accuracy on every target's test queries, beside ``n_controls`` random directions of each
    steer's norm on the same queries."""
    alphas = torch.tensor(alphas_list)
    k, L, A = len(kinds), len(layers), len(alphas_list)
    n_test = len(next(iter(test_sb.values())))
    out = {
        "alpha_star": np.zeros((k, L)),
        "val_acc": np.zeros((k, L)),
        "val_curve": np.zeros((k, L, A)),
        "val_changed": np.zeros((k, L, A)),
        "transfer": np.zeros((L, k, k)),
        "transfer_items": np.zeros((L, k, k, n_test)),
        "control_items": np.zeros((L, k, k, n_controls, n_test)),
    }
    base_pred = {
        kind: sb.baseline_predictions() for kind, sb in val_sb.items()
    }  # unsteered: from the cached residual, no forward
    with contextlib.ExitStack() as stack:
        for sb in [*val_sb.values(), *test_sb.values()]:
            stack.enter_context(sb)  # one fast weight layout for the whole sweep
        for li, layer in enumerate(tqdm(layers, desc="layers", leave=False)):
            for si, src in enumerate(kinds):
                pred = val_sb[src].predictions(layer, (alphas * float(per_unit[si, li]))[:, None] * vectors[src][li])
                acc = (pred == ans_val[None]).float().mean(1)
                out["val_curve"][si, li], out["val_changed"][si, li] = (
                    acc.numpy(),
                    (pred != base_pred[src][None]).float().mean(1).numpy(),
                )
                best = int(acc.argmax())  # first maximum: the smallest α among ties
                out["alpha_star"][si, li], out["val_acc"][si, li] = alphas_list[best], float(acc[best])
            steer = torch.stack(
                [float(out["alpha_star"][si, li] * per_unit[si, li]) * vectors[src][li] for si, src in enumerate(kinds)]
            )
            # controls: per source, random directions of its steer's norm (seeded by layer and source)
            ctrl = (
                torch.cat(
                    [random_directions(steer[si], n_controls, seed=_control_seed(seed, layer, si)) for si in range(k)]
                )
                if n_controls
                else steer[:0]
            )  # [source·control d_model]
            for ti, tgt in enumerate(kinds):
                acc = test_sb[tgt].accuracy(layer, torch.cat([steer, ctrl])).numpy()
                out["transfer_items"][li, :, ti] = acc[:k]
                out["control_items"][li, :, ti] = acc[k:].reshape(k, n_controls, -1)
            out["transfer"][li] = out["transfer_items"][li].mean(-1)
    return out


def _control_seed(seed: int, layer: int, source: int) -> int:
    return seed * 1_000_003 + layer * 1_009 + source
