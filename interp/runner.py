"""Experiment runner: a results folder per run, cells through the executor, metrics and a report.

A study (:mod:`interp.study`) is run by :func:`run_study` — from the command line as
``interp run <study> [--config FILE] [key=value ...]`` or ``python -m experiments.<study>``.
A run writes ``results/<study>/<run_id>/`` with ``config.yaml`` (resolved), ``run.json`` (seed,
git commit, versions, wall time), ``metrics.json``, PNG figures, ``report.md`` and ``cells/``
(every finished cell's result, so an interrupted run keeps its work and ``interp report``
re-renders without compute).
"""

from __future__ import annotations

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
from typing import Any, TypeVar

import numpy as np
import torch

from interp.cache import CacheStats, atomic_write_text, jsonable
from interp.config import dump_yaml, load_config
from interp.executor import check_executor_settings, run_cells

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
    run_id: str | None = (
        # default: time to the millisecond + a random suffix; reuse an id (same config) to write into that folder again
        None
    )
    device: str | None = None  # default: cuda when available
    use_cache: bool = True  # reuse cached intermediates (activations) from earlier runs
    # grid cells (interp.executor): "local" (this process) or "ray" (a local Ray instance, or the cluster at
    # ray_address)
    executor: str = "local"
    ray_address: str | None = None
    ray_cpus: int | None = None  # CPUs of a local Ray instance (default: all)
    cell_cpus: float = 1.0  # per cell (Ray resources; also its torch threads)
    cell_gpus: float = 0.0
    cell_retries: int = 0  # extra attempts for a cell that raises, before it is reported as failed


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def git_commit() -> str:
    """The repository's HEAD commit (with ``-dirty`` when the work tree has changes), or ``unknown``."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip()
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


def folder_status(path: Path) -> str | None:
    """The status a run folder's ``run.json`` records (None: no run yet); ``running`` whose
    process is gone is reported as ``died``."""
    info_path = Path(path) / "run.json"
    if not info_path.exists():
        return None
    try:
        info = json.loads(info_path.read_text())
    except (OSError, json.JSONDecodeError):
        return "unreadable"
    status = info.get("status")
    if status == "running" and not _pid_alive(int(info.get("pid", -1))):
        return "died"
    return status


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _lock_folder(path: Path):
    """An exclusive lock on the run folder for this process's lifetime (``fcntl.flock``: released
    by the OS when the process dies, so a killed run never leaves a stale lock)."""
    import fcntl

    handle = open(path / ".lock", "a+")  # noqa: SIM115 - held open on purpose: the lock lives with it
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise RuntimeError(
            f"run folder {path} is in use by another live run; wait for it or choose another run.run_id"
        ) from None
    return handle


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
            raise ValueError(
                f"run folder {self.path} already holds a run with a different config ({old}); "
                "choose another run.run_id (or leave it unset for a fresh one)"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = _lock_folder(self.path)  # held until the process ends: no second live run here
        status = folder_status(self.path)
        if status == "finished":
            self._lock.close()
            raise ValueError(
                f"run folder {self.path} holds a finished run; its metrics and report are kept. Choose another "
                "run.run_id (or leave it unset for a fresh one); `interp report` re-renders it"
            )
        self.resumed_from = status  # None, or incomplete / interrupted / died: finished cells are reused
        self.metrics: dict[str, Any] = {}  # never merged with an earlier run's keys
        self.report = Report(name)
        self.device = run_cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.cache_stats = CacheStats()
        self.failed_cells: dict[str, dict] = {}  # label -> {"error", "attempts"}
        self.commit = git_commit()
        self._start = time.time()
        seed_everything(run_cfg.seed)
        atomic_write_text(old, config_text)
        # metrics.json is not emptied here: an earlier run's file stays until this one logs its own
        self._write_run_info(status="running")

    @classmethod
    def reopen(cls, name: str, cfg: Any, path: Path, info: dict) -> "Run":
        """A finished run's folder, to re-render its report (metrics rebuilt from the cells)."""
        run = cls.__new__(cls)
        run.name, run.cfg, run.run_cfg, run.path = name, cfg, cfg.run, Path(path)
        run.metrics, run.report = {}, Report(name)
        run.device, run.commit = info.get("device", "cpu"), info.get("git_commit", "unknown")
        run.cache_stats, run.failed_cells = CacheStats(), dict(info.get("failed_cells", {}))
        run._start, run._info = time.time() - float(info.get("wall_time_s", 0.0)), info
        return run

    def _write_run_info(self, status: str, error: str | None = None) -> None:
        info = {
            "experiment": self.name,
            "status": status,
            "seed": self.run_cfg.seed,
            "path": str(self.path),
            "git_commit": self.commit,
            "device": self.device,
            "argv": sys.argv,
            "pid": os.getpid(),
            "started": dt.datetime.fromtimestamp(self._start).isoformat(timespec="seconds"),
            "wall_time_s": self._wall_time(),
            "cache": {
                "reused": self.cache_stats.reused,
                "computed": self.cache_stats.computed,
                "corrupt": self.cache_stats.corrupt,
                "use_cache": self.run_cfg.use_cache,
            },
            "versions": {
                "torch": torch.__version__,
                **{p: _version(p) for p in ("transformer-lens", "sae-lens", "numpy")},
                "python": sys.version.split()[0],
            },
        }
        if error is not None:
            info["error"] = error
        if self.failed_cells:
            info["failed_cells"] = self.failed_cells
        atomic_write_text(self.path / "run.json", json.dumps(info, indent=1))

    def cells(self, cells: list) -> dict[str, Any]:
        """Run grid cells (:class:`interp.executor.Cell`) with ``run.executor``; results by label,
        failed cells left out and listed in the report and run.json."""
        return run_cells(self, cells)

    def record_failed_cell(self, label: str, error: str, attempts: int) -> None:
        self.failed_cells[label] = {"error": error, "attempts": attempts}
        print(f"[interp] cell {label!r} failed after {attempts} attempt(s): {error}", file=sys.stderr)
        self._write_run_info(status="running")

    def fail(self, err: BaseException) -> None:
        """Mark the run ``interrupted`` with the error (finished metrics stay on disk)."""
        self._write_run_info(status="interrupted", error=f"{type(err).__name__}: {err}")
        self.release()

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

    def finish(self, rerendered: bool = False) -> Path:
        if self.failed_cells:
            rows = [[k, v["attempts"], f"`{v['error']}`"] for k, v in self.failed_cells.items()]
            caption = (
                f"FAILED CELLS: {len(self.failed_cells)} cell(s) raised and are missing from every table and figure "
                "above; a rerun with the same run.run_id recomputes only them"
            )
            self.report.add_table(["cell", "attempts", "error"], rows, caption=caption)
        if not rerendered:
            self._wall = round(time.time() - self._start, 1)  # one figure for the footer and run.json
        self.report.add_text(self._footer(rerendered))
        atomic_write_text(self.path / "report.md", self.report.render())
        if not rerendered:
            self._write_run_info(status="incomplete" if self.failed_cells else "finished")
            self.release()
        return self.path / "report.md"

    def release(self) -> None:
        """Give up the folder's lock (also done by the OS when the process ends)."""
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.close()
            self._lock = None

    def _wall_time(self) -> float:
        """Seconds since the start, to 0.1 s: fixed by :meth:`finish`, so a re-rendered footer
        (from run.json) prints what the first one printed."""
        wall = getattr(self, "_wall", None)
        return wall if wall is not None else round(time.time() - self._start, 1)

    def _footer(self, rerendered: bool) -> str:
        if rerendered:  # the original run's facts, as run.json recorded them
            info = self._info
            c = info.get("cache", {})
            wall, cache = float(info.get("wall_time_s", 0.0)), _cache_text(c)
        else:
            wall = self._wall_time()
            cache = self.cache_stats.summary() if self.run_cfg.use_cache else _cache_text({"use_cache": False})
        where = self._info.get("path", self.path) if rerendered else self.path
        return (
            f"---\nRun `{where}` · seed {self.run_cfg.seed} · commit `{self.commit}` · "
            f"device {self.device} · wall time {wall:.0f} s · {cache}.\n\nReproduce: `interp run {self.name} "
            f"--config <config>` with the resolved config in `config.yaml`; `interp report {where}` re-renders "
            "this report from the stored cell results."
        )


