"""Head patching: parity with transformer_lens.patching and a naive loop; planted signal."""

import warnings

import pytest
import torch

import interp
from interp.hooks import replace_activation
from interp.patching import last_logits, logit_diff_metric, patch_heads

CLEAN = ["The capital of France is", "The opposite of up is"]
CORR = ["The capital of Spain is", "The opposite of on is"]


@pytest.fixture(scope="module")
def pair(tiny_model):
    clean, corr = interp.tokenize(tiny_model, CLEAN), interp.tokenize(tiny_model, CORR)
    assert clean.tokens.shape == corr.tokens.shape
    top_clean = last_logits(tiny_model, clean).argmax(-1)
    top_corr = last_logits(tiny_model, corr).argmax(-1)
    return clean, corr, logit_diff_metric(top_clean, top_corr)


def test_matches_transformer_lens_patching(tiny_model, pair):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from transformer_lens import patching as tl_patching
    clean, corr, metric = pair
    ours = patch_heads(tiny_model, clean, corr, metric, progress=False)
    _, clean_cache = tiny_model.run_with_cache(clean.tokens)
    tl = tl_patching.get_act_patch_attn_head_out_all_pos(
        tiny_model, corr.tokens, clean_cache, lambda logits: metric(logits[:, -1]).mean()
    )
    torch.testing.assert_close(ours.metric.mean(-1), tl.cpu(), atol=1e-4, rtol=1e-4)


def test_matches_naive_loop(tiny_model, pair):
    clean, corr, metric = pair
    ours = patch_heads(tiny_model, clean, corr, metric, progress=False)
    _, cache = tiny_model.run_with_cache(clean.tokens)
    for layer in range(tiny_model.cfg.n_layers):
        for head in range(tiny_model.cfg.n_heads):
            name = f"blocks.{layer}.attn.hook_z"
            with replace_activation(tiny_model, name, cache[name], heads=[head]):
                expected = metric(last_logits(tiny_model, corr))
            torch.testing.assert_close(ours.metric[layer, head], expected, atol=1e-4, rtol=1e-4)


def test_planted_recovery_bounds(tiny_model, pair):
    clean, corr, metric = pair
    res = patch_heads(tiny_model, clean, corr, metric, progress=False)
    torch.testing.assert_close(res.m_clean, metric(last_logits(tiny_model, clean)))
    # patching the same prompt into itself changes nothing: the gap is zero, recovery undefined
    same = patch_heads(tiny_model, clean, clean, metric, progress=False)
    assert same.undefined.all() and torch.isnan(same.recovery).all()
