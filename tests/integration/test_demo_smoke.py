"""The demo experiment end to end on its smoke config (tiny random model)."""

import json

from interp.runner import main


def test_demo_smoke(tmp_path):
    from experiments.demo import DemoConfig, run

    report = main("demo", DemoConfig, run, ["--config", "configs/demo.smoke.yaml", f"run.results_dir={tmp_path}", "run.run_id=smoke"])
    folder = tmp_path / "demo" / "smoke"
    assert report == folder / "report.md"
    text = report.read_text()
    assert "Does the clean run succeed?" in text and "head_patching.png" in text
    assert (folder / "head_patching.png").stat().st_size > 1000 and (folder / "logit_lens.png").exists()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["n_pairs"] == 3 and 0.0 <= metrics["clean_accuracy"] <= 1.0
    assert len(metrics["head_recovery_mean"]) == 2  # layers of the tiny model
    assert "random:tiny-llama" in (folder / "config.yaml").read_text()


def test_demo_rejects_unknown_config_key(tmp_path):
    import pytest

    from experiments.demo import DemoConfig, run
    from interp.config import ConfigError

    with pytest.raises(ConfigError, match="unknown config key 'model.nmae'"):
        main("demo", DemoConfig, run, ["--config", "configs/demo.smoke.yaml", "model.nmae=x"])
