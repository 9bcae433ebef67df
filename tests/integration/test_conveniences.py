"""The conveniences a TransformerLens user reaches for (issue 30), each against the long way round
on a tiny random model: padding-aware run_with_cache, the logit lens at any position with decoded
top-k, TokenBatch errors, flag-gated hooks, attribution with an exact check of its top cells,
the patching cost preview, several steering vectors in one context, vectors read at a chosen
token, sampling in SteeringBatch.generate, and save/load of vectors and adapters."""

import logging

import pytest
import torch

PROMPTS = ["The keys to the cabinet", "A dog", "The author of the books"]


@pytest.fixture(scope="module")
def batch(tiny_llama):
    import interp

    return interp.tokenize(tiny_llama, PROMPTS, padding_side="left")


def test_run_with_cache_is_run_batch_plus_capture(tiny_llama, batch):
    import interp

    logits, acts = interp.run_with_cache(tiny_llama, batch, [("resid_post", 1), "blocks.0.hook_resid_pre"])
    assert torch.allclose(logits, interp.run_batch(tiny_llama, batch))
    with interp.capture(tiny_llama, ["blocks.1.hook_resid_post"]) as ref:
        interp.run_batch(tiny_llama, batch)
    assert torch.equal(acts["resid_post", 1], ref["blocks.1.hook_resid_post"])
    assert acts["blocks.0.hook_resid_pre"].shape[:2] == batch.tokens.shape
    with pytest.raises(TypeError, match="TokenBatch"):
        interp.run_with_cache(tiny_llama, batch.tokens, [("resid_post", 1)])
    assert interp.active_hook_count(tiny_llama) == 0


def test_model_called_on_a_token_batch_points_at_run_batch(tiny_llama, batch):
    with pytest.raises(TypeError, match="run_batch"):
        tiny_llama(batch)


def test_flag_gated_hook_is_an_error_not_an_empty_capture(tiny_llama, batch):
    import interp

    with pytest.raises(ValueError, match="use_attn_result"):
        with interp.capture(tiny_llama, ["blocks.0.attn.hook_result"]):
            pass
    tiny_llama.set_use_attn_result(True)
    try:
        logits, acts = interp.run_with_cache(tiny_llama, batch, ["blocks.0.attn.hook_result"])
        assert acts["blocks.0.attn.hook_result"].shape[2] == tiny_llama.cfg.n_heads
    finally:
        tiny_llama.set_use_attn_result(False)


def test_logit_lens_at_any_position_with_decoded_top_k(tiny_llama, batch):
    from interp.lens import logit_lens

    last = logit_lens(tiny_llama, batch, top_k=3)
    assert torch.equal(last.positions, batch.last_index)
    # the final row is the model's own output at that position, and its decoded top-k says which tokens
    logits = __import__("interp").run_batch(tiny_llama, batch)
    before = batch.last_index - 1
    lens = logit_lens(tiny_llama, batch, position=-2, top_k=3)
    assert torch.equal(lens.positions, before)
    own = logits[torch.arange(len(batch)), before]
    assert torch.equal(lens.top_ids[-1], own.topk(3, -1).indices)
    assert lens.top_tokens[-1][0][0] == tiny_llama.tokenizer.decode([int(own[0].argmax())])
    assert torch.equal(lens.top1_ids, lens.top_ids[..., 0])
    assert len(lens.table(0)) == tiny_llama.cfg.n_layers and len(lens.table(0)[0]) == 4
    # an absolute position that is padding in a left-padded short prompt is refused, naming it
    with pytest.raises(ValueError, match="not a real token"):
        logit_lens(tiny_llama, batch, position=0)
    with pytest.raises(ValueError, match="top_k"):
        logit_lens(tiny_llama, batch, top_k=0)


