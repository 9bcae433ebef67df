"""Independent cells of a study grid (model × task × configuration), run in this process or as
Ray tasks.

A :class:`Cell` is one library call ``fn(model, *args)`` on one named model (or ``fn(*args)``
when ``model`` is None, e.g. the toy MLP study), plus the data files it reads. Its cache key is
derived, never written: the study, the function, the model's identity
(:func:`interp.models.model_identity`: the converted weights' checksum), the content digest of
every argument (:func:`interp.cache.value_digest`: answer ids, prompts, settings — every field),
the digest of its data files and the fingerprint of the ``interp`` code it reaches.

:func:`run_cells` looks every cell up in the cache first — finished cells are never recomputed,
whichever executor wrote them — then computes the rest:

- ``run.executor=local`` (default): in order, in this process, each model loaded once;
- ``run.executor=ray``: each cell a Ray task (``run.cell_cpus`` / ``run.cell_gpus`` per cell) on
  a local Ray instance sized to the machine, or on the cluster at ``run.ray_address``. Workers
  load the model themselves; results come back to the driver, which writes the cache entries
  and the run folder.

A cell that raises is retried ``run.cell_retries`` times, then reported through the context's
``record_failed_cell`` while the other cells finish; its label is missing from the returned
dict. This module does not import the runner: it needs only the small :class:`CellContext`
protocol, which :class:`interp.runner.Run` satisfies.

    >>> cells = [Cell(f"{m}/{t}", m, task_study, (t, settings, seed), data=(fv_dir,)) for ...]
    >>> results = run.cells(cells)          # {label: result}
"""

from __future__ import annotations

import os
import socket
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from interp.cache import (
    CacheStats,
    cache_dir,
    cache_key,
    callable_modules,
    code_fingerprint,
    data_digest,
    entry_bytes,
    entry_path,
    read_entry,
    store_entry,
)
from interp.progress import progress

EXECUTORS = ("local", "ray")
# environment a local Ray instance's workers must share with the driver (same cache, offline hub)
_SHARED_ENV = ("INTERP_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME")


@dataclass
class Cell:
    """One unit of a study's work: ``fn(model, *args)`` on a named model. Its cache key is derived from the model's
    weights, the arguments, the data files and the code (:mod:`interp.executor`)."""

    label: str  # unique within a run, e.g. "smollm2-135m-instruct/antonym"
    model: str | None  # name for interp.load_model; None: fn(*args) needs no language model
    fn: Callable[..., Any]  # fn(model, *args): a module-level library function (Ray ships it by reference)
    args: tuple = ()
    data: tuple = ()  # data files / folders fn reads: their content is part of the key

    def cache_key(self, study: str, device: str) -> str:
        """The key derived from everything this cell is given (see the module docstring)."""
        from interp.models import model_identity

        return cache_key(
            study=study,
            fn=f"{self.fn.__module__}.{self.fn.__qualname__}",
            model=None if self.model is None else model_identity(self.model),
            device=str(device).split(":")[0],
            args=self.args,
            data=data_digest(self.data) if self.data else None,
            code=code_fingerprint(callable_modules(self.fn)),
        )


@runtime_checkable
class CellContext(Protocol):
    """What :func:`run_cells` needs from a run (``interp.runner.Run`` provides it)."""

    name: str
    run_cfg: Any  # executor, use_cache, cell_retries, ray_*, cell_cpus / cell_gpus
    device: str
    cache_stats: CacheStats
    commit: str
    path: Path

    def record_failed_cell(self, label: str, error: str, attempts: int) -> None: ...


def check_cells(cells: list[Cell]) -> None:
    """Cells of one run: unique labels, module-level functions, arguments the cache can digest."""
    labels = [c.label for c in cells]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ValueError(f"cells have duplicate labels {dup}; each cell needs its own label")
    for c in cells:
        if not callable(c.fn) or getattr(c.fn, "__name__", "<lambda>") == "<lambda>" or "<locals>" in c.fn.__qualname__:
            raise TypeError(
                f"cell {c.label!r}: fn must be a named module-level function (got {c.fn!r}); "
                "lambdas and local functions cannot be shipped to workers"
            )


def check_executor_settings(rc: Any, reach: bool = True) -> None:
    """Named errors for the ``run.*`` executor settings, before any run folder exists (``reach``:
    also probe ``run.ray_address``, a network round trip)."""
    if rc.executor not in EXECUTORS:
        raise ValueError(f"run.executor={rc.executor!r}; allowed: {list(EXECUTORS)}")
    if isinstance(rc.cell_retries, bool) or not isinstance(rc.cell_retries, int) or rc.cell_retries < 0:
        raise ValueError(f"run.cell_retries={rc.cell_retries!r}; must be an integer >= 0")
    for name in ("cell_cpus", "cell_gpus"):
        value = getattr(rc, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"run.{name}={value!r}; must be a number >= 0")
    if rc.cell_cpus <= 0:
        raise ValueError(f"run.cell_cpus={rc.cell_cpus!r}; must be > 0")
    if rc.ray_cpus is not None and (
        isinstance(rc.ray_cpus, bool) or not isinstance(rc.ray_cpus, int) or rc.ray_cpus < 1
    ):
        raise ValueError(f"run.ray_cpus={rc.ray_cpus!r}; must be a positive integer or null (all CPUs)")
    if reach and rc.executor == "ray" and rc.ray_address:
        check_ray_address(rc.ray_address)


