"""The demo experiment end to end on its smoke config (tiny random model)."""

from interp.runner import run_study


def test_demo_smoke(smoke_run, tiny_llama):
    folder, metrics = smoke_run("demo")
    text = (folder / "report.md").read_text()
    assert "Does the clean run succeed?" in text and "head_patching.png" in text
    assert (folder / "head_patching.png").stat().st_size > 1000 and (folder / "logit_lens.png").exists()
    assert metrics["n_pairs"] == 3 and 0.0 <= metrics["clean_accuracy"] <= 1.0
    assert len(metrics["head_recovery_mean"]) == 2  # layers of the tiny model
    assert "random:tiny-llama" in (folder / "config.yaml").read_text()
    # the reported clean / corrupted logit differences and accuracy are those of plain forwards
    import torch

    import interp

    pairs = [["hot", "cold"], ["up", "down"], ["big", "small"]]
    clean = [f"The opposite of {s} is" for s, _ in pairs]
    ans = interp.data.single_token_ids(tiny_llama, [" " + a for _, a in pairs], "answers")
    batch = interp.tokenize(tiny_llama, clean)
    with torch.no_grad():
        logits = tiny_llama(batch.tokens, attention_mask=batch.attention_mask)[torch.arange(3), batch.last_index]
    ld = logits[torch.arange(3), ans] - logits[torch.arange(3), torch.roll(ans, -1)]
    torch.testing.assert_close(torch.tensor(metrics["m_clean"]), ld.float(), rtol=1e-4, atol=1e-4)
    assert metrics["clean_accuracy"] == float((logits.argmax(-1) == ans).float().mean())


def test_demo_rejects_unknown_config_key(tmp_path):
    import pytest

    from interp.config import ConfigError

    with pytest.raises(ConfigError, match="unknown config key 'model.nmae'"):
        run_study("demo", "configs/demo.smoke.yaml", ["model.nmae=x"])