def test_attribution_verify_top_is_exact_patching_of_those_cells(tiny_llama, caplog):
    import interp
    from interp.attribution import attribution_patching
    from interp.patching import logit_diff_metric, patch

    clean = interp.tokenize(tiny_llama, ["a b c d e f", "g h i j k l"])
    corr = interp.tokenize(tiny_llama, ["a b c x e f", "g h i y k l"])
    metric = logit_diff_metric(torch.tensor([5, 6]), torch.tensor([7, 8]))
    with caplog.at_level(logging.INFO, logger="interp"):
        att = attribution_patching(tiny_llama, clean, corr, metric, sites=("z",), verify_top=3)
    check = att["z"].verification
    exact = patch(tiny_llama, clean, corr, metric, site="z", progress=False).mean_recovery()
    assert len(check.cells) == 3
    for cell, e, a in zip(check.cells, check.exact, check.attribution):
        assert torch.allclose(e, exact[cell], atol=1e-5)
        assert torch.allclose(a, att["z"].mean_recovery()[cell])
    assert check.labels[0].startswith("L") and "H" in check.labels[0]
    assert check.max_abs_diff == pytest.approx(float((check.attribution - check.exact).abs().max()))
    # a random model is far from linear: the disagreement is said, not swallowed
    if check.max_abs_diff > 0.1:
        assert "differ from exact patching" in caplog.text
    with pytest.raises(ValueError, match="verify_top"):
        attribution_patching(tiny_llama, clean, corr, metric, sites=("z",), verify_top=-1)


def test_patching_says_its_cost_before_the_first_forward(tiny_llama, caplog):
    import interp
    from interp.patching import logit_diff_metric, patch

    clean = interp.tokenize(tiny_llama, ["a b c d", "e f g h"])
    corr = interp.tokenize(tiny_llama, ["a b x d", "e f y h"])
    metric = logit_diff_metric(torch.tensor([5, 6]), torch.tensor([7, 8]))
    with caplog.at_level(logging.INFO, logger="interp"):
        patch(tiny_llama, clean, corr, metric, site="z")
    n_variants = tiny_llama.cfg.n_layers * tiny_llama.cfg.n_heads
    assert f"{n_variants} variants x 2 prompts" in caplog.text and "GiB" in caplog.text


def test_add_vectors_equals_nested_add_vector_and_never_leaks(tiny_llama, batch):
    import interp

    d = tiny_llama.cfg.d_model
    v0, v1 = torch.randn(d), torch.randn(d)
    with interp.add_vectors(tiny_llama, {("resid_post", 0): v0, ("resid_post", 1): v1}, scale=2.0):
        both = interp.run_batch(tiny_llama, batch)
    with interp.add_vector(tiny_llama, ("resid_post", 0), v0, scale=2.0):
        with interp.add_vector(tiny_llama, ("resid_post", 1), v1, scale=2.0):
            nested = interp.run_batch(tiny_llama, batch)
    assert torch.allclose(both, nested)
    # the second vector fails its check: the first hook is gone too
    with pytest.raises(ValueError):
        with interp.add_vectors(
            tiny_llama, [(("resid_post", 0), v0), (("resid_post", 1), torch.full((d,), float("nan")))]
        ):
            pass
    assert interp.active_hook_count(tiny_llama) == 0


def test_vectors_read_at_a_chosen_token(tiny_llama):
    import interp
    from interp.steering import last_token_residuals, mean_difference_vectors

    pos = interp.tokenize(tiny_llama, ["I loved it. Answer: (A", "Great film. Answer: (A"], padding_side="left")
    neg = interp.tokenize(tiny_llama, ["I hated it. Answer: (B", "Bad film. Answer: (B"], padding_side="left")
    at_last = mean_difference_vectors(tiny_llama, pos, neg, layers=[1])
    assert torch.allclose(at_last, mean_difference_vectors(tiny_llama, pos, neg, layers=[1], position=-1))
    at_prev = mean_difference_vectors(tiny_llama, pos, neg, layers=[1], position=-2)
    manual = [last_token_residuals(tiny_llama, b, [1], position=b.last_index - 1)[:, 0].mean(0) for b in (pos, neg)]
    assert torch.allclose(at_prev[0], manual[0] - manual[1], atol=1e-5)
    assert not torch.allclose(at_prev, at_last)


