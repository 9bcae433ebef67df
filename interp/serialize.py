"""Results to bytes and back without running code: a JSON tree plus safetensors.

The cache and the run folders store cell results this way instead of pickles, so a file someone
else can write (a shared ``INTERP_CACHE``) can at worst hold wrong numbers, never code. Decoding
builds only plain values, tensors, arrays and the project's own dataclasses and modules: a class
is looked up by name only inside the ``interp`` package and only if it is a dataclass (or an
``nn.Module`` with ``init_args()``); its fields are set directly, no ``__init__``, ``__reduce__``
or ``__setstate__`` runs. Anything else is refused when writing, by type name.

Format: ``MAGIC`` line, one JSON header line (payload SHA-256, sizes, metadata), the tree JSON,
then the safetensors blob. One file, written atomically: a reader sees the old entry or the new
one, never a checksum of one with the body of the other.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
from typing import Any

import numpy as np
import torch

MAGIC = b"INTERP-RESULT 1\n"
PACKAGE = "interp"


class UnsafeClassError(ValueError):
    """A stored class name outside the allow-list (not a dataclass / module of ``interp``)."""


def _cls_name(obj: Any) -> str:
    return f"{type(obj).__module__}:{type(obj).__qualname__}"


def _allowed(module: str) -> bool:
    return module == PACKAGE or module.startswith(PACKAGE + ".")


class _Encoder:
    def __init__(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}

    def tensor(self, t: torch.Tensor) -> str:
        name = f"t{len(self.tensors)}"
        self.tensors[name] = t.detach().cpu().contiguous().clone()
        return name

    def enc(self, obj: Any) -> Any:
        if obj is None or isinstance(obj, (bool, int, str)):
            return obj
        if isinstance(obj, float):
            return {"f": obj.hex()}  # exact, NaN and inf included
        if isinstance(obj, (list, tuple)):
            return {"list" if isinstance(obj, list) else "tuple": [self.enc(v) for v in obj]}
        if isinstance(obj, dict):
            return {"dict": [[self.enc(k), self.enc(v)] for k, v in obj.items()]}
        if isinstance(obj, (set, frozenset)):
            return {"set": [self.enc(v) for v in sorted(obj, key=repr)], "frozen": isinstance(obj, frozenset)}
        if isinstance(obj, torch.Tensor):
            return {"tensor": self.tensor(obj)}
        if isinstance(obj, np.ndarray):
            return self.array(obj)
        if isinstance(obj, np.generic):
            return {"npscalar": str(obj.dtype), "value": self.enc(obj.item())}
        return self.instance(obj)

    def array(self, a: np.ndarray) -> dict:
        if a.dtype.kind in "biuf":
            # a copy: arrays that come back from Ray workers are read-only, which torch warns about
            return {"ndarray": self.tensor(torch.from_numpy(np.array(a, copy=True))), "dtype": str(a.dtype)}
        if a.dtype.kind in "UO":  # strings / objects: element by element
            return {"ndlist": self.enc(a.tolist()), "dtype": str(a.dtype), "shape": list(a.shape)}
        raise TypeError(f"cannot store a numpy array of dtype {a.dtype}")

    def instance(self, obj: Any) -> dict:
        module = type(obj).__module__
        if dataclasses.is_dataclass(obj) and _allowed(module):
            fields = {f.name: self.enc(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
            return {"dataclass": _cls_name(obj), "fields": fields}
        if isinstance(obj, torch.nn.Module) and _allowed(module) and hasattr(obj, "init_args"):
            state = {k: self.tensor(v) for k, v in obj.state_dict().items()}
            return {
                "module": _cls_name(obj),
                "init": self.enc(obj.init_args()),
                "state": state,
                "training": obj.training,
            }
        raise TypeError(
            f"cannot store a {_cls_name(obj)} in a result: allowed are plain values, tensors, arrays and the "
            "dataclasses / modules (with init_args()) of interp"
        )


def _class(name: str, kind: str) -> type:
    module, _, qual = name.partition(":")
    if not _allowed(module):
        raise UnsafeClassError(f"stored class {name!r} is outside the {PACKAGE} package; refusing to build it")
    obj: Any = importlib.import_module(module)
    for part in qual.split("."):
        obj = getattr(obj, part)
    if kind == "dataclass" and not (isinstance(obj, type) and dataclasses.is_dataclass(obj)):
        raise UnsafeClassError(f"stored class {name!r} is not a dataclass")
    if kind == "module" and not (isinstance(obj, type) and issubclass(obj, torch.nn.Module)):
        raise UnsafeClassError(f"stored class {name!r} is not a torch module")
    return obj


def _dec(node: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if node is None or isinstance(node, (bool, int, str)):
        return node
    if not isinstance(node, dict):
        raise ValueError(f"malformed result tree node {node!r:.60}")
    kind = next(iter(node))
    if kind == "f":
        return float.fromhex(node["f"])
    if kind in ("list", "tuple"):
        items = [_dec(v, tensors) for v in node[kind]]
        return items if kind == "list" else tuple(items)
    if kind == "dict":
        return {_dec(k, tensors): _dec(v, tensors) for k, v in node["dict"]}
    if kind == "set":
        items = [_dec(v, tensors) for v in node["set"]]
        return frozenset(items) if node.get("frozen") else set(items)
    if kind == "tensor":
        return tensors[node["tensor"]]
    if kind == "ndarray":
        return tensors[node["ndarray"]].numpy().astype(np.dtype(node["dtype"]), copy=False)
    if kind == "ndlist":
        return np.array(_dec(node["ndlist"], tensors), dtype=np.dtype(node["dtype"])).reshape(node["shape"])
    if kind == "npscalar":
        return np.dtype(node["npscalar"]).type(_dec(node["value"], tensors))
    return _dec_instance(kind, node, tensors)


def _dec_instance(kind: str, node: dict, tensors: dict) -> Any:
    if kind == "dataclass":
        cls = _class(node["dataclass"], "dataclass")
        obj = cls.__new__(cls)  # no __init__ / __post_init__: the stored fields are the object
        for name, value in node["fields"].items():
            object.__setattr__(obj, name, _dec(value, tensors))
        return obj
    if kind == "module":
        cls = _class(node["module"], "module")
        module = cls(**_dec(node["init"], tensors))
        module.load_state_dict({k: tensors[v] for k, v in node["state"].items()})
        return module.train(bool(node["training"]))
    raise ValueError(f"malformed result tree: unknown node kind {kind!r}")


def dumps(value: Any, meta: dict | None = None) -> bytes:
    """``value`` as bytes (see the module doc); ``meta`` (JSON) rides in the header."""
    from safetensors.torch import save

    enc = _Encoder()
    tree = json.dumps(enc.enc(value), separators=(",", ":")).encode()
    blob = save(enc.tensors) if enc.tensors else b""
    payload = tree + blob
    header = {"sha256": hashlib.sha256(payload).hexdigest(), "tree": len(tree), "blob": len(blob), "meta": meta or {}}
    return MAGIC + json.dumps(header).encode() + b"\n" + payload


def loads(data: bytes) -> tuple[Any, dict]:
    """``(value, meta)`` from :func:`dumps` bytes; a ValueError says why when they are not sound
    (not this format, truncated, altered, or naming a class outside the allow-list)."""
    from safetensors.torch import load

    if not data.startswith(MAGIC):
        raise ValueError("not an interp result file")
    head, sep, payload = data[len(MAGIC) :].partition(b"\n")
    if not sep:
        raise ValueError("truncated header")
    header = json.loads(head)
    if len(payload) != header["tree"] + header["blob"]:
        raise ValueError(f"{len(payload)} payload bytes, expected {header['tree'] + header['blob']} (truncated)")
    if hashlib.sha256(payload).hexdigest() != header["sha256"]:
        raise ValueError("its SHA-256 does not match the one recorded when it was written (altered)")
    tensors = load(payload[header["tree"] :]) if header["blob"] else {}
    return _dec(json.loads(payload[: header["tree"]]), tensors), header["meta"]
