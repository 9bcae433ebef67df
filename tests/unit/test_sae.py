"""SAE training, quality metrics and seed 002's feature selection on planted data."""

import json

import pytest
import torch

from interp.sae import (
    SAETrainConfig,
    features_active_on_all,
    features_inactive_on_all,
    load_sae,
    sae_quality,
    train_sae,
)


def _planted(n=40_000, d=32, f=64, seed=0):
    """Activations that are sparse non-negative combinations of ``f`` known unit directions plus
    an offset (residual streams have a large mean)."""
    g = torch.Generator().manual_seed(seed)
    dictionary = torch.nn.functional.normalize(torch.randn(f, d, generator=g), dim=-1)
    codes = (torch.rand(n, f, generator=g) < 3 / f).float() * (1 + torch.rand(n, f, generator=g))
    return codes @ dictionary + 0.5, dictionary


def test_train_sae_recovers_planted_dictionary():
    acts, dictionary = _planted()
    sae = train_sae(acts[:36_000], SAETrainConfig(layer=0, expansion=4, k=8, epochs=5, batch_size=256, lr=3e-3))
    q = sae_quality(sae, acts[36_000:])
    assert q["explained_variance"] > 0.85 and q["l0"] == pytest.approx(8.0)
    learned = torch.nn.functional.normalize(sae.W_dec.detach(), dim=-1)
    best = (dictionary @ learned.T).max(1).values  # each true direction's closest decoder row
    assert best.median() > 0.95 and (best > 0.8).float().mean() >= 0.95, best
    # an untrained-quality control: random decoder directions match far worse
    assert (dictionary @ torch.nn.functional.normalize(torch.randn(256, 32), dim=-1).T).max(1).values.median() < 0.8


def test_sae_quality_by_hand(tmp_path):
    """An SAE whose encoder is the identity on the first d features reconstructs positive inputs
    exactly (explained variance 1); a never-used feature is dead."""
    acts, _ = _planted(n=3000, d=8, f=8)
    sae = train_sae(acts, SAETrainConfig(layer=0, expansion=2, k=2, epochs=1, batch_size=256))
    d = 8
    with torch.no_grad():
        sae.W_enc.zero_(), sae.W_dec.zero_(), sae.b_enc.zero_(), sae.b_dec.zero_()
        sae.W_enc[:, :d] = torch.eye(d)
        sae.W_enc[:, d:] = -torch.eye(d)  # the second half never fires on positive inputs
        sae.W_dec[:d] = torch.eye(d)
        sae.W_dec[d:] = torch.eye(d)  # unit rows: SAE Lens' TopK rescales by decoder norms
    sae.cfg.k = d
    if hasattr(sae, "activation_fn") and hasattr(sae.activation_fn, "k"):
        sae.activation_fn.k = d
    x = torch.rand(500, d) + 0.1  # positive: ReLU/TopK keeps all d coordinates
    q = sae_quality(sae, x)
    assert q["explained_variance"] == pytest.approx(1.0, abs=1e-5)
    assert q["l0"] == pytest.approx(d) and q["dead_share"] == pytest.approx(0.5)
    # SAE Lens' own format round trip
    sae.save_model(tmp_path / "sae")
    again = load_sae(str(tmp_path / "sae"))
    assert torch.allclose(again.encode(x), sae.encode(x))
    assert json.loads((tmp_path / "sae" / "cfg.json").read_text())["d_sae"] == 2 * d
    with pytest.raises(ValueError, match="quality needs held-out"):
        sae_quality(sae, x[:0])


def test_load_sae_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="without cfg.json"):
        load_sae(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="release:sae_id"):
        load_sae("no-such-thing")


def test_train_config_rejects_bad_values():
    with pytest.raises(ValueError, match="k=0"):
        SAETrainConfig(layer=0, k=0)
    with pytest.raises(ValueError, match="generated_share=1.5"):
        SAETrainConfig(layer=0, generated_share=1.5)
    with pytest.raises(ValueError, match="fewer than batch_size"):
        train_sae(torch.randn(10, 4), SAETrainConfig(layer=0, batch_size=64))


def test_feature_selection_planted():
    """Target features: active on every positive row (feature 1 and 3 here; 0 misses one row);
    test features: never active on any positive or negative row."""
    pos = torch.tensor([[1.0, 2.0, 0.0, 0.5, 0.0, 0.0], [0.0, 1.0, 0.0, 0.1, 0.0, 0.0], [3.0, 0.3, 0.0, 9.0, 0.0, 0.0]])
    neg = torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0, 0.0, 0.0]])
    assert features_active_on_all(pos).tolist() == [1, 3]
    assert features_active_on_all(pos, threshold=0.2).tolist() == [1]
    assert features_active_on_all(pos, min_share=2 / 3).tolist() == [0, 1, 3]
    assert features_inactive_on_all(pos, neg).tolist() == [2, 5]
    assert len(features_inactive_on_all(pos, neg, n=1, seed=0)) == 1
    assert set(features_inactive_on_all(pos, neg, n=1, seed=0).tolist()) <= {2, 5}
    with pytest.raises(ValueError, match="codes must be"):
        features_active_on_all(torch.zeros(0, 6))


