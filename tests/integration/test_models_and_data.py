import time

import pytest
import torch

import interp
from interp.data import load_caa, load_factor, load_fv_task, load_truthfulqa_mc
from interp.patching import check_pair_shapes


def test_list_models_has_real_and_random():
    names = interp.list_models()
    for expected in ["smollm2-135m-instruct", "gemma-3-270m", "random:tiny-llama", "random:tiny-gpt2"]:
        assert expected in names


def test_unknown_model_lists_available():
    with pytest.raises(ValueError, match=r"model name 'no-such-model' is unknown\. Allowed: .*smollm2-135m-instruct"):
        interp.load_model("no-such-model")


def test_official_name_offline_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.time()
    with pytest.raises(interp.ModelUnavailableError, match=r"'gpt2'.*hub.*not reachable.*smollm2-135m-instruct"):
        interp.load_model("gpt2")
    assert time.time() - start < 5


def test_random_presets(tiny_llama, tiny_gpt2):
    assert tiny_llama.cfg.n_key_value_heads == 2 and tiny_llama.cfg.n_heads == 4
    assert tiny_gpt2.cfg.normalization_type.startswith("LN")
    # deterministic: same seed, same weights
    again = interp.load_model("random:tiny-llama", device="cpu")
    assert torch.equal(again.W_E, tiny_llama.W_E)


def test_tokenize_padding_and_last_index(tiny_llama):
    prompts = ["The capital of France is", "hot"]
    right = interp.tokenize(tiny_llama, prompts, padding_side="right")
    left = interp.tokenize(tiny_llama, prompts, padding_side="left")
    n_short = int(right.attention_mask[1].sum())
    assert right.last_index.tolist() == [right.tokens.shape[1] - 1, n_short - 1]
    assert left.last_index.tolist() == [left.tokens.shape[1] - 1] * 2
    assert left.attention_mask[1, :-n_short].sum() == 0
    # the same real tokens either way
    assert torch.equal(right.tokens[1, :n_short], left.tokens[1, -n_short:])


def test_tokenize_errors(tiny_llama):
    with pytest.raises(ValueError, match="prompts is empty"):
        interp.tokenize(tiny_llama, [])
    with pytest.raises(TypeError, match="single str"):
        interp.tokenize(tiny_llama, "hello")
    with pytest.raises(ValueError, match="padding_side='middle'"):
        interp.tokenize(tiny_llama, ["a"], padding_side="middle")


def test_single_token_check(tiny_llama):
    assert isinstance(interp.single_token_id(tiny_llama, " capital"), int)
    with pytest.raises(ValueError, match=r"target=' xylophonic' is [2-9] tokens for this model, not one: \[' "):
        interp.single_token_id(tiny_llama, " xylophonic")


def test_mismatched_clean_corrupted_shapes(tiny_llama):
    a = interp.tokenize(tiny_llama, ["The capital of France is"])
    b = interp.tokenize(tiny_llama, ["The capital of Italy is"])
    with pytest.raises(ValueError, match=r"clean tokens have shape \(1, 8\) but corrupted tokens have \(1, 9\)"):
        check_pair_shapes(a, b)


def test_shipped_datasets_load():
    assert len(load_truthfulqa_mc()) == 817 and len(load_truthfulqa_mc("2025")) == 790
    with pytest.raises(ValueError, match="version=.v3. is not available"):
        load_truthfulqa_mc("v3")
    assert len(load_factor("news")) == 1036 and len(load_factor("expert")) == 236
    assert {"input", "output"} <= set(load_fv_task("antonym")[0])
    ab = load_caa("sycophancy", "test_ab")
    assert len(ab) == 50 and ab[0]["answer_matching_behavior"] in ("(A)", "(B)")
    assert len(load_caa("coordinate-other-ais", "generate")) == 360


def test_dataset_errors():
    with pytest.raises(ValueError, match=r"task='antonyms' is not available; allowed: \['antonym'"):
        load_fv_task("antonyms")
    with pytest.raises(ValueError, match="split='wiki'"):
        load_factor("wiki")


def test_empty_dataset_error():
    from interp.data.datasets_io import _non_empty

    with pytest.raises(ValueError, match="dataset mine is empty"):
        _non_empty([], "mine")
