"""Nested-dataclass configs loaded from YAML, with ``key=value`` command-line overrides.

The schema is the dataclass; YAML only fills it. Unknown keys are errors naming the key, so a
typo never silently falls back to a default.

Example:
    >>> @dataclass
    ... class Model:
    ...     name: str = "smollm2-135m-instruct"
    >>> @dataclass
    ... class Cfg:
    ...     model: Model = field(default_factory=Model)
    ...     seed: int = 0
    >>> cfg = load_config(Cfg, "configs/x.yaml", ["model.name=gemma-3-270m", "seed=3"])
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override that does not fit its dataclass: the message names the file, the key and what is
    allowed."""

    pass


def from_dict(cls: type[T], data: dict[str, Any], path: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, recursing into nested dataclasses."""
    if not isinstance(data, dict):
        raise ConfigError(f"config section {path or '<root>'!r} must be a mapping, got {type(data).__name__}: {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f" in section {path!r}" if path else ""
        raise ConfigError(
            f"unknown config key {'.'.join(filter(None, [path, unknown[0]]))!r}{where}; allowed keys: {sorted(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(hints[k], v, f"{path}.{k}" if path else k) for k, v in data.items()}
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value or {}, path)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, path) if len(inner) == 1 else value
    if origin in (list, tuple) and not isinstance(value, (list, tuple)):
        raise ConfigError(
            f"config key {path!r} expects a list, got {value!r} ({type(value).__name__}); write [{value!r}] for one "
            "item"
        )
    if origin in (list, tuple):
        (arg, *_) = typing.get_args(tp) or (Any,)
        items = [_coerce(arg, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and not isinstance(value, tp):
        raise ConfigError(f"config key {path!r} expects {tp.__name__}, got {value!r} ({type(value).__name__})")
    return value


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config dataclass as a plain nested dict."""
    return dataclasses.asdict(cfg)


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` strings (values parsed as YAML: ``3``, ``0.5``, ``[1,2]``, ``true``)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. model.name=gemma-3-270m)")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({err})") from None
        node = data
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[leaf] = value
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Fill dataclass ``cls`` from a YAML file and ``key=value`` overrides (dotted keys for nested fields); unknown
    keys and wrong types raise :class:`ConfigError`."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"config file {str(path)!r} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {str(path)!r} is not valid YAML: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(
                f"config file {str(path)!r} holds a {type(data).__name__} at the top level; expected a mapping of "
                "config keys"
            )
    return from_dict(cls, apply_overrides(data, overrides))


def settings_part(cfg: Any, cls: type[T]) -> T:
    """The ``cls`` part of an experiment config that extends it (a plain ``cls`` instance: what a
    library call needs, and what pickles to a worker without the experiment's module)."""
    if not isinstance(cfg, cls):
        raise TypeError(f"cfg is a {type(cfg).__name__}, not a {cls.__name__}")
    return cls(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cls)})


def dump_yaml(cfg: Any) -> str:
    """A config dataclass as YAML, keys in declaration order (the run folder's ``config.yaml``)."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


# --------------------------------------------------------------------------- pieces several experiments share


@dataclasses.dataclass
class ModelConfig:
    """``model:`` — the model to load (:func:`interp.load_model` name)."""

    name: str = "smollm2-135m-instruct"


@dataclasses.dataclass
class PatchingConfig:
    """``patching:`` — settings every patching study has; studies extend it."""

    tol: float = 1e-3  # |m_clean - m_corr| below this -> recovery undefined
    n_boot: int = 2000
    top_k_heads: int = 10

    def check(self, section: str = "patching") -> None:
        """Named errors for the section's values (studies call it before any compute)."""
        from interp.patching import check_tol

        check_tol(self.tol, f"{section}.tol")
        if isinstance(self.top_k_heads, bool) or self.top_k_heads < 1:
            raise ValueError(f"{section}.top_k_heads={self.top_k_heads}; must be >= 1")


def reset_fields(settings: T, *names: str) -> T:
    """``settings`` with fields ``names`` set to their class defaults: for the analysis-only fields
    (thresholds, selection splits) a cell never reads, so they stay out of its cache key (a cell's
    key is derived from what it is given; pass it only what its computation reads)."""
    fields = {f.name: f for f in dataclasses.fields(settings)}
    unknown = [n for n in names if n not in fields]
    if unknown:
        raise ValueError(f"{type(settings).__name__} has no field {unknown[0]!r}; fields: {sorted(fields)}")
    defaults = {}
    for n in names:
        f = fields[n]
        defaults[n] = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    return dataclasses.replace(settings, **defaults)
