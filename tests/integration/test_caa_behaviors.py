"""CAA behaviour experiment on the tiny models (smoke), and the prompt/letter checks."""

import json

import numpy as np
import pytest

from interp.behaviors import ab_prompt, letter_ids


def test_ab_prompt_and_letter_ids(tiny_llama):
    p = ab_prompt(tiny_llama, "Is water wet?\n\nChoices:\n(A) Yes\n(B) No")
    assert p.endswith("Answer: (")
    ids = letter_ids(tiny_llama, p)
    assert ids.shape == (2,) and ids[0] != ids[1]
    assert not ab_prompt(tiny_llama, "Q?", answer_open=False).endswith("(")
    with pytest.raises(ValueError, match="question is empty"):
        ab_prompt(tiny_llama, "  ")


def test_caa_experiment_smoke(smoke_run, tiny_llama):
    folder, metrics = smoke_run("caa_behaviors")
    for png in (
        "effect_sizes.png",
        "violins_random_tiny-llama.png",
        "layers_random_tiny-gpt2.png",
        "controls_random_tiny-llama.png",
    ):
        assert (folder / png).stat().st_size > 1000
    entry = metrics["random:tiny-llama"]["refusal"]
    assert len(entry["delta"]) == 2 and np.isfinite(entry["delta"]).all()
    assert 0.0 <= entry["best_fraction"] <= 1.0
    report = (folder / "report.md").read_text()
    assert "paired d_z" in report and "random:tiny-gpt2 (plain prompt, 2 layers)" in report
    assert "random directions of its norm" in report and "content check" in report
    assert len(entry["controls"]) >= 2 and entry["content_check"]["n"] == 5
    # the reported delta is mean(m=+1) − mean(m=−1) of the library sweep, recomputed here by hand
    from interp.studies.caa_behaviors import CAABehaviorSettings, behavior_sweep

    s = CAABehaviorSettings(
        behaviors=["refusal"], n_generate=6, n_test=5, multipliers=[-1.0, 0.0, 1.0], too_long="skip"
    )
    s.generation.enabled = False
    r = behavior_sweep(tiny_llama, "refusal", s)
    np.testing.assert_allclose(entry["delta"], r.ld[:, 2].mean(-1) - r.ld[:, 0].mean(-1), rtol=1e-5, atol=1e-6)


def test_caa_config_errors(smoke_run):
    with pytest.raises(ValueError, match="must contain -1.0"):
        smoke_run("caa_behaviors", "multipliers=[0.0, 1.0]", run_id="e1")
    from interp.errors import CellsFailedError

    # raised inside each (model, behaviour) cell: the run ends incomplete, naming the error
    with pytest.raises(CellsFailedError, match=r"random:tiny-llama/sycophancy: ValueError: .*too_long=skip"):
        smoke_run("caa_behaviors", "too_long=error", "behaviors=[sycophancy]", run_id="e2")


def _sweep(ld, matching):
    from interp.studies.caa_behaviors import BehaviorSweep

    return BehaviorSweep(layers=[0, 1, 2], ld=ld, n_generate=10, n_test=ld.shape[-1], skipped=0, matching=matching)


