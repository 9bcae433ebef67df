"""Function and task vectors on the tiny models: construction by hand, the steering hook, and
planted signals through the final layer (where the effect of a residual is exactly known)."""

import numpy as np
import pytest
import torch

import interp
from interp.function_vectors import (
    SteeringBatch, function_vector, mean_difference_vectors, steered_accuracy, sweep, task_vectors, top1_accuracy,
)
from interp.hooks import active_hook_count, add_vector, hooks

PROMPTS = ["Q: hot\nA:", "Q: big\nA:", "Q: up\nA:"]


def _predicted_from_resid(model, resid):
    return int(model.unembed(model.ln_final(resid[None, None].to(model.cfg.dtype)))[0, 0].argmax())


def test_function_vector_is_the_sum_of_head_outputs_through_w_o(tiny_model):
    torch.manual_seed(0)
    mean_z = torch.randn(tiny_model.cfg.n_layers, tiny_model.cfg.n_heads, tiny_model.cfg.d_head)
    heads = [(0, 1), (1, 3)]
    fv = function_vector(tiny_model, mean_z, heads)
    expect = sum(mean_z[layer, h] @ tiny_model.blocks[layer].attn.W_O[h].detach() for layer, h in heads)
    torch.testing.assert_close(fv, expect, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"head=9 out of range 0..3"):
        function_vector(tiny_model, mean_z, [(0, 9)])
    with pytest.raises(ValueError, match="layer=5 is out of range"):
        function_vector(tiny_model, mean_z, [(5, 0)])
    with pytest.raises(ValueError, match="heads is empty"):
        function_vector(tiny_model, mean_z, [])


def test_task_vector_replacement_at_the_last_layer_decides_the_prediction(tiny_model):
    """Replacing the final residual with v makes the prediction argmax(unembed(ln_final(v)))."""
    batch = interp.tokenize(tiny_model, PROMPTS)
    L = tiny_model.cfg.n_layers
    tv = task_vectors(tiny_model, interp.tokenize(tiny_model, ["Q: cold\nA: hot\n\nQ: small\nA:"] * 2))
    assert tv.shape == (L, tiny_model.cfg.d_model)
    target = _predicted_from_resid(tiny_model, tv[L - 1])
    right = torch.full((3,), target)
    assert steered_accuracy(tiny_model, batch, right, L - 1, tv[L - 1], mode="replace").tolist() == [1.0, 1.0, 1.0]
    assert steered_accuracy(tiny_model, batch, right + 1, L - 1, tv[L - 1], mode="replace").sum() == 0
    assert active_hook_count(tiny_model) == 0


def test_function_vector_with_large_scale_takes_over_the_prediction(tiny_model):
    """Adding λ·FV with λ large: the final residual points along FV, so the prediction is
    FV's own; λ = 0 leaves the plain prediction."""
    batch = interp.tokenize(tiny_model, PROMPTS)
    L = tiny_model.cfg.n_layers
    fv = torch.randn(tiny_model.cfg.d_model, generator=torch.Generator().manual_seed(1))
    target = torch.full((3,), _predicted_from_resid(tiny_model, fv))
    res = sweep(tiny_model, batch, target, lambda layer: fv, layers=[L - 1], scales=[0.0, 1e4])
    plain = top1_accuracy(tiny_model, batch, target).mean()
    assert float(res.accuracy[0, 0]) == pytest.approx(float(plain))
    assert float(res.accuracy[1, 0]) == 1.0
    assert res.best()[1:] == (L - 1, 1e4)


