"""The on-disk cache every part of ``interp`` shares: where it lives, how entries are keyed,
written and checked.

- :func:`cache_dir`: ``$INTERP_CACHE`` or ``~/.cache/interp`` (converted model weights,
  tokenizers, SAEs and experiment intermediates all live under it).
- :func:`cache_key` / :func:`disk_cached`: an intermediate stored under a hash of what produced
  it — its inputs and the code that computed it (:func:`code_fingerprint`), so an interrupted
  run resumes from the steps it finished and a library fix invalidates the entries it affects.
- Every entry is written atomically (temp file + rename) with a SHA-256 sidecar; a truncated or
  altered entry is named in a warning, removed and recomputed (:func:`verify_checksum`).

This module imports nothing else from ``interp``: models, data and the runner all depend on it,
never the other way round.
"""

from __future__ import annotations

import ast
import datetime as dt
import functools
import hashlib
import importlib.util
import os
import tempfile
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

T = TypeVar("T")
PACKAGE = "interp"


def cache_dir() -> Path:
    """Root of interp's on-disk cache: ``$INTERP_CACHE`` or ``~/.cache/interp``."""
    root = os.environ.get("INTERP_CACHE") or Path.home() / ".cache" / "interp"
    return Path(root)


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same folder and rename, so an interrupt never leaves a truncated file."""
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename, so a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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
    """Stable hash of what produced an intermediate: :func:`value_digest` of every part (model
    identity, arguments, data digests, code fingerprint), never a hand-picked subset."""
    return value_digest(parts)[:24]


# --------------------------------------------------------------------------- derived keys


def value_digest(obj: Any) -> str:
    """SHA-256 of a value's content, for cache keys derived from what a computation is given.

    Canonical over the types a cell's arguments take: dataclasses (class name and every field),
    mappings, sequences, tensors and arrays (dtype, shape and bytes), ``nn.Module`` (class and
    state dict), paths (the file's or folder's content, :func:`data_digest`), numbers, strings,
    None. Anything else is refused by name: a key that silently ignored part of an input would
    serve stale results."""
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def _feed(h, obj: Any) -> None:
    import dataclasses

    if obj is None or isinstance(obj, (bool, int, str)):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    elif isinstance(obj, float):
        h.update(f"float:{obj.hex()};".encode())  # exact, and NaN / inf distinct
    elif isinstance(obj, (np.integer, np.floating, np.bool_)):
        _feed(h, obj.item())
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        h.update(f"dc:{type(obj).__module__}.{type(obj).__qualname__}(".encode())
        for f in dataclasses.fields(obj):
            h.update(f"{f.name}=".encode())
            _feed(h, getattr(obj, f.name))
        h.update(b")")
    elif isinstance(obj, dict):
        h.update(f"dict{len(obj)}{{".encode())
        for k in sorted(obj, key=repr):
            _feed(h, k)
            _feed(h, obj[k])
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__}{len(obj)}[".encode())
        for v in obj:
            _feed(h, v)
        h.update(b"]")
    elif isinstance(obj, (set, frozenset)):
        _feed(h, sorted(obj, key=repr))
    elif isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"tensor:{t.dtype}:{tuple(t.shape)}:".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj)
        h.update(f"array:{a.dtype}:{a.shape}:".encode())
        h.update(a.tobytes())
    elif isinstance(obj, torch.nn.Module):
        h.update(f"module:{type(obj).__module__}.{type(obj).__qualname__}:".encode())
        _feed(h, dict(obj.state_dict()))
    elif isinstance(obj, Path):
        h.update(f"path:{data_digest([obj])};".encode())
    elif isinstance(obj, torch.dtype):
        h.update(f"dtype:{obj};".encode())
    else:
        raise TypeError(
            f"cannot derive a cache key from a {type(obj).__module__}.{type(obj).__qualname__} ({obj!r:.80}); "
            "give cells plain values, dataclasses, tensors, arrays or paths"
        )


def data_digest(paths) -> str:
    """SHA-256 over the content of data files (folders: every file below, by relative path), so a
    changed dataset changes every key that reads it. A missing path is an error, not a skip."""
    h = hashlib.sha256()
    for p in sorted(Path(p) for p in paths):
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and "__pycache__" not in f.parts)
            for f in files:
                h.update(f"{f.relative_to(p)}:{_file_digest_cached(f)}\n".encode())
        elif p.is_file():
            h.update(f"{p.name}:{_file_digest_cached(p)}\n".encode())
        else:
            raise FileNotFoundError(f"data path {str(p)!r} does not exist (a cell declared it as an input)")
    return h.hexdigest()


def _file_digest_cached(path: Path) -> str:
    st = path.stat()
    return _file_digest(str(path.resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    # size and mtime in the lru key: an edited file is read again
    return file_sha256(Path(path))


# --------------------------------------------------------------------------- checksums


def file_sha256(path: Path) -> str:
    """SHA-256 hex digest of a file, read in 4 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def checksum_path(path: Path) -> Path:
    """Where the checksum of ``path`` is kept: ``<path>.sha256`` beside it."""
    return path.with_name(path.name + ".sha256")


