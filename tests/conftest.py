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
