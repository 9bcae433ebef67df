"""The IOI circuit study end to end on tiny models (GQA and a post-attention norm)."""


def test_ioi_circuit_smoke(smoke_run):
    folder, metrics = smoke_run("ioi_circuit")
    for name in ("random:tiny-llama", "random:tiny-gemma3"):
        m = metrics[name]
        assert m["n_selection"] == m["n_test"] == 4 and m["n_edges"] > 50
        assert set(m["curves"]) == {"EAP", "EAP-IG", "exact (top EAP-IG edges)"}
        # the exact ranking only covers the edges it scored
        assert max(n for n, _, _ in m["curves"]["exact (top EAP-IG edges)"]) <= 12
        assert all(k <= n for curve in m["curves"].values() for n, k, _ in curve)  # pruning never adds edges
    assert (folder / "faithfulness_random_tiny-llama.png").stat().st_size > 1000
    assert "faithfulness on the test pairs" in (folder / "report.md").read_text()
