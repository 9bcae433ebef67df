"""Experiment runner: a results folder per run, a resumable disk cache, metrics and a report.

An experiment script is thin::

    @dataclass
    class Config:
        run: RunConfig = field(default_factory=RunConfig)
        ...

    def run(cfg: Config, run: Run) -> None:
        ...  # call interp, run.log_metrics(...), run.report.add_figure(...)

    if __name__ == "__main__":
        main("demo", Config, run)

and is started as ``python -m experiments.<name> --config configs/<name>.yaml [key=value ...]``.
A run writes ``results/<name>/<run_id>/`` with ``config.yaml`` (resolved), ``run.json`` (seed,
git commit, versions, wall time), ``metrics.json``, PNG figures and ``report.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

from interp.config import dump_yaml, load_config
from interp.cache import CacheStats, atomic_write_text, cache_key, callable_modules, code_fingerprint, disk_cached, jsonable

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parent.parent


def _version(package: str) -> str:
    """Installed distribution version (transformer_lens has no ``__version__``, so ask the metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


@dataclass
class RunConfig:
    """Settings every experiment shares (the ``run:`` section of its YAML)."""

    seed: int = 0
    results_dir: str = "results"
    run_id: str | None = None  # default: time to the millisecond + a random suffix; reuse an id (same config) to write into that folder again
    device: str | None = None  # default: cuda when available
    use_cache: bool = True  # reuse cached intermediates (activations) from earlier runs
    # grid cells (interp.executor): "local" (this process) or "ray" (a local Ray instance, or the cluster at ray_address)
    executor: str = "local"
    ray_address: str | None = None
    ray_cpus: int | None = None  # CPUs of a local Ray instance (default: all)
    cell_cpus: float = 1.0  # per cell (Ray resources; also its torch threads)
    cell_gpus: float = 0.0
    cell_retries: int = 0  # extra attempts for a cell that raises, before it is reported as failed


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class Report:
    """Markdown report: text, tables and figures in the order they are added."""

    def __init__(self, title: str):
        self.parts: list[str] = [f"# {title}\n"]

    def add_text(self, text: str) -> None:
        self.parts.append(text.strip() + "\n")

    def add_table(self, headers: list[str], rows: list[list[Any]], caption: str | None = None) -> None:
        lines = ([f"**{caption}**\n"] if caption else []) + [
            "| " + " | ".join(headers) + " |",
            "|" + "|".join("---" for _ in headers) + "|",
        ]
        lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
        self.parts.append("\n".join(lines) + "\n")

    def add_figure(self, filename: str, caption: str) -> None:
        self.parts.append(f"![{caption}]({filename})\n\n*{caption}*\n")

    def render(self) -> str:
        return "\n".join(self.parts)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "undefined" if np.isnan(value) else f"{value:.3g}"
    return str(value)


def new_run_id() -> str:
    """A run id that cannot collide: local time to the millisecond and a random suffix."""
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")[:-3] + "-" + secrets.token_hex(3)


class Run:
    """One run's results folder, exclusive to one config. Metrics are flushed to disk on every
    update; run.json says ``running`` (with the pid) until the run ends ``finished`` or
    ``interrupted`` (with the error), so a killed run is recognisably unfinished."""

    def __init__(self, name: str, cfg: Any, run_cfg: RunConfig):
        self.name, self.cfg, self.run_cfg = name, cfg, run_cfg
        self.path = Path(run_cfg.results_dir) / name / (run_cfg.run_id or new_run_id())
        config_text = dump_yaml(cfg)
        old = self.path / "config.yaml"
        if old.exists() and old.read_text() != config_text:
            raise ValueError(f"run folder {self.path} already holds a run with a different config ({old}); "
                             "choose another run.run_id (or leave it unset for a fresh one)")  # fmt: skip
        self.path.mkdir(parents=True, exist_ok=True)
        self.metrics: dict[str, Any] = {}  # never merged with an earlier run's keys
        self.report = Report(name)
        self.device = run_cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.cache_stats = CacheStats()
        self.failed_cells: dict[str, dict] = {}  # label -> {"error", "attempts"}
        self.commit = git_commit()
        self._start = time.time()
        seed_everything(run_cfg.seed)
        atomic_write_text(old, config_text)
        atomic_write_text(self.path / "metrics.json", "{}")
        self._write_run_info(status="running")

    def _write_run_info(self, status: str, error: str | None = None) -> None:
        info = {
            "experiment": self.name, "status": status, "seed": self.run_cfg.seed,
            "git_commit": self.commit, "device": self.device, "argv": sys.argv, "pid": os.getpid(),
            "started": dt.datetime.fromtimestamp(self._start).isoformat(timespec="seconds"),
            "wall_time_s": round(time.time() - self._start, 1),
            "cache": {"reused": self.cache_stats.reused, "computed": self.cache_stats.computed, "corrupt": self.cache_stats.corrupt,
                      "use_cache": self.run_cfg.use_cache},
            "versions": {"torch": torch.__version__, **{p: _version(p) for p in ("transformer-lens", "sae-lens", "numpy")},
                         "python": sys.version.split()[0]},
        }  # fmt: skip
        if error is not None:
            info["error"] = error
        if self.failed_cells:
            info["failed_cells"] = self.failed_cells
        atomic_write_text(self.path / "run.json", json.dumps(info, indent=1))

    def cached(self, compute: Callable[[], T], **key_parts: Any) -> T:
        """:func:`disk_cached` keyed by ``key_parts`` and by a fingerprint of the ``interp`` code
        ``compute`` reaches (so a library change recomputes the steps it affects); honours
        ``run.use_cache`` and counts reuse for the report footer."""
        code = code_fingerprint(callable_modules(compute))
        return disk_cached(cache_key(**key_parts, code=code), compute, enabled=self.run_cfg.use_cache, stats=self.cache_stats, commit=self.commit)

    def cells(self, cells: list) -> dict[str, Any]:
        """Run grid cells (:class:`interp.executor.Cell`) with ``run.executor``; results by label,
        failed cells left out and listed in the report and run.json."""
        from interp.executor import run_cells

        return run_cells(self, cells)

    def record_failed_cell(self, label: str, error: str, attempts: int) -> None:
        self.failed_cells[label] = {"error": error, "attempts": attempts}
        print(f"[interp] cell {label!r} failed after {attempts} attempt(s): {error}", file=sys.stderr)
        self._write_run_info(status="running")

    def fail(self, err: BaseException) -> None:
        """Mark the run ``interrupted`` with the error (finished metrics stay on disk)."""
        self._write_run_info(status="interrupted", error=f"{type(err).__name__}: {err}")

    def log_metrics(self, **metrics: Any) -> None:
        self.metrics.update(jsonable(metrics))
        atomic_write_text(self.path / "metrics.json", json.dumps(self.metrics, indent=1))

    def save_figure(self, fig, filename: str, caption: str) -> Path:
        import matplotlib.pyplot as plt

        path = self.path / filename
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        self.report.add_figure(filename, caption)
        return path

    def finish(self) -> Path:
        wall = time.time() - self._start
        if self.failed_cells:
            self.report.add_table(["cell", "attempts", "error"], [[k, v["attempts"], f"`{v['error']}`"] for k, v in self.failed_cells.items()],
                                  caption=f"FAILED CELLS: {len(self.failed_cells)} cell(s) raised and are missing from every table and figure above; "
                                          "a rerun with the same run.run_id recomputes only them")  # fmt: skip
        cache = self.cache_stats.summary() if self.run_cfg.use_cache else "cache off (run.use_cache=false): everything computed"
        self.report.add_text(
            f"---\nRun `{self.path}` · seed {self.run_cfg.seed} · commit `{self.commit}` · "
            f"device {self.device} · wall time {wall:.0f} s · {cache}.\n\nReproduce: `python -m experiments.{self.name} "
            f"--config <config> ` with the resolved config in `config.yaml`."
        )
        atomic_write_text(self.path / "report.md", self.report.render())
        self._write_run_info(status="incomplete" if self.failed_cells else "finished")
        return self.path / "report.md"


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run an interp experiment")
    parser.add_argument("--config", required=True, help="YAML config, e.g. configs/demo.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. model.name=gemma-3-270m")
    return parser.parse_args(argv)


def main(name: str, cfg_cls: type[T], body: Callable[[T, Run], None], argv: list[str] | None = None) -> Path:
    """Parse ``--config`` and overrides, run ``body`` in a fresh :class:`Run`, print the report path."""
    args = parse_args(argv)
    # the one place the backend is chosen: scripts write PNGs with no display; the library's
    # figure functions stay backend-neutral for notebooks
    import matplotlib

    matplotlib.use("Agg")
    cfg = load_config(cfg_cls, args.config, args.overrides)
    run_cfg = getattr(cfg, "run", None)
    if not isinstance(run_cfg, RunConfig):
        raise TypeError(f"{cfg_cls.__name__} must have a `run: RunConfig` field")
    run = Run(name, cfg, run_cfg)
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)  # a polite kill ends as "interrupted", not "running"
    try:
        body(cfg, run)
        report = run.finish()
    except BaseException as err:
        run.fail(err)
        raise
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)
    print(f"[interp] {name}: report written to {report}")
    if run.failed_cells:
        from interp.errors import CellsFailedError

        # after the report: the other cells' results are on disk; the exit status says the run is incomplete
        raise CellsFailedError(f"{len(run.failed_cells)} cell(s) failed (listed in {report} and run.json; a rerun with "
                               f"run.run_id={run.path.name} computes only these): "
                               + "; ".join(f"{k}: {v['error']}" for k, v in run.failed_cells.items()))  # fmt: skip
    return report
