"""Edge graph, exact edge patching, EAP / EAP-IG and faithfulness (interp.circuits): planted
paths, identities with plain activation patching, and the graph on GQA / post-norm models."""

import pytest
import torch


def _pairs(model, n=4):
    from interp import tokenize

    clean = tokenize(model, [f"alpha beta gamma {w} delta" for w in "abcd"][:n])
    corr = tokenize(model, [f"alpha beta gamma {w} delta" for w in "dcba"][:n])
    return clean, corr


def _metric(model):
    from interp.patching import logit_diff_metric

    return logit_diff_metric(torch.tensor([5] * 4), torch.tensor([9] * 4))


@pytest.fixture(scope="module", params=["random:tiny-llama", "random:tiny-gpt2", "random:tiny-gemma3"])
def any_model(request):
    from interp import load_model

    return load_model(request.param, device="cpu")


def test_graph_counts_gqa_and_mlp_edges(tiny_llama):
    from interp.circuits import Graph

    g = Graph.of(tiny_llama)
    n, h, kv = tiny_llama.cfg.n_layers, tiny_llama.cfg.n_heads, tiny_llama.cfg.n_key_value_heads
    assert kv < h  # grouped-query attention: K/V receivers are key/value heads
    assert len(g.senders) == 1 + n * (h + 1)
    assert len(g.receivers) == n * (h + 2 * kv + 1) + 1
    names = [g.edge_name(e) for e in g.edges()]
    assert "L0H1 -> L0.mlp_in" in names and "L1H0 -> L0.mlp_in" not in names and "L0.mlp -> L0H0.q" not in names
    assert "embed -> logits" in names and "L1.mlp -> logits" in names
    assert g.n_edges == len(names)


def test_all_edges_patched_is_the_corrupted_run(any_model):
    from interp.circuits import Graph, patch_edges
    from interp.patching import last_logits

    clean, corr = _pairs(any_model)
    metric = _metric(any_model)
    g = Graph.of(any_model)
    m_all = patch_edges(any_model, g, clean, corr, g.mask, metric)
    with torch.no_grad():
        m_corr = metric(last_logits(any_model, corr)).float()
        m_clean = metric(last_logits(any_model, clean)).float()
    torch.testing.assert_close(m_all, m_corr, atol=1e-4, rtol=1e-4)
    m_none = patch_edges(any_model, g, clean, corr, torch.zeros_like(g.mask), metric)
    torch.testing.assert_close(m_none, m_clean, atol=1e-4, rtol=1e-4)


def test_edges_out_of_a_head_equal_patching_its_z(any_model):
    """Every edge out of head L0H1 patched = the head's hook_z patched from the corrupted run
    (pre-norm blocks; behind Gemma's ln1_post a z patch also rescales the other heads, which an
    edge patch by definition does not); every edge out of the layer-0 MLP = its hook_mlp_out
    patched (every block type)."""
    from interp.circuits import Graph, patch_edges
    from interp.heads import has_post_attn_norm
    from interp.hooks import act_name, capture, hooks
    from interp.patching import last_logits

    clean, corr = _pairs(any_model)
    metric = _metric(any_model)
    g = Graph.of(any_model)
    with torch.no_grad(), capture(any_model, [act_name("z", 0), act_name("mlp_out", 0)]) as acts:
        last_logits(any_model, corr)
    cases = [("L0.mlp", act_name("mlp_out", 0), lambda a, hook: acts[hook.name])]
    if not has_post_attn_norm(any_model):
        z_patch = lambda a, hook: torch.cat([a[:, :, :1], acts[hook.name][:, :, 1:2], a[:, :, 2:]], 2)  # noqa: E731
        cases.append(("L0H1", act_name("z", 0), z_patch))
    for sender, hook, patch in cases:
        si = [s.name for s in g.senders].index(sender)
        mask = torch.zeros_like(g.mask)
        mask[si] = g.mask[si]
        got = patch_edges(any_model, g, clean, corr, mask, metric)
        with torch.no_grad(), hooks(any_model, [(hook, patch)]):
            want = metric(last_logits(any_model, clean)).float()
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_batched_single_edges_equal_one_at_a_time(tiny_llama):
    from interp.circuits import Graph, edge_patching, patch_edges
    from interp.patching import last_logits

    clean, corr = _pairs(tiny_llama)
    metric = _metric(tiny_llama)
    g = Graph.of(tiny_llama)
    edges = g.edges()[::7]
    scores = edge_patching(tiny_llama, g, clean, corr, metric, edges=edges, edges_per_forward=5)
    with torch.no_grad():
        base = metric(last_logits(tiny_llama, clean)).float()
    for e, s in zip(edges[:6], scores.scores[:6]):
        one = patch_edges(tiny_llama, g, clean, corr, g.edge_mask([e]), metric)
        assert float((one - base).mean()) == pytest.approx(float(s), abs=1e-4)
    with pytest.raises(ValueError, match="not an edge"):
        edge_patching(tiny_llama, g, clean, corr, metric, edges=[(len(g.senders) - 1, 0)])
    with pytest.raises(ValueError, match="direction="):
        edge_patching(tiny_llama, g, clean, corr, metric, edges=edges[:1], direction="sideways")


