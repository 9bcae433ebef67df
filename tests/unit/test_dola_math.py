"""DoLa's pieces on hand-built distributions: plausibility mask, JSD (against scipy), premature
choice, the one-pass sweep against per-configuration recomputation, MC metrics, length bias."""

import math

import numpy as np
import pytest
import torch


def test_relative_top_mask_by_hand():
    from interp.dola import relative_top_mask

    logp = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()
    assert relative_top_mask(logp, 0.5).tolist() == [True, True, False, False]  # p >= 0.25
    assert relative_top_mask(logp, 0.3).tolist() == [True, True, True, False]  # p >= 0.15
    assert relative_top_mask(logp, 0.0).all()
    assert relative_top_mask(logp, 1.0).tolist() == [True, False, False, False]
    with pytest.raises(ValueError, match=r"alpha=1.5; the relative-top threshold must lie in \[0, 1\]"):
        relative_top_mask(logp, 1.5)


def test_jsd_matches_scipy():
    from scipy.spatial.distance import jensenshannon

    from interp.dola import jsd

    g = torch.Generator().manual_seed(0)
    p = torch.randn(5, 50, generator=g, dtype=torch.float64).log_softmax(-1)
    q = (3 * torch.randn(5, 50, generator=g, dtype=torch.float64)).log_softmax(-1)
    ours = jsd(p, q)
    ref = np.array([jensenshannon(a, b) ** 2 for a, b in zip(p.exp().numpy(), q.exp().numpy())])
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-10, atol=1e-12)
    assert torch.allclose(jsd(p, p), torch.zeros(5, dtype=torch.float64), atol=1e-12)
    # underflowed probabilities (both ~0) contribute 0, not NaN
    hard = torch.tensor([[0.0, -2000.0, -3000.0]]).log_softmax(-1)
    assert torch.isfinite(jsd(hard, hard.flip(-1))).all()


def test_premature_layer_is_the_most_divergent_candidate():
    from interp.dola import dola_scores

    final = torch.tensor([[0.7, 0.2, 0.1]]).log()
    near = torch.tensor([[0.6, 0.3, 0.1]]).log()
    far = torch.tensor([[0.1, 0.2, 0.7]]).log()
    _, chosen = dola_scores(torch.stack([near, far, near]), final, alpha=0.0)
    assert chosen.tolist() == [1]
    _, chosen = dola_scores(torch.stack([far, near]), final, alpha=0.0)
    assert chosen.tolist() == [0]


def test_dola_scores_by_hand():
    """F = log q_N - log q_M on the plausible set; post-softmax renormalises over that set."""
    from interp.dola import dola_scores

    qn = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
    qm = torch.tensor([0.25, 0.25, 0.25, 0.25], dtype=torch.float64)
    raw, _ = dola_scores(qm.log()[None], qn.log(), alpha=0.5, post_softmax=False, implausible=-1000.0)
    expected = [math.log(0.5 / 0.25), math.log(0.3 / 0.25), -1000.0, -1000.0]
    np.testing.assert_allclose(raw.numpy(), expected, rtol=1e-12)
    post, _ = dola_scores(qm.log()[None], qn.log(), alpha=0.5, post_softmax=True)
    z = math.log(0.5 / 0.25 + 0.3 / 0.25)  # exp(F) summed over the plausible set
    np.testing.assert_allclose(post.numpy()[:2], [expected[0] - z, expected[1] - z], rtol=1e-12)
    assert (post[2:] == -1000.0).all()


def test_the_two_normalisations_by_hand():
    """Plausible-set normaliser (the paper's equation) vs the reference code's lm_score: log-softmax
    of F over the whole vocabulary, implausible tokens then set to −1000 (planted numbers)."""
    from interp.dola import dola_scores

    qn = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
    qm = torch.tensor([0.25, 0.25, 0.25, 0.25], dtype=torch.float64)
    f = (qn / qm).log()  # the contrast on every token
    plaus, _ = dola_scores(qm.log()[None], qn.log(), alpha=0.5, normalisation="plausible")
    vocab, _ = dola_scores(qm.log()[None], qn.log(), alpha=0.5, normalisation="vocab")
    np.testing.assert_allclose(plaus.numpy()[:2], (f[:2] - f[:2].exp().sum().log()).numpy(), rtol=1e-12)
    np.testing.assert_allclose(vocab.numpy()[:2], (f[:2] - f.exp().sum().log()).numpy(), rtol=1e-12)
    assert (plaus[2:] == -1000).all() and (vocab[2:] == -1000).all()
    with pytest.raises(ValueError, match="normalisation='softmax'"):
        dola_scores(qm.log()[None], qn.log(), normalisation="softmax")


