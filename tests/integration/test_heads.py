"""Per-head residual contributions (interp.heads): with the post-attention norm's scale from the
same run, the heads plus the bias term are exactly hook_attn_out — on a pre-norm model, on a
random Gemma-3-style model (RMSNorm after attention) and on Gemma-3-270M itself."""

import pytest
import torch

import interp
from interp.function_vectors import function_vector
from interp.heads import attn_bias_contribution, has_post_attn_norm, head_contributions, post_attn_scales
from interp.hooks import act_name, capture

PROMPTS = ["The opposite of hot is", "When Mary and John went to the store, John gave a drink to"]


def _check_decomposition(model, tol=1e-5):
    """Per position, ‖Σ heads + bias − hook_attn_out‖ ≤ tol · ‖hook_attn_out‖ (float32 on both
    sides, summed in different orders: an element-wise bound would test round-off)."""
    batch = interp.tokenize(model, PROMPTS)
    names = [act_name(s, layer) for layer in range(model.cfg.n_layers) for s in ("z", "attn_out")]
    if has_post_attn_norm(model):
        names += [act_name("ln1_post.hook_scale", layer) for layer in range(model.cfg.n_layers)]
    with capture(model, names) as acts, torch.no_grad():
        interp.run_batch(model, batch)
    for layer in range(model.cfg.n_layers):
        scale = acts[act_name("ln1_post.hook_scale", layer)][..., 0] if has_post_attn_norm(model) else None
        heads = head_contributions(model, layer, acts[act_name("z", layer)], scale)  # [batch pos head d_model]
        total = heads.sum(-2) + attn_bias_contribution(model, layer, scale)
        ref = acts[act_name("attn_out", layer)].float()
        rel = (total - ref).norm(dim=-1) / ref.norm(dim=-1).clamp_min(1e-12)
        assert float(rel.max()) <= tol, (layer, float(rel.max()))


@pytest.mark.parametrize("name", ["random:tiny-llama", "random:tiny-gpt2", "random:tiny-gemma3"])
def test_heads_plus_bias_equal_attn_out(name):
    _check_decomposition(interp.load_model(name, device="cpu"))


def test_function_vector_goes_through_the_post_norm():
    """On a post-norm model the FV needs the frozen scale; with scale s it is Σ (ā W_O)/s·w, and
    the plain ā W_O sum (the old FV) differs from it."""
    model = interp.load_model("random:tiny-gemma3", device="cpu")
    g = torch.Generator().manual_seed(0)
    mean_z = torch.randn(model.cfg.n_layers, model.cfg.n_heads, model.cfg.d_head, generator=g)
    heads = [(0, 1), (1, 3)]
    with pytest.raises(ValueError, match="post_scale"):
        function_vector(model, mean_z, heads)
    scale = post_attn_scales(model, interp.tokenize(model, PROMPTS)).mean(1)
    fv = function_vector(model, mean_z, heads, scale)
    expect = sum(
        (mean_z[ly, h] @ model.blocks[ly].attn.W_O[h].detach()) / scale[ly] * model.blocks[ly].ln1_post.w.detach()
        for ly, h in heads
    )
    torch.testing.assert_close(fv, expect, rtol=1e-5, atol=1e-5)
    plain = sum(mean_z[ly, h] @ model.blocks[ly].attn.W_O[h].detach() for ly, h in heads)
    assert not torch.allclose(fv, plain, rtol=0.05)


@pytest.mark.slow
def test_heads_plus_bias_equal_attn_out_on_gemma():
    _check_decomposition(interp.load_model("gemma-3-270m", device="cpu"))