def check_ray_address(address: str, timeout: float = 10.0) -> None:
    """A named error within ``timeout`` seconds when the Ray head at ``address`` cannot be reached
    (``ray.init`` itself would wait for minutes)."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(
            f"run.ray_address={address!r}; expected host:port (e.g. 10.0.0.5:6379 or ray://head:10001) or 'auto'"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise ConnectionError(
            f"run.ray_address={address!r} is unreachable ({type(err).__name__}: {err}); start the Ray head there or "
            "drop run.ray_address"
        ) from None


def _error_text(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def _store(run: CellContext) -> Path:
    return run.path / "cells"


def run_cells(run: CellContext, cells: list[Cell]) -> dict[str, Any]:
    """Every cell's result by label (failed cells left out and recorded through the context).

    Each finished cell is also written to the run folder (``cells/``, indexed by label), so an
    interrupted run keeps its finished work and ``interp report`` re-renders without compute."""
    check_cells(cells)
    rc = run.run_cfg
    check_executor_settings(rc, reach=False)  # the Ray address was probed with the config, not per stage
    out: dict[str, Any] = {}
    todo: list[tuple[Cell, str]] = []
    for cell in cells:
        key = cell.cache_key(run.name, run.device)
        if rc.use_cache:
            found, value = read_entry(key, stats=run.cache_stats)
            if found:
                out[cell.label] = value
                _record(run, cell, key, None)  # the cache file's bytes, not serialized again
                continue
        todo.append((cell, key))
    if todo:
        bar = progress(total=len(cells), initial=len(out), desc=f"{run.name} cells ({rc.executor})")
        try:
            (_run_ray if rc.executor == "ray" else _run_local)(run, todo, out, bar)
        finally:
            bar.close()
    return {c.label: out[c.label] for c in cells if c.label in out}


def _record(run: CellContext, cell: Cell, key: str, data: bytes | None) -> None:
    """Keep the cell's result in the run folder (label -> key index plus the entry): ``data``, the
    entry's bytes, or None to copy the cache's entry for ``key``."""
    import json

    from interp.cache import atomic_write_text

    store = _store(run)
    target = entry_path(key, root=store)
    if not target.exists():
        store_entry(target, data if data is not None else entry_path(key).read_bytes())
    index_path = store / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    index[cell.label] = key
    atomic_write_text(index_path, json.dumps(index, indent=1, sort_keys=True))


def stored_results(run_dir: Path, labels: list[str]) -> dict[str, Any]:
    """The results a finished run kept for ``labels`` (``interp report``: no compute)."""
    import json

    store = Path(run_dir) / "cells"
    index_path = store / "index.json"
    if not index_path.exists():
        raise FileNotFoundError(
            f"{run_dir} holds no cell results ({index_path} is missing); rerun the study to produce them"
        )
    index = json.loads(index_path.read_text())
    out = {}
    for label in labels:
        if label not in index:
            continue  # a cell that failed in that run: the report lists it as missing
        found, value = read_entry(index[label], root=store)
        if not found:
            raise FileNotFoundError(f"{run_dir}: the result of cell {label!r} is missing or corrupt; rerun the study")
        out[label] = value
    return out


def _finish_cell(run: CellContext, cell: Cell, key: str, value: Any, out: dict) -> None:
    run.cache_stats.computed += 1
    data = entry_bytes(value, run.commit)  # serialized once for the cache and the run folder
    if run.run_cfg.use_cache:
        try:
            store_entry(entry_path(key), data)
        except OSError as err:  # a read-only cache must not lose the result: the run folder keeps it
            print(f"[interp] cache not written ({type(err).__name__}: {err})", flush=True)
    _record(run, cell, key, data)
    out[cell.label] = value


def _call(cell: Cell, model: Any) -> Any:
    return cell.fn(*cell.args) if cell.model is None else cell.fn(model, *cell.args)


def _run_local(run: CellContext, todo: list[tuple[Cell, str]], out: dict, bar) -> None:
    import interp

    name, model = None, None
    for cell, key in todo:
        for attempt in range(run.run_cfg.cell_retries + 1):
            try:
                if cell.model is not None and name != cell.model:
                    name, model = None, None  # drop the previous model before loading the next
                    model, name = interp.load_model(cell.model, device=run.device), cell.model
                value = _call(cell, model)
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


def _remote_cell(model_name: str | None, device: str | None, threads: float, cell: Cell) -> Any:
    import interp

    torch.set_num_threads(max(1, int(threads)))
    if model_name is not None and model_name not in _WORKER_MODEL:
        _WORKER_MODEL.clear()  # one model per worker: a worker that moves on frees the last
        _WORKER_MODEL[model_name] = interp.load_model(model_name, device=device)
    return _call(cell, _WORKER_MODEL.get(model_name) if model_name else None)


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
        ray.init(
            num_cpus=rc.ray_cpus or os.cpu_count(),
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": env},
        )
    return True


def _run_ray(run: CellContext, todo: list[tuple[Cell, str]], out: dict, bar) -> None:
    import ray

    rc = run.run_cfg
    started = _init_ray(rc)
    try:
        task = ray.remote(_remote_cell).options(
            num_cpus=rc.cell_cpus, num_gpus=rc.cell_gpus, max_retries=rc.cell_retries, retry_exceptions=True
        )
        pending = {task.remote(cell.model, run.device, rc.cell_cpus, cell): (cell, key) for cell, key in todo}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                cell, key = pending.pop(ref)
                try:
                    value = ray.get(ref)
                except ray.exceptions.RayError as err:
                    cause = getattr(err, "cause", None)
                    error = _error_text(cause) if isinstance(cause, BaseException) else str(err).splitlines()[0]
                    run.record_failed_cell(cell.label, error, rc.cell_retries + 1)
                else:
                    _finish_cell(run, cell, key, value, out)
                bar.update(1)
    finally:
        if started:
            ray.shutdown()
