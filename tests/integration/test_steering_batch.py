"""SteeringBatch: many steered runs from one cached prefix must equal one hooked forward per
prompt and vector (or adapter), at every layer; vectors from prompts."""

import pytest
import torch

import interp
from interp.function_vectors import steered_accuracy, task_vectors
from interp.hooks import act_name, active_hook_count, add_vector, hooks
from interp.steering import SteeringBatch, last_token_residuals, mean_difference_vectors

PROMPTS = ["Q: hot\nA:", "Q: big\nA:", "Q: up\nA:"]


def test_steering_batch_equals_one_full_forward_per_prompt_and_vector(tiny_model):
    """SteeringBatch recomputes only the last position from the steered layer on, from cached
    keys/values of a left-padded batch; the predictions must equal a plain forward of each
    prompt alone with the vector added by the add_vector hook — at every layer."""
    prompts = ["Q: hot\nA:", "Q: a much longer question here\nA:", "x"]
    g = torch.Generator().manual_seed(3)
    vectors = torch.randn(3, tiny_model.cfg.d_model, generator=g) * 3
    answers = torch.zeros(len(prompts), dtype=torch.long)
    sb = SteeringBatch(tiny_model, interp.tokenize(tiny_model, prompts, padding_side="left"), answers, max_rows=4)
    for layer in range(tiny_model.cfg.n_layers):
        got = sb.predictions(layer, vectors)
        for v in range(len(vectors)):
            for p, prompt in enumerate(prompts):
                one = interp.tokenize(tiny_model, [prompt])
                with add_vector(tiny_model, act_name("resid_post", layer), vectors[v], positions=one.last_index):
                    want = int(tiny_model(one.tokens)[0, -1].argmax())
                assert int(got[v, p]) == want, (layer, v, p)
    assert sb.accuracy(0, vectors).shape == (3, 3)
    right = interp.tokenize(tiny_model, prompts)
    plain = tiny_model(right.tokens, attention_mask=right.attention_mask)[torch.arange(3), right.last_index].argmax(-1)
    own = SteeringBatch(tiny_model, interp.tokenize(tiny_model, prompts, padding_side="left"), plain)
    assert own.baseline_accuracy().tolist() == [1.0, 1.0, 1.0]  # the unsteered prediction is the plain forward's
    cols = torch.tensor([3, 1])
    full = sb.logits(1, vectors)
    torch.testing.assert_close(sb.logits(1, vectors, columns=cols), full[:, :, cols])
    # built outside no_grad: it must not keep an autograd graph of the batch's activations
    assert not sb.last_resid.requires_grad and not sb.prefix.entries[0].past_keys.requires_grad
    layer = tiny_model.cfg.n_layers // 2
    got = sb.predictions(layer, vectors, mode="replace")
    for v in range(len(vectors)):
        one = interp.tokenize(tiny_model, prompts, padding_side="left")
        want = steered_accuracy(tiny_model, one, got[v], layer, vectors[v], mode="replace")
        assert want.tolist() == [1.0] * len(prompts)
    assert active_hook_count(tiny_model) == 0


def test_steering_batch_errors(tiny_llama):
    batch = interp.tokenize(tiny_llama, PROMPTS + ["a longer prompt than the rest"])
    with pytest.raises(ValueError, match="left-padded"):
        SteeringBatch(tiny_llama, batch, torch.zeros(4, dtype=torch.long))
    sb = SteeringBatch(
        tiny_llama, interp.tokenize(tiny_llama, PROMPTS, padding_side="left"), torch.zeros(3, dtype=torch.long)
    )
    with pytest.raises(ValueError, match="vectors has shape"):
        sb.predictions(0, torch.zeros(1, tiny_llama.cfg.d_model + 1))
    with pytest.raises(ValueError, match="NaN"):
        sb.predictions(0, torch.full((1, tiny_llama.cfg.d_model), float("nan")))
    with pytest.raises(ValueError, match="layer=9 is out of range"):
        sb.predictions(9, torch.zeros(1, tiny_llama.cfg.d_model))
    with pytest.raises(TypeError, match="steer"):
        sb.predictions(0, [0.0] * tiny_llama.cfg.d_model)
    no_answers = SteeringBatch(tiny_llama, interp.tokenize(tiny_llama, PROMPTS, padding_side="left"))
    assert no_answers.predictions(0, torch.zeros(2, tiny_llama.cfg.d_model)).shape == (2, 3)
    with pytest.raises(ValueError, match="no answer_ids"):
        no_answers.accuracy(0, torch.zeros(1, tiny_llama.cfg.d_model))


