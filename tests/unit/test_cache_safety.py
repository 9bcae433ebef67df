"""The cache runs no code and survives concurrent writers (issue 27): a planted payload is never
executed, a stored class outside interp is refused, and 2 writers + 1 reader on one key end with
no crash and a valid entry."""

import hashlib
import multiprocessing as mp
import pickle
import time
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from interp import serialize
from interp.cache import cache_dir, disk_cached, read_entry, write_entry


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling this would create the marker file
        return (open, (self.marker, "w"))


def test_a_planted_pickle_payload_is_never_executed(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path / "cache"))
    marker = tmp_path / "pwned"
    folder = cache_dir() / "intermediates"
    folder.mkdir(parents=True)
    evil = pickle.dumps(_Payload(str(marker)))
    (folder / "k.res").write_bytes(evil)  # where an entry would be
    # main's format, with a recomputed SHA-256 sidecar (a checksum is not a MAC): main unpickled it
    torch.save({"format": 2, "value": _Payload(str(marker)), "commit": "x", "created": "x"}, folder / "k.pt")
    (folder / "k.pt.sha256").write_text(hashlib.sha256((folder / "k.pt").read_bytes()).hexdigest())
    with pytest.warns(RuntimeWarning, match="not an interp result file|unusable"):
        assert disk_cached("k", lambda: 7) == 7  # refused, removed, recomputed
    assert not marker.exists()
    assert read_entry("k") == (True, 7)


def test_a_stored_class_outside_interp_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path / "cache"))
    good = serialize.dumps({"a": 1})
    forged = good.replace(b'{"dict":[["a",1]]}', b'{"dataclass":"os:system","fields":{}}')
    import json

    head, _, payload = forged[len(serialize.MAGIC) :].partition(b"\n")
    header = json.loads(head)
    header.update(sha256=hashlib.sha256(payload).hexdigest(), tree=len(payload))
    forged = serialize.MAGIC + json.dumps(header).encode() + b"\n" + payload  # a consistent checksum: not a MAC
    with pytest.raises(serialize.UnsafeClassError, match="'os:system' is outside the interp package"):
        serialize.loads(forged)


@dataclass
class _Local:  # a dataclass outside interp: never stored, by name
    x: int


def test_results_round_trip_exactly_and_unknown_types_are_refused():
    from interp.stats import bootstrap_ci

    value = {
        (1, "a"): [1.5, float("nan"), float("inf"), None, True],
        "t": torch.arange(6, dtype=torch.float16).view(2, 3),
        "a": np.array([[1, 2]], dtype=np.int32),
        "s": np.array(["x", "yz"]),
        "n": np.float32(0.1),
        "e": bootstrap_ci(np.array([0.1, 0.5, np.nan]), n_boot=50),
        "set": {3, 1},
    }
    back, meta = serialize.loads(serialize.dumps(value, {"commit": "c"}))
    assert meta == {"commit": "c"} and list(back) == list(value)
    assert (
        back[(1, "a")][:1] == [1.5] and np.isnan(back[(1, "a")][1]) and back[(1, "a")][2:] == [float("inf"), None, True]
    )
    assert torch.equal(back["t"], value["t"]) and back["t"].dtype == torch.float16
    assert back["a"].dtype == np.int32 and (back["a"] == value["a"]).all() and (back["s"] == value["s"]).all()
    assert back["n"] == value["n"] and type(back["n"]) is np.float32
    assert back["e"] == value["e"] and back["set"] == {1, 3}
    with pytest.raises(TypeError, match="cannot store a .*_Local in a result"):
        serialize.dumps(_Local(1))
    with pytest.raises(ValueError, match="altered"):
        data = bytearray(serialize.dumps(value))
        data[-5] ^= 0xFF
        serialize.loads(bytes(data))


def _writer(root: str, seed: int, seconds: float) -> None:
    import os

    os.environ["INTERP_CACHE"] = root
    rng = np.random.default_rng(seed)
    stop = time.time() + seconds  # from this process's start (spawned imports take seconds)
    while time.time() < stop:
        write_entry("k", {"w": seed, "x": torch.tensor(rng.normal(size=2000))})


def _reader(root: str, seconds: float, out) -> None:
    import os
    import warnings

    os.environ["INTERP_CACHE"] = root
    seen = bad = 0
    stop = time.time() + seconds
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an entry judged corrupt would warn
        while time.time() < stop:
            try:
                found, value = read_entry("k")
            except Exception:  # noqa: BLE001 - counted: the test wants none
                bad += 1
                continue
            seen += found
    out.put((seen, bad))


def test_two_writers_and_a_reader_on_one_key(tmp_path):
    root, stop = str(tmp_path / "cache"), 6.0
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(root, s, stop)) for s in (1, 2)]
    procs.append(ctx.Process(target=_reader, args=(root, stop, q)))
    for p in procs:
        p.start()
    seen, bad = q.get(timeout=60)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert bad == 0 and seen > 0
    import os

    os.environ["INTERP_CACHE"] = root
    found, value = read_entry("k")
    assert found and value["w"] in (1, 2) and value["x"].shape == (2000,)