def _planted():
    """Attention-only, no norms: tokens live in dims 0-5, the unembedding reads dims 6-7, and
    only head L1H0 (uniform attention: W_Q = W_K = 0) moves token information into dims 6-7.
    The whole clean–corrupted difference runs embed -> L1.V0 -> L1H0 -> logits, and the model
    is linear in every patched activation."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=2,
        d_model=8,
        n_heads=2,
        d_head=4,
        n_ctx=8,
        d_vocab=6,
        attn_only=True,
        normalization_type=None,
        positional_embedding_type="standard",
        act_fn="relu",
        seed=0,
    )
    model = HookedTransformer(cfg)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.W_E[:, :6] = torch.eye(6)
        model.W_U[6:] = 10 * torch.randn(2, 6, generator=g)
        model.blocks[1].attn.W_V[0] = torch.randn(8, 4, generator=g) * (torch.arange(8) < 6)[:, None]
        model.blocks[1].attn.W_O[0] = torch.randn(4, 8, generator=g) * (torch.arange(8) >= 6)[None]
    return model


def _planted_batches(model):
    from interp.data.tokenize import TokenBatch

    clean = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5]])
    corr = torch.tensor([[0, 1, 5, 3], [1, 2, 0, 4], [2, 3, 1, 5]])
    mk = lambda t: TokenBatch(t, torch.ones_like(t), torch.full((3,), 3), "right", ["x"] * 3)  # noqa: E731
    return mk(clean), mk(corr)


def test_planted_path_is_found_first_and_eap_equals_exact_on_a_linear_model():
    from interp.circuits import Graph, eap, edge_patching
    from interp.patching import logit_diff_metric

    model = _planted()
    clean, corr = _planted_batches(model)
    metric = logit_diff_metric(torch.tensor([0, 0, 0]), torch.tensor([1, 1, 1]))
    g = Graph.of(model)
    exact = edge_patching(model, g, clean, corr, metric)
    att = eap(model, g, clean, corr, metric)
    path = {"embed -> L1.V0", "L1H0 -> logits"}
    assert set(exact.top(2).names()) == path and set(att.top(2).names()) == path
    assert abs(float(exact.top(1).scores[0])) > 0.1
    others = [s for n, s in zip(exact.names(), exact.scores) if n not in path]
    assert max(abs(float(x)) for x in others) < 1e-5
    torch.testing.assert_close(att.scores, exact.scores, atol=1e-4, rtol=1e-4)


def test_eap_ig_approaches_the_exact_score_as_steps_grow():
    """A nonlinear metric (log-probability) on the planted model: EAP's first-order estimate of
    the L1H0 -> logits edge is off; EAP-IG's error shrinks with the number of steps."""
    from interp.circuits import Graph, eap, eap_ig, edge_patching
    from interp.patching import logprob_metric

    model = _planted()
    with torch.no_grad():
        model.W_U[6:] *= 0.25  # logits where the log-probability still curves over the path
    clean, corr = _planted_batches(model)
    metric = logprob_metric(torch.tensor([0, 0, 0]))
    g = Graph.of(model)
    edge = [e for e in g.edges() if g.edge_name(e) == "L1H0 -> logits"]
    exact = float(edge_patching(model, g, clean, corr, metric, edges=edge).scores[0])
    i = g.edges().index(edge[0])
    errors = [abs(float(eap_ig(model, g, clean, corr, metric, steps=k).scores[i]) - exact) for k in (1, 4, 32)]
    assert errors[0] > 0.05 and errors[2] < errors[1] < errors[0] and errors[2] < 0.1 * errors[0]
    # one step is EAP itself (the gradient at the clean run)
    assert float(eap(model, g, clean, corr, metric).scores[i]) == pytest.approx(
        float(eap_ig(model, g, clean, corr, metric, steps=1).scores[i]), abs=1e-6
    )


