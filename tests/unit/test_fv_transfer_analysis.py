"""The transfer study's analysis on planted results: seed 000's situation (a broken task with
aligned vectors and a working task with spread-out vectors) must come out as a pooled negative
correlation flagged as Simpson's paradox, with every dissociation case from the broken task,
which the IID gate drops."""

import numpy as np
import pytest

from interp.stats import iid_gate
from interp.studies.fv_transfer import TransferResult, TransferSettings
from interp.transfer import best_layer, subset_pairs, transfer_diagnostics, transfer_pairs


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
        results[task] = TransferResult(
            layers=list(layers),
            kinds=[f"t{i}" for i in range(k)],
            templates={},
            transfer=np.array(tr),
            cos=np.array(cos),
            pc1=np.zeros(len(layers)),
            alpha_star=np.ones((k, len(layers))),
            val_acc=np.array([[0.1, 0.5, 0.2]] * k),
            zero_shot={},
            icl={},
        )
    return results


def test_planted_simpson_case_is_flagged_and_gated():
    cfg = TransferSettings()
    results = _planted(np.random.default_rng(0))
    pairs = transfer_pairs(results)
    assert len(pairs) == 2 * 3 * 30  # tasks x layers x ordered pairs of 6 templates
    diag = transfer_diagnostics(pairs, cfg.cos_min, cfg.transfer_max)
    assert diag.pearson.pooled.r < -0.5
    assert diag.pearson.by_task["works"].r > 0.5
    assert diag.pearson.simpson_task_layer.flagged
    assert diag.dissociation["broken"] == 90 and diag.dissociation["works"] == 0
    assert diag.auroc > 0.85  # cosine "predicts" failure only because it identifies the broken task
    iid = {t: float(np.diag(r.transfer[best_layer(r)]).mean()) for t, r in results.items()}
    kept, dropped = iid_gate(iid, cfg.iid_threshold)
    assert kept == ["works"] and dropped == ["broken"]
    gated = transfer_diagnostics(subset_pairs(pairs, kept), cfg.cos_min, cfg.transfer_max)
    assert gated.pearson.pooled.r > 0.5 and not gated.pearson.simpson_task.flagged
    assert gated.dissociation["total"] == 0
    assert set(gated.to_json()) >= {"pearson", "spearman", "auroc", "dissociation"}
    assert transfer_diagnostics(subset_pairs(pairs, [])) is None  # no pairs: no diagnostics, not zeros


def test_best_layer_is_chosen_on_validation_accuracy():
    results = _planted(np.random.default_rng(1))
    assert best_layer(results["works"]) == 1  # val_acc peaks at the second studied layer


def test_template_permutation_test_finds_a_planted_link_and_not_a_missing_one():
    from types import SimpleNamespace

    from interp.transfer import template_permutation_test

    rng = np.random.default_rng(0)
    kinds = list("abcdefgh")

    def task(linked: bool):
        cos = rng.random((2, 8, 8))
        noise = rng.normal(0, 0.3, (2, 8, 8))
        return SimpleNamespace(
            kinds=kinds, layers=[0, 1], cos=cos, transfer=(cos if linked else rng.random((2, 8, 8))) + noise
        )

    linked = template_permutation_test({"t1": task(True), "t2": task(True)}, n_perm=500)
    assert linked.r > 0.4 and linked.p < 0.01
    unlinked = template_permutation_test({"t1": task(False), "t2": task(False)}, n_perm=500)
    assert unlinked.p > 0.05
    with pytest.raises(ValueError, match="n_perm"):
        template_permutation_test({"t1": task(True)}, n_perm=0)


def test_headline_reads_the_template_permutation_p_where_the_report_has_it():
    from interp.studies.fv_transfer.study import headline

    pooled = {"diagnostics": {"all": {"pearson": {"pooled": {"r": 0.27, "p": 1e-15, "n": 840}}}}, "iid": {"a": 0.5}}
    with_perm = headline({"m": {"fv": {**pooled, "permutation": {"r": 0.27, "p": 0.31, "n_perm": 2000}}}}, {})
    without = headline({"m": {"fv": pooled}}, {})
    # the permutation p replaces the pooled r's own (which counts pairs sharing a template as independent)
    assert with_perm[0]["pooled r(cosine, transfer)"] == "+0.270 (template-permutation p=0.31, n=840)"
    assert without[0]["pooled r(cosine, transfer)"] == "+0.270 (p=1e-15, n=840, pairs counted as independent)"


def test_headline_gives_transfer_and_its_control_beside_in_distribution():
    """Planted 2-template matrix: off-diagonal 0.2 and 0.4 -> transfer 0.30; both control keys shown."""
    from interp.studies.fv_transfer.study import headline

    ctrl = {"difference": 0.25, "ci": [0.1, 0.4]}
    per_task = {
        "a": {
            "transfer_best_layer": [[0.9, 0.2], [0.4, 0.8]],
            "controls": {"iid": {"difference": 0.8, "ci": [0.7, 0.9]}, "transfer": ctrl},
        }
    }
    row = headline({"m": {"fv": {"iid": {"a": 0.85}, "per_task": per_task}}}, {})[0]
    assert row["transfer accuracy"] == "a 0.30"
    assert row["in-distribution: vector − random direction"] == "a +0.80 [+0.70, +0.90]"
    assert row["transfer: vector − random direction"] == "a +0.25 [+0.10, +0.40]"