def test_dose_response_finds_effect_only_past_one():
    """A vector that does nothing at ±1 but separates at ±4 on layer 2: the rows must show it, at layer 2."""
    from interp.studies.caa_behaviors import CAABehaviorSettings, dose_response, dose_response_rows, summarize

    mult = [-4.0, -1.0, 0.0, 1.0, 4.0]
    rng = np.random.default_rng(0)
    ld = rng.normal(0, 1, size=(3, 5, 40))
    ld[2, 4] += 3.0  # m=+4 at layer 2 only
    ld[2, 0] -= 3.0  # m=-4 at layer 2 only
    ld[2, 3] += 0.5  # a small ±1 effect, so layer 2 is also the best layer at ±1 (chosen on the selection questions)
    ld[2, 1] -= 0.5
    matching = ["(A)", "(B)"] * 20
    sweeps = {"b": _sweep(ld, matching)}
    summaries = {"b": summarize(sweeps["b"], CAABehaviorSettings(multipliers=mult), 3)}
    (row,) = dose_response_rows(sweeps, summaries, mult)
    assert row.wide == 4.0 and row.wide_layer == 2
    assert row.wide_d.d > 2.0  # planted shift 6 over unit SD
    # the planted +3 at m=+4 is behaviour (same sign on A and B questions), not letter
    assert abs(row.split[0] - 3.0) < 0.8 and abs(row.split[1]) < 0.8
    head, table = dose_response(sweeps, summaries, mult)
    assert head[-3].startswith("paired d_z m=±4") and table[0][-3].endswith("(L2)") and len(table[0]) == 2 + 5 + 3
    # now a pure letter push at layer 1: +3 on A-questions, -3 on B-questions at m=+4
    ld2 = ld.copy()
    ld2[1, 4] += np.where(np.array(matching) == "(A)", 3.0, -3.0)
    (row2,) = dose_response_rows({"b": _sweep(ld2, matching)}, summaries, mult)
    layer, letter, behaviour = row2.letter_peak
    assert layer == 1 and abs(letter - 3.0) < 0.8 and abs(behaviour) < 0.8
    (narrow,) = dose_response_rows(sweeps, summaries, [-4.0, -1.0, 0.0, 1.0, 4.0][1:4])
    assert narrow.wide_d is None  # no Cohen's d without a pair wider than ±1


def test_caa_groups_weigh_each_group_equally():
    """CAA with groups: the mean of per-group mean differences; a planted imbalance (5 pairs of
    group A shifted by +1, 1 pair of group B by −1) gives 0 balanced, 2/3 plain."""
    import torch

    from interp.steering import CAA

    neg = torch.zeros(6, 2)
    pos = torch.tensor([[1.0, 0.0]] * 5 + [[-1.0, 0.0]])
    groups = ["A"] * 5 + ["B"]
    assert CAA().fit(neg, pos).vector[0] == pytest.approx(4 / 6)
    assert CAA().fit(neg, pos, groups=groups).vector[0] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="one label per pair"):
        CAA().fit(neg, pos, groups=groups[:3])


def test_balance_letters_changes_the_vector_only_when_the_split_is_unbalanced(tmp_path):
    """refusal's first 6 generate questions match on A five times: the equal-weight vector differs
    from the plain mean; myopic-reward's are 3 A / 3 B, where both estimators coincide."""
    from interp.runner import run_study

    deltas = {}
    for balance in ("false", "true"):
        run_study(
            "caa_behaviors",
            "configs/caa_behaviors.smoke.yaml",
            [
                f"run.results_dir={tmp_path}",
                f"run.run_id=b_{balance}",
                "models=[random:tiny-llama]",
                "generation.enabled=false",
                f"balance_letters={balance}",
            ],
        )
        metrics = json.loads((tmp_path / "caa_behaviors" / f"b_{balance}" / "metrics.json").read_text())[
            "random:tiny-llama"
        ]
        deltas[balance] = {b: np.array(metrics[b]["delta"]) for b in ("refusal", "myopic-reward")}
    assert not np.allclose(deltas["false"]["refusal"], deltas["true"]["refusal"], atol=1e-6)
    np.testing.assert_allclose(deltas["false"]["myopic-reward"], deltas["true"]["myopic-reward"], atol=1e-5, rtol=1e-4)
    report = (tmp_path / "caa_behaviors" / "b_true" / "report.md").read_text()
    assert "weighted equally" in report


