"""The batched patching engine: parity with transformer_lens.patching and with naive hook
loops, prefix sharing and chunking, both directions, per-prompt positions, a planted head,
undefined recovery, error messages and hook hygiene."""

import copy
import warnings

import pytest
import torch

import interp
from interp.engine import Variant, final_logits, linear_friendly_weights, plan_chunks, run_variants
from interp.hooks import active_hook_count, replace_activation
from interp.patching import last_logits, logit_diff_metric, patch, prob_metric

CLEAN = ["The capital of France is", "The opposite of up is"]
CORR = ["The capital of Spain is", "The opposite of on is"]

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from transformer_lens import patching as tlp

TL_GRIDS = {  # (site, per_position) -> TL function; TL's head-by-pos axes are [layer, pos, head]
    ("z", False): tlp.get_act_patch_attn_head_out_all_pos,
    ("z", True): tlp.get_act_patch_attn_head_out_by_pos,
    ("resid_pre", True): tlp.get_act_patch_resid_pre,
    ("resid_mid", True): tlp.get_act_patch_resid_mid,
    ("attn_out", True): tlp.get_act_patch_attn_out,
    ("mlp_out", True): tlp.get_act_patch_mlp_out,
}


@pytest.fixture(scope="module")
def pair(tiny_model):
    clean, corr = interp.tokenize(tiny_model, CLEAN), interp.tokenize(tiny_model, CORR)
    top_clean = last_logits(tiny_model, clean).argmax(-1)
    top_corr = last_logits(tiny_model, corr).argmax(-1)
    return clean, corr, logit_diff_metric(top_clean, top_corr)


@pytest.mark.parametrize("site,per_position", list(TL_GRIDS))
def test_matches_transformer_lens(tiny_model, pair, site, per_position):
    clean, corr, metric = pair
    ours = patch(tiny_model, clean, corr, metric, site=site, per_position=per_position, progress=False)
    _, cache = tiny_model.run_with_cache(clean.tokens)
    ref = TL_GRIDS[(site, per_position)](tiny_model, corr.tokens, cache, lambda logits: metric(logits[:, -1]).mean())
    got = ours.metric.mean(-1)
    if site == "z" and per_position:
        got = got.permute(0, 2, 1)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref.cpu(), atol=1e-4, rtol=1e-4)
    assert got.std() > 1e-3  # the grid is not trivially constant


def test_chunking_and_prefix_sharing_do_not_change_results(tiny_model, pair):
    clean, corr, metric = pair
    ref = patch(tiny_model, clean, corr, metric, site="z", per_position=True, progress=False)
    tiny_budget = 1e-4  # GB: a few rows per forward, so chunks start at many different positions
    chunked = patch(
        tiny_model, clean, corr, metric, site="z", per_position=True, memory_budget_gb=tiny_budget, progress=False
    )
    torch.testing.assert_close(chunked.metric, ref.metric, atol=1e-5, rtol=1e-5)
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(tiny_model.cfg.n_layers)]
    _, cache = tiny_model.run_with_cache(clean.tokens)
    variants = [
        Variant(n, layer, pos=p, head=h)
        for layer, n in enumerate(names)
        for h in range(tiny_model.cfg.n_heads)
        for p in range(corr.tokens.shape[1])
    ]
    no_share = run_variants(
        tiny_model, corr, {n: cache[n] for n in names}, variants, metric, share_prefix=False, progress=False
    )
    torch.testing.assert_close(no_share.view_as(ref.metric), ref.metric, atol=1e-5, rtol=1e-5)


def test_plan_chunks_respects_rows_and_orders_by_layer():
    variants = [Variant(f"blocks.{layer}.attn.hook_z", layer, head=h) for layer in (2, 0, 1) for h in range(3)]
    chunks = plan_chunks(variants, batch=4, max_rows=8, min_rows=0)
    assert all(len(c) * 4 <= 8 for c in chunks)
    assert sorted(i for c in chunks for i in c) == list(range(9))
    layers = [variants[c[0]].layer for c in chunks]
    assert layers == sorted(layers)


def test_noising_matches_naive_loop(tiny_model, pair):
    clean, corr, metric = pair
    res = patch(tiny_model, clean, corr, metric, site="attn_out", per_position=True, direction="noise", progress=False)
    _, corr_cache = tiny_model.run_with_cache(corr.tokens)
    for layer in range(tiny_model.cfg.n_layers):
        name = f"blocks.{layer}.hook_attn_out"
        for pos in (0, 3, corr.tokens.shape[1] - 1):
            with replace_activation(tiny_model, name, corr_cache[name], positions=[pos]):
                expected = metric(last_logits(tiny_model, clean))
            torch.testing.assert_close(res.metric[layer, pos], expected, atol=1e-4, rtol=1e-4)
    # noising the whole residual stream before layer 0 turns the clean run into the corrupted one
    full = patch(tiny_model, clean, corr, metric, site="resid_pre", direction="noise", progress=False)
    torch.testing.assert_close(full.recovery[0], torch.zeros(2), atol=1e-4, rtol=0)


