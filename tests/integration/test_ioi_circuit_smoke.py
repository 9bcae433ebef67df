"""The IOI circuit study end to end on tiny models (GQA and a post-attention norm)."""


def test_ioi_circuit_smoke(smoke_run):
    folder, metrics = smoke_run("ioi_circuit")
    for name in ("random:tiny-llama", "random:tiny-gemma3"):
        m = metrics[name]
        assert m["n_selection"] == m["n_test"] == 4 and m["n_edges"] > 50
        assert set(m["curves"]) == {"EAP", "EAP-IG", "exact (top EAP-IG edges)"}
        # the exact ranking only covers the edges it scored
        assert max(c[0] for c in m["curves"]["exact (top EAP-IG edges)"]) <= 12
        assert all(c[1] <= c[0] for curve in m["curves"].values() for c in curve)  # pruning never adds edges
        # test faithfulness inside its CI; the selection curve has the same sizes
        assert all(lo <= f <= hi for curve in m["curves"].values() for _, _, f, lo, hi in curve if f == f)
        assert {m_: [c[0] for c in v] for m_, v in m["selection_curves"].items()} == {
            m_: [c[0] for c in v] for m_, v in m["curves"].items()
        }
        # the smallest circuit is the first size whose *selection* faithfulness reaches the target
        for method, v in m["smallest"].items():
            sel = m["selection_curves"][method]
            first = next((k for _, k, f in sel if f == f and f >= 0.8), None)
            assert (v[0] if v else None) == first
    assert (folder / "faithfulness_random_tiny-llama.png").stat().st_size > 1000
    assert "faithfulness on the test pairs" in (folder / "report.md").read_text()
