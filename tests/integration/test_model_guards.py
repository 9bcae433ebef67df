"""Bad input on the tiny models gets a named error, never a silently wrong number (issue 15):
the metric contract, hook arguments, model loading and tokenising, the DoLa scorer, the
converted-model cache, and a library change reaching a cached run."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import interp
from interp.hooks import active_hook_count
from interp.patching import logit_diff_metric, patch

CLEAN = ["The opposite of hot is", "The opposite of big is"]
CORR = ["The opposite of up is", "The opposite of cold is"]


@pytest.fixture(scope="module")
def pair(tiny_llama):
    return interp.tokenize(tiny_llama, CLEAN), interp.tokenize(tiny_llama, CORR)


@pytest.mark.parametrize(
    "metric, error, match",
    [
        (lambda lg: (lg[:, 5] - lg[:, 6]).mean(), ValueError, r"shape \(\); expected \[batch=2\]"),
        (lambda lg: lg[:, 5:7], ValueError, r"shape \(2, 2\); expected \[batch=2\]"),
        (lambda lg: 1.0, TypeError, "returned a float"),
        (lambda lg: lg[:, 5].long(), TypeError, "torch.int64 tensor"),
    ],
)
def test_metric_contract(tiny_llama, pair, metric, error, match):
    clean, corr = pair
    with pytest.raises(error, match=match):
        patch(tiny_llama, clean, corr, metric, site="resid_pre", progress=False)
    assert active_hook_count(tiny_llama) == 0


def test_metric_reading_an_undeclared_column_is_explained(tiny_llama, pair):
    clean, corr = pair
    declared = logit_diff_metric(torch.tensor([1, 2]), torch.tensor([3, 4]))

    def sneaky(lg):
        return declared(lg) + lg[:, 7]  # reads token 7, which it does not declare

    sneaky.columns = declared.columns
    with pytest.raises(ValueError, match="metric.columns"):
        patch(tiny_llama, clean, corr, sneaky, site="resid_pre", progress=False)


def test_layer_arguments(tiny_llama, pair):
    clean, corr = pair
    metric = logit_diff_metric(torch.tensor([1, 2]), torch.tensor([3, 4]))
    res = patch(tiny_llama, clean, corr, metric, site="resid_pre", layers=[1], progress=False)
    assert res.metric.shape[0] == 1


USER_SCRIPT = r"""
import numpy as np, torch, interp
from interp.hooks import add_vector, check_layer
from interp.patching import logit_diff_metric, patch
model = interp.load_model("random:tiny-llama", device="cpu")
clean = interp.tokenize(model, ["The opposite of hot is", "The opposite of big is"])
corr = interp.tokenize(model, ["The opposite of up is", "The opposite of cold is"])
metric = logit_diff_metric(torch.tensor([1, 2]), torch.tensor([3, 4]))
v = torch.ones(model.cfg.d_model)


def run_with(ctx):
    with ctx:
        interp.run_batch(model, clean)


cases = {
    "layer_float": lambda: patch(model, clean, corr, metric, site="resid_pre", layers=[0.5], progress=False),
    "layer_bool": lambda: check_layer(model, True),
    "scale_nan": lambda: add_vector(model, ("resid_pre", 0), v, scale=float("nan")).__enter__(),
    "positions_empty": lambda: run_with(add_vector(model, ("resid_pre", 0), v, positions=[])),
    "hook_tuple": lambda: add_vector(model, ("resid_pre",), v).__enter__(),
    "name_none": lambda: interp.load_model(None),
    "dtype_bad": lambda: interp.load_model("random:tiny-llama", dtype="float8"),
    "device_bad": lambda: interp.load_model("random:tiny-llama", device="gpu9"),
}
for name, fn in cases.items():
    try:
        fn()
        print(name, "|", "no error")
    except Exception as err:
        print(name, "|", type(err).__name__, "|", str(err).replace("\n", " "))
