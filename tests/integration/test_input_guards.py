"""Issue 27's silent-input cases on the tiny models: each is a named error now (each of these
was accepted on main and gave wrong numbers or an unnamed crash)."""

import pytest
import torch

import interp
from interp.patching import logit_diff_metric, patch


def _metric(model):
    ids = interp.data.single_token_ids(model, [" cold", " hot"])
    return logit_diff_metric(ids[:1].repeat(2), ids[1:].repeat(2))


def test_patch_refuses_pairs_whose_real_tokens_differ_in_position(tiny_llama):
    m = tiny_llama
    cl, co = interp.tokenize(m, ["a b c", "e f g h"]), interp.tokenize(m, ["a b c d", "e f g"])
    assert cl.tokens.shape == co.tokens.shape  # same padded width: main accepted it
    with pytest.raises(ValueError, match=r"clean and corrupted prompt 0 are not aligned: 4 vs 5 real tokens"):
        patch(m, cl, co, _metric(m), site="resid_pre", layers=[0])
    left = interp.tokenize(m, ["a b c", "e f g h"], padding_side="left")
    with pytest.raises(ValueError, match=r"prompt 0 are not aligned.*clean padded on the right, corrupted on the left"):
        patch(m, cl, left, _metric(m), site="resid_pre", layers=[0])
    # aligned pairs, and explicit positions for unaligned ones, still work
    rec = patch(m, cl, cl, _metric(m), site="resid_pre", layers=[0]).recovery
    assert rec.shape == (1, 2)
    res = patch(m, cl, co, _metric(m), site="resid_post", positions=co.last_index, clean_positions=cl.last_index)
    assert res.recovery.shape[-1] == 2


def test_steering_batch_rejects_bad_answer_ids_nan_edits_and_wrong_shapes(tiny_llama):
    from interp.steering import SteeringBatch

    m = tiny_llama
    batch = interp.tokenize(m, ["The opposite of hot is", "The opposite of up is"], padding_side="left")
    v = m.cfg.d_vocab
    for ids, what in (
        (torch.tensor([1, v]), f"answer_ids\\[1\\]={v} is not a token id"),
        (torch.tensor([-1, 2]), "answer_ids\\[0\\]=-1"),
    ):
        with pytest.raises(ValueError, match=what):
            SteeringBatch(m, batch, ids)
    sb = SteeringBatch(m, batch, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="the output of function is not finite|output of function"):
        sb.accuracy(0, lambda a: a * float("nan"))
    with pytest.raises(ValueError, match="returned \\(2, 3\\) for a residual of shape \\(2, 64\\)"):
        sb.accuracy(0, lambda a: a[:, :3])
    with pytest.raises(ValueError, match="expected \\[n_vectors >= 1, d_model=64\\]"):
        sb.accuracy(0, torch.zeros(0, 64))
    with pytest.raises(ValueError, match="exceed the model's context n_ctx=256"):
        sb.generate(0, torch.zeros(1, 64), max_new_tokens=300)
    with pytest.raises(ValueError, match="the output of function"):
        sb.generate(0, lambda a: a * float("nan"), max_new_tokens=2)


def test_tokenize_names_a_non_list():
    m = interp.load_model("random:tiny-gpt2", device="cpu")
    # (under the tests' runtime type checker the annotation already names the argument)
    with pytest.raises(TypeError, match="prompts"):
        interp.tokenize(m, None)
    with pytest.raises(TypeError, match="prompts"):
        interp.tokenize(m, ["a", 3])


def test_metric_columns_must_be_a_tensor_and_ids_in_the_vocabulary(tiny_llama):
    m = tiny_llama
    cl = interp.tokenize(m, ["a b c", "e f g"])

    def metric(logits):
        return logits[:, 1] - logits[:, 2]

    metric.columns = [1, 2]
    with pytest.raises(TypeError, match="metric.columns=\\[1, 2\\]; expected a 1-d integer tensor"):
        patch(m, cl, cl, metric, site="resid_pre", layers=[0])
    big = logit_diff_metric(torch.tensor([m.cfg.d_vocab, 1]), torch.tensor([1, 2]))
    with pytest.raises(
        ValueError, match=f"metric reads token ids \\[{m.cfg.d_vocab}\\] that are not in the vocabulary"
    ):
        patch(m, cl, cl, big, site="resid_pre", layers=[0])
    with pytest.raises(ValueError, match="negative token id"):
        logit_diff_metric(torch.tensor([-1, 1]), torch.tensor([1, 2]))


