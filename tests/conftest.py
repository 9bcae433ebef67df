"""Shared fixtures. `interp` is imported lazily inside fixtures so jaxtyping's import hook
(--jaxtyping-packages in pyproject) is installed before the package is first imported."""

import pytest


@pytest.fixture(scope="module")
def tiny_llama():
    from interp import load_model

    return load_model("random:tiny-llama", device="cpu")


@pytest.fixture(scope="module")
def tiny_gpt2():
    from interp import load_model

    return load_model("random:tiny-gpt2", device="cpu")


@pytest.fixture(scope="module", params=["random:tiny-llama", "random:tiny-gpt2"])
def tiny_model(request):
    from interp import load_model

    return load_model(request.param, device="cpu")


@pytest.fixture
def smoke_run(tmp_path):
    """Run study ``name`` on ``configs/<name>.smoke.yaml`` (plus ``key=value`` overrides) into
    ``tmp_path``; returns (results folder, metrics dict)."""
    import json

    from interp.runner import run_study

    def go(name: str, *overrides: str, run_id: str = "smoke"):
        run_study(
            name, f"configs/{name}.smoke.yaml", [f"run.results_dir={tmp_path}", f"run.run_id={run_id}", *overrides]
        )
        folder = tmp_path / name / run_id
        return folder, json.loads((folder / "metrics.json").read_text())

    return go
