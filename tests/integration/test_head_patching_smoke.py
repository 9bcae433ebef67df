"""The head-patching experiment end to end on its smoke config (tiny random model)."""

import json

from interp.runner import run_study


def test_head_patching_smoke(tmp_path):
    report = run_study(
        "head_patching", "configs/head_patching.smoke.yaml", [f"run.results_dir={tmp_path}", "run.run_id=smoke"]
    )
    folder = tmp_path / "head_patching" / "smoke"
    text = report.read_text()
    # the clean-run check comes before any recovery figure
    assert text.index("Does the clean run succeed?") < text.index("heads_denoise.png")
    for fig in [
        "heads_denoise.png",
        "heads_noise.png",
        "components.png",
        "positions_resid_pre.png",
        "attribution_vs_exact.png",
    ]:
        assert (folder / fig).stat().st_size > 1000, fig
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["n_pairs"] == 12  # 6 per name order
    assert set(metrics["by_order"]) == {"ABBA", "BABA"} and set(metrics["head_recovery_mean_by_order"]) == {
        "ABBA",
        "BABA",
    }
    assert "denoising, BABA only" in text and "6 in each name order" in text
    assert len(metrics["head_recovery_mean"]) == 2 and len(metrics["head_recovery_mean"][0]) == 4
    assert set(metrics["attribution_pearson"]) == {"z", "resid_pre", "attn_out", "mlp_out"}


def test_held_out_heads_rank_on_selection_pairs_and_report_on_test():
    """Head (1, 0) recovers 0.5 on every pair; head (0, 1) recovers 1.0 on the test pairs only
    (ranked on all pairs it would be first). Held out, (1, 0) leads, reported on the test pairs."""
    import numpy as np
    import torch

    from interp.patching import PatchingResult
    from interp.selection import SelectionConfig, split_items
    from interp.studies.head_patching import held_out_heads

    n = 40
    groups = ["ABBA", "BABA"] * (n // 2)
    usable = torch.ones(n, dtype=torch.bool)
    usable[[0, 1]] = False  # unusable pairs take no part
    idx = np.flatnonzero(usable.numpy())
    split = split_items(len(idx), 0.5, 0, groups=[groups[i] for i in idx])
    rec = torch.zeros(2, 2, n)
    rec[1, 0] = 0.5
    rec[0, 1, idx[split.test]] = 1.0
    res = PatchingResult(
        "z", ("layer", "head", "batch"), rec, rec, torch.ones(n), torch.zeros(n), torch.zeros(n, dtype=torch.bool)
    )
    held, n_sel, n_test = held_out_heads(res, usable, groups, 2, SelectionConfig(), n_boot=200)
    assert (n_sel, n_test) == (len(split.selection), len(split.test)) and n_sel + n_test == n - 2
    assert held[0].head == (1, 0) and abs(held[0].test.mean - 0.5) < 1e-6 and held[0].rank_all == 2
    assert all(h.selection.mean == 0.0 for h in held[1:])  # the lucky head has nothing on the selection pairs
    assert res.top(1, 200, include=usable)[0][0] == (0, 1)  # the best-on-test ranking picks the lucky head