def test_eap_ig_over_activations_is_complete_and_starts_from_eap(tiny_gpt2):
    """Integrated gradients over the path that moves every edge to the corrupted run at once:
    with one step the α = 1 end adds nothing (every sender already equals its source), so the
    scores are EAP's halved; with more steps the scores sum to m(corrupted) − m(clean), the
    integral's completeness, with an error that shrinks as steps grow. (auto-circuit's
    mask-gradient IG gives the same scores: benchmarks/circuits.py compares them edge by edge.)"""
    import interp
    from interp.circuits import Graph, eap, eap_ig, sender_outputs
    from interp.patching import logit_diff_metric

    clean = interp.tokenize(tiny_gpt2, ["a b c d e f", "g h i j k l"])
    corr = interp.tokenize(tiny_gpt2, ["a b c x e f", "g h i y k l"])
    metric = logit_diff_metric(torch.tensor([5, 6]), torch.tensor([7, 8]))
    g = Graph.of(tiny_gpt2)
    one = eap_ig(tiny_gpt2, g, clean, corr, metric, steps=1, interpolate="activations")
    assert torch.allclose(one.scores, eap(tiny_gpt2, g, clean, corr, metric).scores / 2, atol=1e-6)
    gap = float((metric(sender_outputs(tiny_gpt2, g, corr)[1]) - metric(sender_outputs(tiny_gpt2, g, clean)[1])).mean())
    errors = [
        abs(float(eap_ig(tiny_gpt2, g, clean, corr, metric, steps=k, interpolate="activations").scores.sum()) - gap)
        for k in (2, 8, 32)
    ]
    assert errors[2] < errors[1] < errors[0] and errors[2] < 0.2 * errors[0]
    with pytest.raises(ValueError, match="interpolate"):
        eap_ig(tiny_gpt2, g, clean, corr, metric, interpolate="weights")


