"""The toy environment (data, pairs, evaluation) and the toy steering experiment's smoke run."""

import json

import pytest
import torch

from interp.runner import run_study
from interp.toy import AttributeWorld, SteerTask, ToyMLP, evaluate, example_pairs


def test_pairs_differ_only_in_the_steered_attribute():
    world = AttributeWorld.create(5, seed=1)
    task = SteerTask(attribute=2, target=3)
    neg, pos = example_pairs(world, task, 16, torch.Generator().manual_seed(0))
    diff = (neg - pos).view(16, 5, 8).abs().sum(-1)
    assert (diff[:, [0, 1, 3, 4]] == 0).all() and (diff[:, 2] > 0).all()
    # the positive slice is the target anchor plus the same noise as the negative's others
    assert torch.allclose(pos.view(16, 5, 8)[:, 2].mean(0), world.anchors[2, 3], atol=0.1)
    with pytest.raises(ValueError, match="attribute=9 out of range"):
        example_pairs(world, SteerTask(attribute=9), 4, torch.Generator())


def test_every_block_has_a_residual_connection():
    """Seed 002: residual connections across all layers — a bias-free projection where the
    width changes (24 -> 512, 512 -> 256, 256 -> 512), the identity where it is kept. With the
    main branch's output zeroed, each block passes its input through the skip alone."""
    model = ToyMLP(3).eval()
    kinds = [type(b.skip).__name__ for b in model.blocks]
    assert kinds == ["Linear", "Identity", "Linear", "Linear"] and all(b.residual for b in model.blocks)
    x = torch.randn(5, 24, generator=torch.Generator().manual_seed(0))
    block = model.blocks[0]
    with torch.no_grad():
        block.norm.weight.zero_()
        block.norm.bias.zero_()
        torch.testing.assert_close(block(x), x @ block.skip.weight.T)
    old = ToyMLP(3, residual="matching")
    assert [b.residual for b in old.blocks] == [False, True, False, False]
    with pytest.raises(ValueError, match="residual='some'"):
        ToyMLP(3, residual="some")


def test_evaluate_with_a_perfect_edit():
    world = AttributeWorld.create(3, seed=0)
    model = ToyMLP(3).eval()
    x, _ = world.sample(50, torch.Generator().manual_seed(0))
    task = SteerTask(attribute=0, target=1, layer=1)
    assert evaluate(model, x, task, edit=lambda a: a)["disturbance"] == 0.0
    base = evaluate(model, x, task)
    assert base["disturbance"] == 0.0 and 0.0 <= base["accuracy"] <= 1.0
    with pytest.raises(ValueError, match="edit_layer=7"):
        model(x, 7, lambda a: a)


def test_toy_steering_smoke(tmp_path):

    report = run_study(
        "toy_steering", "configs/toy_steering.smoke.yaml", [f"run.results_dir={tmp_path}", "run.run_id=smoke"]
    )
    folder = tmp_path / "toy_steering" / "smoke"
    assert (folder / "steering_m6.png").stat().st_size > 1000
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["m6_val_accuracy"] > 0.9
    adapters = {r["adapter"] for r in metrics["results"]}
    assert adapters == {"none", "caa", "ace", "loreft", "lorest"}
    assert len(metrics["results"]) == 2 * 2 * 5  # n_pairs x repeats x (4 adapters + none)
    # a constant shift steers a single attribute well in this toy: CAA beats no steering
    assert metrics["summary"]["m6"]["caa"]["16"] > metrics["summary"]["m6"]["none"]["16"] + 0.3
    assert all(r["push"] > 0 for r in metrics["results"] if r["adapter"] != "none")
    assert "Trained toy models" in report.read_text()
    # every adapter at its chosen setting sits beside random directions with its own push: CAA's
    # direction beats them where it steers, a random push leaves the attribute near chance
    steered = [r for r in metrics["results"] if r["adapter"] != "none"]
    assert all("control_accuracy" in r for r in steered)
    caa16 = [r for r in steered if r["adapter"] == "caa" and r["n_pairs"] == 16]
    assert all(r["accuracy_minus_control"] > 0.3 and r["accuracy_minus_control_ci"][0] > 0 for r in caa16)
    assert "specificity control at the chosen settings" in report.read_text()
    # the dose sweep spans no effect (λ = 0.01) to the positive control (λ = 10) for CAA
    assert (folder / "doses_m6.png").stat().st_size > 1000
    doses = [r for r in metrics["doses"] if r["adapter"] == "caa"]
    assert len(metrics["doses"]) == 2 * 4 * 2  # adapters x strengths x repeats at N = 16
    lo = [r for r in doses if r["strength"] == 0.01]
    hi = [r for r in doses if r["strength"] == 10.0]
    none = [r["accuracy"] for r in metrics["results"] if r["adapter"] == "none" and r["n_pairs"] == 16]
    assert sum(r["accuracy"] for r in lo) / 2 < sum(none) / 2 + 0.05
    assert min(r["accuracy"] for r in hi) > 0.9
    # CAA's push is linear in λ: a thousand times the strength, a thousand times the dose
    assert hi[0]["push"] / lo[0]["push"] == pytest.approx(1000, rel=1e-3)
    assert "dose sweep over strengths" in report.read_text()
    # specificity control: random directions with CAA's push do nothing at λ = 0.01 and far less
    # than CAA at λ = 10 (a constant shift along the attribute's direction is what steers)
    assert all(abs(r["accuracy_minus_control"]) < 0.05 for r in lo)
    assert all(r["accuracy_minus_control"] > 0.3 and r["accuracy_minus_control_ci"][0] > 0 for r in hi)
    assert "specificity control" in report.read_text()
