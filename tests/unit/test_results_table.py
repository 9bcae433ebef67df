"""docs/results/README.md is rendered from the committed reports, and every number a FINDINGS
file states is in a report it cites."""

import json
import shutil

import pytest


def test_committed_results_table_matches_the_reports():
    from interp.results_table import RESULTS, render

    committed = (RESULTS / "README.md").read_text()
    assert committed == render(), "docs/results/README.md is stale: run `interp results` and commit it"


def test_every_findings_number_is_in_a_cited_report():
    from interp.results_table import findings_mismatches

    assert findings_mismatches() == {}


def test_a_changed_metric_makes_the_table_stale_and_a_drifted_finding_is_caught(tmp_path):
    """A planted drift: edit one number of a copied report's metrics.json, and one number of a
    copied FINDINGS — both checks must notice."""
    from interp.results_table import RESULTS, findings_mismatches, render, stale, write

    root = tmp_path / "results"
    shutil.copytree(RESULTS / "correctness_steering", root / "correctness_steering")
    write(root)
    assert not stale(root)
    m = root / "correctness_steering" / "controls-smollm2" / "metrics.json"
    data = json.loads(m.read_text())
    data["smollm2-135m-instruct"]["base_accuracy"] = 0.99
    m.write_text(json.dumps(data))
    assert stale(root) and "99.0 %" in render(root)
    assert findings_mismatches(root) == {}
    f = root / "correctness_steering" / "FINDINGS.md"
    f.write_text(f.read_text() + "\nThe direction lowers accuracy by 17.35 pp.\n")
    assert findings_mismatches(root) == {"correctness_steering": ["17.35"]}


def test_a_study_without_headline_is_an_error(tmp_path, monkeypatch):
    import dataclasses

    from interp import results_table
    from interp.study import get_study

    study = dataclasses.replace(get_study("correctness_steering"), headline=None)
    monkeypatch.setattr(results_table, "get_study", lambda name: study)
    with pytest.raises(ValueError, match="no headline"):
        results_table.study_table("correctness_steering", [results_table.RESULTS / "correctness_steering"])


def test_toy_headline_counts_only_cells_whose_control_ci_is_above_zero():
    """Planted: of three adapter cells at m = 60, one CI straddles 0 and one is above it; a cell of
    another m and the unsteered row (no control) are not counted."""
    from interp.studies.toy_steering.study import headline

    results = [
        {"adapter": "none", "m": 60, "n_pairs": 4},
        {"adapter": "caa", "m": 60, "n_pairs": 4, "accuracy_minus_control_ci": [0.10, 0.30]},
        {"adapter": "ace", "m": 60, "n_pairs": 4, "accuracy_minus_control_ci": [-0.05, 0.20]},
        {"adapter": "caa", "m": 90, "n_pairs": 4, "accuracy_minus_control_ci": [0.10, 0.30]},
    ]
    metrics = {"summary": {"m60": {"caa": {"4": 0.5}, "ace": {"4": 0.2}}}, "m60_val_accuracy": 0.99, "results": results}
    (row,) = headline(metrics, {"n_val": 10, "n_test": 10, "repeats": 1})
    assert row["chosen settings beating random directions"] == "1 of 2"
    assert row["caa"] == "0.50 / 0.50 / 0.50" and row["N: smallest / middle / largest"] == "4 / 4 / 4"
    no_ctrl = headline({**metrics, "results": results[:1]}, {})[0]
    assert no_ctrl["chosen settings beating random directions"] == "no control in this report"


def test_wall_time_names_the_cells_an_earlier_run_computed():
    """A report re-rendered from cached cells must not pass its render time for the run's cost."""
    from interp.results_table import _wall_text

    assert _wall_text({"wall_time_s": 24.4, "cache": {"reused": {"a03eef0c": 12, "9464770": 3}, "computed": 0}}) == (
        "24 s (15 cells from earlier runs)"
    )
    assert _wall_text({"wall_time_s": 4199.7, "cache": {"reused": {}, "computed": 15}}) == "4200 s"
    assert _wall_text({}) == "-"


def test_findings_check_reads_sentence_final_numbers_and_exponents_and_not_metrics_json(tmp_path):
    """Planted: a FINDINGS number at a sentence's end and one in e-notation are checked like any
    other, and a number that only metrics.json holds (not the report a reader sees) is flagged."""
    from interp.results_table import findings_mismatches

    study = tmp_path / "fv_transfer"
    (study / "r").mkdir(parents=True)
    (study / "r" / "report.md").write_text("Per task: r = +0.284, p = 0.103. Disturbance 3.04e-03 at L6.\n")
    (study / "r" / "metrics.json").write_text('{"hidden": 0.4711}')
    findings = study / "FINDINGS.md"
    findings.write_text("See [r/report.md](r/report.md). The p is 0.103. Disturbance 3.0e-3.\n")
    assert findings_mismatches(tmp_path) == {}
    findings.write_text("See [r/report.md](r/report.md). The p is 0.104. Disturbance 3.1e-03. Also 0.47.\n")
    assert findings_mismatches(tmp_path) == {"fv_transfer": ["0.104", "3.1e-03", "0.47"]}
