"""Function and task vectors on the tiny models: construction by hand, the steering hook, and
planted signals through the final layer (where the effect of a residual is exactly known)."""

import numpy as np
import pytest
import torch

import interp
from interp.function_vectors import function_vector, steered_accuracy, task_vectors, top1_accuracy
from interp.hooks import active_hook_count

PROMPTS = ["Q: hot\nA:", "Q: big\nA:", "Q: up\nA:"]


def _predicted_from_resid(model, resid):
    return int(model.unembed(model.ln_final(resid[None, None].to(model.cfg.dtype)))[0, 0].argmax())


def test_function_vector_is_the_sum_of_head_outputs_through_w_o(tiny_model):
    torch.manual_seed(0)
    mean_z = torch.randn(tiny_model.cfg.n_layers, tiny_model.cfg.n_heads, tiny_model.cfg.d_head)
    heads = [(0, 1), (1, 3)]
    fv = function_vector(tiny_model, mean_z, heads)
    expect = sum(mean_z[layer, h] @ tiny_model.blocks[layer].attn.W_O[h].detach() for layer, h in heads)
    torch.testing.assert_close(fv, expect, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"head=9 out of range 0..3"):
        function_vector(tiny_model, mean_z, [(0, 9)])
    with pytest.raises(ValueError, match="layer=5 is out of range"):
        function_vector(tiny_model, mean_z, [(5, 0)])
    with pytest.raises(ValueError, match="heads is empty"):
        function_vector(tiny_model, mean_z, [])


def test_task_vector_replacement_at_the_last_layer_decides_the_prediction(tiny_model):
    """Replacing the final residual with v makes the prediction argmax(unembed(ln_final(v)))."""
    batch = interp.tokenize(tiny_model, PROMPTS)
    L = tiny_model.cfg.n_layers
    tv = task_vectors(tiny_model, interp.tokenize(tiny_model, ["Q: cold\nA: hot\n\nQ: small\nA:"] * 2))
    assert tv.shape == (L, tiny_model.cfg.d_model)
    target = _predicted_from_resid(tiny_model, tv[L - 1])
    right = torch.full((3,), target)
    assert steered_accuracy(tiny_model, batch, right, L - 1, tv[L - 1], mode="replace").tolist() == [1.0, 1.0, 1.0]
    assert steered_accuracy(tiny_model, batch, right + 1, L - 1, tv[L - 1], mode="replace").sum() == 0
    assert active_hook_count(tiny_model) == 0


def test_function_vector_with_large_scale_takes_over_the_prediction(tiny_model):
    """Adding λ·FV with λ large: the final residual points along FV, so the prediction is
    FV's own; λ = 0 leaves the plain prediction."""
    batch = interp.tokenize(tiny_model, PROMPTS)
    L = tiny_model.cfg.n_layers
    fv = torch.randn(tiny_model.cfg.d_model, generator=torch.Generator().manual_seed(1))
    target = torch.full((3,), _predicted_from_resid(tiny_model, fv))
    plain = top1_accuracy(tiny_model, batch, target).mean()
    assert float(steered_accuracy(tiny_model, batch, target, L - 1, fv, scale=0.0).mean()) == pytest.approx(
        float(plain)
    )
    assert steered_accuracy(tiny_model, batch, target, L - 1, fv, scale=1e4).tolist() == [1.0, 1.0, 1.0]


def test_steering_errors_name_the_argument(tiny_llama):
    batch = interp.tokenize(tiny_llama, PROMPTS)
    v = torch.zeros(tiny_llama.cfg.d_model)
    with pytest.raises(ValueError, match=r"answer_ids has shape \(2,\); expected one id per prompt \(3,\)"):
        steered_accuracy(tiny_llama, batch, torch.tensor([1, 2]), 0, v)
    with pytest.raises(ValueError, match="mode='mix'"):
        steered_accuracy(tiny_llama, batch, torch.tensor([1, 2, 3]), 0, v, mode="mix")
    with pytest.raises(ValueError, match="layer=7 is out of range"):
        steered_accuracy(tiny_llama, batch, torch.tensor([1, 2, 3]), 7, v)
    with pytest.raises(ValueError, match="vector contains NaN"):
        steered_accuracy(tiny_llama, batch, torch.tensor([1, 2, 3]), 0, v + float("nan"))
    assert active_hook_count(tiny_llama) == 0


