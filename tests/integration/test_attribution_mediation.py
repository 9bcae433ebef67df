"""Attribution patching (gradient check, planted head, grid shapes) and causal mediation
(CIE against a naive hook loop, ICL prompt pairing)."""

import pytest
import torch

import interp
from interp.attribution import attribution_patching
from interp.hooks import act_name, hooks, replace_activation
from interp.mediation import causal_indirect_effect, first_token_ids, icl_prompts, mean_head_outputs
from interp.patching import last_logits, logit_diff_metric, patch

CLEAN = ["The opposite of up is", "The opposite of hot is"]
CORR = ["The opposite of big is", "The opposite of cold is"]


@pytest.fixture(scope="module")
def pair(tiny_model):
    clean, corr = interp.tokenize(tiny_model, CLEAN), interp.tokenize(tiny_model, CORR)
    shift = last_logits(tiny_model, clean) - last_logits(tiny_model, corr)
    return clean, corr, logit_diff_metric(shift.argmax(-1), shift.argmin(-1))


def _metric_with_delta(model, batch, metric, name, delta, eps):
    def fn(act, hook):
        return act + eps * delta.to(act)

    with torch.no_grad(), hooks(model, [(name, fn)]):
        return metric(last_logits(model, batch))


@pytest.mark.parametrize("site", ["resid_pre", "attn_out", "mlp_out", "z"])
def test_attribution_is_the_directional_derivative(tiny_model, pair, site):
    """Δm ≈ (a_clean − a_corr)·∂m/∂a: check it against central finite differences along the
    same direction, computed with plain hooks (no shared code with the gradient path)."""
    clean, corr, metric = pair
    attr = attribution_patching(tiny_model, clean, corr, metric, sites=[site])[site]
    _, clean_cache = tiny_model.run_with_cache(clean.tokens)
    _, corr_cache = tiny_model.run_with_cache(corr.tokens)
    # the finite differences in float64: in float32 their round-off (~1e-7·|m| / eps) is as large
    # as the tolerance on small gradients
    import copy

    model64 = copy.deepcopy(tiny_model).to(torch.float64)
    eps = 1e-3
    for layer in range(tiny_model.cfg.n_layers):
        name = act_name(site, layer)
        delta = clean_cache[name] - corr_cache[name]
        if site == "z":  # one head: zero the direction on the other heads
            head = 1
            delta = delta * (torch.arange(tiny_model.cfg.n_heads) == head)[None, None, :, None]
        plus = _metric_with_delta(model64, corr, metric, name, delta.double(), eps)
        minus = _metric_with_delta(model64, corr, metric, name, delta.double(), -eps)
        fd = (plus - minus) / (2 * eps)
        got = attr.metric[layer, head] if site == "z" else attr.metric[layer]
        torch.testing.assert_close(got - attr.m_corr, fd.float(), atol=2e-3, rtol=2e-2)


def test_attribution_grids_match_exact_patching_shapes(tiny_model, pair):
    clean, corr, metric = pair
    attr = attribution_patching(tiny_model, clean, corr, metric, per_position=True)
    for site, res in attr.items():
        exact = patch(tiny_model, clean, corr, metric, site=site, per_position=True, progress=False)
        assert res.axes == exact.axes and res.metric.shape == exact.metric.shape
        torch.testing.assert_close(res.m_corr, exact.m_corr, atol=1e-4, rtol=1e-4)
        assert res.method == "attribution"
    # summing the per-position estimates gives the all-position estimate (linearity)
    allpos = attribution_patching(tiny_model, clean, corr, metric, sites=["z"])["z"]
    torch.testing.assert_close(
        (attr["z"].metric - attr["z"].m_corr).sum(2), allpos.metric - allpos.m_corr, atol=1e-4, rtol=1e-4
    )


def test_attribution_finds_the_planted_head(tiny_model):
    from tests.integration.test_patching_engine import planted_model

    model = planted_model(tiny_model, layer=1, head=2)
    clean, corr = interp.tokenize(model, CLEAN), interp.tokenize(model, CORR)
    shift = last_logits(model, clean) - last_logits(model, corr)
    metric = logit_diff_metric(shift.argmax(-1), shift.argmin(-1))
    res = attribution_patching(model, clean, corr, metric, sites=["z"])["z"]
    delta = (res.metric - res.m_corr).abs().mean(-1)  # [layer head]
    others = torch.ones_like(delta, dtype=torch.bool)
    others[1, 2] = False
    assert delta[others].max() < 1e-5  # heads that write nothing get no attribution
    assert delta[1, 2] > 1e-2


@pytest.fixture(scope="module")
def icl(tiny_model):
    pairs = [
        {"input": a, "output": b}
        for a, b in [
            ("hot", "cold"),
            ("up", "down"),
            ("big", "small"),
            ("in", "out"),
            ("on", "off"),
            ("cold", "hot"),
            ("down", "up"),
            ("small", "big"),
        ]
    ]
    clean = icl_prompts(pairs, n_prompts=4, n_shots=3, seed=3)
    corr = icl_prompts(pairs, n_prompts=4, n_shots=3, seed=3, shuffle_labels=True)
    return clean, corr


def test_icl_prompts_pair_up(icl):
    clean, corr = icl
    assert clean.queries == corr.queries and clean.answers == corr.answers
    for c, s in zip(clean.prompts, corr.prompts):
        assert [line for line in c.splitlines() if line.startswith("Q:")] == [
            line for line in s.splitlines() if line.startswith("Q:")
        ]
        assert c.endswith("A:") and s.endswith("A:")
    assert any(c != s for c, s in zip(clean.prompts, corr.prompts))  # labels were shuffled somewhere
    with pytest.raises(ValueError, match="at least 5"):
        icl_prompts([{"input": "a", "output": "b"}] * 4, n_prompts=1, n_shots=4)


def test_cie_matches_naive_loop(tiny_model, icl):
    clean_p, corr_p = icl
    clean, corr = interp.tokenize(tiny_model, clean_p.prompts), interp.tokenize(tiny_model, corr_p.prompts)
    answers = first_token_ids(tiny_model, clean_p.answers)
    mean_z = mean_head_outputs(tiny_model, clean)
    res = causal_indirect_effect(tiny_model, corr, answers, mean_z, progress=False)
    assert res.cie.shape == (tiny_model.cfg.n_layers, tiny_model.cfg.n_heads)
    rows = torch.arange(len(corr))
    for layer in range(tiny_model.cfg.n_layers):
        for head in range(tiny_model.cfg.n_heads):
            with replace_activation(
                tiny_model, f"blocks.{layer}.attn.hook_z", mean_z[layer], positions=corr.last_index, heads=[head]
            ):
                p = last_logits(tiny_model, corr).softmax(-1)[rows, answers]
            torch.testing.assert_close(res.per_prompt[layer, head], p - res.p_corrupted, atol=1e-5, rtol=1e-4)
    top = res.top(3)
    assert top[0][2] == pytest.approx(float(res.cie.max()))
    with pytest.raises(ValueError, match="mean_z has shape"):
        causal_indirect_effect(tiny_model, corr, answers, mean_z[:1], progress=False)
