"""The on-disk cache every part of ``interp`` shares: where it lives, how entries are keyed and
written.

- :func:`cache_dir`: ``$INTERP_CACHE`` or ``~/.cache/interp`` (converted model weights,
  tokenizers, SAEs and experiment intermediates all live under it).
- :func:`cache_key` / :func:`disk_cached`: an intermediate stored under a hash of what produced
  it, so an interrupted run resumes from the steps it finished.
- :func:`atomic_write_text`: temp file + rename, so an interrupt never leaves a truncated file.

This module imports nothing else from ``interp``: models, data and the runner all depend on it,
never the other way round.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

T = TypeVar("T")


def cache_dir() -> Path:
    """Root of interp's on-disk cache: ``$INTERP_CACHE`` or ``~/.cache/interp``."""
    root = os.environ.get("INTERP_CACHE") or Path.home() / ".cache" / "interp"
    return Path(root)


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same folder and rename, so an interrupt never leaves a truncated file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def jsonable(obj: Any) -> Any:
    """``obj`` with tensors, arrays and numpy scalars turned into JSON types; NaN becomes ``None``
    (undefined: JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return jsonable(obj.detach().cpu().tolist())
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return None if np.isnan(value) else value
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def cache_key(**parts: Any) -> str:
    """Stable hash of what produced an intermediate (model, data, hook, config...)."""
    blob = json.dumps(jsonable(parts), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def disk_cached(key: str, compute: Callable[[], T], enabled: bool = True, folder: str = "intermediates") -> T:
    """Return the object stored under ``key`` or compute, store (atomically) and return it.

    Anything ``torch.save`` can write is allowed; a rerun after an interrupt picks up every
    step that finished.
    """
    path = cache_dir() / folder / f"{key}.pt"
    if enabled and path.exists():
        return torch.load(path, map_location="cpu", weights_only=False)
    value = compute()
    if enabled:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        torch.save(value, tmp)
        os.replace(tmp, path)
    return value


def file_slug(name: str) -> str:
    """``name`` (e.g. a model name like ``random:tiny-llama``) made safe for a file name."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
