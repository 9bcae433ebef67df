import json
from dataclasses import dataclass, field

import pytest

from interp.cache import cache_key, disk_cached
from interp.runner import Run, RunConfig


def test_disk_cache_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))
    calls = []

    def compute():
        calls.append(1)
        return {"x": 3}

    key = cache_key(step="a", model="m", n=1)
    assert disk_cached(key, compute) == {"x": 3}
    assert disk_cached(key, compute) == {"x": 3}
    assert len(calls) == 1  # the second call read the stored result
    assert cache_key(step="a", model="m", n=2) != key


def test_disk_cache_interrupted_compute_stores_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))

    def boom():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        disk_cached("k", boom)
    assert disk_cached("k", lambda: 5) == 5


@dataclass
class Cfg:
    run: RunConfig = field(default_factory=RunConfig)
    alpha: float = 1.0


def test_run_writes_results_folder(tmp_path):
    cfg = Cfg(run=RunConfig(results_dir=str(tmp_path), run_id="r1", seed=3))
    run = Run("unit", cfg, cfg.run)
    run.log_metrics(acc=0.5, undefined=float("nan"))
    # metrics are on disk before the run finishes: an interrupt loses nothing finished
    assert json.loads((run.path / "metrics.json").read_text()) == {"acc": 0.5, "undefined": None}
    run.report.add_table(["a", "b"], [[1, float("nan")]])
    report = run.finish()
    text = report.read_text()
    assert "| 1 | undefined |" in text
    info = json.loads((run.path / "run.json").read_text())
    assert info["seed"] == 3 and info["status"] == "finished" and info["git_commit"]
    from importlib.metadata import version

    assert info["versions"]["transformer-lens"] == version("transformer-lens")  # recorded, not "?"
    assert "alpha: 1.0" in (run.path / "config.yaml").read_text()
    assert info["cache"]["computed"] == 0 and "no cached steps" in text
    # a rerun into a finished run's folder refuses: its metrics are never truncated (issue 27)
    with pytest.raises(ValueError, match="holds a finished run; its metrics and report are kept"):
        Run("unit", cfg, cfg.run)
    assert json.loads((run.path / "metrics.json").read_text()) == {"acc": 0.5, "undefined": None}
