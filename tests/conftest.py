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
    """Run ``experiments.<name>`` on ``configs/<name>.smoke.yaml`` (plus ``key=value``
    overrides) into ``tmp_path``; returns (results folder, metrics dict)."""
    import dataclasses
    import importlib
    import json

    from interp.runner import RunConfig, main

    def go(name: str, *overrides: str, run_id: str = "smoke"):
        module = importlib.import_module(f"experiments.{name}")
        # the experiment's config: the dataclass defined there with a `run: RunConfig` field
        cfg_cls = next(v for v in vars(module).values() if isinstance(v, type) and dataclasses.is_dataclass(v) and v.__module__ == module.__name__
                       and any(f.name == "run" and f.type in (RunConfig, "RunConfig") for f in dataclasses.fields(v)))  # fmt: skip
        main(name, cfg_cls, module.run, ["--config", f"configs/{name}.smoke.yaml", f"run.results_dir={tmp_path}", f"run.run_id={run_id}", *overrides])
        folder = tmp_path / name / run_id
        return folder, json.loads((folder / "metrics.json").read_text())

    return go
