"""The adapter registry: name -> (class, config class), and :func:`make_adapter` (its own module
so that :mod:`interp.steering.io` can use it without importing the package that imports io)."""

from __future__ import annotations

from interp.steering.ace import ACE, ACEConfig
from interp.steering.base import Adapter
from interp.steering.caa import CAA, CAAConfig
from interp.steering.loreft import LoReFT, LoReFTConfig
from interp.steering.lorest import LoReST, LoReSTConfig

ADAPTERS = {
    "caa": (CAA, CAAConfig),
    "ace": (ACE, ACEConfig),
    "loreft": (LoReFT, LoReFTConfig),
    "lorest": (LoReST, LoReSTConfig),
}


def make_adapter(name: str, cfg=None) -> Adapter:
    """An unfitted adapter by name (``caa``, ``ace``, ``loreft``, ``lorest``)."""
    if name not in ADAPTERS:
        raise ValueError(f"adapter={name!r}; allowed: {list(ADAPTERS)}")
    cls, cfg_cls = ADAPTERS[name]
    if cfg is not None and not isinstance(cfg, cfg_cls):
        raise TypeError(f"adapter {name!r} takes a {cfg_cls.__name__}, got {type(cfg).__name__}")
    return cls(cfg)
