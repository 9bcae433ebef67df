"""Hook managers on tiny random models (one GQA, one GPT-2 style)."""

import pytest
import torch

import interp
from interp.hooks import (
    active_hook_count,
    add_vector,
    capture,
    hooks,
    mean_ablate,
    mean_activation,
    replace_activation,
    zero_ablate,
)

PROMPTS = ["The capital of France is", "hot cold", "The opposite of up is down and"]


def test_capture_only_named(tiny_model):
    b = interp.tokenize(tiny_model, PROMPTS)
    with capture(tiny_model, [("resid_post", 0), "blocks.1.attn.hook_z"]) as acts:
        interp.run_batch(tiny_model, b)
    assert set(acts) == {"blocks.0.hook_resid_post", "blocks.1.attn.hook_z"}
    assert acts["blocks.1.attn.hook_z"].shape == (3, b.tokens.shape[1], tiny_model.cfg.n_heads, tiny_model.cfg.d_head)
    _, cache = tiny_model.run_with_cache(b.tokens, attention_mask=b.attention_mask)
    torch.testing.assert_close(acts["blocks.0.hook_resid_post"], cache["blocks.0.hook_resid_post"])


@pytest.mark.parametrize("side", ["left", "right"])
def test_capture_last_token_with_padding(tiny_model, side):
    b = interp.tokenize(tiny_model, PROMPTS, padding_side=side)
    with capture(tiny_model, [("resid_post", 1)], positions=b.last_index) as acts:
        interp.run_batch(tiny_model, b)
    for i, p in enumerate(PROMPTS):  # each prompt alone, unpadded
        _, cache = tiny_model.run_with_cache(interp.tokenize(tiny_model, [p]).tokens)
        torch.testing.assert_close(
            acts["blocks.1.hook_resid_post"][i, 0], cache["blocks.1.hook_resid_post"][0, -1], atol=1e-4, rtol=1e-4
        )


def test_add_vector_per_prompt_positions(tiny_model):
    b = interp.tokenize(tiny_model, PROMPTS, padding_side="left")
    v = torch.randn(tiny_model.cfg.d_model)
    name = "blocks.0.hook_resid_post"
    with capture(tiny_model, [name]) as base:
        interp.run_batch(tiny_model, b)
    with (
        add_vector(tiny_model, ("resid_post", 0), v, positions=b.last_index, scale=2.0),
        capture(tiny_model, [name]) as acts,
    ):
        interp.run_batch(tiny_model, b)
    delta = acts[name] - base[name]
    torch.testing.assert_close(delta[:, -1], (2 * v).expand(3, -1))
    assert delta[:, :-1].abs().max() == 0  # nothing else moved


def test_add_vector_per_prompt_values(tiny_model):
    toks = interp.tokenize(tiny_model, PROMPTS[:2]).tokens
    v = torch.randn(2, tiny_model.cfg.d_model)
    name = "blocks.1.hook_resid_pre"
    with capture(tiny_model, [name]) as base:
        tiny_model(toks)
    with add_vector(tiny_model, name, v, positions=[0]), capture(tiny_model, [name]) as acts:
        tiny_model(toks)
    torch.testing.assert_close((acts[name] - base[name])[:, 0], v)


def test_replace_from_cache_restores_clean_run(tiny_model):
    clean = interp.tokenize(tiny_model, ["The capital of France is"]).tokens
    corr = interp.tokenize(tiny_model, ["The capital of Spain is"]).tokens
    assert clean.shape == corr.shape
    clean_logits, cache = tiny_model.run_with_cache(clean)
    with replace_activation(tiny_model, ("resid_pre", 0), cache["blocks.0.hook_resid_pre"]):
        patched = tiny_model(corr)
    torch.testing.assert_close(patched, clean_logits)