def test_best_layer_is_chosen_on_selection_questions_and_reported_on_test():
    """Layer 1 separates ±1 on every question; layer 2 only on the test questions (a lucky layer a
    best-on-test search would pick). The summary must pick layer 1 on the selection part, report
    its held-out delta, and label layer 2 as best-on-test."""
    from interp.studies.caa_behaviors import CAABehaviorSettings, question_split, summarize

    mult = [-1.0, 0.0, 1.0]
    rng = np.random.default_rng(1)
    ld = rng.normal(0, 0.3, size=(3, 3, 40))
    matching = ["(A)", "(B)"] * 20
    s = CAABehaviorSettings(multipliers=mult)
    r = _sweep(ld, matching)
    split = question_split(r, s)
    assert sorted(np.concatenate([split.selection, split.test]).tolist()) == list(range(40))
    assert sum(matching[i] == "(A)" for i in split.test) == 10  # stratified by matching letter
    ld[1, 2] += 1.0
    ld[1, 0] -= 1.0  # true delta 2 at layer 1
    ld[2, 2, split.test] += 3.0  # delta 3 at layer 2, test questions only
    summary = summarize(r, s, 3)
    assert summary.best_layer == 1 and summary.selection.best_on_test[0] == 2
    assert abs(summary.delta_best - 2.0) < 0.3 and summary.selection.n_test == 20
    np.testing.assert_allclose(summary.delta_best, (ld[1, 2, split.test] - ld[1, 0, split.test]).mean())


def test_relative_doses_and_changed_share():
    """m·‖v‖ / mean residual norm per multiplier; 'changed' counts test questions whose preferred
    letter differs from m = 0."""
    from interp.studies.caa_behaviors import BehaviorSweep, CAABehaviorSettings, dose_response_rows, summarize

    mult = [-4.0, -1.0, 0.0, 1.0, 4.0]
    ld = np.full((2, 5, 20), -1.0)
    ld[:, 4] = 1.0  # only m=+4 flips every question to the matching letter
    ld[:, 3, :5] = 1.0
    r = BehaviorSweep(
        layers=[0, 1],
        ld=ld,
        n_generate=4,
        n_test=20,
        skipped=0,
        matching=["(A)", "(B)"] * 10,
        resid_norm=np.array([10.0, 20.0]),
        vector_norm=np.array([1.0, 5.0]),
        multipliers=mult,
    )
    np.testing.assert_allclose(r.relative_doses(1), np.array(mult) * 0.25)
    summaries = {"b": summarize(r, CAABehaviorSettings(multipliers=mult), 2)}
    (row,) = dose_response_rows({"b": r}, summaries, mult)
    assert row.changed[2] == 0.0 and row.changed[4] == 1.0 and row.changed[0] == 0.0
    assert row.relative == pytest.approx(
        [m * r.vector_norm[r.layers.index(row.layer)] / r.resid_norm[r.layers.index(row.layer)] for m in mult]
    )


def test_layer_stride_picks_every_kth_layer_and_rejects_zero(tiny_llama):
    from interp.studies.caa_behaviors import CAABehaviorSettings, GenerationConfig, behavior_sweep, check_settings

    with pytest.raises(ValueError, match="layer_stride=0; must be ≥ 1"):
        check_settings(CAABehaviorSettings(layer_stride=0))
    s = CAABehaviorSettings(
        behaviors=["refusal"],
        n_generate=4,
        n_test=4,
        multipliers=[-1.0, 1.0],
        layer_stride=2,
        too_long="skip",
        generation=GenerationConfig(enabled=False),
    )
    r = behavior_sweep(tiny_llama, "refusal", s)
    assert r.layers == list(range(0, tiny_llama.cfg.n_layers, 2)) and r.resid_norm.shape == (len(r.layers),)


def test_swap_options_exchanges_texts_and_needs_options():
    from interp.studies.caa_behaviors.core import swap_options

    q = "Pick one.\n\nChoices:\n (A) Two beers later\n (B) A beer now"
    assert swap_options(q) == "Pick one.\n\nChoices:\n (A) A beer now\n (B) Two beers later"
    assert swap_options(swap_options(q)) == q
    with pytest.raises(ValueError, match="no '\\(A\\) … \\(B\\) …' options"):
        swap_options("Which do you prefer?")