def test_steering_batch_holds_the_fast_weight_layout_and_restores_it(tiny_llama):
    """Inside ``with sb:`` the transposed weights stay swapped across calls (same numbers);
    on exit every original Parameter is back, also when the body raises."""
    from interp.engine import swapped_weight_bytes

    sb = SteeringBatch(tiny_llama, interp.tokenize(tiny_llama, PROMPTS, padding_side="left"))
    v = torch.randn(2, tiny_llama.cfg.d_model, generator=torch.Generator().manual_seed(0))
    outside = sb.logits(1, v)
    assert swapped_weight_bytes(tiny_llama) == 0
    with sb:
        assert swapped_weight_bytes(tiny_llama) > 0
        torch.testing.assert_close(sb.logits(1, v), outside, rtol=0, atol=0)
    assert swapped_weight_bytes(tiny_llama) == 0
    with pytest.raises(KeyError), sb:
        raise KeyError("boom")
    assert swapped_weight_bytes(tiny_llama) == 0


def test_mean_difference_vectors_are_the_difference_of_task_vectors(tiny_model):
    pos = interp.tokenize(
        tiny_model, ["Q: cold\nA: hot\n\nQ: up\nA:", "Q: big\nA: small\n\nQ: in\nA:"], padding_side="left"
    )
    neg = interp.tokenize(
        tiny_model, ["Q: cold\nA: small\n\nQ: up\nA:", "Q: big\nA: hot\n\nQ: in\nA:"], padding_side="left"
    )
    diff = mean_difference_vectors(tiny_model, pos, neg, layers=[0, 1])
    torch.testing.assert_close(diff, task_vectors(tiny_model, pos, [0, 1]) - task_vectors(tiny_model, neg, [0, 1]))
    per = last_token_residuals(tiny_model, pos, [0, 1]) - last_token_residuals(
        tiny_model, neg, [0, 1]
    )  # [batch layer d_model]
    torch.testing.assert_close(per.mean(0), diff, rtol=1e-5, atol=1e-5)


def test_steering_batch_generate_equals_naive_steered_greedy_decoding(tiny_model):
    """Greedy decoding from the shared prefix cache equals decoding each prompt alone with full
    forwards, the vector added at the last prompt token and every generated token."""
    from interp.hooks import hooks

    prompts = ["Q: hot\nA:", "Q: a much longer question here\nA:"]
    g = torch.Generator().manual_seed(5)
    vectors = torch.randn(2, tiny_model.cfg.d_model, generator=g) * 2
    sb = SteeringBatch(
        tiny_model,
        interp.tokenize(tiny_model, prompts, padding_side="left"),
        torch.zeros(2, dtype=torch.long),
        max_rows=2,
    )
    for layer in (0, tiny_model.cfg.n_layers - 1):
        got = sb.generate(layer, vectors, max_new_tokens=4)
        assert got.shape == (2, 2, 4)
        for v in range(2):
            for p, prompt in enumerate(prompts):
                toks = interp.tokenize(tiny_model, [prompt]).tokens
                start = toks.shape[1] - 1

                def add(act, hook, vec=vectors[v], start=start):
                    act[:, start:] += vec.to(act)
                    return act

                for _ in range(4):
                    with hooks(tiny_model, [(act_name("resid_post", layer), add)]), torch.no_grad():
                        nxt = tiny_model(toks)[0, -1].argmax()
                    toks = torch.cat([toks, nxt.view(1, 1)], 1)
                assert got[v, p].tolist() == toks[0, -4:].tolist(), (layer, v, p)
    assert active_hook_count(tiny_model) == 0


