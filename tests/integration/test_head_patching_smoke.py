"""The head-patching experiment end to end on its smoke config (tiny random model)."""

import json

from interp.runner import main


def test_head_patching_smoke(tmp_path):
    from experiments.head_patching import HeadPatchingConfig, run

    report = main("head_patching", HeadPatchingConfig, run,
                  ["--config", "configs/head_patching.smoke.yaml", f"run.results_dir={tmp_path}", "run.run_id=smoke"])  # fmt: skip
    folder = tmp_path / "head_patching" / "smoke"
    text = report.read_text()
    # the clean-run check comes before any recovery figure
    assert text.index("Does the clean run succeed?") < text.index("heads_denoise.png")
    for fig in ["heads_denoise.png", "heads_noise.png", "components.png", "positions_resid_pre.png", "attribution_vs_exact.png"]:
        assert (folder / fig).stat().st_size > 1000, fig
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["n_pairs"] == 12  # 6 per name order
    assert set(metrics["by_order"]) == {"ABBA", "BABA"} and set(metrics["head_recovery_mean_by_order"]) == {"ABBA", "BABA"}
    assert "denoising, BABA only" in text and "6 in each name order" in text
    assert len(metrics["head_recovery_mean"]) == 2 and len(metrics["head_recovery_mean"][0]) == 4
    assert set(metrics["attribution_pearson"]) == {"z", "resid_pre", "attn_out", "mlp_out"}
