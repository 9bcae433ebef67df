"""DoLa scoring, logit lens and apathy on the tiny random models."""

import math

import numpy as np
import pytest
import torch

PRIMER = "Q: one\nA: two\n\n"
ITEM_ARGS = ("Q: What is up?\nA:", ["the sky", "nothing at all here", "down"], [1, 0, 0])


def _full_run(model, prefix_tokens, option):
    opt = model.to_tokens(" " + option, prepend_bos=False)[0]
    toks = torch.cat([prefix_tokens, opt])[None]
    _, cache = model.run_with_cache(toks)
    return opt, cache, len(prefix_tokens)


def test_dola_scores_by_hand_on_tiny_model(tiny_model):
    """Expected DoLa scores computed in float64 numpy from the lens logits of a plain full
    forward (no KV cache, no sweep), against the scorer's one-pass numbers."""
    from interp.dola import ContinuationScorer, MCItem

    model = tiny_model
    L = model.cfg.n_layers
    scorer = ContinuationScorer(model, buckets=["all", [1]], alphas=[0.0, 0.1], shared_prefix=PRIMER)
    item = MCItem(*ITEM_ARGS)
    got = scorer.score(item)
    prefix = torch.cat([model.to_tokens(PRIMER)[0], model.to_tokens(item.context, prepend_bos=False)[0]])
    for i, option in enumerate(item.options):
        opt, cache, n0 = _full_run(model, prefix, option)
        hidden = [cache["blocks.0.hook_resid_pre"][0]] + [cache[f"blocks.{j}.hook_resid_post"][0] for j in range(L)]
        lens = [model.unembed(model.ln_final(h[None]))[0].detach().double().numpy() for h in hidden]  # [pos vocab] each

        def logsm(x):
            return x - (x.max(-1, keepdims=True) + np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)))

        for bucket, cands in {"all": [0], "1": [1]}.items():  # "all" for 2 layers = even layers [0]
            for alpha in (0.0, 0.1):
                for post in (False, True):
                    total = 0.0
                    for t in range(len(opt)):
                        p = n0 - 1 + t
                        qn = logsm(lens[L][p])
                        divs = []
                        for c in cands:
                            qm = logsm(lens[c][p])
                            mix = np.log(0.5 * (np.exp(qn) + np.exp(qm)))
                            divs.append(0.5 * (np.exp(qn) * (qn - mix)).sum() + 0.5 * (np.exp(qm) * (qm - mix)).sum())
                        qm = logsm(lens[cands[int(np.argmax(divs))]][p])
                        f = qn - qm
                        plausible = qn >= qn.max() + (math.log(alpha) if alpha > 0 else -np.inf)
                        tok = int(opt[t])
                        if not plausible[tok]:
                            total += -1000.0
                            continue
                        if post:
                            fp = f[plausible]
                            f_tok = f[tok] - (fp.max() + np.log(np.exp(fp - fp.max()).sum()))
                        else:
                            f_tok = f[tok]
                        total += f_tok
                    ours = got.scores[("dola", bucket, alpha, post)][i]
                    assert ours == pytest.approx(total, rel=1e-4, abs=1e-3), (option, bucket, alpha, post)
        base = sum(float(logsm(lens[L][n0 - 1 + t])[int(opt[t])]) for t in range(len(opt)))
        assert got.scores[("baseline",)][i] == pytest.approx(base, rel=1e-5, abs=1e-4)
        assert got.n_tokens[i] == len(opt)


def test_scorer_without_shared_prefix_matches_full_forward(tiny_model):
    from interp.dola import ContinuationScorer, MCItem

    scorer = ContinuationScorer(tiny_model, buckets=["all"], alphas=[0.0])
    item = MCItem(*ITEM_ARGS)
    got = scorer.score_all([item])[0]
    prefix = tiny_model.to_tokens(item.context)[0]
    for i, option in enumerate(item.options):
        opt, cache, n0 = _full_run(tiny_model, prefix, option)
        lp = (
            tiny_model.unembed(tiny_model.ln_final(cache[f"blocks.{tiny_model.cfg.n_layers - 1}.hook_resid_post"]))
            .log_softmax(-1)[0]
            .detach()
        )
        assert got.scores[("baseline",)][i] == pytest.approx(
            sum(float(lp[n0 - 1 + t, opt[t]]) for t in range(len(opt))), abs=1e-4
        )