def write_checksum(path: Path, digest: str | None = None) -> str:
    """Record ``path``'s SHA-256 next to it (``<name>.sha256``); returns the digest."""
    digest = digest or file_sha256(path)
    atomic_write_text(checksum_path(path), digest)
    return digest


def verify_checksum(path: Path, data: bytes | None = None) -> str | None:
    """None when ``path`` (or its already-read ``data``) matches its recorded SHA-256, else why not."""
    side = checksum_path(path)
    if not side.exists():
        return "no recorded checksum (an interrupted write or a file from elsewhere)"
    digest = hashlib.sha256(data).hexdigest() if data is not None else file_sha256(path)
    if digest != side.read_text().strip():
        return "its SHA-256 does not match the one recorded when it was written (truncated or altered)"
    return None


def folder_files(folder: Path) -> list[Path]:
    """The files of a checksummed folder (its ``.sha256`` sidecars left out)."""
    return sorted(f for f in Path(folder).iterdir() if f.is_file() and not f.name.endswith(".sha256"))


def write_checksums(files) -> None:
    """Record the SHA-256 of each file next to it (:func:`write_checksum`)."""
    for f in files:
        write_checksum(f)


def first_damaged(files) -> str | None:
    """``"<name>: <why>"`` for the first file that no longer matches its recorded SHA-256, or None."""
    for f in files:
        reason = verify_checksum(f)
        if reason is not None:
            return f"{f.name}: {reason}"
    return None


def remove_entry(path: Path, reason: str) -> None:
    """Warn that a cache entry is unusable, naming it, and delete it (and its checksum)."""
    warnings.warn(f"cache entry {path} is unusable: {reason}; removed, recomputing", RuntimeWarning, stacklevel=3)
    path.unlink(missing_ok=True)
    checksum_path(path).unlink(missing_ok=True)