def test_steering_batch_generate_with_an_adapter_equals_naive_adapter_decoding(tiny_model):
    """Any adapter (here ACE, a projection, not a shift) through the shared prefix cache gives
    the same greedy tokens as full forwards with the adapter hooked at the last prompt token and
    every generated token; a CAA adapter gives what ``generate`` gives for its scaled vector."""
    from interp.steering import ACE, CAA, ACEConfig, CAAConfig

    prompts = ["Q: hot\nA:", "Q: a much longer question here\nA:"]
    g = torch.Generator().manual_seed(6)
    d = tiny_model.cfg.d_model
    neg, pos = torch.randn(16, d, generator=g), torch.randn(16, d, generator=g) + 3 * torch.randn(d, generator=g)
    ace = ACE(ACEConfig(alpha=2.0)).fit(neg, pos)
    sb = SteeringBatch(
        tiny_model, interp.tokenize(tiny_model, prompts, padding_side="left"), torch.zeros(2, dtype=torch.long)
    )
    layer = 1
    got = sb.generate(layer, ace, max_new_tokens=3)
    assert got.shape == (1, 2, 3)
    got = got[0]
    for p, prompt in enumerate(prompts):
        toks = interp.tokenize(tiny_model, [prompt]).tokens
        start = toks.shape[1] - 1

        def edit(act, hook, start=start):
            act[:, start:] = ace(act[:, start:])
            return act

        for _ in range(3):
            with hooks(tiny_model, [(act_name("resid_post", layer), edit)]), torch.no_grad():
                nxt = tiny_model(toks)[0, -1].argmax()
            toks = torch.cat([toks, nxt.view(1, 1)], 1)
        assert got[p].tolist() == toks[0, -3:].tolist(), p
    caa = CAA(CAAConfig(strength=3.0)).fit(neg, pos)
    assert sb.generate(layer, caa, 3).tolist() == sb.generate(layer, 3.0 * caa.vector[None], 3).tolist()
    # logits: an adapter replaces the residual; CAA's equals adding its scaled vector
    torch.testing.assert_close(sb.logits(layer, caa), sb.logits(layer, 3.0 * caa.vector[None]), rtol=1e-5, atol=1e-5)
    with pytest.raises(RuntimeError, match="not fitted"):
        sb.logits(layer, CAA())
    assert active_hook_count(tiny_model) == 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["smollm2-135m-instruct", "gemma-3-270m"])
def test_steering_batch_generate_equals_hooked_generate_on_real_models(name):
    """On both real architectures (Gemma-3: local attention layers, post-norms): the greedy
    tokens of SteeringBatch.generate equal TransformerLens' own model.generate with the vector
    added after the layer at the last prompt token and at every generated token."""
    model = interp.load_model(name, device="cpu")
    prompts = ["The capital of France is", "Q: What is the opposite of hot?\nA:"]
    g = torch.Generator().manual_seed(0)
    changed = 0
    for layer in (2, model.cfg.n_layers // 2, model.cfg.n_layers - 2):
        v = torch.randn(model.cfg.d_model, generator=g)
        v = v / v.norm() * 8.0  # large enough to change the continuation
        for prompt in prompts:
            one = interp.tokenize(model, [prompt], padding_side="left")
            sb = SteeringBatch(model, one)
            got = sb.generate(layer, v[None], max_new_tokens=6)[0, 0].tolist()
            changed += got != sb.generate(layer, torch.zeros(1, model.cfg.d_model), max_new_tokens=6)[0, 0].tolist()

            def add_last(act, hook, v=v):
                act[:, -1] += v.to(act)  # first forward: the last prompt token; then each new token
                return act

            with hooks(model, [(act_name("resid_post", layer), add_last)]), torch.no_grad():
                out = model.generate(
                    one.tokens,
                    max_new_tokens=6,
                    do_sample=False,
                    use_past_kv_cache=True,
                    verbose=False,
                    stop_at_eos=False,
                    prepend_bos=False,
                )
            assert got == out[0, one.tokens.shape[1] :].tolist(), (name, layer, prompt)
    assert changed > 0, "the vector never changed a continuation: the comparison would not test steering"
    assert active_hook_count(model) == 0
