"""The prompt-pairs experiment's smoke config end to end on the 135M model (a small SAE is
trained on the fly), and the real MiniLM word embedding."""

import json

import numpy as np
import pytest


@pytest.mark.slow
def test_word_embedder_orders_related_words():
    from interp.semantic import WordEmbedder, word_cosines

    embed = WordEmbedder()
    c = word_cosines(embed, ["happy", "table", "happy"], ["glad", "glad", "happy"])
    assert c[2] == pytest.approx(1.0, abs=1e-5) and c[0] > c[1] + 0.2


@pytest.mark.slow
def test_prompt_pairs_smoke(tmp_path, monkeypatch):
    from interp.runner import run_study

    monkeypatch.setenv("INTERP_CACHE", str(tmp_path / "cache"))
    report = run_study("prompt_pairs", "configs/prompt_pairs.smoke.yaml", [f"run.results_dir={tmp_path}"])
    text = report.read_text()
    assert "explained variance" in text and "no adapter" in text
    m = json.loads((report.parent / "metrics.json").read_text())["smollm2-135m-instruct"]
    assert m["layer"] == 15 and m["sae"]["source"] == "trained" and m["sae"]["l0"] == pytest.approx(8.0)
    for d in ("sentiment", "refusal"):
        curves = m["datasets"][d]["curves"]
        assert set(curves) == {"caa", "ace", "loreft", "lorest"}
        cos = curves["caa"]["cosine"][-1][0]
        assert np.isfinite(cos) and -1 <= cos <= 1
        # the relative dose of every adapter is recorded; CAA (strength 1) adds the mean difference: a finite,
        # positive push
        assert all(np.isfinite(curves[a]["push"][-1][0]) and curves[a]["push"][-1][0] >= 0 for a in curves)
        assert curves["caa"]["push"][-1][0] > 0
    assert "relative dose ‖Δ‖ / ‖resid‖" in text
    assert (report.parent / "metrics_smollm2-135m-instruct.png").exists()
    # the dose sweep: every adapter's edit scaled 0.1 … 10; the push scales with it exactly
    # (a + s·(adapter(a) − a)), and the largest scale changes more continuations than the smallest
    doses = json.loads((report.parent / "metrics.json").read_text())["smollm2-135m-instruct doses"]
    assert set(doses) == {"caa", "ace", "loreft", "lorest"}
    for a, by_scale in doses.items():
        assert set(by_scale) == {"0.1", "1", "10"}
        assert by_scale["10"]["push"] == pytest.approx(100 * by_scale["0.1"]["push"], rel=1e-4)
    assert doses["caa"]["10"]["changed"] > doses["caa"]["0.1"]["changed"]
    assert doses["caa"]["10"]["changed"] >= 0.5  # the positive control: most continuations rewritten
    assert (report.parent / "doses_smollm2-135m-instruct.png").exists() and "dose sweep" in text
    # the SAE was cached in SAE Lens' format
    assert list((tmp_path / "cache" / "saes").glob("*/cfg.json"))
