"""Independent cells of a study grid (model × task × configuration), run in this process or as
Ray tasks.

A :class:`Cell` is one library call ``fn(model, *args)`` on one named model, with the cache key
of its result. :func:`run_cells` (used through :meth:`interp.runner.Run.cells`) looks every cell
up in the run's cache first — finished cells are never recomputed, whichever executor wrote
them — then computes the rest:

- ``run.executor=local`` (default): in order, in this process, each model loaded once;
- ``run.executor=ray``: each cell a Ray task (``run.cell_cpus`` / ``run.cell_gpus`` per cell) on
  a local Ray instance sized to the machine, or on the cluster at ``run.ray_address``. Workers
  load the model themselves (a per-node model cache, no shared filesystem); results come back
  to the driver, which writes the cache entries and the run folder.

A cell that raises is retried ``run.cell_retries`` times, then recorded in ``run.failed_cells``
(the report and run.json list it) while the other cells finish; its label is missing from the
returned dict. Every node of a cluster needs ``interp`` installed (``make install``): cells name
library functions, which workers import.

    >>> cells = [Cell(f"{m}/{t}", m, task_study, (t, settings, seed), {"step": "fv.task", ...}) for ...]
    >>> results = run.cells(cells)          # {label: result}
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from interp.cache import cache_dir, cache_key, callable_modules, code_fingerprint, read_entry, write_entry

if TYPE_CHECKING:
    from interp.runner import Run

EXECUTORS = ("local", "ray")
# environment a local Ray instance's workers must share with the driver (same cache, offline hub)
_SHARED_ENV = ("INTERP_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME")


@dataclass
class Cell:
    label: str  # unique within a run, e.g. "smollm2-135m-instruct/antonym"
    model: str  # name for interp.load_model
    fn: Callable[..., Any]  # fn(model, *args): a module-level library function (Ray ships it by reference)
    args: tuple = ()
    key: dict = field(default_factory=dict)  # cache key parts, e.g. {"step": "fv.task.v2", "task": ...}

    def cache_key(self) -> str:
        return cache_key(**self.key, model=self.model, code=code_fingerprint(callable_modules(self.fn)))


def check_cells(cells: list[Cell]) -> None:
    labels = [c.label for c in cells]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ValueError(f"cells have duplicate labels {dup}; each cell needs its own label")
    for c in cells:
        if not callable(c.fn) or getattr(c.fn, "__name__", "<lambda>") == "<lambda>":
            raise TypeError(f"cell {c.label!r}: fn must be a named module-level function (got {c.fn!r}); lambdas cannot be shipped to workers")


def _error_text(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def run_cells(run: "Run", cells: list[Cell]) -> dict[str, Any]:
    """Every cell's result by label (failed cells left out and recorded in ``run.failed_cells``)."""
    check_cells(cells)
    rc = run.run_cfg
    if rc.executor not in EXECUTORS:
        raise ValueError(f"run.executor={rc.executor!r}; allowed: {list(EXECUTORS)}")
    if rc.cell_retries < 0:
        raise ValueError(f"run.cell_retries={rc.cell_retries}; must be >= 0")
    out: dict[str, Any] = {}
    todo: list[tuple[Cell, str]] = []
    for cell in cells:
        key = cell.cache_key()
        if rc.use_cache:
            found, value = read_entry(key, stats=run.cache_stats)
            if found:
                out[cell.label] = value
                continue
        todo.append((cell, key))
    if todo:
        bar = tqdm(total=len(cells), initial=len(out), desc=f"cells ({rc.executor})")
        try:
            (_run_ray if rc.executor == "ray" else _run_local)(run, todo, out, bar)
        finally:
            bar.close()
    return {c.label: out[c.label] for c in cells if c.label in out}


def _finish_cell(run: "Run", cell: Cell, key: str, value: Any, out: dict) -> None:
    run.cache_stats.computed += 1
    if run.run_cfg.use_cache:
        write_entry(key, value, commit=run.commit)
    out[cell.label] = value


def _run_local(run: "Run", todo: list[tuple[Cell, str]], out: dict, bar) -> None:
    import interp

    name, model = None, None
    for cell, key in todo:
        for attempt in range(run.run_cfg.cell_retries + 1):
            try:
                if name != cell.model:
                    name, model = None, None  # drop the previous model before loading the next
                    model, name = interp.load_model(cell.model, device=run.device), cell.model
                value = cell.fn(model, *cell.args)
            except Exception as err:  # noqa: BLE001 - a failing cell is retried, then reported; the others go on
                error = _error_text(err)
                if attempt == run.run_cfg.cell_retries:
                    run.record_failed_cell(cell.label, error, attempt + 1)
                    traceback.print_exc()
                continue
            _finish_cell(run, cell, key, value, out)
            break
        bar.update(1)


# --------------------------------------------------------------------------- Ray

_WORKER_MODEL: dict[str, Any] = {}  # per worker process: the last model it loaded


def _remote_cell(model_name: str, device: str | None, threads: float, fn: Callable[..., Any], args: tuple) -> Any:
    import interp

    torch.set_num_threads(max(1, int(threads)))
    if model_name not in _WORKER_MODEL:
        _WORKER_MODEL.clear()  # one model per worker: a worker that moves on frees the last
        _WORKER_MODEL[model_name] = interp.load_model(model_name, device=device)
    return fn(_WORKER_MODEL[model_name], *args)


def _init_ray(rc) -> bool:
    """Start (or join) Ray; True when this call started it (and so shuts it down)."""
    import ray

    if ray.is_initialized():
        return False
    if rc.ray_address:
        ray.init(address=rc.ray_address, include_dashboard=False, log_to_driver=False)
    else:
        env = {k: os.environ[k] for k in _SHARED_ENV if k in os.environ}
        env.setdefault("INTERP_CACHE", str(cache_dir()))
        ray.init(num_cpus=rc.ray_cpus or os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": env})  # fmt: skip
    return True


def _run_ray(run: "Run", todo: list[tuple[Cell, str]], out: dict, bar) -> None:
    import ray

    rc = run.run_cfg
    started = _init_ray(rc)
    try:
        task = ray.remote(_remote_cell).options(num_cpus=rc.cell_cpus, num_gpus=rc.cell_gpus, max_retries=rc.cell_retries, retry_exceptions=True)
        pending = {task.remote(cell.model, rc.device, rc.cell_cpus, cell.fn, cell.args): (cell, key) for cell, key in todo}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                cell, key = pending.pop(ref)
                try:
                    value = ray.get(ref)
                except ray.exceptions.RayError as err:
                    cause = getattr(err, "cause", None)
                    run.record_failed_cell(cell.label, _error_text(cause) if isinstance(cause, BaseException) else str(err).splitlines()[0],
                                           rc.cell_retries + 1)  # fmt: skip
                else:
                    _finish_cell(run, cell, key, value, out)
                bar.update(1)
    finally:
        if started:
            ray.shutdown()