# --------------------------------------------------------------------------- code fingerprints


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(getattr(body[0], "value", None), ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
    return tree


def source_digest(source: str) -> str:
    """SHA-256 of Python source as code: comments, docstrings and formatting do not count."""
    return hashlib.sha256(ast.dump(_strip_docstrings(ast.parse(source))).encode()).hexdigest()


@functools.lru_cache(maxsize=None)
def _module_info(name: str) -> tuple[str, frozenset[str]]:
    """(:func:`source_digest` of the module, the interp modules it imports). Read once per process."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return "", frozenset()
    source = Path(spec.origin).read_text()
    tree = ast.parse(source)
    deps = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            deps |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.level == 0
            and node.module.split(".")[0] == PACKAGE
        ):
            deps.add(node.module)
            # `from interp.x import y`: y may be a submodule
            deps |= {f"{node.module}.{a.name}" for a in node.names if _spec_exists(f"{node.module}.{a.name}")}
    parents = {
        ".".join(d.split(".")[:i]) for d in deps for i in range(1, d.count(".") + 1)
    }  # packages run their __init__
    return source_digest(source), frozenset((deps | parents) - {name})


def _spec_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ModuleNotFoundError, ValueError):
        return False


def module_closure(modules) -> list[str]:
    """``modules`` and every ``interp`` module they import, transitively (static imports)."""
    todo, seen = [m for m in modules if m.split(".")[0] == PACKAGE], set()
    while todo:
        m = todo.pop()
        if m in seen or not _spec_exists(m):
            continue
        seen.add(m)
        todo += sorted(_module_info(m)[1])
    return sorted(seen)


def code_fingerprint(modules) -> str:
    """Hash of the code of ``modules`` and the ``interp`` modules they import (comments,
    docstrings and formatting ignored): a library change to any of them changes it."""
    return _fingerprint(frozenset(modules))


@functools.lru_cache(maxsize=None)
def _fingerprint(modules: frozenset[str]) -> str:
    # once per module set and process: every cached step of a run asks again (DoLa: per chunk)
    h = hashlib.sha256()
    for m in module_closure(modules):
        h.update(f"{m}:{_module_info(m)[0]}\n".encode())
    return h.hexdigest()[:16]


def _owner_module(obj: Any) -> str | None:
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType, type)):
        return getattr(obj, "__module__", None)
    return getattr(type(obj), "__module__", None)


def callable_modules(fn: Callable, _seen: set | None = None) -> set[str]:
    """The ``interp`` modules a computation reaches directly: the modules of the globals its code
    (and nested lambdas) names, of the objects its closure holds, and — through helper functions
    defined outside ``interp`` (e.g. in an experiment script) — of theirs."""
    seen = _seen if _seen is not None else set()
    if id(fn) in seen or not isinstance(fn, types.FunctionType):
        return set()
    seen.add(id(fn))
    out: set[str] = set()
    if fn.__module__ and fn.__module__.split(".")[0] == PACKAGE:
        out.add(fn.__module__)

    def names(code: types.CodeType):
        yield from code.co_names
        for c in code.co_consts:
            if isinstance(c, types.CodeType):
                yield from names(c)

    objs = [fn.__globals__[n] for n in names(fn.__code__) if n in fn.__globals__]
    objs += [c.cell_contents for c in (fn.__closure__ or ()) if _has_contents(c)]
    for obj in objs:
        mod = _owner_module(obj)
        if mod and mod.split(".")[0] == PACKAGE:
            out.add(mod)
        elif isinstance(obj, types.FunctionType):
            out |= callable_modules(obj, seen)
    return out


def _has_contents(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- the disk cache


@dataclass
class CacheStats:
    """What a run's cached steps did: entries reused (by the commit that wrote them), computed,
    and found corrupt."""

    reused: dict[str, int] = field(default_factory=dict)
    computed: int = 0
    corrupt: int = 0

    @property
    def n_reused(self) -> int:
        return sum(self.reused.values())

    def summary(self) -> str:
        if not self.n_reused and not self.computed:
            return "no cached steps"
        src = ", ".join(f"{c[:12]} ×{n}" for c, n in sorted(self.reused.items()))
        out = f"{self.n_reused} of {self.n_reused + self.computed} cached steps reused" + (
            f" (written by commit {src})" if src else ""
        )
        return out + (f"; {self.corrupt} corrupt entries recomputed" if self.corrupt else "")


def disk_cached(
    key: str,
    compute: Callable[[], T],
    enabled: bool = True,
    folder: str = "intermediates",
    stats: CacheStats | None = None,
    commit: str = "unknown",
) -> T:
    """Return the object stored under ``key`` or compute, store (atomically, with a checksum)
    and return it. A corrupt or truncated entry is named in a warning, removed and recomputed.

    Anything ``torch.save`` can write is allowed; a rerun after an interrupt picks up every
    step that finished. ``stats`` counts reuse (and the commit that wrote each reused entry).
    """
    if enabled:
        found, value = read_entry(key, folder, stats)
        if found:
            return value
    value = compute()
    if stats is not None:
        stats.computed += 1
    if enabled:
        write_entry(key, value, folder, commit)
    return value


def entry_path(key: str, folder: str = "intermediates", root: Path | None = None) -> Path:
    """Where the entry under ``key`` lives (in the cache, or below ``root``)."""
    return (root if root is not None else cache_dir() / folder) / f"{key}.res"


def entry_bytes(value: Any, commit: str = "unknown") -> bytes:
    """``value`` as one self-checking entry file (:mod:`interp.serialize`): serialize once, write
    it to as many places as needed with :func:`store_entry`."""
    from interp.serialize import dumps

    return dumps(value, {"commit": commit, "created": dt.datetime.now().isoformat(timespec="seconds")})


def store_entry(path: Path, data: bytes) -> None:
    """Write entry bytes to ``path``: a unique temp name renamed into place, so concurrent writers
    and readers of one key each see a whole entry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)


def read_entry(
    key: str, folder: str = "intermediates", stats: CacheStats | None = None, root: Path | None = None
) -> tuple[bool, Any]:
    """``(True, value)`` for a sound entry under ``key``; ``(False, None)`` when there is none
    (an unsound one is named in a warning and removed). ``root``: a folder other than the cache's.

    Nothing in an entry is executed (:mod:`interp.serialize`: JSON plus safetensors, classes only
    from ``interp``'s own dataclasses); the file is opened, then verified — no exists-then-read race."""
    from interp.serialize import loads

    path = entry_path(key, folder, root)
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return False, None
    try:
        value, meta = loads(data)
    except Exception as err:  # noqa: BLE001 - any unsound entry is recomputed, never trusted
        remove_entry(path, f"{type(err).__name__}: {err}")
        if stats is not None:
            stats.corrupt += 1
        return False, None
    if stats is not None:
        commit = meta.get("commit", "unknown")
        stats.reused[commit] = stats.reused.get(commit, 0) + 1
    return True, value


def write_entry(
    key: str, value: Any, folder: str = "intermediates", commit: str = "unknown", root: Path | None = None
) -> None:
    """Store ``value`` under ``key`` (:func:`entry_bytes`, :func:`store_entry`)."""
    store_entry(entry_path(key, folder, root), entry_bytes(value, commit))


def file_slug(name: str) -> str:
    """``name`` (e.g. a model name like ``random:tiny-llama``) made safe for a file name."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
