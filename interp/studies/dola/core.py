"""DoLa on TruthfulQA (MC1/MC2/MC3) and FACTOR, with logit lens and apathy (seed 001 §3): the
study's pieces around :class:`interp.dola.ContinuationScorer`.

Every item is scored once for the baseline and every bucket × α × post-softmax setting
(:func:`score_items`, resumable in cached chunks); :func:`per_item_metrics` turns the scores
into named variants (``base``, ``base_raw±c`` for the length-bias demonstration,
``dola|bucket|α`` and ``dola_raw|…``) with per-item metric values; :func:`best_bucket` /
:func:`best_alpha` make seed 001's choice; :func:`lens_and_apathy` gives the logit-lens and
apathy curves at the answer position.

    >>> scored = score_items(scorer, [t.item for t in items], chunk=25)
    >>> m = per_item_metrics(settings, scored, [t.metrics for t in items])
    >>> m["dola|50-100|0.1"]["mc1"].mean()
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

import interp
from interp.dola import ALPHAS, BUCKETS, ContinuationScorer, length_bias_scores
from interp.lens import ApathyResult, apathy_curves, logit_lens
from interp.progress import progress as tqdm


@dataclass
class BenchConfig:
    n_items: int | None = None  # None: all; else a seeded random subset (stated in the report)
    seed: int = 0


@dataclass
class DolaSettings:
    truthfulqa_version: str = "v1"
    truthfulqa: BenchConfig = field(default_factory=BenchConfig)
    truthfulqa_shots: int = 6  # QA pairs of the standard primer put before each question
    factor_split: str = "news"
    factor: BenchConfig = field(default_factory=BenchConfig)
    buckets: list[str] = field(default_factory=lambda: list(BUCKETS))
    alphas: list[float] = field(default_factory=lambda: list(ALPHAS))
    select_alpha: float = 0.1  # α at which the best bucket is chosen (Chuang et al.'s value)
    length_bias: list[float] = field(default_factory=lambda: [-20.0, -10.0, -5.0, 0.0, 5.0, 10.0, 20.0])
    lens_questions: int = 200  # TruthfulQA questions for the logit-lens and apathy figures
    chunk: int = 25  # items per cached chunk (an interrupted run resumes from the last chunk)
    truncate_context: bool = False  # contexts longer than n_ctx: keep their last tokens (counted) instead of failing


def item_subset(n_total: int, bench: BenchConfig) -> list[int]:
    """Indices of the items to score: all, or a seeded random subset of ``bench.n_items``."""
    if bench.n_items is None or bench.n_items >= n_total:
        return list(range(n_total))
    if bench.n_items < 1:
        raise ValueError(f"n_items={bench.n_items}; need at least 1 (or null for all)")
    return sorted(np.random.default_rng(bench.seed).choice(n_total, bench.n_items, replace=False).tolist())


def score_chunk(model, items, buckets, alphas, shared_prefix: str = "", truncate: bool = False) -> list[tuple]:
    """(scores, n_tokens, premature layers) per item of one chunk: a grid cell of the DoLa study
    (the same numbers as :func:`score_items` on those items)."""
    return _score(ContinuationScorer(model, buckets, alphas, shared_prefix=shared_prefix, truncate=truncate), items)


def _score(scorer: ContinuationScorer, items) -> list[tuple]:
    return [(r.scores, r.n_tokens, r.premature) for r in scorer.score_all(items)]


def chunk_starts(n_items: int, chunk: int) -> list[int]:
    if chunk < 1:
        raise ValueError(f"chunk={chunk}; must be >= 1")
    return list(range(0, n_items, chunk))


def score_items(scorer: ContinuationScorer, items, chunk: int, desc: str = "items") -> list[tuple]:
    """(scores, n_tokens, premature layers) per item, in chunks of ``chunk`` items (the study runs
    each chunk as its own cell, so an interrupted run resumes from the last finished chunk)."""
    out = []
    for s in tqdm(range(0, len(items), chunk), desc=desc):
        out += _score(scorer, items[s : s + chunk])
    return out


def variants(cfg: DolaSettings, scores: dict, n_tokens: np.ndarray) -> dict[str, np.ndarray]:
    """Named score vectors for one item: baseline, raw-logit (+c), DoLa per bucket/α/softmax."""
    out = {"base": scores[("baseline",)], "base_raw": scores[("raw_logit",)]}
    for c in cfg.length_bias:
        out[f"base_raw{c:+g}"] = length_bias_scores(scores[("raw_logit",)], n_tokens, c)
    for b in cfg.buckets:
        for a in cfg.alphas:
            out[f"dola|{b}|{a:g}"] = scores[("dola", b, a, True)]  # post-softmax over the plausible set (default)
            out[f"dola_vocab|{b}|{a:g}"] = scores[("dola", b, a, "vocab")]  # the reference code's normaliser
            out[f"dola_raw|{b}|{a:g}"] = scores[("dola", b, a, False)]
    return out


@dataclass
class BucketDiagnostics:
    """Which candidate layers a bucket's JSD choice actually uses on the scored answer tokens."""

    layers: list[int]
    shares: dict[int, float]  # candidate layer -> share of tokens it was chosen for
    top_layer: int
    top_share: float
    degenerate: bool  # one layer chosen for more than ``threshold`` of the tokens
    same_scores_as: list[str]  # other buckets whose DoLa scores equal this one's on every item, α and normalisation
    same_choice_as: dict[str, float] = field(
        default_factory=dict
    )  # other buckets picking the same layer on ≥ threshold of tokens -> that share


