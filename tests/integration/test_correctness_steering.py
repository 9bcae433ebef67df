"""Correctness-direction sweep: problem generation and answer parsing (unit-level), and the
experiment's smoke config on the 135M model."""

import json

import pytest

from interp.data.arithmetic import SHOTS, parse_answer, problems, prompt


def test_problems_are_seeded_distinct_and_correct():
    a, b = problems("add2", 50, seed=3), problems("add2", 50, seed=3)
    assert a == b and len({p.question for p in a}) == 50
    for p in problems("sub2", 30) + problems("mul1", 30) + problems("add21", 30) + problems("sub21", 30):
        x, op, y, _ = p.question.split()
        assert p.answer == {"+": int(x) + int(y), "-": int(x) - int(y), "*": int(x) * int(y)}[op] and p.answer > 0
    assert not {p.question for p in problems("mul1", 64)} & {s.question for s in SHOTS["mul1"]}
    assert len(problems("add1", 500)) == 79  # 81 pairs minus the two worked examples
    assert prompt(a[0], "add2").endswith(f"Q: {a[0].question}\nA:")
    with pytest.raises(ValueError, match="kind='div'"):
        problems("div", 3)


@pytest.mark.parametrize(
    "text, want", [(" 17\n\nQ:", 17), ("42", 42), (" -3 apples", -3), (" seventeen", None), ("", None)]
)
def test_parse_answer(text, want):
    assert parse_answer(text) == want


@pytest.mark.slow
def test_correctness_experiment_smoke(tmp_path):
    from interp.runner import run_study

    run_study(
        "correctness_steering",
        "configs/correctness_steering.smoke.yaml",
        [f"run.results_dir={tmp_path}", "run.run_id=smoke"],
    )
    folder = tmp_path / "correctness_steering" / "smoke"
    assert (folder / "accuracy_smollm2-135m-instruct.png").stat().st_size > 1000
    m = json.loads((folder / "metrics.json").read_text())["smollm2-135m-instruct"]
    assert m["kind"] in ("add1", "mul1") and len(m["layers"]) == 3
    for layer, changed in m["control_changed"].items():
        assert max(changed) > 0, f"the positive control did not change any output at layer {layer}"
    report = (folder / "report.md").read_text()
    assert "Smallest accuracy change" in report
    # the bracketing grid: the smallest relative dose changes fewer outputs than the largest (d = ±1)
    doses = m["relative_doses"]
    for layer, changed in m["relative_changed"].items():
        small = max(changed[doses.index(-0.03)], changed[doses.index(0.03)])
        big = max(changed[doses.index(-1.0)], changed[doses.index(1.0)])
        assert big > 0.5 and big > small, (layer, changed)
    # raw α in relative units: α · ‖direction‖ / mean residual norm; the seed's |α| ≤ 1 stays far below d = 1
    for layer, rel in m["relative_of_raw"].items():
        assert max(abs(x) for x in rel) < 0.2
    assert "bracketing grid" in report and (folder / "doses_smollm2-135m-instruct.png").stat().st_size > 1000


def test_zero_relative_dose_is_an_error():
    from interp.studies.correctness_steering import CorrectnessSettings, check_settings

    with pytest.raises(ValueError, match=r"relative_doses=\[0.0, 1.0\]; leave out 0"):
        check_settings(CorrectnessSettings(relative_doses=[0.0, 1.0]))


def test_kinds_without_enough_problems_are_an_error(tmp_path):
    from interp.runner import run_study

    with pytest.raises(ValueError, match=r"no kind in \['add1', 'mul1'\] has n_calibrate \+ n_problems = 408"):
        run_study(
            "correctness_steering",
            "configs/correctness_steering.smoke.yaml",
            [f"run.results_dir={tmp_path}", "models=[random:tiny-llama]", "n_problems=400"],
        )
