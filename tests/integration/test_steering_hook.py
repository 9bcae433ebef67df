"""Applying fitted adapters to a HookedTransformer."""

import pytest
import torch

import interp
from interp.hooks import active_hook_count, add_vector, capture
from interp.patching import last_logits
from interp.steering import CAA, LoReST, LoReSTConfig, apply_adapter


@pytest.fixture(scope="module")
def acts(tiny_model):
    neg = interp.tokenize(tiny_model, ["The opposite of up is", "The opposite of hot is", "The opposite of big is"])
    pos = interp.tokenize(
        tiny_model, ["The opposite of down is", "The opposite of cold is", "The opposite of small is"]
    )
    out = []
    for batch in (neg, pos):
        with capture(tiny_model, [("resid_post", 0)], positions=batch.last_index) as a:
            interp.run_batch(tiny_model, batch)
        out.append(a["blocks.0.hook_resid_post"][:, 0])
    return neg, out[0], out[1]


def test_caa_hook_equals_adding_its_vector(tiny_model, acts):
    batch, neg, pos = acts
    caa = CAA().fit(neg, pos)
    with apply_adapter(tiny_model, caa, ("resid_post", 0), positions=batch.last_index):
        steered = last_logits(tiny_model, batch)
    with add_vector(tiny_model, ("resid_post", 0), caa.vector, positions=batch.last_index):
        expected = last_logits(tiny_model, batch)
    torch.testing.assert_close(steered, expected)
    assert not torch.allclose(steered, last_logits(tiny_model, batch))


def test_adapter_hook_touches_only_the_given_positions_and_never_leaks(tiny_model, acts):
    batch, neg, pos = acts
    lorest = LoReST(LoReSTConfig(rank=2, steps=20)).fit(neg, pos)
    with capture(tiny_model, [("resid_post", 0)]) as plain:
        interp.run_batch(tiny_model, batch)
    with (
        apply_adapter(tiny_model, lorest, ("resid_post", 0), positions=[1]),
        capture(tiny_model, [("resid_post", 0)]) as got,
    ):
        interp.run_batch(tiny_model, batch)
    a, b = plain["blocks.0.hook_resid_post"], got["blocks.0.hook_resid_post"]
    torch.testing.assert_close(b[:, 0], a[:, 0])
    torch.testing.assert_close(b[:, 1], lorest(a[:, 1]))
    with pytest.raises(RuntimeError, match="boom"):
        with apply_adapter(tiny_model, lorest, ("resid_post", 0)):
            raise RuntimeError("boom")
    assert active_hook_count(tiny_model) == 0
    with pytest.raises(RuntimeError, match="not fitted"):
        with apply_adapter(tiny_model, CAA(), ("resid_post", 0)):
            pass