def bucket_diagnostics(
    scored, layers_by_bucket: dict[str, list[int]], threshold: float = 0.9
) -> dict[str, BucketDiagnostics]:
    """Per bucket: the share of answer tokens each candidate layer is chosen for, a flag when
    one layer takes more than ``threshold`` of them (the bucket is then really one layer), and
    the buckets with identical scores (e.g. SmolLM2's "0-50" and "all" both picking the
    embedding layer: one setting counted twice in a bucket search)."""
    out = {}
    chosen = {
        b: np.concatenate([np.asarray(p[b]) for _, _, p in scored]) if scored else np.array([])
        for b in layers_by_bucket
    }
    for b, layers in layers_by_bucket.items():
        shares = {j: float(np.mean(chosen[b] == j)) if len(chosen[b]) else float("nan") for j in layers}
        top = max(shares, key=lambda j: shares[j])
        same = [o for o in layers_by_bucket if o != b and _same_scores(scored, b, o)]
        agree = {o: float(np.mean(chosen[b] == chosen[o])) for o in layers_by_bucket if o != b and len(chosen[b])}
        out[b] = BucketDiagnostics(
            layers,
            shares,
            top,
            shares[top],
            bool(shares[top] > threshold),
            same,
            {o: a for o, a in agree.items() if a >= threshold},
        )
    return out


def _same_scores(scored, a: str, b: str) -> bool:
    for scores, _, _ in scored:
        keys = [k for k in scores if k[0] == "dola" and k[1] == a]
        if not keys or any(not np.array_equal(scores[k], scores[("dola", b, *k[2:])]) for k in keys):
            return False
    return bool(scored)


def per_item_metrics(cfg: DolaSettings, scored, metric_fn) -> dict[str, dict[str, np.ndarray]]:
    """variant -> metric -> per-item values."""
    acc: dict[str, dict[str, list[float]]] = {}
    for (scores, n_tokens, _), fn in zip(scored, metric_fn):
        for name, s in variants(cfg, scores, n_tokens).items():
            for k, v in fn(np.asarray(s)).items():
                acc.setdefault(name, {}).setdefault(k, []).append(v)
    return {n: {k: np.asarray(v) for k, v in d.items()} for n, d in acc.items()}


def best_bucket(cfg: DolaSettings, metrics, key: str) -> str:
    """Seed 001's choice: the bucket with the best mean ``key`` at ``select_alpha`` (on the items scored)."""
    return max(cfg.buckets, key=lambda b: metrics[f"dola|{b}|{cfg.select_alpha:g}"][key].mean())


def best_alpha(cfg: DolaSettings, metrics, bucket: str, key: str) -> float:
    """The α with the best mean ``key`` on ``bucket`` (on the items scored)."""
    return max(cfg.alphas, key=lambda a: metrics[f"dola|{bucket}|{a:g}"][key].mean())


@dataclass
class LensApathy:
    probs: dict[str, np.ndarray]  # "correct" / "incorrect" / "top-1" -> [layer prompt]
    apathy: ApathyResult
    skipped: int  # questions whose correct and incorrect answers share a first token
    n_layers: int | None = None  # the model's depth (the driver of a grid reads it from here)


@torch.no_grad()
def lens_and_apathy(model, questions, n: int, primer: str) -> LensApathy:
    """Logit lens at the answer position of the primed prompt: the first token of the MC1
    correct answer and of the first incorrect one (questions where the two share their first
    token are skipped and counted), with apathy at the same position."""
    prompts, correct, wrong = [], [], []
    skipped = 0
    for q in questions[:n]:
        opts = list(q.mc1_targets)
        c = model.to_tokens(" " + opts[0].strip(), prepend_bos=False)[0][0]
        w = model.to_tokens(" " + opts[1].strip(), prepend_bos=False)[0][0]
        if c == w:
            skipped += 1
            continue
        prompts.append(primer + f"Q: {q.question}\nA:")
        correct.append(int(c))
        wrong.append(int(w))
    probs = {"correct": [], "incorrect": [], "top-1": []}
    attn, mlp = [], []
    for s in range(0, len(prompts), 16):
        batch = interp.tokenize(model, prompts[s : s + 16])
        res = logit_lens(
            model, batch, {"correct": torch.tensor(correct[s : s + 16]), "incorrect": torch.tensor(wrong[s : s + 16])}
        )
        probs["correct"].append(res.probs["correct"])
        probs["incorrect"].append(res.probs["incorrect"])
        probs["top-1"].append(res.top1_probs)
        ap = apathy_curves(model, batch)
        attn.append(ap.attn)
        mlp.append(ap.mlp)
    return LensApathy(
        {k: torch.cat(v, 1).numpy() for k, v in probs.items()},
        ApathyResult(torch.cat(attn, 1), torch.cat(mlp, 1)),
        skipped,
        model.cfg.n_layers,
    )
