"""Loaders for the datasets shipped in ``interp/data/datasets`` (sources: SOURCES.md there)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

DATA_ROOT = Path(__file__).parent / "datasets"
CAA_BEHAVIORS = (
    "coordinate-other-ais",
    "corrigible-neutral-HHH",
    "hallucination",
    "myopic-reward",
    "refusal",
    "survival-instinct",
    "sycophancy",
)
CAA_SPLITS = {
    "generate": "generate_dataset.json",
    "test_ab": "test_dataset_ab.json",
    "test_open_ended": "test_dataset_open_ended.json",
}
FACTOR_SPLITS = ("news", "expert")


def dataset_path(*parts: str) -> Path:
    path = DATA_ROOT.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"{path} is not among the shipped datasets (see {DATA_ROOT}/SOURCES.md)")
    return path


def _non_empty(items: list, what: str) -> list:
    if not items:
        raise ValueError(f"dataset {what} is empty; expected at least one item")
    return items


def _choose(arg: str, value: str, allowed) -> str:
    if value not in allowed:
        raise ValueError(f"{arg}={value!r} is not available; allowed: {sorted(allowed)}")
    return value


# ---------------------------------------------------------------- function-vector word pairs


# Tasks derived from a shipped file by a fixed rule: name -> (source task, output from input).
# "uppercase" is the whole word in capitals (seed 000's capitalize task; Todd et al.'s
# "capitalize" upper-cases only the first letter), on the inputs of capitalize.json.
DERIVED_FV_TASKS = {"uppercase": ("capitalize", str.upper)}


def list_fv_tasks() -> list[str]:
    return sorted([p.stem for p in (DATA_ROOT / "function_vectors").glob("*.json")] + list(DERIVED_FV_TASKS))


def load_fv_task(task: str) -> list[dict[str, str]]:
    """Word pairs ``{"input": ..., "output": ...}`` of a Todd et al. abstractive task, or of a
    task derived from one (``DERIVED_FV_TASKS``)."""
    _choose("task", task, list_fv_tasks())
    if task in DERIVED_FV_TASKS:
        source, rule = DERIVED_FV_TASKS[task]
        return _non_empty([{"input": p["input"], "output": rule(p["input"])} for p in load_fv_task(source)], task)
    pairs = json.loads(dataset_path("function_vectors", f"{task}.json").read_text())
    return _non_empty([{"input": str(p["input"]), "output": str(p["output"])} for p in pairs], task)


# ---------------------------------------------------------------- TruthfulQA (v1, 817 questions)


@dataclass(frozen=True)
class MCQuestion:
    question: str
    mc1_targets: dict[str, int]  # answer -> 1 (true) / 0 (false); exactly one true
    mc2_targets: dict[str, int]  # answer -> 1 / 0; several true


TRUTHFULQA_VERSIONS = {"v1": ("v1", "mc_task.json"), "2025": ("mc_task.json",)}


def load_truthfulqa_mc(version: str = "v1") -> list[MCQuestion]:
    """TruthfulQA multiple choice. ``v1``: the original 817 questions that published DoLa /
    ITI / CAA numbers use; ``2025``: the January 2025 revision (790 questions)."""
    _choose("version", version, TRUTHFULQA_VERSIONS)
    rows = json.loads(dataset_path("truthfulqa", *TRUTHFULQA_VERSIONS[version]).read_text())
    return _non_empty(
        [MCQuestion(r["question"], r["mc1_targets"], r["mc2_targets"]) for r in rows], f"truthfulqa/{version}"
    )


# ---------------------------------------------------------------- FACTOR


@dataclass(frozen=True)
class FactorItem:
    prefix: str  # the truncated prefix the benchmark scores completions after
    completion: str  # the factual completion
    contradictions: tuple[str, str, str]  # three non-factual completions


def load_factor(split: str = "news") -> list[FactorItem]:
    _choose("split", split, FACTOR_SPLITS)
    with dataset_path("factor", f"{split}_factor.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    items = [
        FactorItem(
            r["turncated_prefixes"], r["completion"], (r["contradiction_0"], r["contradiction_1"], r["contradiction_2"])
        )
        for r in rows
    ]
    return _non_empty(items, f"factor/{split}")


# ---------------------------------------------------------------- CAA A/B behaviour datasets


def load_caa(behavior: str, split: str = "generate") -> list[dict[str, str]]:
    """Items with ``question`` and, for A/B splits, ``answer_matching_behavior`` /
    ``answer_not_matching_behavior`` (e.g. ``"(A)"``)."""
    _choose("behavior", behavior, CAA_BEHAVIORS)
    _choose("split", split, CAA_SPLITS)
    items = json.loads(dataset_path("caa", behavior, CAA_SPLITS[split]).read_text())
    return _non_empty(items, f"caa/{behavior}/{split}")


def data_dir(name: str) -> Path:
    """The shipped dataset folder ``name`` (e.g. ``function_vectors``): cells declare it as an
    input, so its content digest enters their cache keys."""
    path = DATA_ROOT / name
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path} is not a shipped dataset folder; have: {sorted(p.name for p in DATA_ROOT.iterdir() if p.is_dir())}"
        )
    return path