def test_one_pass_sweep_equals_per_config_recomputation():
    from interp.dola import ALPHAS, dola_scores, dola_sweep

    g = torch.Generator().manual_seed(1)
    cand, pos, vocab = 6, 9, 40
    final = (2 * torch.randn(pos, vocab, generator=g, dtype=torch.float64)).log_softmax(-1)
    layers = (2 * torch.randn(cand, pos, vocab, generator=g, dtype=torch.float64)).log_softmax(-1)
    targets = torch.randint(0, vocab, (pos,), generator=g)
    targets[:3] = final[:3].argmax(-1)  # some plausible targets under every α
    buckets = {"low": [0, 1, 2], "high": [3, 4, 5], "all": list(range(cand)), "one": [4]}
    sweep, chosen = dola_sweep(layers, final, targets, buckets, ALPHAS)
    ar = torch.arange(pos)
    for name, idx in buckets.items():
        for alpha in ALPHAS:
            for post in (False, True, "vocab"):
                ref, prem = dola_scores(
                    layers[idx],
                    final,
                    alpha,
                    post_softmax=post is not False,
                    normalisation="vocab" if post == "vocab" else "plausible",
                )
                torch.testing.assert_close(sweep[(name, alpha, post)], ref[ar, targets], rtol=1e-9, atol=1e-9)
                assert chosen[name].tolist() == [idx[i] for i in prem.tolist()]


def test_candidate_layers_buckets():
    from interp.dola import candidate_layers

    assert candidate_layers(30, "0-50") == [0, 2, 4, 6, 8, 10, 12, 14]
    assert candidate_layers(30, "50-100") == [16, 18, 20, 22, 24, 26, 28]
    assert candidate_layers(18, "25-75") == [4, 6, 8, 10, 12]
    assert candidate_layers(18, "all") == list(range(0, 18, 2))
    assert candidate_layers(32, "75-100") == [24, 26, 28, 30]
    assert candidate_layers(4, [3, 1]) == [1, 3]
    with pytest.raises(ValueError, match=r"bucket='10-20' is unknown"):
        candidate_layers(30, "10-20")
    with pytest.raises(ValueError, match=r"bucket layers \[4\] out of range 0..3"):
        candidate_layers(4, [1, 4])


def test_mc_metrics_by_hand():
    from interp.dola import mc_metrics

    # true options score -1 and -3, false ones -2 and -4
    out = mc_metrics([-1.0, -3.0, -2.0, -4.0], [1, 1, 0, 0])
    assert out["mc1"] == 1.0
    assert out["mc3"] == 0.5  # only -1 beats the best false (-2)
    e = np.exp([-1.0, -3.0, -2.0, -4.0])
    assert out["mc2"] == pytest.approx((e[0] + e[1]) / e.sum())
    assert mc_metrics([-2.0, -1.0], [1, 0])["mc1"] == 0.0
    assert mc_metrics([-1.0, -1.0], [1, 0])["mc1"] == 0.0  # a tie is not a win
    with pytest.raises(ValueError, match="at least one true and one false"):
        mc_metrics([1.0, 2.0], [1, 1])


def test_length_bias_moves_raw_scores_with_answer_length():
    """Seed 001 Appendix A.1: adding a constant per token to raw logits favours long answers."""
    from interp.dola import length_bias_scores, mc_metrics

    raw = np.array([10.0, 12.0])  # true answer (3 tokens) scores below a 1-token false one
    n_tok = np.array([3, 1])
    assert mc_metrics(length_bias_scores(raw, n_tok, 0.0), [1, 0])["mc1"] == 0.0
    assert mc_metrics(length_bias_scores(raw, n_tok, 2.0), [1, 0])["mc1"] == 1.0


def test_mc_item_validation():
    from interp.dola import MCItem

    with pytest.raises(ValueError, match="has no options"):
        MCItem("Q", [], [])
    with pytest.raises(ValueError, match="2 options but 1 labels"):
        MCItem("Q", ["a", "b"], [1])
    with pytest.raises(ValueError, match="at least one true and one false"):
        MCItem("Q", ["a", "b"], [0, 0])


def test_bucket_diagnostics_on_planted_choices():
    """Bucket "a" picks layer 0 for 19 of 20 tokens (degenerate); "b" splits 10/10; "c" has the
    same scores as "a" on every item and setting, "b" does not."""
    from interp.studies.dola import bucket_diagnostics

    sa = {("dola", "a", 0.1, True): np.array([-1.0, -2.0]), ("dola", "a", 0.1, "vocab"): np.array([-3.0, -4.0])}
    scores = {
        **sa,
        **{("dola", "c", *k[2:]): v.copy() for k, v in sa.items()},
        **{("dola", "b", *k[2:]): v + 1 for k, v in sa.items()},
    }
    premature = {"a": [0] * 19 + [2], "b": [0] * 10 + [2] * 10, "c": [0] * 19 + [2]}
    diag = bucket_diagnostics([(scores, np.array([10, 10]), premature)], {"a": [0, 2], "b": [0, 2], "c": [0, 2]})
    assert diag["a"].degenerate and diag["a"].top_layer == 0 and diag["a"].shares[0] == pytest.approx(0.95)
    assert not diag["b"].degenerate and diag["b"].shares == {0: 0.5, 2: 0.5}
    assert diag["a"].same_scores_as == ["c"] and diag["b"].same_scores_as == []
    assert (
        diag["a"].same_choice_as == {"c": 1.0} and diag["b"].same_choice_as == {}
    )  # a vs b agree on 11 of 20 tokens only
