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
    """Path of a shipped dataset file under ``interp/data/datasets``, or a FileNotFoundError pointing at SOURCES.md."""
    path = DATA_ROOT.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"{path} is not among the shipped datasets (see {DATA_ROOT}/SOURCES.md)")
    return path


def read_json_list(path: Path) -> list:
    """A JSON file holding a list, or a ValueError naming the file and where it breaks."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path}: not valid JSON at line {err.lineno}, column {err.colno} ({err.msg}); truncated?"
        ) from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of items, found a {type(data).__name__}")
    return data


def _bad_item(path: Path, i: int, item, why: str) -> ValueError:
    return ValueError(f"{path}: item {i} {why}: {item!r:.120}")


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
    """Names of the function-vector tasks shipped or derived from shipped data."""
    return sorted([p.stem for p in (DATA_ROOT / "function_vectors").glob("*.json")] + list(DERIVED_FV_TASKS))


def load_fv_task(task: str) -> list[dict[str, str]]:
    """Word pairs ``{"input": ..., "output": ...}`` of a Todd et al. abstractive task, or of a
    task derived from one (``DERIVED_FV_TASKS``)."""
    _choose("task", task, list_fv_tasks())
    if task in DERIVED_FV_TASKS:
        source, rule = DERIVED_FV_TASKS[task]
        return _non_empty([{"input": p["input"], "output": rule(p["input"])} for p in load_fv_task(source)], task)
    path = dataset_path("function_vectors", f"{task}.json")
    pairs = read_json_list(path)
    for i, p in enumerate(pairs):
        if not isinstance(p, dict) or not all(isinstance(p.get(k), str) and p[k] != "" for k in ("input", "output")):
            raise _bad_item(path, i, p, "needs non-empty string 'input' and 'output'")
    return _non_empty([{"input": p["input"], "output": p["output"]} for p in pairs], task)


# ---------------------------------------------------------------- TruthfulQA (v1, 817 questions)


@dataclass(frozen=True)
class MCQuestion:
    """One TruthfulQA question with its MC1 (one true answer) and MC2 (several true answers) targets."""

    question: str
    mc1_targets: dict[str, int]  # answer -> 1 (true) / 0 (false); exactly one true
    mc2_targets: dict[str, int]  # answer -> 1 / 0; several true


TRUTHFULQA_VERSIONS = {"v1": ("v1", "mc_task.json"), "2025": ("mc_task.json",)}


def load_truthfulqa_mc(version: str = "v1") -> list[MCQuestion]:
    """TruthfulQA multiple choice. ``v1``: the original 817 questions that published DoLa /
    ITI / CAA numbers use; ``2025``: the January 2025 revision (790 questions)."""
    _choose("version", version, TRUTHFULQA_VERSIONS)
    path = dataset_path("truthfulqa", *TRUTHFULQA_VERSIONS[version])
    rows = read_json_list(path)
    for i, r in enumerate(rows):
        _check_mc_row(path, i, r)
    return _non_empty(
        [MCQuestion(r["question"], r["mc1_targets"], r["mc2_targets"]) for r in rows], f"truthfulqa/{version}"
    )


def _check_mc_row(path: Path, i: int, r) -> None:
    """A TruthfulQA MC item: a question, mc1 targets with exactly one true answer, mc2 targets with
    at least one true and one false answer; labels 0 / 1."""
    if not isinstance(r, dict) or not isinstance(r.get("question"), str) or not r["question"]:
        raise _bad_item(path, i, r, "needs a non-empty string 'question'")
    for key in ("mc1_targets", "mc2_targets"):
        t = r.get(key)
        if not isinstance(t, dict) or not t or any(v not in (0, 1) or isinstance(v, bool) for v in t.values()):
            raise _bad_item(path, i, r.get("question"), f"has {key}={t!r:.80}; expected answer -> 0 / 1")
    n_true = sum(r["mc1_targets"].values())
    if n_true != 1:
        raise _bad_item(path, i, r["question"], f"has {n_true} true mc1 answers; MC1 needs exactly one")
    if not 0 < sum(r["mc2_targets"].values()) < len(r["mc2_targets"]):
        raise _bad_item(path, i, r["question"], "needs at least one true and one false mc2 answer")


# ---------------------------------------------------------------- FACTOR


@dataclass(frozen=True)
class FactorItem:
    """One FACTOR item: the prefix, the factual completion and three contradicting completions."""

    prefix: str  # the truncated prefix the benchmark scores completions after
    completion: str  # the factual completion
    contradictions: tuple[str, str, str]  # three non-factual completions


def load_factor(split: str = "news") -> list[FactorItem]:
    """The FACTOR items of one split (``news`` or ``expert``)."""
    _choose("split", split, FACTOR_SPLITS)
    path = dataset_path("factor", f"{split}_factor.csv")
    fields = ("turncated_prefixes", "completion", "contradiction_0", "contradiction_1", "contradiction_2")
    items = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in fields if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: the header lacks columns {missing}; has {reader.fieldnames}")
        for r in reader:
            values = [r.get(c) for c in fields]
            if any(not isinstance(v, str) or not v.strip() for v in values) or None in r:
                bad = [c for c, v in zip(fields, values) if not isinstance(v, str) or not v.strip()]
                raise ValueError(
                    f"{path}: line {reader.line_num} (item {len(items)}) has empty or missing fields {bad or 'extra'}; "
                    "a truncated or malformed file"
                )
            items.append(FactorItem(values[0], values[1], tuple(values[2:])))
    return _non_empty(items, f"factor/{split}")


# ---------------------------------------------------------------- CAA A/B behaviour datasets


def load_caa(behavior: str, split: str = "generate") -> list[dict[str, str]]:
    """Items with ``question`` and, for A/B splits, ``answer_matching_behavior`` /
    ``answer_not_matching_behavior`` (e.g. ``"(A)"``)."""
    _choose("behavior", behavior, CAA_BEHAVIORS)
    _choose("split", split, CAA_SPLITS)
    path = dataset_path("caa", behavior, CAA_SPLITS[split])
    items = read_json_list(path)
    keys = (
        ("question",)
        if split == "test_open_ended"
        else ("question", "answer_matching_behavior", "answer_not_matching_behavior")
    )
    for i, it in enumerate(items):
        if not isinstance(it, dict) or not all(isinstance(it.get(k), str) and it[k] for k in keys):
            raise _bad_item(path, i, it, f"needs non-empty string {list(keys)}")
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