def test_replace_single_head_matches_manual(tiny_model):
    toks = interp.tokenize(tiny_model, PROMPTS[:2]).tokens
    name = "blocks.1.attn.hook_z"
    src = torch.randn(2, toks.shape[1], tiny_model.cfg.n_heads, tiny_model.cfg.d_head)

    def manual(z, hook):
        z = z.clone()
        z[:, -1, 2] = src[:, -1, 2]
        return z

    with hooks(tiny_model, [(name, manual)]):
        expected = tiny_model(toks)
    with replace_activation(tiny_model, name, src, positions=-1, heads=[2]):
        got = tiny_model(toks)
    torch.testing.assert_close(got, expected)


def test_replace_with_different_lengths_per_prompt_positions(tiny_model):
    short = interp.tokenize(tiny_model, ["hot cold"])
    long = interp.tokenize(tiny_model, ["The opposite of up is down and"])
    name = "blocks.0.hook_resid_post"
    with capture(tiny_model, [name]) as src:
        interp.run_batch(tiny_model, short)
    with (
        replace_activation(tiny_model, name, src[name], positions=long.last_index, source_positions=short.last_index),
        capture(tiny_model, [name]) as got,
    ):
        interp.run_batch(tiny_model, long)
    torch.testing.assert_close(got[name][0, -1], src[name][0, -1])
    with pytest.raises(ValueError, match="pass per-prompt positions"):
        with replace_activation(tiny_model, name, src[name]):
            interp.run_batch(tiny_model, long)


def test_gqa_kv_heads(tiny_llama):
    toks = interp.tokenize(tiny_llama, PROMPTS[:1]).tokens
    with capture(tiny_llama, ["blocks.0.attn.hook_v", "blocks.0.attn.hook_z"]) as acts:
        tiny_llama(toks)
    assert acts["blocks.0.attn.hook_v"].shape[2] == tiny_llama.cfg.n_key_value_heads == 2
    assert acts["blocks.0.attn.hook_z"].shape[2] == tiny_llama.cfg.n_heads == 4
    with (
        zero_ablate(tiny_llama, "blocks.0.attn.hook_v", heads=[1]),
        capture(tiny_llama, ["blocks.0.attn.hook_v"]) as a2,
    ):
        tiny_llama(toks)
    assert a2["blocks.0.attn.hook_v"][:, :, 1].abs().max() == 0 and a2["blocks.0.attn.hook_v"][:, :, 0].abs().max() > 0
    with pytest.raises(ValueError, match="heads=.*out of range.*2 heads"):
        with zero_ablate(tiny_llama, "blocks.0.attn.hook_v", heads=[3]):
            tiny_llama(toks)


def test_zero_and_mean_ablate(tiny_model):
    b = interp.tokenize(tiny_model, PROMPTS, padding_side="right")
    name = "blocks.0.hook_mlp_out"
    mean = mean_activation(tiny_model, b.tokens, name, attention_mask=b.attention_mask)
    assert mean.shape == (tiny_model.cfg.d_model,)
    with zero_ablate(tiny_model, name), capture(tiny_model, [name]) as z:
        interp.run_batch(tiny_model, b)
    assert z[name].abs().max() == 0
    with mean_ablate(tiny_model, name, mean, positions=b.last_index), capture(tiny_model, [name]) as m:
        interp.run_batch(tiny_model, b)
    rows = torch.arange(3)
    torch.testing.assert_close(m[name][rows, b.last_index], mean.expand(3, -1))


MANAGERS = {
    "add_vector": lambda m: add_vector(m, ("resid_post", 0), torch.ones(m.cfg.d_model)),
    "replace_activation": lambda m: replace_activation(m, ("attn_out", 1), torch.zeros(m.cfg.d_model)),
    "zero_ablate": lambda m: zero_ablate(m, "blocks.0.attn.hook_z", heads=0),
    "mean_ablate": lambda m: mean_ablate(m, ("mlp_out", 0), torch.zeros(m.cfg.d_model)),
    "capture": lambda m: capture(m, [("resid_pre", 1)]),
    "hooks": lambda m: hooks(m, [("blocks.0.hook_resid_pre", lambda a, hook: a)]),
}