def test_scorer_leaves_no_hooks_and_restores_weights_on_error(tiny_llama):
    from interp.dola import ContinuationScorer, MCItem
    from interp.hooks import active_hook_count

    scorer = ContinuationScorer(tiny_llama, buckets=["all"], alphas=[0.0], shared_prefix=PRIMER)
    w_u = tiny_llama.unembed.W_U
    with pytest.raises(ValueError, match="empty context"):
        scorer.score_all([MCItem("Q: fine\nA:", ["a", "b"], [1, 0]), MCItem("", ["a", "b"], [1, 0])])
    assert active_hook_count(tiny_llama) == 0 and tiny_llama.unembed.W_U is w_u
    with pytest.raises(ValueError, match="items is empty"):
        scorer.score_all([])


def test_truthfulqa_and_factor_items():
    from interp.data import load_factor, load_truthfulqa_mc
    from interp.dola import TruthfulQAItem, factor_item

    q = load_truthfulqa_mc()[0]
    tq = TruthfulQAItem.from_question(q)
    opts = tq.item.options
    assert [opts[i] for i in tq.mc1] == list(q.mc1_targets) and [opts[i] for i in tq.mc2] == list(q.mc2_targets)
    assert tq.item.context == f"Q: {q.question}\nA:"
    scores = np.zeros(len(opts))
    scores[tq.mc1[0]] = 5.0  # the MC1 answer is also true in MC2
    m = tq.metrics(scores)
    assert m["mc1"] == 1.0 and 0 < m["mc2"] < 1
    f = factor_item(load_factor()[0])
    assert f.labels == [1, 0, 0, 0] and not f.context.endswith(" ")


def test_lens_last_row_is_the_model_and_mid_rows(tiny_model):
    import interp
    from interp.lens import logit_lens

    batch = interp.tokenize(tiny_model, ["The cat sat on the", "A dog"])
    ids = torch.tensor([5, 7])
    res = logit_lens(tiny_model, batch, {"x": ids}, mid=True)
    L = tiny_model.cfg.n_layers
    assert res.sites == [s for i in range(L) for s in (f"L{i}.mid", f"L{i}.post")]
    logits = interp.run_batch(tiny_model, batch)
    probs = logits[torch.arange(2), batch.last_index].softmax(-1)
    torch.testing.assert_close(res.probs["x"][-1], probs[torch.arange(2), ids], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"tokens\['x'\] has shape \(3,\); expected one id per prompt: \(2,\)"):
        logit_lens(tiny_model, batch, {"x": torch.tensor([1, 2, 3])})


def test_apathy_by_hand_and_curves(tiny_model):
    import interp
    from interp.lens import apathy, apathy_curves

    a = torch.tensor([3.0, 4.0])  # |a| = 5
    assert float(apathy(a, torch.tensor([0.6, 0.8]))) == pytest.approx(2 * 4)  # cos 1, 5 - 1
    assert float(apathy(a, -a)) == pytest.approx(0.0)  # cos -1
    assert float(apathy(a, torch.tensor([-4.0, 3.0]))) == pytest.approx(0.0)  # cos 0, equal norms
    batch = interp.tokenize(tiny_model, ["The cat sat on the", "A dog"])
    res = apathy_curves(tiny_model, batch)
    L = tiny_model.cfg.n_layers
    assert res.attn.shape == (L, 2) and res.mlp.shape == (L, 2)
    _, cache = tiny_model.run_with_cache(batch.tokens[:1, : int(batch.last_index[0]) + 1])
    expect = apathy(cache["blocks.1.hook_resid_mid"][0, -1], cache["blocks.1.hook_mlp_out"][0, -1])
    assert float(res.mlp[1, 0]) == pytest.approx(float(expect), rel=1e-5)
    na, nm = res.normalised()
    both = torch.cat([na, nm])
    assert float(both.min()) == 0.0 and float(both.max()) == 1.0


