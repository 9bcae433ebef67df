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