def _cache_text(c: dict) -> str:
    if not c.get("use_cache", True):
        return "cache off (run.use_cache=false): everything computed"
    stats = CacheStats(
        reused=dict(c.get("reused", {})), computed=int(c.get("computed", 0)), corrupt=int(c.get("corrupt", 0))
    )
    return stats.summary()


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def check_run_config(rc: RunConfig) -> None:
    """Named errors for the ``run:`` section, before any run folder exists."""
    from interp.models import _check_device

    if isinstance(rc.seed, bool) or not isinstance(rc.seed, int):
        raise ValueError(f"run.seed={rc.seed!r}; must be an integer")
    if rc.run_id is not None:
        rid = str(rc.run_id)
        if not rid or rid in (".", "..") or "/" in rid or "\\" in rid or Path(rid).is_absolute():
            raise ValueError(f"run.run_id={rc.run_id!r}; must be one plain folder name (no '/', '..' or absolute path)")
    if rc.device is not None:
        _check_device(rc.device)
    check_executor_settings(rc)


def check_models(cfg: Any) -> None:
    """Every model name is one ``load_model`` accepts (registered, or a TransformerLens name)."""
    from interp.models import _official_name, list_models
    from interp.study import models_of

    names = models_of(cfg)
    if hasattr(cfg, "models") and not names:
        raise ValueError("models=[]; name at least one model, e.g. models=[smollm2-135m-instruct]")
    for name in names:
        if name not in list_models() and _official_name(name) is None:
            raise ValueError(f"model {name!r} is unknown; allowed: {list_models()} or a TransformerLens official name")


