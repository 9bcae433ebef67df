"""Function vectors and task vectors on word-pair tasks (seed 001 §4), one task on one model.

Clean ICL prompts (``n_shots`` demonstrations) and their shuffled-label twins give each head's
mean output and its causal indirect effect (:mod:`interp.mediation`); the top-k heads make the
function vector (:func:`interp.function_vectors.function_vector`). FVs (k × λ) and task vectors
(replace) go into the residual after every layer at the last token of zero-shot prompts
(:class:`interp.steering.SteeringBatch`); accuracy is the first answer token at top-1.
Recovery = accuracy(layer) / 5-shot accuracy. Peaks are chosen out of sample
(:func:`held_out_recovery`): the layer (and k, λ for the search) on half of the queries, the
recovery reported on the other half; the peak over the same queries is kept, labelled. Also zero / 5 / 10-shot
baselines, the default FV
on shuffled-label prompts, and resid / attn / mlp patching recovery by layer (clean ICL into
shuffled, last token).

    >>> r = task_study(model, "antonym", FVSettings(), seed=0)
    >>> peak_recovery(recovery_curves(r, min_reference=0.1))
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

import interp
from interp.data import load_fv_task
from interp.function_vectors import function_vector, task_vectors, top1_accuracy
from interp.heads import has_post_attn_norm, post_attn_scales
from interp.mediation import causal_indirect_effect, first_token_ids, icl_prompts, mean_head_outputs
from interp.patching import patch, prob_metric
from interp.selection import Selection, SelectionConfig, select, split_items
from interp.stats import ratio_ci
from interp.steering import SteeringBatch
from interp.steering.controls import ControlComparison, compare_to_controls, random_directions

THRESHOLDS = (0.5, 0.75, 0.9, 1.0)


@dataclass
class FVSettings:
    tasks: list[str] = field(
        default_factory=lambda: [
            "antonym",
            "capitalize",
            "country-capital",
            "present-past",
            "english-french",
            "english-spanish",
            "sentiment",
        ]
    )
    n_icl: int = 25  # clean / shuffled ICL prompts for mean head outputs, CIE and task vectors
    n_shots: int = 10
    n_eval: int = 50  # zero-shot queries (and 5/10-shot baselines) to measure accuracy on
    ks: list[int] = field(default_factory=lambda: [2, 5, 10, 20, 50])
    scales: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0, 4.0, 8.0, 16.0])
    default_k: int = 10  # Todd et al.'s defaults: k = 10, λ = 1
    default_scale: float = 1.0
    layers: list[int] | None = None  # default: every layer
    patching: bool = True  # resid / attn / mlp recovery by layer per task
    min_reference: float = 0.1  # recovery is undefined where 5-shot accuracy is below this (a ratio to ~0 says nothing)
    memory_budget_gb: float = 4.0
    n_controls: int = 5  # random directions of the chosen vector's norm at its layer, per method (0: none)
    selection: SelectionConfig = field(
        default_factory=SelectionConfig
    )  # queries that choose layer / k / λ; the rest report


@dataclass
class FVTaskResult:
    layers: list[int]
    baselines: dict[str, np.ndarray]  # "zero-shot", "5-shot", "10-shot", "10-shot shuffled" -> correctness per query
    fv: dict[int, np.ndarray]  # k -> [scale layer] accuracy of λ · FV_k
    fv_default: np.ndarray  # [layer] accuracy of the default (k, λ)
    fv_shuffled: np.ndarray  # [layer] the default FV on 10-shot shuffled-label prompts
    tv: np.ndarray  # [layer] task vector (replace)
    cie: np.ndarray  # [layer head] causal indirect effect
    top_heads: list  # (layer, head, CIE) of the default k
    patching: dict[str, np.ndarray] | None = None  # site -> [layer prompt] recovery (NaN: undefined)
    # per query (the held-out choice needs them): k -> [scale layer query], [layer query], [layer query]
    fv_items: dict[int, np.ndarray] | None = None
    default_items: np.ndarray | None = None
    tv_items: np.ndarray | None = None
    answers: list[str] | None = None  # the evaluation queries' answers (majority-answer baseline)
    n_layers: int | None = None  # the model's depth (Todd et al.'s fixed layer is |L| / 3)
    # method -> (the held-out configuration, [control query] correctness of random directions of its norm there)
    controls: dict[str, tuple[tuple, np.ndarray]] | None = None


def recovery_ratio(acc: np.ndarray, ref: float, floor: float) -> np.ndarray:
    """``acc / ref``, undefined (NaN) when the reference accuracy is below ``floor``."""
    # undefined when 5-shot accuracy is below the floor: 1 correct of 50 would turn 3 correct into "300%"
    return acc / ref if ref > 0 and ref >= floor else np.full_like(acc, np.nan)


def _baselines(model, pairs, cfg: FVSettings, seed: int):
    """Zero / 5 / 10-shot and 10-shot shuffled accuracy on the evaluation queries, with the steering
    batches the sweep reuses (zero-shot and 10-shot shuffled)."""
    # evaluation queries: a different seed; zero-shot prompts carry the same queries as the 5-shot ones
    five = icl_prompts(pairs, cfg.n_eval, 5, seed=seed + 1)
    ten = icl_prompts(pairs, cfg.n_eval, 10, seed=seed + 2)
    ten_shuf = icl_prompts(pairs, cfg.n_eval, 10, seed=seed + 2, shuffle_labels=True)
    zero = [f"Q: {q}\nA:" for q in five.queries]
    ans_eval, ans_ten = first_token_ids(model, five.answers), first_token_ids(model, ten.answers)
    zero_b = interp.tokenize(model, zero, padding_side="left")  # left: SteeringBatch recomputes one column
    zero_sb = SteeringBatch(model, zero_b, ans_eval)
    shuf_sb = SteeringBatch(model, interp.tokenize(model, ten_shuf.prompts, padding_side="left"), ans_ten)
    base = {
        "zero-shot": zero_sb.baseline_accuracy().numpy(),
        "5-shot": top1_accuracy(model, interp.tokenize(model, five.prompts), ans_eval).numpy(),
        "10-shot": top1_accuracy(model, interp.tokenize(model, ten.prompts), ans_ten).numpy(),
        "10-shot shuffled": shuf_sb.baseline_accuracy().numpy(),
    }
    return base, zero_sb, shuf_sb, list(five.answers)


def _sweep_layers(zero_sb, shuf_sb, grid, tv, cfg: FVSettings, layers: list[int]):
    """Per layer: accuracy of every λ·FV_k and the default FV (per query), the default FV on
    shuffled prompts, and the task vector (replace)."""
    nq = len(zero_sb.batch)
    fv_items = np.zeros((len(cfg.ks), len(cfg.scales), len(layers), nq), dtype=bool)
    default_items, tv_items = np.zeros((len(layers), nq), dtype=bool), np.zeros((len(layers), nq), dtype=bool)
    shuf_fv = np.zeros(len(layers))
    with zero_sb, shuf_sb:  # one fast weight layout for the whole sweep
        for li, layer in enumerate(layers):
            acc = zero_sb.accuracy(layer, grid).numpy() > 0.5  # [vector query]
            fv_items[:, :, li], default_items[li] = acc[:-1].reshape(len(cfg.ks), len(cfg.scales), nq), acc[-1]
            shuf_fv[li] = float(shuf_sb.accuracy(layer, grid[-1:]).mean())
            tv_items[li] = zero_sb.accuracy(layer, tv[li][None], mode="replace")[0].numpy() > 0.5
    return fv_items, default_items, shuf_fv, tv_items


def _patching(model, clean_b, shuf_b, ans, cfg: FVSettings) -> dict[str, np.ndarray]:
    """resid / attn / mlp recovery by layer: clean ICL into shuffled, last token."""
    out = {}
    for site in ("resid_pre", "attn_out", "mlp_out"):
        res = patch(
            model,
            clean_b,
            shuf_b,
            prob_metric(ans),
            site=site,
            positions=shuf_b.last_index,
            clean_positions=clean_b.last_index,
            memory_budget_gb=cfg.memory_budget_gb,
            progress=False,
        )
        out[site] = res.recovery.numpy()  # [layer batch]; NaN = undefined
    return out


def task_study(model, task: str, cfg: FVSettings, seed: int) -> FVTaskResult:
    """Baselines, CIE, FV (k × λ) / default FV / FV on shuffled prompts / TV accuracy at every layer, and patching
    recovery."""
    pairs = load_fv_task(task)
    clean = icl_prompts(pairs, cfg.n_icl, cfg.n_shots, seed=seed)
    shuffled = icl_prompts(pairs, cfg.n_icl, cfg.n_shots, seed=seed, shuffle_labels=True)
    ans = first_token_ids(model, clean.answers)
    clean_b = interp.tokenize(model, clean.prompts)  # right padding: patched runs share the prompt prefix
    shuf_b = interp.tokenize(model, shuffled.prompts)
    mean_z = mean_head_outputs(model, clean_b)
    cie = causal_indirect_effect(model, shuf_b, ans, mean_z, memory_budget_gb=cfg.memory_budget_gb, progress=False)
    base, zero_sb, shuf_sb, answers = _baselines(model, pairs, cfg, seed)
    layers = cfg.layers if cfg.layers is not None else list(range(model.cfg.n_layers))
    # Gemma-2/3: head outputs reach the residual through ln1_post, scale frozen at the clean prompts' mean
    post = post_attn_scales(model, clean_b).mean(1) if has_post_attn_norm(model) else None
    top = {k: [(lay, h) for lay, h, _ in cie.top(k)] for k in [*cfg.ks, cfg.default_k]}
    fvs = {k: function_vector(model, mean_z, heads, post) for k, heads in top.items()}
    grid = torch.stack([s * fvs[k] for k in cfg.ks for s in cfg.scales] + [cfg.default_scale * fvs[cfg.default_k]])
    tv = task_vectors(model, clean_b, layers)
    fv_items, default_items, shuf_fv, tv_items = _sweep_layers(zero_sb, shuf_sb, grid, tv, cfg, layers)
    out = FVTaskResult(
        layers,
        base,
        {k: fv_items[i].mean(-1) for i, k in enumerate(cfg.ks)},
        default_items.mean(-1),
        shuf_fv,
        tv_items.mean(-1),
        cie.cie.numpy(),
        cie.top(cfg.default_k),
        fv_items={k: fv_items[i] for i, k in enumerate(cfg.ks)},
        default_items=default_items,
        tv_items=tv_items,
        answers=answers,
        n_layers=model.cfg.n_layers,
    )
    if cfg.n_controls:
        out.controls = _controls(zero_sb, out, fvs, tv, cfg, seed)
    if cfg.patching:
        out.patching = _patching(model, clean_b, shuf_b, ans, cfg)
    return out


# the methods' order fixes each one's control seed
METHODS = ("FV default", "FV default, layer searched", "FV search", "TV")


def _controls(zero_sb, r: FVTaskResult, fvs: dict, tv, cfg: FVSettings, seed: int) -> dict:
    """Per method, its held-out configuration (chosen on the selection queries exactly as the
    analysis chooses it) repeated with ``cfg.n_controls`` random directions of the same norm at the
    same layer; the TV's control replaces the residual with a random vector of the TV's norm."""
    out = {}
    with zero_sb:
        for method, h in held_out_recovery(r, cfg).items():
            layer = h.config[-1]
            if method == "FV search":
                vector, mode = h.config[1] * fvs[h.config[0]], "add"
            elif method == "TV":
                vector, mode = tv[r.layers.index(layer)], "replace"
            else:
                vector, mode = cfg.default_scale * fvs[cfg.default_k], "add"
            ctrl = random_directions(vector, cfg.n_controls, seed=seed * 1000 + 97 * METHODS.index(method) + layer)
            out[method] = (h.config, zero_sb.accuracy(layer, ctrl, mode=mode).numpy() > 0.5)
    return out


def recovery_curves(r: FVTaskResult, min_reference: float) -> dict[str, np.ndarray]:
    """Per layer, accuracy / 5-shot accuracy of the default FV, the FV with the best (k, λ) at
    that layer, and the TV (seed 001's recovery); undefined where 5-shot accuracy < ``min_reference``."""
    five = float(r.baselines["5-shot"].mean())
    search = np.max(np.stack([a.max(0) for a in r.fv.values()]), 0)  # per layer, max over (k, λ)
    return {
        "FV default": recovery_ratio(r.fv_default, five, min_reference),
        "FV search": recovery_ratio(search, five, min_reference),
        "TV": recovery_ratio(r.tv, five, min_reference),
    }


@dataclass
class HeldOutRecovery:
    """One method's recovery with its configuration chosen on the selection queries (or fixed in
    advance: the Todd default's layer), against the 5-shot and the 10-shot reference."""

    config: tuple  # (layer,) or (k, λ, layer)
    recovery: float  # test accuracy / test 5-shot accuracy (NaN: undefined)
    ci: tuple[float, float]  # bootstrap over test queries resampling numerator and 5-shot reference together
    selection: Selection  # accuracy: selection / test, optimism gap, best-on-test (labelled)
    reference: float  # 5-shot accuracy on the test queries
    recovery_10: float = float("nan")  # test accuracy / the 10-shot accuracy on the test indices
    ci_10: tuple[float, float] = (float("nan"), float("nan"))  # numerator and 10-shot reference resampled
    reference_10: float = float("nan")
    chosen: bool = True  # False: the configuration was fixed in advance, not chosen on data
    control: ControlComparison | None = None  # test accuracy vs random directions of the same norm there
    control_recovery: float = float("nan")  # the controls' mean test accuracy / the test 5-shot accuracy


def todd_layer(r: FVTaskResult) -> int:
    """The evaluated layer nearest |L| / 3 (Todd et al.'s fixed FV layer), decided before any data."""
    depth = r.n_layers if r.n_layers else max(r.layers) + 1
    return min(r.layers, key=lambda layer: (abs(layer - depth / 3), layer))


def held_out_recovery(r: FVTaskResult, cfg: FVSettings) -> dict[str, HeldOutRecovery]:
    """Per method — FV default at Todd et al.'s fixed layer (nothing chosen), FV default with the
    layer searched, FV search (k, λ, layer), TV (layer) — the configuration chosen by accuracy on
    the selection queries and recovery on the test queries against both the 5-shot and the 10-shot
    reference, with CIs from a bootstrap that resamples numerator and reference together;
    undefined where a reference is below ``cfg.min_reference``."""
    if r.fv_items is None:
        raise ValueError(
            "this FVTaskResult has no per-query scores (computed before held-out selection); re-run task_study"
        )
    split = split_items(len(r.answers), cfg.selection.test_fraction, cfg.selection.seed)
    five_items = r.baselines["5-shot"][split.test]
    ten = r.baselines.get("10-shot")
    ten_items = None if ten is None else np.asarray(ten)[split.test]
    todd = r.layers.index(todd_layer(r))
    candidates = {
        "FV default": {(r.layers[todd],): r.default_items[todd]},
        "FV default, layer searched": {(layer,): r.default_items[li] for li, layer in enumerate(r.layers)},
        "FV search": {
            (k, s, layer): r.fv_items[k][si, li]
            for k in r.fv_items
            for si, s in enumerate(cfg.scales)
            for li, layer in enumerate(r.layers)
        },
        "TV": {(layer,): r.tv_items[li] for li, layer in enumerate(r.layers)},
    }
    out = {}
    for method, scores in candidates.items():
        sel = select(scores, split)
        num = np.asarray(scores[sel.config], float)[split.test]
        rec, ci = ratio_ci(num, five_items, cfg.min_reference, paired=True)
        h = HeldOutRecovery(sel.config, rec, ci, sel, float(five_items.mean()), chosen=len(scores) > 1)
        if ten_items is not None:
            h.recovery_10, h.ci_10 = ratio_ci(num, ten_items, cfg.min_reference, paired=False)
            h.reference_10 = float(ten_items.mean())
        if r.controls is not None and method in r.controls:
            config, items = r.controls[method]
            if tuple(config) != tuple(sel.config):
                raise ValueError(
                    f"{method}: the controls were run at {config}, the selection now chooses {sel.config}; "
                    "re-run the cell with this selection"
                )
            ctrl = np.asarray(items, float)[:, split.test]
            h.control = compare_to_controls(num, ctrl)
            h.control_recovery = float(
                recovery_ratio(np.array([ctrl.mean()]), float(five_items.mean()), cfg.min_reference)[0]
            )
        out[method] = h
    return out


def majority_baseline(answers: list[str]) -> float:
    """Accuracy of always giving the most frequent answer: chance level of a few-label task (sentiment: ~0.5)."""
    _, counts = np.unique(np.asarray(answers), return_counts=True)
    return float(counts.max() / counts.sum())


def peak_recovery(curves: dict[str, np.ndarray]) -> dict[str, float]:
    """Max over layers per method (NaN when undefined everywhere): chosen on the queries it is
    reported on — a best-on-test figure; :func:`held_out_recovery` is the out-of-sample one."""
    return {m: (float(np.nanmax(c)) if np.isfinite(c).any() else float("nan")) for m, c in curves.items()}


def peak_shares(peaks: list[dict[str, float]], thresholds=THRESHOLDS) -> dict[str, tuple[list[float], int]]:
    """Per method, the share of model × task combinations whose peak reaches each threshold
    (over the defined ones), and how many are undefined (seed 001 Table 3)."""
    out = {}
    for method in peaks[0] if peaks else ():
        vals = np.array([p[method] for p in peaks])
        ok = np.isfinite(vals)
        out[method] = (
            [float((vals[ok] >= t).mean()) if ok.any() else float("nan") for t in thresholds],
            int((~ok).sum()),
        )
    return out