def test_path_patching_is_patch_edges_of_its_edges(any_model):
    """Path patching of each head into a set of receivers (a later head's Q/K/V, and the logits)
    equals patch_edges of exactly those edges — the batched fast path when every sender comes
    first, the one-forward-per-variant path when a sender sits after a receiver."""
    from interp.circuits import Graph, patch_edges, path_patching

    clean, corr = _pairs(any_model)
    metric = _metric(any_model)
    g = Graph.of(any_model)
    late = g.n_layers - 1
    s_idx = {s.name: i for i, s in enumerate(g.senders)}
    r_idx = {r.name: i for i, r in enumerate(g.receivers)}

    def exact(sender_names, receiver_names):
        edges = [(s_idx[s], r_idx[r]) for s in sender_names for r in receiver_names if g.mask[s_idx[s], r_idx[r]]]
        return patch_edges(any_model, g, clean, corr, g.edge_mask(edges), metric)

    result = path_patching(any_model, g, clean, corr, metric, receivers=[f"L{late}H0", "logits"])
    heads = [s.name for s in g.senders if s.kind == "head"]
    assert result.metric.shape == (len(heads), len(clean)) and result.receivers[-1] == "logits"
    assert f"L{late}H0.q" in result.receivers
    for name in heads[:: max(1, len(heads) // 4)]:
        row = [v[0] for v in result.senders].index(name)
        assert torch.allclose(result.metric[row], exact([name], result.receivers), atol=1e-4)
    # a sender after the earliest receiver (L0H0's inputs): the exact path, same contract
    pair = ["embed", f"L{late}H1"]
    mixed = path_patching(any_model, g, clean, corr, metric, receivers=["L0H0", "logits"], senders=[pair])
    assert torch.allclose(mixed.metric[0], exact(pair, mixed.receivers), atol=1e-4)
    assert mixed.top(1)[0][0] == f"embed+L{late}H1"
    with pytest.raises(ValueError, match="receivers"):
        path_patching(any_model, g, clean, corr, metric, receivers=["L99H0"])


def test_faithfulness_of_the_full_graph_and_the_planted_path():
    from interp.circuits import Graph, edge_patching, faithfulness, faithfulness_curve
    from interp.patching import logit_diff_metric

    model = _planted()
    clean, corr = _planted_batches(model)
    metric = logit_diff_metric(torch.tensor([0, 0, 0]), torch.tensor([1, 1, 1]))
    g = Graph.of(model)
    assert faithfulness(model, g, clean, corr, metric, g.edges()).mean == pytest.approx(1.0, abs=1e-5)
    assert faithfulness(model, g, clean, corr, metric, []).mean == pytest.approx(0.0, abs=1e-5)
    path = [e for e in g.edges() if g.edge_name(e) in ("embed -> L1.V0", "L1H0 -> logits")]
    assert faithfulness(model, g, clean, corr, metric, path).mean == pytest.approx(1.0, abs=1e-4)
    # one of the two path edges alone: the other is cut, nothing is left
    assert faithfulness(model, g, clean, corr, metric, path[:1]).mean == pytest.approx(0.0, abs=1e-4)
    curve = faithfulness_curve(model, g, clean, corr, metric, edge_patching(model, g, clean, corr, metric), [1, 2, 5])
    assert [n for n, _ in curve] == [1, 2, 5] and curve[1][1] == pytest.approx(1.0, abs=1e-4)


def test_split_inputs_restores_the_model_settings_when_the_body_raises(tiny_llama):
    from interp.circuits import split_inputs

    before = (tiny_llama.cfg.use_split_qkv_input, tiny_llama.cfg.use_hook_mlp_in)
    with pytest.raises(RuntimeError, match="boom"), split_inputs(tiny_llama):
        assert tiny_llama.cfg.use_split_qkv_input
        raise RuntimeError("boom")
    assert (tiny_llama.cfg.use_split_qkv_input, tiny_llama.cfg.use_hook_mlp_in) == before
    assert not any(hp.fwd_hooks for hp in tiny_llama.hook_dict.values())


def test_circuit_from_scores_keeps_the_planted_path_and_drops_dangling_edges(tmp_path):
    from interp.circuits import Graph, circuit_from_scores, edge_patching, plot_circuit, prune_dangling
    from interp.patching import logit_diff_metric

    model = _planted()
    clean, corr = _planted_batches(model)
    metric = logit_diff_metric(torch.tensor([0, 0, 0]), torch.tensor([1, 1, 1]))
    g = Graph.of(model)
    scores = edge_patching(model, g, clean, corr, metric)
    keep = circuit_from_scores(scores, 2)
    assert {g.edge_name(tuple(e)) for e in keep.nonzero().tolist()} == {"embed -> L1.V0", "L1H0 -> logits"}
    # an edge into a head whose output goes nowhere is dangling; so is one out of a head nothing feeds
    names = {g.edge_name(e): e for e in g.edges()}
    dangling = g.edge_mask([names["embed -> L0H0.q"], names["L0H1 -> logits"], names["embed -> logits"]])
    kept = prune_dangling(g, dangling)
    assert {g.edge_name(tuple(e)) for e in kept.nonzero().tolist()} == {"embed -> logits"}
    fig = plot_circuit(g, keep, scores)
    fig.savefig(tmp_path / "circuit.png")
    assert (tmp_path / "circuit.png").stat().st_size > 1000


def _split_input_grads(model, graph, batch, metric, alpha=0.0, source=None):
    """The reference for the receiver gradients: TransformerLens' own split Q/K/V inputs and
    ``hook_mlp_in``, autograd on each receiver hook (mixed towards ``source``'s receiver inputs)."""
    from interp.circuits import split_inputs

    names = {(r.layer, r.kind) for r in graph.receivers}
    hook = {"q": "hook_q_input", "k": "hook_k_input", "v": "hook_v_input", "mlp": "hook_mlp_in"}
    hook_of = lambda layer, k: (  # noqa: E731
        f"blocks.{graph.n_layers - 1}.hook_resid_post" if k == "logits" else f"blocks.{layer}.{hook[k]}"
    )
    src, grads = {}, {}
    with split_inputs(model):
        if source is not None:
            fns = [(hook_of(layer, k), lambda a, hook: src.__setitem__(hook.name, a.detach())) for layer, k in names]
            with torch.no_grad():
                model.run_with_hooks(source.tokens, fwd_hooks=fns)

        def keep(a, hook):
            if source is not None:
                a = a + alpha * (src[hook.name] - a)
            a.register_hook(lambda g, name=hook.name: grads.__setitem__(name, g))
            return a

        logits = model.run_with_hooks(batch.tokens, fwd_hooks=[(hook_of(layer, k), keep) for layer, k in names])
        rows = torch.arange(len(batch))
        metric(logits[rows, batch.last_index]).mean().backward()
    model.zero_grad(set_to_none=True)
    out = []
    for r in graph.receivers:
        g = grads[hook_of(r.layer, r.kind)]
        out.append(g if r.kind in ("mlp", "logits") else g[:, :, r.index])
    return torch.stack(out)


def test_receiver_gradients_equal_split_input_autograd(any_model):
    """The gradient pass reads Q/K/V gradients at hook_q/k/v and maps them through W and ln1's
    Jacobian instead of splitting the inputs per head: it must equal autograd through
    TransformerLens' split inputs, on GQA + RMSNorm, LayerNorm and Gemma-3's post-attention
    norm, plain and with every receiver mixed half-way to the corrupted run."""
    from interp.circuits import Graph, _receiver_grads, _sender_run

    model = any_model
    clean, corr = _pairs(model)
    metric, g = _metric(model), Graph.of(model)
    ref = _split_input_grads(model, g, clean, metric)
    ours = _receiver_grads(model, g, clean, metric)
    assert ours.shape == ref.shape and torch.allclose(ours, ref, atol=1e-5 * float(ref.abs().max()))
    src = _sender_run(model, g, corr, receiver_inputs=True)[2]
    ref = _split_input_grads(model, g, clean, metric, alpha=0.5, source=corr)
    ours = _receiver_grads(model, g, clean, metric, mix=(0.5, src))
    assert torch.allclose(ours, ref, atol=1e-5 * float(ref.abs().max()))
    assert all(p.grad is None for p in model.parameters())


def test_gradient_pass_restores_weights_and_hooks_when_the_metric_raises(tiny_llama):
    from interp.circuits import Graph, eap

    clean, corr = _pairs(tiny_llama)
    flags = [p.requires_grad for p in tiny_llama.parameters()]

    def bad(last):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        eap(tiny_llama, Graph.of(tiny_llama), clean, corr, lambda last: bad(last) if last.requires_grad else last[:, 0])
    assert [p.requires_grad for p in tiny_llama.parameters()] == flags
    assert not any(hp.fwd_hooks for hp in tiny_llama.hook_dict.values())
    assert not any(b.ln1._forward_pre_hooks for b in tiny_llama.blocks)
    assert not tiny_llama.cfg.use_hook_mlp_in


def test_faithfulness_ci_resamples_the_gap_with_the_circuit():
    """The CI of a pooled faithfulness share: it holds the point estimate, narrows with more
    prompts, is the same for a metric that falls from clean to corrupted (signs flipped), and is
    undefined when the gap is 0."""
    import math

    from interp.circuits import Faithfulness

    g = torch.Generator().manual_seed(0)

    def make(n, sign=1.0):
        clean = sign * (2.0 + torch.rand(n, generator=g))
        corr = torch.zeros(n)
        circ = 0.7 * clean + sign * 0.3 * torch.randn(n, generator=g)
        return Faithfulness(circ, clean, corr, torch.full((n,), float("nan")), 10)

    small, big = make(8), make(400)
    for f in (small, big):
        lo, hi = f.ci()
        assert lo <= f.mean <= hi
    assert big.ci()[1] - big.ci()[0] < 0.5 * (small.ci()[1] - small.ci()[0])
    assert abs(big.mean - 0.7) < 0.05
    flipped = make(8, sign=-1.0)
    assert flipped.ci()[0] <= flipped.mean <= flipped.ci()[1] and 0.3 < flipped.mean < 1.1
    zero = Faithfulness(torch.ones(4), torch.zeros(4), torch.zeros(4), torch.zeros(4), 1)
    assert all(math.isnan(x) for x in zero.ci())