def test_pretrained_release_goes_through_sae_from_pretrained(tiny_llama, monkeypatch):
    """``release:sae_id`` is handed to SAE Lens' ``SAE.from_pretrained`` (the hub path; faked
    here, nothing is reachable offline) and its SAE is used as is, with a d_in check."""
    import sae_lens

    from interp.sae import get_sae

    d = tiny_llama.cfg.d_model
    acts, _ = _planted(n=2000, d=d, f=2 * d)
    good = train_sae(acts, SAETrainConfig(layer=0, expansion=2, k=4, epochs=1, batch_size=256))
    bad = train_sae(acts[:, :8], SAETrainConfig(layer=0, expansion=2, k=4, epochs=1, batch_size=256))
    calls = []

    def fake(release, sae_id, device="cpu", **kw):
        calls.append((release, sae_id))
        return good if release == "good-release" else bad

    monkeypatch.setattr(sae_lens.SAE, "from_pretrained", staticmethod(fake))
    sae, info = get_sae(
        tiny_llama, "random:tiny-llama", SAETrainConfig(layer=1), pretrained="good-release:blocks.1.hook_resid_post"
    )
    assert sae is good and info == {"source": "good-release:blocks.1.hook_resid_post"}
    assert calls == [("good-release", "blocks.1.hook_resid_post")]
    with pytest.raises(ValueError, match="d_in=8"):
        get_sae(tiny_llama, "random:tiny-llama", SAETrainConfig(layer=1), pretrained="other:x")
    with pytest.raises(ValueError, match="layer=9 is out of range"):
        get_sae(tiny_llama, "random:tiny-llama", SAETrainConfig(layer=9))


def test_get_sae_trains_once_then_loads_from_cache(tiny_llama, tmp_path, monkeypatch):
    import interp.sae as sae_mod

    cfg = SAETrainConfig(
        layer=1, expansion=2, k=4, n_tokens=3000, generated_share=0.1, context=32, eval_tokens=256, batch_size=256
    )
    sae, q = sae_mod.get_sae(tiny_llama, "random:tiny-llama", cfg, root=tmp_path)
    assert q["source"] == "trained" and q["train_tokens_generated"] > 0 and q["train_tokens_dataset"] >= 2700
    assert q["l0"] == pytest.approx(4.0) and 0 <= q["dead_share"] <= 1 and q["n_eval_tokens"] > 0
    folder = sae_mod.sae_dir("random:tiny-llama", cfg, tmp_path)
    assert (folder / "cfg.json").exists() and not list(tmp_path.rglob("*.partial"))
    monkeypatch.setattr(sae_mod, "train_sae", lambda *a, **k: pytest.fail("retrained instead of loading the cache"))
    again, q2 = sae_mod.get_sae(tiny_llama, "random:tiny-llama", cfg, root=tmp_path)
    x = torch.randn(5, tiny_llama.cfg.d_model)
    assert json.dumps(q2, sort_keys=True) == json.dumps(q, sort_keys=True)  # (NaN != NaN, so as text)
    assert torch.allclose(again.encode(x), sae.encode(x))


def test_a_bit_flipped_cached_sae_is_retrained_not_loaded(tiny_llama, tmp_path):
    """Issue 27: flipped bits in the cached SAE weights loaded silently on main."""
    import interp.sae as sae_mod

    cfg = SAETrainConfig(layer=1, expansion=2, k=4, n_tokens=1500, generated_share=0.0, context=32, eval_tokens=128)
    sae, _ = sae_mod.get_sae(tiny_llama, "random:tiny-llama", cfg, root=tmp_path)
    folder = sae_mod.sae_dir("random:tiny-llama", cfg, tmp_path)
    weights = next(f for f in folder.iterdir() if f.suffix == ".safetensors")
    raw = bytearray(weights.read_bytes())
    raw[len(raw) // 2] ^= 0x40
    weights.write_bytes(bytes(raw))
    with pytest.warns(RuntimeWarning, match=f"cached SAE .* is unusable: {weights.name}: its SHA-256 does not match"):
        again, q = sae_mod.get_sae(tiny_llama, "random:tiny-llama", cfg, root=tmp_path)
    x = torch.randn(5, tiny_llama.cfg.d_model)
    assert q["source"] == "trained" and torch.allclose(again.encode(x), sae.encode(x))
