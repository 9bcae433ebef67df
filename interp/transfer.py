"""Cross-template transfer analysis (seed 000): does the cosine between two templates' vectors
predict whether one steers the other's prompts?

Works on transfer matrices ``[layer, source, target]`` and cosines of the same shape per task
(e.g. :class:`interp.studies.fv_transfer.TransferResult`): the off-diagonal pairs are pooled,
correlated pooled, per task and per task × layer with the Simpson's-paradox check, counted as
dissociation cases (cos > ``cos_min`` and transfer < ``transfer_max``), and scored as a failure
predictor (AUROC). The IID gate (:func:`interp.stats.iid_gate`) and :func:`subset_pairs` give
the gated figures beside the ungated ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from interp.stats import Correlation, SimpsonCheck, auroc, dissociation_cases, grouped_correlation

METHODS = ("pearson", "spearman")


@dataclass
class TransferPairs:
    """Off-diagonal (source != target) template pairs of every task and layer, flattened."""

    cos: np.ndarray
    transfer: np.ndarray
    task: list[str]
    task_layer: list[str]  # "task@L<layer>"

    def __len__(self) -> int:
        return len(self.cos)


@dataclass
class MethodDiagnostics:
    """One correlation method's diagnostics: pooled, per task, Simpson checks over tasks and task × layer groups,
    and how many groups are defined and significant in each direction."""

    pooled: Correlation
    by_task: dict[str, Correlation]
    simpson_task: SimpsonCheck
    simpson_task_layer: SimpsonCheck
    n_task_layer: int
    n_defined: int  # task × layer groups whose correlation is defined
    sig_pos: int  # of them significant (p < 0.05) and positive
    sig_neg: int


@dataclass
class TransferDiagnostics:
    """Cosine–transfer diagnostics with Pearson and Spearman side by side, and the dissociation counts."""

    pearson: MethodDiagnostics
    spearman: MethodDiagnostics
    dissociation: dict[str, int]  # per task and "total"
    auroc: float  # cosine as a predictor of transfer failure
    failure_rate: float
    failure_given_high_cos: float
    n_high_cos: int
    n_pairs: int

    def to_json(self) -> dict:
        out = {k: v for k, v in vars(self).items() if k not in METHODS}
        for method in METHODS:
            m = getattr(self, method)
            out[method] = {
                "pooled": vars(m.pooled),
                "by_task": {t: vars(c) for t, c in m.by_task.items()},
                "simpson_task": str(m.simpson_task),
                "simpson_task_layer": str(m.simpson_task_layer),
                "sig_pos": m.sig_pos,
                "sig_neg": m.sig_neg,
                "n_defined": m.n_defined,
            }
        return out


def best_layer(result) -> int:
    """Index of the layer with the best mean validation accuracy over templates (chosen on
    validation queries, so the test numbers reported there are not selected on)."""
    return int(np.argmax(result.val_acc.mean(0)))


def transfer_pairs(results: dict) -> TransferPairs:
    """Every task's off-diagonal pairs at every layer (``results[task]`` has ``layers``,
    ``kinds``, ``cos`` and ``transfer``)."""
    cos, tr, task_g, tl_g = [], [], [], []
    for task, r in results.items():
        off = ~np.eye(len(r.kinds), dtype=bool)
        for li, layer in enumerate(r.layers):
            cos += list(r.cos[li][off])
            tr += list(r.transfer[li][off])
            task_g += [task] * int(off.sum())
            tl_g += [f"{task}@L{layer}"] * int(off.sum())
    return TransferPairs(np.array(cos), np.array(tr), task_g, tl_g)


def subset_pairs(p: TransferPairs, tasks: list[str]) -> TransferPairs:
    """The pairs of ``tasks`` only (e.g. those the IID gate keeps)."""
    keep = np.array([t in tasks for t in p.task], dtype=bool)
    return TransferPairs(
        p.cos[keep],
        p.transfer[keep],
        [t for t, k in zip(p.task, keep) if k],
        [t for t, k in zip(p.task_layer, keep) if k],
    )


def _method(p: TransferPairs, method: str) -> MethodDiagnostics:
    by_task = grouped_correlation(p.cos, p.transfer, p.task, method)
    by_tl = grouped_correlation(p.cos, p.transfer, p.task_layer, method)
    sig = [c for c in by_tl.groups.values() if c.defined and c.p < 0.05]
    return MethodDiagnostics(
        by_task.pooled,
        by_task.groups,
        by_task.simpson,
        by_tl.simpson,
        len(by_tl.groups),
        sum(c.defined for c in by_tl.groups.values()),
        sum(c.r > 0 for c in sig),
        sum(c.r < 0 for c in sig),
    )


def transfer_diagnostics(
    p: TransferPairs, cos_min: float = 0.8, transfer_max: float = 0.4
) -> TransferDiagnostics | None:
    """All diagnostics of the pairs, or None when there are none."""
    if len(p) == 0:
        return None
    fail = p.transfer < transfer_max
    high = p.cos > cos_min
    return TransferDiagnostics(
        pearson=_method(p, "pearson"),
        spearman=_method(p, "spearman"),
        dissociation=dissociation_cases(p.cos, p.transfer, p.task, cos_min, transfer_max),
        auroc=auroc(p.cos, fail),
        failure_rate=float(fail.mean()),
        failure_given_high_cos=float(fail[high].mean()) if high.any() else float("nan"),
        n_high_cos=int(high.sum()),
        n_pairs=int(len(p)),
    )


@dataclass(frozen=True)
class PermutationTest:
    """Pooled Pearson r of cosine vs transfer against a null that keeps the template structure."""

    r: float
    p: float  # two-sided: share of permutations with |r| at least the observed (with the observed counted)
    n_perm: int


def template_permutation_test(results: dict, n_perm: int = 2000, seed: int = 0) -> PermutationTest:
    """Pairs that share a source or target template are not independent, so a pooled r's p-value
    that counts them as such is too small. The null here relabels each task's templates at random
    — one permutation π per task, applied to the rows and columns of its transfer matrices at every
    layer (``transfer[π][:, π]``) — which breaks the cosine–transfer link but keeps every
    template's row and column intact; the pooled r is recomputed on each relabelling."""
    if n_perm < 1:
        raise ValueError(f"n_perm={n_perm}; need at least one permutation")
    rng = np.random.default_rng(seed)
    obs = _pooled_r(results, {t: np.arange(len(r.kinds)) for t, r in results.items()})
    if not np.isfinite(obs):
        return PermutationTest(float("nan"), float("nan"), n_perm)
    null = np.array(
        [_pooled_r(results, {t: rng.permutation(len(r.kinds)) for t, r in results.items()}) for _ in range(n_perm)]
    )
    extreme = int((np.abs(null) >= abs(obs) - 1e-12).sum())
    return PermutationTest(float(obs), (1 + extreme) / (n_perm + 1), n_perm)


def _pooled_r(results: dict, perms: dict) -> float:
    cos, tr = [], []
    for task, r in results.items():
        pi = perms[task]
        off = ~np.eye(len(r.kinds), dtype=bool)
        for li in range(len(r.layers)):
            cos.append(np.asarray(r.cos[li])[off])
            tr.append(np.asarray(r.transfer[li])[np.ix_(pi, pi)][off])
    c, t = np.concatenate(cos), np.concatenate(tr)
    if len(c) < 3 or c.std() == 0 or t.std() == 0:
        return float("nan")
    return float(np.corrcoef(c, t)[0, 1])