def test_steering_errors_name_the_argument(tiny_llama):
    batch = interp.tokenize(tiny_llama, PROMPTS)
    v = torch.zeros(tiny_llama.cfg.d_model)
    with pytest.raises(ValueError, match=r"answer_ids has shape \(2,\); expected one id per prompt \(3,\)"):
        steered_accuracy(tiny_llama, batch, torch.tensor([1, 2]), 0, v)
    with pytest.raises(ValueError, match="mode='mix'"):
        steered_accuracy(tiny_llama, batch, torch.tensor([1, 2, 3]), 0, v, mode="mix")
    with pytest.raises(ValueError, match="layer=7 is out of range"):
        steered_accuracy(tiny_llama, batch, torch.tensor([1, 2, 3]), 7, v)
    with pytest.raises(ValueError, match="vector contains NaN"):
        steered_accuracy(tiny_llama, batch, torch.tensor([1, 2, 3]), 0, v + float("nan"))
    assert active_hook_count(tiny_llama) == 0


def test_function_vectors_experiment_smoke(tmp_path):
    import json

    from experiments.function_vectors import FVConfig, run
    from interp.runner import main

    main("function_vectors", FVConfig, run, ["--config", "configs/function_vectors.smoke.yaml", f"run.results_dir={tmp_path}", "run.run_id=smoke"])
    folder = tmp_path / "function_vectors" / "smoke"
    assert (folder / "recovery_random_tiny-llama.png").stat().st_size > 1000
    assert (folder / "patching_random_tiny-gpt2.png").stat().st_size > 1000
    metrics = json.loads((folder / "metrics.json").read_text())
    entry = metrics["random:tiny-llama/antonym"]
    assert set(entry["baselines"]) == {"zero-shot", "5-shot", "10-shot", "10-shot shuffled"}
    assert len(entry["top_heads"]) == 2
    report = (folder / "report.md").read_text()
    assert "Share of model × task combinations" in report


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
                with add_vector(tiny_model, f"blocks.{layer}.hook_resid_post", vectors[v], positions=one.last_index):
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
    sb = SteeringBatch(tiny_llama, interp.tokenize(tiny_llama, PROMPTS, padding_side="left"), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="vectors has shape"):
        sb.predictions(0, torch.zeros(1, tiny_llama.cfg.d_model + 1))
    with pytest.raises(ValueError, match="NaN"):
        sb.predictions(0, torch.full((1, tiny_llama.cfg.d_model), float("nan")))
    with pytest.raises(ValueError, match="layer=9 is out of range"):
        sb.predictions(9, torch.zeros(1, tiny_llama.cfg.d_model))


def test_mean_difference_vectors_are_the_difference_of_task_vectors(tiny_model):
    pos = interp.tokenize(tiny_model, ["Q: cold\nA: hot\n\nQ: up\nA:", "Q: big\nA: small\n\nQ: in\nA:"], padding_side="left")
    neg = interp.tokenize(tiny_model, ["Q: cold\nA: small\n\nQ: up\nA:", "Q: big\nA: hot\n\nQ: in\nA:"], padding_side="left")
    diff = mean_difference_vectors(tiny_model, pos, neg, layers=[0, 1])
    torch.testing.assert_close(diff, task_vectors(tiny_model, pos, [0, 1]) - task_vectors(tiny_model, neg, [0, 1]))


def test_fv_transfer_experiment_smoke(tmp_path):
    import json

    from experiments.fv_transfer import TransferConfig, run
    from interp.runner import main

    main("fv_transfer", TransferConfig, run, ["--config", "configs/fv_transfer.smoke.yaml", f"run.results_dir={tmp_path}", "run.run_id=smoke"])
    folder = tmp_path / "fv_transfer" / "smoke"
    for png in ("transfer_random_tiny-llama.png", "cos_vs_transfer_random_tiny-gpt2.png", "layers_random_tiny-gpt2.png"):
        assert (folder / png).stat().st_size > 1000
    metrics = json.loads((folder / "metrics.json").read_text())
    entry = metrics["random:tiny-llama"]
    assert set(entry["iid"]) == {"antonym", "capitalize"}
    m = np.array(entry["per_task"]["antonym"]["transfer_best_layer"])
    assert m.shape == (3, 3) and ((m >= 0) & (m <= 1)).all()
    report = (folder / "report.md").read_text()
    assert "dissociation cases" in report and "`'{x} ↔ {y}'`" in report
    main("fv_transfer", TransferConfig, run, ["--config", "configs/fv_transfer.smoke.yaml", f"run.results_dir={tmp_path}", "run.run_id=zs",
                                              "models=[random:tiny-llama]", "extraction=zero_shot"])  # fmt: skip
    assert "minus over the same queries without demonstrations" in (tmp_path / "fv_transfer" / "zs" / "report.md").read_text()
    with pytest.raises(ValueError, match="extraction='mean'"):
        main("fv_transfer", TransferConfig, run, ["--config", "configs/fv_transfer.smoke.yaml", f"run.results_dir={tmp_path}", "extraction=mean"])