@pytest.mark.parametrize("manager", sorted(MANAGERS))
def test_no_hooks_left_after_exception(tiny_llama, manager):
    toks = interp.tokenize(tiny_llama, PROMPTS[:1]).tokens
    assert active_hook_count(tiny_llama) == 0
    with pytest.raises(RuntimeError, match="boom"):
        with MANAGERS[manager](tiny_llama):
            tiny_llama(toks)
            assert active_hook_count(tiny_llama) > 0
            raise RuntimeError("boom")
    assert active_hook_count(tiny_llama) == 0


def test_exception_inside_hook_also_cleans_up(tiny_llama):
    def bad(act, hook):
        raise ValueError("inside hook")

    with pytest.raises(ValueError, match="inside hook"):
        with hooks(tiny_llama, [("blocks.0.hook_resid_pre", bad)]):
            tiny_llama(interp.tokenize(tiny_llama, PROMPTS[:1]).tokens)
    assert active_hook_count(tiny_llama) == 0


def test_nested_managers_keep_outer_hooks(tiny_llama):
    with capture(tiny_llama, [("resid_pre", 0)]):
        with add_vector(tiny_llama, ("resid_pre", 0), torch.ones(tiny_llama.cfg.d_model)):
            assert active_hook_count(tiny_llama) == 2
        assert active_hook_count(tiny_llama) == 1
    assert active_hook_count(tiny_llama) == 0


def test_bad_hook_point_and_layer(tiny_llama):
    with pytest.raises(ValueError, match=r"hook='blocks.0.hook_resid_psot'.*not a hook point"):
        with capture(tiny_llama, ["blocks.0.hook_resid_psot"]):
            pass
    with pytest.raises(ValueError, match=r"layer=7 is out of range; this model has n_layers=2"):
        with add_vector(tiny_llama, ("resid_post", 7), torch.ones(64)):
            pass
    with pytest.raises(ValueError, match="out of range"):
        interp.check_layer(tiny_llama, -3)


def test_nan_vector_rejected(tiny_llama):
    v = torch.ones(tiny_llama.cfg.d_model)
    v[3] = float("nan")
    with pytest.raises(ValueError, match="vector contains NaN"):
        with add_vector(tiny_llama, ("resid_post", 0), v):
            pass
    assert active_hook_count(tiny_llama) == 0


def test_wrong_vector_shape(tiny_llama):
    with pytest.raises(ValueError, match=r"vector has shape \(5,\); expected \(64,\)"):
        with add_vector(tiny_llama, ("resid_post", 0), torch.ones(5)):
            tiny_llama(interp.tokenize(tiny_llama, PROMPTS[:1]).tokens)
    assert active_hook_count(tiny_llama) == 0


def test_top_level_conveniences_and_capture_by_site_and_layer(tiny_llama, capsys):
    import interp

    batch = interp.tokenize(tiny_llama, ["hello there", "hi"])
    with interp.capture(tiny_llama, [interp.act_name("resid_post", 1)]) as acts:
        logits = interp.last_logits(tiny_llama, batch)
    assert logits.shape == (2, tiny_llama.cfg.d_vocab)
    assert acts["resid_post", 1] is acts["blocks.1.hook_resid_post"]
    with pytest.raises(KeyError, match="was not captured"):
        acts["resid_post", 0]
    row = interp.str_tokens(tiny_llama, batch, 1)
    assert row[int(batch.last_index[1])] == interp.str_tokens(tiny_llama, interp.tokenize(tiny_llama, ["hi"]))[-1]
    assert interp.single_token_ids(tiny_llama, ["a"]).shape == (1,)
    capsys.readouterr()
    interp.load_model("random:tiny-gpt2", device="cpu")
    assert "Moving model to device" not in capsys.readouterr().out