def test_per_prompt_positions_allow_different_lengths(tiny_model):
    clean = interp.tokenize(tiny_model, ["The capital of Italy is", "The big"])
    corr = interp.tokenize(tiny_model, ["The capital of France is", "The opposite of hot is"])
    assert clean.tokens.shape != corr.tokens.shape
    metric = prob_metric(last_logits(tiny_model, clean).argmax(-1))
    with pytest.raises(ValueError, match="equal shapes"):
        patch(tiny_model, clean, corr, metric, site="resid_post", progress=False)
    res = patch(
        tiny_model,
        clean,
        corr,
        metric,
        site="resid_post",
        positions=corr.last_index,
        clean_positions=clean.last_index,
        progress=False,
    )
    _, cache = tiny_model.run_with_cache(clean.tokens, attention_mask=clean.attention_mask)
    for layer in range(tiny_model.cfg.n_layers):
        name = f"blocks.{layer}.hook_resid_post"
        with replace_activation(
            tiny_model, name, cache[name], positions=corr.last_index, source_positions=clean.last_index
        ):
            expected = metric(last_logits(tiny_model, corr))
        torch.testing.assert_close(res.metric[layer], expected, atol=1e-4, rtol=1e-4)
    # the last layer's resid_post at the last token fixes the output: recovery is exactly 1
    torch.testing.assert_close(res.recovery[-1], torch.ones(2), atol=1e-4, rtol=0)


def test_padded_batches_match_naive_loop(tiny_model):
    clean = interp.tokenize(tiny_model, ["The capital of France is", "The opposite of up is", "The big"])
    corr = interp.tokenize(tiny_model, ["The capital of Spain is", "The opposite of on is", "The small"])
    assert clean.is_padded and clean.tokens.shape == corr.tokens.shape
    metric = logit_diff_metric(last_logits(tiny_model, clean).argmax(-1), last_logits(tiny_model, corr).argmax(-1))
    res = patch(tiny_model, clean, corr, metric, site="z", progress=False)
    _, cache = tiny_model.run_with_cache(clean.tokens, attention_mask=clean.attention_mask)
    for layer in range(tiny_model.cfg.n_layers):
        name = f"blocks.{layer}.attn.hook_z"
        for head in range(tiny_model.cfg.n_heads):
            with replace_activation(tiny_model, name, cache[name], heads=[head]):
                expected = metric(last_logits(tiny_model, corr))
            torch.testing.assert_close(res.metric[layer, head], expected, atol=1e-4, rtol=1e-4)


def planted_model(model, layer: int, head: int):
    """A copy of ``model`` in which only head (layer, head) writes to the residual stream, so it
    is the only route from earlier positions to the last one."""
    planted = copy.deepcopy(model)
    with torch.no_grad():
        for lyr, block in enumerate(planted.blocks):
            for h in range(planted.cfg.n_heads):
                if (lyr, h) != (layer, head):
                    block.attn.W_O[h] = 0
    return planted


def test_planted_head_is_found(tiny_model):
    model = planted_model(tiny_model, layer=1, head=2)
    clean = interp.tokenize(model, ["The opposite of up is", "The opposite of hot is"])
    corr = interp.tokenize(model, ["The opposite of big is", "The opposite of cold is"])
    assert ((clean.tokens != corr.tokens).sum(1) == 1).all()  # one differing token per pair
    shift = last_logits(model, clean) - last_logits(model, corr)  # the tokens the corruption moves most
    metric = logit_diff_metric(shift.argmax(-1), shift.argmin(-1))
    res = patch(model, clean, corr, metric, site="z", progress=False)
    assert not res.undefined.any()
    expected = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, 2)
    expected[1, 2] = 1.0
    torch.testing.assert_close(res.recovery, expected, atol=1e-4, rtol=0)
    assert res.top(1)[0][0] == (1, 2)
    # per position: only the subject token (where the prompts differ) matters in the residual
    pos = patch(model, clean, corr, metric, site="resid_pre", per_position=True, layers=[0], progress=False)
    differ = (clean.tokens != corr.tokens).nonzero()
    for b, p in differ.tolist():
        assert abs(pos.recovery[0, p, b] - 1.0) < 1e-4
    untouched = [p for p in range(clean.tokens.shape[1]) if p not in differ[:, 1].tolist()]
    assert pos.recovery[0, untouched].abs().max() < 1e-4


