"""Values issue 27 found accepted silently, each now a named error before any compute."""

import numpy as np
import pytest
import torch


def test_recovery_tolerance_must_be_finite():
    from interp.patching import recovery

    with pytest.raises(ValueError, match="tol=nan; must be a finite number >= 0"):
        recovery(torch.zeros(1, 2), torch.ones(2), torch.zeros(2), tol=float("nan"))


def test_top_k_must_be_positive():
    from interp.patching import PatchingResult

    r = PatchingResult(
        "z",
        ("layer", "head", "batch"),
        torch.zeros(2, 2, 3),
        torch.rand(2, 2, 3),
        torch.ones(3),
        torch.zeros(3),
        torch.zeros(3, dtype=torch.bool),
        "denoise",
        "exact",
        [],
        [0, 1],
    )
    with pytest.raises(ValueError, match="k=-1; must be a positive integer"):
        r.top(-1)
    assert len(r.top(4)) == 4


def test_dose_vectors_reject_nan_doses():
    from interp.steering.doses import dose_vectors

    with pytest.raises(ValueError, match="doses"):
        dose_vectors(torch.ones(1, 4), torch.ones(1), [float("nan")])


def test_select_needs_a_split_for_exactly_the_scored_items():
    from interp.selection import select, split_items

    split = split_items(10, 0.5, 0)
    with pytest.raises(ValueError, match="split covers 5 \\+ 5 items but scores have 20"):
        select({"a": np.ones(20), "b": np.zeros(20)}, split)


def test_bootstrap_refuses_infinite_values():
    from interp.stats import bootstrap_ci

    with pytest.raises(ValueError, match="values\\[1\\]=inf"):
        bootstrap_ci([1.0, float("inf")])


def test_icl_prompts_cannot_ask_for_more_queries_than_pairs():
    from interp.mediation import icl_prompts

    pairs = [{"input": str(i), "output": str(i + 1)} for i in range(20)]
    with pytest.raises(ValueError, match="n_prompts=1000000000 but pairs has 20 entries; more prompts than pairs"):
        icl_prompts(pairs, 10**9, 3)


def test_function_vector_sizes_larger_than_the_task_are_config_errors():
    from interp.studies.function_vectors import FVConfig
    from interp.studies.function_vectors.study import check

    with pytest.raises(ValueError, match="task 'antonym' has \\d+ pairs; n_icl=25, n_eval=1000000000"):
        check(FVConfig(tasks=["antonym"], n_eval=10**9))