def test_dola_experiment_smoke(tmp_path):
    import json

    from interp.runner import run_study

    run_study("dola", "configs/dola.smoke.yaml", [f"run.results_dir={tmp_path}", "run.run_id=smoke"])
    folder = tmp_path / "dola" / "smoke"
    for f in ["length_bias.png", "lens_apathy_random_tiny-llama.png", "premature_random_tiny-gpt2.png"]:
        assert (folder / f).stat().st_size > 1000, f
    metrics = json.loads((folder / "metrics.json").read_text())
    tq = metrics["random:tiny-llama"]["truthfulqa"]
    assert {"base", "base_raw", "dola|0-50|0.1", "dola_vocab|0-50|0.1", "dola_raw|all|0.5", "base_raw+5"} <= set(tq)
    # the tiny models have 2 layers: both buckets are layer 0 alone, so both are flagged and equal
    buckets = metrics["random:tiny-llama"]["buckets"]
    assert buckets["0-50"]["degenerate"] and buckets["0-50"]["same_scores_as"] == ["all"]
    for variant in tq.values():
        assert 0.0 <= variant["mc1"] <= 1.0 and 0.0 <= variant["mc2"] <= 1.0
    report = (folder / "report.md").read_text()
    assert "Length bias" in report and "Δ MC1 (paired)" in report
    # the headline is held out: chosen on one part, reported on a disjoint part of the items
    held = metrics["random:tiny-llama"]["held_out"]["truthfulqa"]
    assert held["n_selection"] + held["n_test"] == 5 and held["n_test"] >= 1
    assert "HEADLINE" in report and "labelled best-on-test" in report


def test_dola_held_out_choice_ignores_test_items():
    """A bucket that is best only on the test items must not be chosen; the seed's procedure on
    the test items (labelled) picks it."""
    from interp.selection import restrict, split_items
    from interp.studies.dola import best_bucket
    from interp.studies.dola.study import DolaConfig, held_out

    cfg = DolaConfig(buckets=["a", "b"], alphas=[0.0, 0.1], select_alpha=0.1)
    n = 40
    split = split_items(n, cfg.selection.test_fraction, cfg.selection.seed)
    a, b = np.full(n, 0.5), np.full(n, 0.3)
    a[split.selection] = 0.6  # a: better on the selection items
    b[split.test] = 0.9  # b: better on the test items only
    m = {"base": {"mc1": np.full(n, 0.4)}}
    for bucket, v in (("a", a), ("b", b)):
        for alpha in cfg.alphas:
            m[f"dola|{bucket}|{alpha:g}"] = {"mc1": v + (0.01 if alpha == 0.1 else 0.0)}
    bucket, alpha, sel, got = held_out(cfg, m, "mc1")
    assert (bucket, alpha) == ("a", 0.1) and np.array_equal(got.test, split.test)
    assert sel.test.mean == pytest.approx(0.51) and sel.optimism_gap == pytest.approx(0.1)
    assert best_bucket(cfg, restrict(m, split.test), "mc1") == "b"


def test_masked_token_counts_per_option(tiny_llama):
    """("masked", α) counts an option's tokens outside the plausible set: whole numbers within
    the option's length, growing with α, and the implausible score (−1000 each) is in the sums."""
    import numpy as np

    from interp.dola import IMPLAUSIBLE, ContinuationScorer, MCItem

    item = MCItem("Q: What colour is the sky?\nA:", [" blue and wide", " green", " it is red"], [1, 0, 0])
    r = ContinuationScorer(tiny_llama, buckets=["all"], alphas=[0.0, 0.5, 0.9]).score(item)
    assert ("masked", 0.0) not in r.scores
    lo, hi = r.scores[("masked", 0.5)], r.scores[("masked", 0.9)]
    assert np.array_equal(lo, np.round(lo)) and (lo >= 0).all() and (hi <= r.n_tokens).all() and (hi >= lo).all()
    assert hi.sum() > 0  # a random model puts most answer tokens outside a 0.9 relative-top set
    raw = r.scores[("dola", "all", 0.9, False)]
    plausible_part = raw - IMPLAUSIBLE * hi  # what the unmasked tokens contribute
    assert (np.abs(plausible_part) < 50 * r.n_tokens).all()
