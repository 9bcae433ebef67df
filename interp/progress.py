"""Progress bars that suit where the output goes: tqdm on a terminal; on a log file (stderr not
a terminal) no ``\\r`` redraws, just a line every tenth of the way."""

from __future__ import annotations

import logging
import sys
from typing import Any

from tqdm.auto import tqdm


def progress(iterable: Any = None, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)`` on a terminal; line-based (about ten lines) otherwise."""
    if not sys.stderr.isatty():
        total = kwargs.get("total") or (len(iterable) if hasattr(iterable, "__len__") else None)
        kwargs.setdefault("mininterval", 30.0)
        kwargs.setdefault("miniters", max(1, (total or 10) // 10))
        kwargs.setdefault("ascii", True)
        kwargs.setdefault("ncols", 100)
        kwargs.setdefault("dynamic_ncols", False)
    return tqdm(iterable, **kwargs)


_LOG = logging.getLogger("interp")


def log(message: str) -> None:
    """One line to the ``interp`` logger (cost previews and the like); shown on stderr when no
    handler is configured and the root logger is quiet, so a long job says what it is about to do."""
    if not _LOG.handlers and not logging.getLogger().handlers:
        _LOG.addHandler(logging.StreamHandler())
        _LOG.setLevel(logging.INFO)
        _LOG.propagate = False
    _LOG.info(message)
