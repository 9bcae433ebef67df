"""The study protocol: what every study under ``interp/studies/<name>/`` provides.

A study is one package exposing ``STUDY = Study(...)`` with

- ``config``: its settings dataclass, with a ``run: RunConfig`` field (loaded from YAML);
- ``check(cfg)``: named errors for bad settings, before any run folder exists;
- ``cells(cfg, done) -> list[Cell]``: the work, as cells (:class:`interp.executor.Cell`). The
  runner calls it again with the results so far until it returns no new cell, so a study whose
  later cells need earlier results (the toy study trains its MLP first) says so by returning
  them only once ``done`` holds what they need;
- ``analyse(cfg, done) -> result``: the study's typed result, from the cell results alone;
- ``report(cfg, result, out)``: text, tables, figures and metrics, from the result alone
  (``out`` is the :class:`interp.runner.Run`), so ``interp report <run_dir>`` re-renders a
  finished run without compute;
- ``headline(metrics, config) -> list[dict]`` (optional): the rows a committed report adds to
  ``docs/results/README.md`` (column -> text, from its ``metrics.json`` and resolved config;
  ``items`` and ``split`` columns included), see :mod:`interp.results_table`.

Adding a study is adding one package and one line in :data:`STUDIES`::

    # interp/studies/my_study/__init__.py
    STUDY = Study("my_study", MyConfig, cells=my_cells, analyse=my_analyse, report=my_report)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# name -> the package holding its STUDY; `interp list` shows them, `interp run <name>` runs one
STUDIES = (
    "demo",
    "head_patching",
    "function_vectors",
    "fv_transfer",
    "dola",
    "caa_behaviors",
    "prompt_pairs",
    "correctness_steering",
    "toy_steering",
    "ioi_circuit",
)


def _no_check(cfg: Any) -> None:
    return None


@dataclass(frozen=True)
class Study:
    """A study under the protocol of this module: settings dataclass, cells, analysis, report, checks, description
    and the rows it adds to the results table."""

    name: str
    config: type
    cells: Callable[[Any, dict], list]
    analyse: Callable[[Any, dict], Any]
    report: Callable[[Any, Any, Any], None]
    check: Callable[[Any], None] = _no_check
    description: str = ""  # one line for `interp list`
    headline: Callable[[dict, dict], list[dict]] | None = None  # rows of the generated results table


def get_study(name: str) -> Study:
    """The :class:`Study` called ``name`` (an error naming the allowed names otherwise)."""
    if name not in STUDIES:
        raise ValueError(f"study {name!r} is unknown; allowed: {list(STUDIES)}")
    study = importlib.import_module(f"interp.studies.{name}").STUDY
    if not isinstance(study, Study) or study.name != name:
        raise TypeError(f"interp.studies.{name}.STUDY must be a Study named {name!r}")
    return study


def models_of(cfg: Any) -> list[str]:
    """The model names a config names (``models:`` list or ``model.name``)."""
    if hasattr(cfg, "models"):
        return list(cfg.models)
    if hasattr(cfg, "model"):
        return [cfg.model.name]
    return []
