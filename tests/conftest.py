"""Shared fixtures. `interp` is imported lazily inside fixtures so jaxtyping's import hook
(--jaxtyping-packages in pyproject) is installed before the package is first imported."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_intermediate_cache(tmp_path_factory):
    # model weights stay in the user's cache (slow to rebuild); run intermediates do not
    import os

    os.environ.setdefault("INTERP_CACHE", os.path.expanduser("~/.cache/interp"))
    yield


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