def test_function_vectors_experiment_smoke(smoke_run):
    folder, metrics = smoke_run("function_vectors")
    assert (folder / "recovery_random_tiny-llama.png").stat().st_size > 1000
    assert (folder / "patching_random_tiny-gpt2.png").stat().st_size > 1000
    entry = metrics["random:tiny-llama/antonym"]
    assert set(entry["baselines"]) == {"zero-shot", "5-shot", "10-shot", "10-shot shuffled"}
    assert len(entry["top_heads"]) == 2
    report = (folder / "report.md").read_text()
    assert "Share of model × task combinations" in report
    assert "HEADLINE" in report
    assert set(entry["held_out"]) == {"FV default", "FV default, layer searched", "FV search", "TV"}
    assert entry["held_out"]["TV"]["n_selection"] + entry["held_out"]["TV"]["n_test"] == 6
    # every method's chosen configuration is read beside random directions of the same norm there
    for method, h in entry["held_out"].items():
        c = h["control"]
        assert c["n_controls"] == 5 and c["n_items"] == h["n_test"], method
        assert c["difference"] == pytest.approx(h["accuracy_test"]["mean"] - c["control_mean"]), method
    assert "CONTROL — against random directions" in report


def test_fv_held_out_recovery_ignores_a_layer_lucky_on_the_test_queries():
    """Layer 1 solves 60% of every query set; layer 2 solves only the test queries (a best-on-test
    peak would report 1.0 there). Held out, layer 1 is chosen and its test recovery reported."""
    from interp.selection import split_items
    from interp.studies.function_vectors import FVSettings, FVTaskResult, held_out_recovery, majority_baseline

    cfg = FVSettings(ks=[2], scales=[1.0, 2.0])
    n = 40
    split = split_items(n, cfg.selection.test_fraction, cfg.selection.seed)
    items = np.zeros((3, n), dtype=bool)
    items[1, ::5] = items[1, 1::5] = items[1, 2::5] = True  # 60% everywhere
    items[2, split.test] = True
    five = np.zeros(n)
    five[split.test[: len(split.test) // 2]] = 1.0  # 5-shot 0.5 on the test queries
    r = FVTaskResult(
        [0, 1, 2],
        {"5-shot": five},
        {},
        items.mean(1),
        np.zeros(3),
        items.mean(1),
        np.zeros((3, 1)),
        [],
        fv_items={2: np.stack([items, items])},
        default_items=items,
        tv_items=items,
        answers=["a", "b"] * 20,
    )
    held = held_out_recovery(r, cfg)
    assert held["FV default, layer searched"].config == (1,) and held["TV"].config == (1,)
    assert held["FV search"].config == (2, 1.0, 1)
    # Todd et al.'s default is not chosen: the evaluated layer nearest |L| / 3 (depth 3 -> layer 1)
    assert held["FV default"].config == (1,) and not held["FV default"].chosen
    assert held["TV"].selection.best_on_test[0] == (2,)
    acc = items[1, split.test].mean()
    assert held["TV"].recovery == pytest.approx(acc / 0.5) and held["TV"].reference == pytest.approx(0.5)
    lo, hi = held["TV"].ci
    assert lo < held["TV"].recovery < hi  # numerator and reference resampled together
    assert majority_baseline(r.answers) == 0.5
    low = FVSettings(
        ks=[2], scales=[1.0, 2.0], min_reference=0.6
    )  # the test 5-shot accuracy 0.5 is below it: undefined
    assert np.isnan(held_out_recovery(r, low)["TV"].recovery)

    # controls (random directions at the chosen configuration) are compared on the test queries only
    ctrl = np.zeros((4, n), dtype=bool)
    ctrl[:, split.selection] = True  # a control that "solves" only selection queries must not count
    ctrl[0, split.test[:2]] = True
    r.controls = {"TV": ((1,), ctrl), "FV search": ((2, 1.0, 1), ctrl)}
    held = held_out_recovery(r, cfg)
    c = held["TV"].control
    assert c.n_items == len(split.test) and c.n_controls == 4
    assert c.control_mean == pytest.approx(2 / len(split.test) / 4)
    assert c.difference == pytest.approx(acc - c.control_mean) and c.ci[0] > 0
    assert held["TV"].control_recovery == pytest.approx(c.control_mean / 0.5)
    assert held["FV default"].control is None  # no control run for it: nothing claimed
    r.controls["TV"] = ((2,), ctrl)  # run at another layer than the selection now picks: refused
    with pytest.raises(ValueError, match="TV: the controls were run at"):
        held_out_recovery(r, cfg)


def test_fv_transfer_experiment_smoke(smoke_run, tmp_path):
    folder, metrics = smoke_run("fv_transfer")
    for png in (
        "transfer_random_tiny-llama_shuffled.png",
        "cos_vs_transfer_random_tiny-gpt2_shuffled.png",
        "layers_random_tiny-gpt2_shuffled.png",
        "dose_response_random_tiny-llama.png",
    ):
        assert (folder / png).stat().st_size > 1000
    entry = metrics["random:tiny-llama"]["shuffled"]
    assert set(entry["iid"]) == {"antonym", "capitalize"}
    m = np.array(entry["per_task"]["antonym"]["transfer_best_layer"])
    assert m.shape == (3, 3) and ((m >= 0) & (m <= 1)).all()
    report = (folder / "report.md").read_text()
    assert "dissociation cases" in report and "`'{x} ↔ {y}'`" in report
    # the IID diagonal is the steered test accuracy of each template's own vector: it can never
    # exceed 1 or fall below 0, and the reported IID is its mean at the validation-chosen layer
    assert entry["iid"]["antonym"] == pytest.approx(float(np.diag(m).mean()))
    # the validation dose response holds the chosen α's accuracy, and "changed" is a share
    task = entry["per_task"]["antonym"]
    curve, changed = np.array(task["val_curve"]), np.array(task["val_changed"])
    assert curve.shape == changed.shape == (3, 2, 2) and ((changed >= 0) & (changed <= 1)).all()
    assert np.allclose(curve.max(-1), np.array([[max(row) for row in src] for src in task["val_curve"]]))
    # every steered cell sits beside random directions of its norm: the in-distribution effect is the diagonal's
    ctrl = task["controls"]
    assert set(ctrl) == {"iid", "transfer"} and ctrl["iid"]["n_controls"] == 3
    assert ctrl["iid"]["effect"] == pytest.approx(float(np.diag(m).mean()))
    assert ctrl["iid"]["ci"][0] <= ctrl["iid"]["difference"] <= ctrl["iid"]["ci"][1]
    assert "vector vs random" in report
    # the side-by-side table carries the same Δ as the control table
    d = ctrl["iid"]
    assert f"{d['difference']:+.2f} [{d['ci'][0]:+.2f}, {d['ci'][1]:+.2f}]" in report
    # the template-permutation test per task is the pooled test restricted to that task
    perm = entry["permutation_by_task"]
    assert set(perm) == {"antonym", "capitalize"}
    # (undefined where a tiny random model's transfer does not vary: stored as null, reported as "undefined")
    assert all(v["n_perm"] == 2000 and (v["p"] is None or 0 < v["p"] <= 1) for v in perm.values())
    assert "Per task (its own templates relabelled)" in report
    zs, _ = smoke_run("fv_transfer", "models=[random:tiny-llama]", "extraction=zero_shot", run_id="zs")
    assert "minus over the same queries without demonstrations" in (zs / "report.md").read_text()
    with pytest.raises(ValueError, match="extraction='mean'"):
        smoke_run("fv_transfer", "extraction=mean", run_id="bad")
    with pytest.raises(ValueError, match="dose_units='norm'"):
        smoke_run("fv_transfer", "dose_units=norm", run_id="bad2")


def test_fv_transfer_extractions_side_by_side(smoke_run):
    """All three extractions in one run with residual-norm doses: one side-by-side table, the
    head-based FV is the same vector at every layer, and the relative dose really is a fraction
    of the residual norm."""
    folder, metrics = smoke_run(
        "fv_transfer",
        "models=[random:tiny-gpt2]",
        "extractions=[shuffled,zero_shot,fv]",
        "dose_units=residual",
        "alphas=[0.05,0.5,5.0]",
        "fv_k=2",
        run_id="three",
    )
    entry = metrics["random:tiny-gpt2"]
    assert set(entry) == {"shuffled", "zero_shot", "fv"}
    report = (folder / "report.md").read_text()
    assert "the extractions side by side" in report and "top-2 CIE heads" in report
    fv = entry["fv"]["per_task"]["capitalize"]
    assert all(len(h) == 2 for h in fv["heads"].values())
    # huge doses rewrite the residual: the positive control changes predictions more than the smallest dose
    changed = np.array(fv["val_changed"])
    assert (changed[..., -1] >= changed[..., 0]).all() and changed[..., -1].mean() > changed[..., 0].mean()


def test_recovery_ci_resamples_the_reference_too():
    """A recovery of 1 whose reference is itself noisy: the joint bootstrap CI is wider than the
    one that treats the reference as fixed, and an unpaired 10-shot reference widens it again."""
    from interp.stats import ratio_ci

    rng = np.random.default_rng(0)
    num = (rng.random(25) < 0.6).astype(float)
    den = (rng.random(25) < 0.6).astype(float)
    r, (lo, hi) = ratio_ci(num, den, 0.1, paired=True)
    assert r == pytest.approx(num.mean() / den.mean())
    fixed = np.quantile([num[rng.integers(0, 25, 25)].mean() / den.mean() for _ in range(2000)], [0.025, 0.975])
    assert hi - lo > fixed[1] - fixed[0]
    _, (lo2, hi2) = ratio_ci(num, den, 0.1, paired=False)
    assert hi2 - lo2 > 0
    assert np.isnan(ratio_ci(num, np.zeros(25), 0.1, paired=True)[0])
