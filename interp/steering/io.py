"""Saving and loading steering vectors and fitted adapters: safetensors for the tensors, JSON
for what they are (adapter kind, its config, the dimension, and any metadata you add: layer,
hook, model, extraction).

    >>> save_vectors("refusal.safetensors", {"L12": v}, model="smollm2-135m-instruct", hook="blocks.12.hook_resid_post")
    >>> vectors, meta = load_vectors("refusal.safetensors")
    >>> save_adapter(fitted_loreft, "adapters/loreft-L6", layer=6)
    >>> adapter, meta = load_adapter("adapters/loreft-L6")
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from interp.hooks import check_finite
from interp.steering.adapters import ADAPTERS
from interp.steering.base import Adapter

FORMAT = "interp.steering/1"


def _check_meta(meta: dict) -> dict:
    try:
        return json.loads(json.dumps(meta))
    except TypeError as err:
        raise TypeError(f"metadata must be JSON-serialisable (str, number, list, dict): {err}") from None


def save_vectors(path: str | Path, vectors: dict[str, Tensor], **meta) -> Path:
    """Write named vectors (e.g. ``{"L12": v}``) to one safetensors file; ``meta`` (JSON values)
    goes into its header."""
    if not vectors:
        raise ValueError("vectors is empty; give at least one name -> tensor")
    for name, v in vectors.items():
        if not isinstance(v, Tensor):
            raise TypeError(f"vectors[{name!r}] is a {type(v).__name__}; expected a tensor")
        check_finite(v, f"vectors[{name!r}]")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"format": FORMAT, "meta": json.dumps(_check_meta(meta))}
    save_file({k: v.detach().cpu().contiguous() for k, v in vectors.items()}, str(path), metadata=header)
    return path


def load_vectors(path: str | Path, device: str | torch.device = "cpu") -> tuple[dict[str, Tensor], dict]:
    """The vectors and metadata written by :func:`save_vectors`."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path={str(path)!r}: no such vector file")
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata() or {}
    if header.get("format") != FORMAT:
        raise ValueError(f"path={str(path)!r} was not written by interp.steering.io.save_vectors")
    return load_file(str(path), device=str(device)), json.loads(header["meta"])


def save_adapter(adapter: Adapter, folder: str | Path, **meta) -> Path:
    """Write a fitted adapter to ``folder``: ``adapter.safetensors`` (its state) and
    ``adapter.json`` (kind, config, dimension, ``meta``)."""
    kind = next((k for k, (cls, _) in ADAPTERS.items() if type(adapter) is cls), None)
    if kind is None:
        raise TypeError(f"adapter is a {type(adapter).__name__}; saveable kinds: {list(ADAPTERS)}")
    if not adapter.fitted:
        raise RuntimeError(f"{type(adapter).__name__} is not fitted; fit it before saving")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in adapter.state_dict().items()}
    save_file(state, str(folder / "adapter.safetensors"))
    spec = {
        "format": FORMAT,
        "kind": kind,
        "config": dataclasses.asdict(adapter.cfg),
        "d_model": adapter.d_model,
        "meta": _check_meta(meta),
    }
    (folder / "adapter.json").write_text(json.dumps(spec, indent=2) + "\n")
    return folder


def load_adapter(folder: str | Path, device: str | torch.device = "cpu") -> tuple[Adapter, dict]:
    """The fitted adapter written by :func:`save_adapter` and its metadata; outputs match the
    saved adapter's exactly."""
    folder = Path(folder)
    spec_path = folder / "adapter.json"
    if not spec_path.is_file():
        raise FileNotFoundError(f"folder={str(folder)!r} holds no adapter.json (written by save_adapter)")
    spec = json.loads(spec_path.read_text())
    if spec.get("format") != FORMAT or spec.get("kind") not in ADAPTERS:
        raise ValueError(f"folder={str(folder)!r}: adapter.json is not an interp adapter (kind {spec.get('kind')!r})")
    cls, cfg_cls = ADAPTERS[spec["kind"]]
    adapter = cls(cfg_cls(**spec["config"]))
    adapter._build(int(spec["d_model"]))
    adapter.load_state_dict(load_file(str(folder / "adapter.safetensors")))
    adapter.d_model, adapter.fitted = int(spec["d_model"]), True
    return adapter.to(device), spec["meta"]