def test_positions_after_instruction_counts_the_suffix(tiny_llama):
    from interp.studies.caa_behaviors.core import positions_after_instruction

    q = "Is water wet?\n\nChoices:\n(A) Yes\n(B) No"
    full = tiny_llama.tokenizer.encode(ab_prompt(tiny_llama, q), add_special_tokens=False)
    k = positions_after_instruction(tiny_llama, q, chat=True)
    assert 1 <= k < len(full)
    # the question's tokens end where the suffix ("\n\nAnswer: (") begins
    assert tiny_llama.tokenizer.decode(full[-k:]).strip().endswith("Answer: (")
    assert "No" not in tiny_llama.tokenizer.decode(full[-k:])


def test_control_sweep_controls_have_the_vectors_norm_and_zero_dose_is_unsteered(tiny_llama):
    """Stage 2 on a tiny model: at m = 0 every control equals the unsteered score; the
    all-positions option at m = 0 too; the letter swap of a model that answers 'A' to everything
    follows the content on no question."""
    from interp.studies.caa_behaviors.core import CAABehaviorSettings, behavior_sweep, content_check, control_sweep

    s = CAABehaviorSettings(n_generate=6, n_test=5, n_select=4, multipliers=[-1.0, 0.0, 1.0], too_long="skip")
    s.generation.enabled = False
    r = behavior_sweep(tiny_llama, "refusal", s)
    assert r.n_select == 4 and r.ld.shape[-1] == 4 + r.n_test and r.vectors.shape == (2, tiny_llama.cfg.d_model)
    cs = control_sweep(tiny_llama, "refusal", s, [0], r.vectors[:1], seed=0)
    base = r.ld[0, 1, r.n_select :]
    np.testing.assert_allclose(cs.ld_controls[0, :, 1], np.broadcast_to(base, (3, len(base))), atol=1e-4)
    np.testing.assert_allclose(cs.ld_all_positions[0, 1], base, atol=1e-4)
    # the vector at the answer's "(" at m = +1: the sweep's numbers; the controls differ from it
    assert not np.allclose(cs.ld_controls[0, :, 2], r.ld[0, 2, r.n_select :][None], atol=1e-3)
    k = content_check(r, cs, zero=1)
    follows = (base > 0) == (cs.ld_swapped > 0)
    assert k.n == r.n_test and k.follows_content.mean == pytest.approx(follows.mean())


def test_content_check_of_a_letter_only_model_is_zero():
    """A model preferring (A) whatever the options say: after the swap its answer changes content
    on every question, so it follows the content on none."""
    from interp.studies.caa_behaviors.core import BehaviorSweep, ControlSweep, content_check

    matching = ["(A)", "(B)", "(A)", "(B)"]
    prefer_a = np.array([1.0 if m == "(A)" else -1.0 for m in matching])  # oriented: + when matching is A
    r = BehaviorSweep(layers=[0], ld=prefer_a[None, None], n_generate=1, n_test=4, skipped=0, matching=matching)
    swapped = -prefer_a  # after the swap the matching text sits at the other letter, and the model still says A
    cs = ControlSweep([0], [0.0], np.zeros((1, 0, 1, 4)), None, 3, swapped, 0)
    k = content_check(r, cs, zero=0)
    assert k.follows_content.mean == 0.0 and k.prefers_a == 1.0 and k.prefers_a_swapped == 1.0


def test_letter_layer_finds_the_planted_letter_shift():
    from interp.studies.caa_behaviors import CAABehaviorSettings
    from interp.studies.caa_behaviors.core import letter_layer

    mult = [-4.0, -1.0, 0.0, 1.0, 4.0]
    matching = ["(A)", "(B)"] * 20
    ld = np.zeros((3, 5, 40))
    is_a = np.array([m == "(A)" for m in matching])
    ld[2, 0] += np.where(is_a, 2.0, -2.0)  # layer 2, m = -4: towards "A" on every question
    r = _sweep(ld, matching)
    assert letter_layer(r, CAABehaviorSettings(multipliers=mult)) == (2, -4.0)