def execute(study, cfg: Any, run: Run) -> None:
    """The study's cells (staged until none is new), its analysis and its report, into ``run``."""
    done: dict[str, Any] = {}
    while True:
        new = [c for c in study.cells(cfg, done) if c.label not in done and c.label not in run.failed_cells]
        if not new:
            break
        done |= run.cells(new)
    study.report(cfg, study.analyse(cfg, done), run)


def load_study_config(study, config: str | Path | None, overrides: list[str]) -> Any:
    """The study's config from ``config`` (None: the settings dataclass's defaults) and
    ``overrides``, fully checked."""
    cfg = load_config(study.config, config, overrides)
    run_cfg = getattr(cfg, "run", None)
    if not isinstance(run_cfg, RunConfig):
        raise TypeError(f"{study.config.__name__} must have a `run: RunConfig` field")
    check_run_config(run_cfg)
    check_models(cfg)
    study.check(cfg)
    return cfg


def run_study(name, config: str | Path | None = None, overrides: list[str] = (), out: str | None = None) -> Path:
    """Run study ``name`` (or a :class:`~interp.study.Study`): the whole config is checked before a
    run folder exists; returns the report path."""
    from interp.study import Study, get_study

    study = name if isinstance(name, Study) else get_study(name)
    overrides = list(overrides) + ([f"run.results_dir={out}"] if out else [])
    return run_checked(study, load_study_config(study, config, overrides))


def run_checked(study, cfg: Any) -> Path:
    """Run ``study`` on a config :func:`load_study_config` has already checked."""
    # the one place the backend is chosen: scripts write PNGs with no display; the library's
    # figure functions stay backend-neutral for notebooks
    import matplotlib

    matplotlib.use("Agg")
    name = study.name
    run = Run(name, cfg, cfg.run)
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)  # a polite kill ends as "interrupted", not "running"
    try:
        execute(study, cfg, run)
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
        failed = "; ".join(f"{k}: {v['error']}" for k, v in run.failed_cells.items())
        raise CellsFailedError(
            f"{len(run.failed_cells)} cell(s) failed (listed in {report} and run.json; a rerun with "
            f"run.run_id={run.path.name} computes only these): {failed}"
        )
    return report


def rerender(run_dir: str | Path) -> Path:
    """Re-render a finished run's report, figures and metrics from its stored cell results (no
    model is loaded, nothing is computed)."""
    import matplotlib

    from interp.executor import stored_results
    from interp.study import get_study

    matplotlib.use("Agg")
    run_dir = Path(run_dir)
    info_path = run_dir / "run.json"
    if not info_path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no run.json)")
    info = json.loads(info_path.read_text())
    study = get_study(info["experiment"])
    cfg = load_config(study.config, run_dir / "config.yaml")
    run = Run.reopen(study.name, cfg, run_dir, info)
    done: dict[str, Any] = {}
    while True:
        labels = [c.label for c in study.cells(cfg, done) if c.label not in done]
        found = stored_results(run_dir, labels)
        if not found:
            break
        done |= found
    study.report(cfg, study.analyse(cfg, done), run)
    return run.finish(rerendered=True)