a = patch(model, clean, corr, metric, site="resid_pre", layers=[np.int64(1)], progress=False).metric
b = patch(model, clean, corr, metric, site="resid_pre", layers=[1], progress=False).metric
print("layer_np", "|", bool(torch.equal(a, b)), "|", check_layer(model, np.int64(-1)))
print("hooks left", "|", interp.active_hook_count(model))
"""


def test_user_facing_errors(tmp_path):
    """What a user sees (no test-time type checker in front): each bad argument is named with
    its value and what is allowed."""
    out = subprocess.run(
        [sys.executable, "-c", USER_SCRIPT],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "INTERP_CACHE": os.environ.get("INTERP_CACHE", str(tmp_path))},
    ).stdout
    got = {line.split(" | ")[0]: line.split(" | ")[1:] for line in out.splitlines() if " | " in line}
    want = {
        "layer_float": ("TypeError", "layers=0.5"),
        "layer_bool": ("TypeError", "layer=True"),
        "scale_nan": ("ValueError", "scale=nan"),
        "positions_empty": ("ValueError", "positions is empty"),
        "hook_tuple": ("ValueError", "a tuple hook is (name, layer)"),
        "name_none": ("ValueError", "name=None"),
        "dtype_bad": ("ValueError", "dtype='float8'; allowed"),
        "device_bad": ("ValueError", "device='gpu9'"),
    }
    for case, (kind, text) in want.items():
        assert got[case][0] == kind and text in got[case][1], (case, got[case])
    assert got["layer_np"] == ["True", "1"]  # np.int64 is a layer index like 1, not "out of range"
    assert got["hooks left"] == ["0"]


def test_prompt_longer_than_the_context_is_named(tiny_llama):
    long = "hot " * (tiny_llama.cfg.n_ctx + 10)
    with pytest.raises(
        ValueError, match=rf"prompts\[1\] is \d+ tokens; the model's context is n_ctx={tiny_llama.cfg.n_ctx}"
    ):
        interp.tokenize(tiny_llama, ["short", long])


def test_scorer_needs_buckets_and_alphas(tiny_llama):
    from interp.dola import ContinuationScorer

    with pytest.raises(ValueError, match="buckets is empty"):
        ContinuationScorer(tiny_llama, buckets=[])
    with pytest.raises(ValueError, match="alphas is empty"):
        ContinuationScorer(tiny_llama, buckets=["all"], alphas=[])


def test_converted_model_cache_is_rebuilt_when_damaged(tmp_path, monkeypatch):
    """The converted-weights cache records hashes at conversion; a truncated file or zeroed
    weights (same size) are detected, named in a warning and rebuilt from the source; a
    tokenizer.json with swapped ids (re-pickled with a fresh checksum on main) is not trusted either."""
    from interp import models

    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))
    calls = []

    def convert():
        calls.append(1)
        return interp.load_model("random:tiny-llama", device="cpu")

    def cached():
        with models._quiet_tl_deprecation():  # as load_model builds every model
            return models._cached_gguf_model("unit-tiny", "numpy", convert)

    first = cached()
    w_u, encode = first.W_U.detach().clone(), first.tokenizer("hot cold").input_ids
    del first  # its tensors map the cached file; the damage below writes new files (unlink first)
    path = models._cache_path("unit-tiny", "numpy")
    weights = path / "model.safetensors"

    def damage(new: bytes) -> None:
        weights.unlink()
        weights.write_bytes(new)

    data = weights.read_bytes()
    damage(data[: len(data) // 2])  # truncated
    with pytest.warns(RuntimeWarning, match="unit-tiny.*unusable.*rebuilding it from the GGUF"):
        torch.testing.assert_close(cached().W_U, w_u)
    assert len(calls) == 2
    data = weights.read_bytes()
    mid = len(data) // 2
    assert data[mid : mid + 4096].count(0) < 4096
    damage(data[:mid] + b"\x00" * 4096 + data[mid + 4096 :])  # zeroed weights, same size
    with pytest.warns(RuntimeWarning, match="does not match"):
        cached()
    assert len(calls) == 3
    assert not list(path.rglob("*.pkl"))  # no pickle anywhere: a writable cache cannot run code
    tok_json = path / "tokenizer" / "tokenizer.json"
    vocab = json.loads(tok_json.read_text())
    v = vocab["model"]["vocab"]
    a, b = next(k for k in v if k.endswith("hot")), next(k for k in v if k.endswith("cold"))
    v[a], v[b] = v[b], v[a]  # swapped ids: " hot" would encode as " cold"
    tok_json.write_text(json.dumps(vocab))
    with pytest.warns(RuntimeWarning, match="tokenizer.json.*does not match"):
        ok = cached()
    assert len(calls) == 4 and ok.tokenizer("hot cold").input_ids == encode


def test_a_library_change_reaches_a_cached_run(tmp_path):
    """Issue 15's scenario: run the demo with the cache, change logit_diff_metric in the
    library (return 2·(…)+1), rerun with the cache: the new numbers come back, not the cached
    ones. A comment-only change reuses the cache (and the report footer says so)."""
    root = Path(__file__).resolve().parents[2]
    work = tmp_path / "repo"
    for d in ("interp", "experiments", "configs"):
        shutil.copytree(root / d, work / d, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "INTERP_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(work)}

    def demo(run_id: str) -> tuple[dict, str]:
        import json

        subprocess.run(
            [
                sys.executable,
                "-m",
                "experiments.demo",
                "--config",
                "configs/demo.smoke.yaml",
                "run.use_cache=true",
                f"run.results_dir={tmp_path / 'results'}",
                f"run.run_id={run_id}",
            ],
            cwd=work,
            env=env,
            check=True,
            capture_output=True,
        )
        folder = tmp_path / "results" / "demo" / run_id
        return json.loads((folder / "metrics.json").read_text()), (folder / "report.md").read_text()

    before, _ = demo("a")
    patching = work / "interp" / "patching.py"
    src = patching.read_text()
    patching.write_text(
        src.replace(
            "    metric.columns = torch.unique",
            "    # a comment only, and a docstring change below\n    metric.columns = torch.unique",
            1,
        ).replace("``logit[correct] - logit[wrong]`` per prompt.", "The logit difference per prompt.", 1)
    )
    same, report = demo("b")
    assert same["m_clean"] == before["m_clean"] and "1 of 1 cached steps reused" in report
    old = "return logits[rows, correct.to(logits.device)] - logits[rows, wrong.to(logits.device)]"
    assert old in src, "test needs the metric's return line"
    patching.write_text(
        src.replace(
            old, "return 2 * (logits[rows, correct.to(logits.device)] - logits[rows, wrong.to(logits.device)]) + 1"
        )
    )
    after, report = demo("c")
    np.testing.assert_allclose(after["m_clean"], 2 * np.array(before["m_clean"]) + 1, rtol=1e-5)
    assert "0 of 1 cached steps reused" in report
