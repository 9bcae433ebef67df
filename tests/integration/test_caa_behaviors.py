"""CAA behaviour experiment on the tiny models (smoke), and the prompt/letter checks."""

import json

import numpy as np
import pytest

import interp
from interp.behaviors import ab_prompt, letter_ids


def test_ab_prompt_and_letter_ids(tiny_llama):
    p = ab_prompt(tiny_llama, "Is water wet?\n\nChoices:\n(A) Yes\n(B) No")
    assert p.endswith("Answer: (")
    ids = letter_ids(tiny_llama, p)
    assert ids.shape == (2,) and ids[0] != ids[1]
    assert not ab_prompt(tiny_llama, "Q?", answer_open=False).endswith("(")
    with pytest.raises(ValueError, match="question is empty"):
        ab_prompt(tiny_llama, "  ")


def test_caa_experiment_smoke(tmp_path):
    from experiments.caa_behaviors import CAAConfig, run
    from interp.runner import main

    main("caa_behaviors", CAAConfig, run, ["--config", "configs/caa_behaviors.smoke.yaml", f"run.results_dir={tmp_path}", "run.run_id=smoke"])
    folder = tmp_path / "caa_behaviors" / "smoke"
    for png in ("effect_sizes.png", "violins_random_tiny-llama.png", "layers_random_tiny-gpt2.png"):
        assert (folder / png).stat().st_size > 1000
    metrics = json.loads((folder / "metrics.json").read_text())
    entry = metrics["random:tiny-llama"]["refusal"]
    assert len(entry["delta"]) == 2 and np.isfinite(entry["delta"]).all()
    assert 0.0 <= entry["best_fraction"] <= 1.0
    report = (folder / "report.md").read_text()
    assert "Cohen's d" in report and "random:tiny-gpt2 (plain prompt, 2 layers)" in report


def test_caa_config_errors(tmp_path):
    from experiments.caa_behaviors import CAAConfig, run
    from interp.runner import main

    with pytest.raises(ValueError, match="must contain -1.0"):
        main("caa_behaviors", CAAConfig, run, ["--config", "configs/caa_behaviors.smoke.yaml", f"run.results_dir={tmp_path}",
                                                "multipliers=[0.0, 1.0]"])  # fmt: skip
    with pytest.raises(ValueError, match=r"too_long=skip"):
        main("caa_behaviors", CAAConfig, run, ["--config", "configs/caa_behaviors.smoke.yaml", f"run.results_dir={tmp_path}",
                                                "too_long=error", "behaviors=[sycophancy]"])  # fmt: skip


def test_dose_response_finds_effect_only_past_one():
    """A vector that does nothing at ±1 but separates at ±4 on layer 2: the table must show it, at layer 2."""
    from experiments.caa_behaviors import CAAConfig, _dose_response

    cfg = CAAConfig(models=["x"], behaviors=["b"], multipliers=[-4.0, -1.0, 0.0, 1.0, 4.0])
    rng = np.random.default_rng(0)
    ld = rng.normal(0, 1, size=(3, 5, 40))
    ld[2, 4] += 3.0  # m=+4 at layer 2 only
    ld[2, 0] -= 3.0  # m=-4 at layer 2 only
    results = {"b": {"layers": [0, 1, 2], "ld": ld}}
    summaries = {"b": {"best_layer": 0}}
    matching = {"b": ["(A)", "(B)"] * 20}
    head, rows = _dose_response(results, summaries, cfg, matching)
    assert head[-3].startswith("Cohen's d m=±4") and rows[0][-3].endswith("(L2)")
    d = float(rows[0][-3].split("d=")[1].split()[0])
    assert d > 2.0  # planted shift 6 over unit SD
    assert len(rows[0]) == 2 + 5 + 3
    # the planted +3 at m=+4 is behaviour (same sign on A and B questions), not letter
    beh, let = (float(x) for x in rows[0][-2].split(" / "))
    assert abs(beh - 3.0) < 0.8 and abs(let) < 0.8
    # now a pure letter push at layer 1: +3 on A-questions, -3 on B-questions at m=+4
    ld2 = ld.copy()
    ld2[1, 4] += np.where(np.array(matching["b"]) == "(A)", 3.0, -3.0)
    _, rows2 = _dose_response({"b": {"layers": [0, 1, 2], "ld": ld2}}, summaries, cfg, matching)
    assert rows2[0][-1].startswith("+3") or rows2[0][-1].startswith("+2")
    assert "(L1;" in rows2[0][-1]
    _, narrow = _dose_response(results, summaries, CAAConfig(models=["x"], behaviors=["b"], multipliers=[-1.0, 0.0, 1.0]), matching)
    assert len(narrow[0]) == 2 + 3 + 2  # no Cohen's d column without a pair wider than ±1


def test_balance_letters_changes_the_vector_only_when_the_split_is_unbalanced(tmp_path):
    """refusal's first 6 generate questions match on A five times: the equal-weight vector differs
    from the plain mean; myopic-reward's are 3 A / 3 B, where both estimators coincide."""
    from experiments.caa_behaviors import CAAConfig, run
    from interp.runner import main

    deltas = {}
    for balance in ("false", "true"):
        main("caa_behaviors", CAAConfig, run, ["--config", "configs/caa_behaviors.smoke.yaml", f"run.results_dir={tmp_path}",
                                                f"run.run_id=b_{balance}", "models=[random:tiny-llama]", "generation.enabled=false",
                                                f"balance_letters={balance}"])  # fmt: skip
        metrics = json.loads((tmp_path / "caa_behaviors" / f"b_{balance}" / "metrics.json").read_text())["random:tiny-llama"]
        deltas[balance] = {b: np.array(metrics[b]["delta"]) for b in ("refusal", "myopic-reward")}
    assert not np.allclose(deltas["false"]["refusal"], deltas["true"]["refusal"], atol=1e-6)
    np.testing.assert_allclose(deltas["false"]["myopic-reward"], deltas["true"]["myopic-reward"], atol=1e-5, rtol=1e-4)
    report = (tmp_path / "caa_behaviors" / "b_true" / "report.md").read_text()
    assert "weighted equally" in report