def test_steering_batch_generate_equals_naive_steered_greedy_decoding(tiny_model):
    """Greedy decoding from the shared prefix cache equals decoding each prompt alone with full
    forwards, the vector added at the last prompt token and every generated token."""
    from interp.hooks import hooks

    prompts = ["Q: hot\nA:", "Q: a much longer question here\nA:"]
    g = torch.Generator().manual_seed(5)
    vectors = torch.randn(2, tiny_model.cfg.d_model, generator=g) * 2
    sb = SteeringBatch(tiny_model, interp.tokenize(tiny_model, prompts, padding_side="left"), torch.zeros(2, dtype=torch.long), max_rows=2)
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
                    with hooks(tiny_model, [(f"blocks.{layer}.hook_resid_post", add)]), torch.no_grad():
                        nxt = tiny_model(toks)[0, -1].argmax()
                    toks = torch.cat([toks, nxt.view(1, 1)], 1)
                assert got[v, p].tolist() == toks[0, -4:].tolist(), (layer, v, p)
    assert active_hook_count(tiny_model) == 0


def test_steering_batch_generate_transformed_equals_naive_adapter_decoding(tiny_model):
    """Any adapter (here ACE, a projection, not a shift) through the shared prefix cache gives
    the same greedy tokens as full forwards with the adapter hooked at the last prompt token and
    every generated token; a CAA adapter gives what ``generate`` gives for its scaled vector."""
    from interp.steering import ACE, CAA, ACEConfig, CAAConfig

    prompts = ["Q: hot\nA:", "Q: a much longer question here\nA:"]
    g = torch.Generator().manual_seed(6)
    d = tiny_model.cfg.d_model
    neg, pos = torch.randn(16, d, generator=g), torch.randn(16, d, generator=g) + 3 * torch.randn(d, generator=g)
    ace = ACE(ACEConfig(alpha=2.0)).fit(neg, pos)
    sb = SteeringBatch(tiny_model, interp.tokenize(tiny_model, prompts, padding_side="left"), torch.zeros(2, dtype=torch.long))
    layer = 1
    got = sb.generate_transformed(layer, ace, max_new_tokens=3)
    assert got.shape == (2, 3)
    for p, prompt in enumerate(prompts):
        toks = interp.tokenize(tiny_model, [prompt]).tokens
        start = toks.shape[1] - 1

        def edit(act, hook, start=start):
            act[:, start:] = ace(act[:, start:])
            return act

        for _ in range(3):
            with hooks(tiny_model, [(f"blocks.{layer}.hook_resid_post", edit)]), torch.no_grad():
                nxt = tiny_model(toks)[0, -1].argmax()
            toks = torch.cat([toks, nxt.view(1, 1)], 1)
        assert got[p].tolist() == toks[0, -3:].tolist(), p
    caa = CAA(CAAConfig(strength=3.0)).fit(neg, pos)
    assert sb.generate_transformed(layer, caa, 3).tolist() == sb.generate(layer, 3.0 * caa.vector[None], 3)[0].tolist()
    assert active_hook_count(tiny_model) == 0
