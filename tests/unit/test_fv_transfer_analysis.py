"""The transfer study's analysis on planted results: seed 000's situation (a broken task with
aligned vectors and a working task with spread-out vectors) must come out as a pooled negative
correlation flagged as Simpson's paradox, with every dissociation case from the broken task,
which the IID gate drops."""

import numpy as np

from experiments.fv_transfer import TransferConfig, _best_layer, _diagnostics, _pairs, _subset
from interp.stats import iid_gate


def _planted(rng, k=6, layers=(0, 2, 4)):
    results = {}
    for task, (cos_lo, cos_hi, broken) in {"broken": (0.85, 0.99, True), "works": (0.0, 0.6, False)}.items():
        cos, tr = [], []
        for _ in layers:
            c = rng.uniform(cos_lo, cos_hi, (k, k))
            c = (c + c.T) / 2
            np.fill_diagonal(c, 1.0)
            # within the working task, transfer rises with cosine; the broken task never works
            t = np.zeros((k, k)) if broken else np.clip(0.3 + 0.8 * c + rng.normal(0, 0.03, (k, k)), 0, 1)
            if not broken:
                np.fill_diagonal(t, 0.9)
            cos.append(c)
            tr.append(t)
        results[task] = {"layers": list(layers), "kinds": [f"t{i}" for i in range(k)], "cos": np.array(cos), "transfer": np.array(tr),
                         "val_acc": np.array([[0.1, 0.5, 0.2]] * k)}  # fmt: skip
    return results


def test_planted_simpson_case_is_flagged_and_gated():
    cfg = TransferConfig()
    results = _planted(np.random.default_rng(0))
    pairs = _pairs(results)
    assert len(pairs["cos"]) == 2 * 3 * 30  # tasks x layers x ordered pairs of 6 templates
    diag = _diagnostics(pairs, cfg)
    assert diag["pearson"]["pooled"].r < -0.5
    assert diag["pearson"]["by_task"]["works"].r > 0.5
    assert diag["pearson"]["simpson_task_layer"].flagged
    assert diag["dissociation"]["broken"] == 90 and diag["dissociation"]["works"] == 0
    assert diag["auroc"] > 0.85  # cosine "predicts" failure only because it identifies the broken task
    iid = {t: float(np.diag(r["transfer"][_best_layer(r)]).mean()) for t, r in results.items()}
    kept, dropped = iid_gate(iid, cfg.iid_threshold)
    assert kept == ["works"] and dropped == ["broken"]
    gated = _diagnostics(_subset(pairs, kept), cfg)
    assert gated["pearson"]["pooled"].r > 0.5 and not gated["pearson"]["simpson_task"].flagged
    assert gated["dissociation"]["total"] == 0


def test_best_layer_is_chosen_on_validation_accuracy():
    results = _planted(np.random.default_rng(1))
    assert _best_layer(results["works"]) == 1  # val_acc peaks at the second studied layer