def test_mean_activation_leaves_padding_out_and_has_an_explicit_layout(tiny_llama):
    from interp.hooks import capture, mean_ablate, mean_activation

    m = tiny_llama
    batch = interp.tokenize(m, ["a b c d e", "hot", "up down"])  # right padded; 3 prompts
    name = "blocks.0.hook_resid_post"
    with capture(m, [name]) as acts:
        interp.run_batch(m, batch)
    act, mask = acts[name], batch.attention_mask.bool()
    torch.testing.assert_close(mean_activation(m, batch, name), act[mask].mean(0))
    per_prompt = mean_activation(m, batch, name, per="prompt")
    torch.testing.assert_close(per_prompt[1], act[1][mask[1]].mean(0))
    per_pos = mean_activation(m, batch, name, per="position")
    assert per_pos.shape == (batch.tokens.shape[1], m.cfg.d_model)
    torch.testing.assert_close(per_pos[-1], act[0, -1])  # only prompt 0 reaches the last position
    # a 3-prompt batch of 3 positions: [3, d] could be per prompt or per position
    square = interp.tokenize(m, ["a b", "c d", "e f"])
    assert square.tokens.shape[0] == square.tokens.shape[1]
    mean3 = mean_activation(m, square, name, per="position")
    with pytest.raises(ValueError, match="could be per prompt or per position; say layout="):
        with mean_ablate(m, name, mean3):
            interp.run_batch(m, square)
    with mean_ablate(m, name, mean3, layout="position"), capture(m, [name]) as got:
        interp.run_batch(m, square)
    torch.testing.assert_close(got[name][0], mean3)


def test_add_vector_scale_must_be_a_number(tiny_llama):
    from interp.hooks import add_vector

    # the tests' runtime type checker names it first; without it the library's own check does
    with pytest.raises((TypeError, ValueError), match="scale"):
        with add_vector(tiny_llama, ("resid_post", 0), torch.ones(tiny_llama.cfg.d_model), scale="2"):
            pass


def test_a_read_only_cache_works_with_the_cache_off(tmp_path, monkeypatch):
    """Issue 27: on main the toy tokenizer always wrote to the cache dir, so a read-only cache
    broke even run.use_cache=false."""
    from interp.runner import run_study

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")  # a cache path below a file: nothing can be written there, not even by root
    cache = blocker / "cache"
    monkeypatch.setenv("INTERP_CACHE", str(cache))
    import interp.data.toy_tokenizer as tt

    monkeypatch.setattr(tt, "_private_dir", tt._private_dir.__wrapped__)  # no memo across tests
    report = run_study("demo", "configs/demo.smoke.yaml", [f"run.results_dir={tmp_path}", "run.use_cache=false"])
    assert report.exists() and blocker.read_text() == ""


def test_an_altered_toy_tokenizer_is_rebuilt_not_used(tmp_path, monkeypatch):
    import json

    import interp.data.toy_tokenizer as tt

    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))
    path = tt.tokenizer_dir()
    good = tt.toy_tokenizer()(" hot cold").input_ids
    tok = path / "tokenizer.json"
    data = json.loads(tok.read_text())
    vocab = data["model"]["vocab"]
    a, b = next(k for k in vocab if k.endswith("hot")), next(k for k in vocab if k.endswith("cold"))
    vocab[a], vocab[b] = vocab[b], vocab[a]
    tok.write_text(json.dumps(data))
    with pytest.warns(RuntimeWarning, match="cached toy tokenizer .* is unusable \\(tokenizer.json"):
        assert tt.toy_tokenizer()(" hot cold").input_ids == good


def test_memory_budget_and_demo_template_are_checked(tiny_llama):
    from interp.studies.demo import DemoConfig
    from interp.studies.demo.study import check

    m = tiny_llama
    cl = interp.tokenize(m, ["a b c", "e f g"])
    with pytest.raises(ValueError, match="memory_budget_gb=nan; must be a number > 0"):
        patch(m, cl, cl, _metric(m), site="resid_pre", layers=[0], memory_budget_gb=float("nan"))
    cfg = DemoConfig()
    cfg.task.template = "The capital of {country} is"
    with pytest.raises(ValueError, match="task.template='The capital of {country} is' must contain '{subject}'"):
        check(cfg)