def test_undefined_recovery_is_nan_and_flagged(tiny_model, pair):
    clean, corr, metric = pair
    # pair 0 is identical in both runs (gap 0 -> undefined); pair 1 differs
    mixed_corr = interp.tokenize(tiny_model, [CLEAN[0], CORR[1]])
    res = patch(tiny_model, clean, mixed_corr, metric, site="z", progress=False)
    assert res.undefined.tolist() == [True, False]
    assert torch.isnan(res.recovery[..., 0]).all() and torch.isfinite(res.recovery[..., 1]).all()
    torch.testing.assert_close(res.mean_recovery(), res.recovery[..., 1])  # the mean skips undefined prompts
    est = res.estimate((0, 0))
    assert est.n == 1 and est.n_undefined == 1
    same = patch(tiny_model, clean, clean, metric, site="z", progress=False)
    assert same.undefined.all() and torch.isnan(same.mean_recovery()).all()
    assert same.top(3) == []


def test_bad_input_errors_name_the_argument(tiny_model, pair):
    clean, corr, metric = pair
    with pytest.raises(ValueError, match="site='head'"):
        patch(tiny_model, clean, corr, metric, site="head")
    with pytest.raises(ValueError, match="direction='up'"):
        patch(tiny_model, clean, corr, metric, direction="up")
    with pytest.raises(ValueError, match="layers=7 is out of range"):
        patch(tiny_model, clean, corr, metric, layers=[7])
    with pytest.raises(ValueError, match="clean has 2 prompts but corrupted has 1"):
        patch(tiny_model, clean, interp.tokenize(tiny_model, CORR[:1]), metric)
    with pytest.raises(ValueError, match="per_position=True"):
        patch(tiny_model, clean, corr, metric, per_position=True, positions=corr.last_index)
    with pytest.raises(ValueError, match="memory_budget_gb"):
        patch(tiny_model, clean, corr, metric, memory_budget_gb=0.0)
    bad = {"blocks.0.hook_resid_pre": torch.full((2, corr.tokens.shape[1], tiny_model.cfg.d_model), float("nan"))}
    with pytest.raises(ValueError, match="NaN"):
        run_variants(tiny_model, corr, bad, [Variant("blocks.0.hook_resid_pre", 0)], metric, progress=False)


def test_no_hooks_or_swapped_weights_left_after_an_error(tiny_model, pair):
    clean, corr, _ = pair
    params = {n: p for n, p in tiny_model.named_parameters()}

    def failing_metric(logits):
        raise RuntimeError("metric failed")

    failing_metric.columns = None
    with pytest.raises(RuntimeError, match="metric failed"):
        patch(tiny_model, clean, corr, failing_metric, site="z", progress=False)
    assert active_hook_count(tiny_model) == 0
    assert all(p is params[n] for n, p in tiny_model.named_parameters())


def test_linear_friendly_weights_is_bit_identical_and_restores(tiny_model, pair):
    clean, _, _ = pair
    before = last_logits(tiny_model, clean)
    params = list(tiny_model.parameters())
    with linear_friendly_weights(tiny_model):
        inside = last_logits(tiny_model, clean)
        swapped = [p for p, q in zip(tiny_model.parameters(), params) if p is not q]
        assert swapped  # gated MLP or unembedding weights were re-laid out
    assert torch.equal(before, inside)
    assert all(p is q for p, q in zip(tiny_model.parameters(), params))


def test_final_logits_columns(tiny_model, pair):
    clean, _, _ = pair
    _, cache = tiny_model.run_with_cache(clean.tokens)
    resid = cache[f"blocks.{tiny_model.cfg.n_layers - 1}.hook_resid_post"][:, -1]
    full = final_logits(tiny_model, resid)
    torch.testing.assert_close(full, tiny_model(clean.tokens)[:, -1])
    cols = torch.tensor([5, 17])
    sub = final_logits(tiny_model, resid, cols)
    torch.testing.assert_close(sub[:, cols], full[:, cols])
    assert torch.isnan(sub[:, 0]).all()


def test_component_summary_on_planted_model(tiny_model):
    from interp.patching import component_patching

    model = planted_model(tiny_model, layer=1, head=2)
    clean = interp.tokenize(model, ["The opposite of up is", "The opposite of hot is"])
    corr = interp.tokenize(model, ["The opposite of big is", "The opposite of cold is"])
    shift = last_logits(model, clean) - last_logits(model, corr)
    metric = logit_diff_metric(shift.argmax(-1), shift.argmin(-1))
    summary = component_patching(model, clean, corr, metric, n_boot=100, progress=False)
    # the answer reaches the last token only through layer 1's attention
    assert summary.peak_layers["attn_out"][0] == 1
    assert summary.estimates["attn_out"][1].mean == pytest.approx(1.0, abs=1e-4)
    assert summary.estimates["attn_out"][0].mean == pytest.approx(0.0, abs=1e-4)
    # resid at the last token carries nothing before layer 1's attention has run
    assert all(abs(e.mean) < 1e-4 for e in summary.estimates["resid_pre"])
    assert summary.results["resid_pre"].recovery.shape == (2, 2)
    assert len(summary.table()) == 3