def test_generate_samples_reproducibly_and_greedy_at_zero_temperature(tiny_llama):
    import interp
    from interp.steering import SteeringBatch

    sb = SteeringBatch(tiny_llama, interp.tokenize(tiny_llama, ["a b c", "d e f"], padding_side="left"))
    vecs = torch.zeros(1, tiny_llama.cfg.d_model)
    greedy = sb.generate(1, vecs, max_new_tokens=4)
    assert torch.equal(greedy, sb.generate(1, vecs, max_new_tokens=4, temperature=0.0))
    # a nucleus this small keeps only the most likely token: sampling from it is greedy decoding
    assert torch.equal(greedy, sb.generate(1, vecs, max_new_tokens=4, temperature=1.0, top_p=1e-6, seed=3))
    a = sb.generate(1, vecs, max_new_tokens=6, temperature=2.0, seed=1)
    assert torch.equal(a, sb.generate(1, vecs, max_new_tokens=6, temperature=2.0, seed=1))
    others = [sb.generate(1, vecs, max_new_tokens=6, temperature=2.0, seed=s) for s in range(2, 6)]
    assert any(not torch.equal(a, o) for o in others)
    with pytest.raises(ValueError, match="temperature"):
        sb.generate(1, vecs, max_new_tokens=2, temperature=-1.0)
    with pytest.raises(ValueError, match="top_p"):
        sb.generate(1, vecs, max_new_tokens=2, temperature=1.0, top_p=0.0)


@pytest.mark.parametrize("kind", ["caa", "ace", "loreft", "lorest"])
def test_adapters_save_and_load_to_identical_outputs(tmp_path, kind):
    from interp.steering import ADAPTERS, load_adapter, make_adapter, save_adapter

    g = torch.Generator().manual_seed(0)
    neg = torch.randn(16, 8, generator=g)
    pos = neg + 1.0 + torch.randn(16, 8, generator=g)
    cfg = ADAPTERS[kind][1](**({"steps": 10} if kind in ("loreft", "lorest") else {}))
    fitted = make_adapter(kind, cfg).fit(neg, pos)
    save_adapter(fitted, tmp_path / kind, layer=6, hook="blocks.6.hook_resid_post")
    loaded, meta = load_adapter(tmp_path / kind)
    x = torch.randn(5, 8, generator=g)
    assert torch.equal(fitted(x), loaded(x))
    assert meta == {"layer": 6, "hook": "blocks.6.hook_resid_post"} and loaded.cfg == fitted.cfg
    with pytest.raises(RuntimeError, match="not fitted"):
        save_adapter(make_adapter(kind, cfg), tmp_path / "unfitted")
    with pytest.raises(FileNotFoundError, match="adapter.json"):
        load_adapter(tmp_path / "nothing")


def test_vectors_save_and_load(tmp_path):
    from interp.steering import load_vectors, save_vectors

    v = {"L3": torch.randn(16), "L7": torch.randn(16)}
    save_vectors(tmp_path / "v.safetensors", v, model="random:tiny-llama", layers=[3, 7])
    back, meta = load_vectors(tmp_path / "v.safetensors")
    assert all(torch.equal(back[k], v[k]) for k in v) and meta == {"model": "random:tiny-llama", "layers": [3, 7]}
    with pytest.raises(ValueError, match="NaN"):
        save_vectors(tmp_path / "bad.safetensors", {"L3": torch.full((4,), float("nan"))})
    with pytest.raises(TypeError, match="JSON"):
        save_vectors(tmp_path / "meta.safetensors", v, model=object())


def test_submodules_are_attributes_without_an_explicit_import():
    import subprocess
    import sys

    code = (
        "import interp, sys; assert 'interp.plots' not in sys.modules; "
        "interp.plots.layer_head_heatmap; interp.lens.logit_lens"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_metric_built_from_ints_names_the_argument():
    # in a plain interpreter: under pytest the jaxtyping hook type-checks the call before our message
    import subprocess
    import sys

    code = "from interp.patching import logit_diff_metric; logit_diff_metric(3, 4)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0 and "TypeError: correct=3; expected an integer tensor of token ids" in out.stderr
