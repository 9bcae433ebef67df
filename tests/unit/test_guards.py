"""Bad input gets a named error, never a silently wrong number (issue 15, no model needed):
statistics on binary outcomes, bootstrap settings, config files, run folders, the disk cache's
integrity and code fingerprints."""

import json
from dataclasses import dataclass, field

import numpy as np
import pytest

from interp.cache import CacheStats, cache_key, code_fingerprint, disk_cached, source_digest
from interp.config import ConfigError, load_config
from interp.runner import Run, RunConfig, new_run_id, run_study
from interp.stats import auroc, bootstrap_ci, mcnemar_exact

# --------------------------------------------------------------------------- statistics


@pytest.mark.parametrize("bad", [[np.nan, 1], ["False", 1], [0.4, 1], [2, 1]])
def test_mcnemar_rejects_non_binary_outcomes(bad):
    with pytest.raises(ValueError, match="control must hold bool or 0/1"):
        mcnemar_exact(bad, [1, 1])


def test_mcnemar_empty_is_an_error_and_matches_scipy():
    from scipy.stats import binomtest

    with pytest.raises(ValueError, match="empty"):
        mcnemar_exact([], [])
    c, t = [1, 0, 0, 0, 1, 0, 0, 0], [1, 1, 1, 1, 0, 1, 0, 0]
    m = mcnemar_exact(c, t)
    assert (m.gained, m.lost) == (4, 1) and m.p == pytest.approx(binomtest(4, 5, 0.5).pvalue)
    assert mcnemar_exact([True, False], [True, False]).p == 1.0  # items, but no discordant pair: no evidence


def test_auroc_rejects_nan_labels_and_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    with pytest.raises(ValueError, match="positive must hold bool or 0/1"):
        auroc([0.1, 0.2, 0.3], [1, np.nan, 0])
    s, y = [0.1, 0.4, 0.35, 0.8, 0.4], [0, 0, 1, 1, 1]
    assert auroc(s, y) == pytest.approx(roc_auc_score(y, s))
    assert np.isnan(auroc([0.1, 0.2], [1, 1]))  # one class: undefined


@pytest.mark.parametrize("n_boot", [0, -3, 2.5])
def test_bootstrap_needs_a_positive_number_of_resamples(n_boot):
    with pytest.raises(
        (ValueError, TypeError), match="n_boot"
    ):  # TypeError: the test run's type checker answers first for 2.5
        bootstrap_ci([1.0, 2.0], n_boot=n_boot)


# --------------------------------------------------------------------------- configs


@dataclass
class Cfg:
    run: RunConfig = field(default_factory=RunConfig)
    alpha: float = 1.0


def test_malformed_yaml_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("alpha: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml.*not valid YAML"):
        load_config(Cfg, bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="list.yaml.*list at the top level"):
        load_config(Cfg, listed)


# --------------------------------------------------------------------------- run folders


def test_default_run_ids_do_not_collide():
    assert len({new_run_id() for _ in range(200)}) == 200


def test_run_folder_is_exclusive_to_its_config(tmp_path):
    cfg = Cfg(run=RunConfig(results_dir=str(tmp_path), run_id="r1"))
    first = Run("unit", cfg, cfg.run)
    first.log_metrics(stale=1.0)
    other = Cfg(run=RunConfig(results_dir=str(tmp_path), run_id="r1"), alpha=2.0)
    with pytest.raises(ValueError, match="different config"):
        Run("unit", other, other.run)
    with pytest.raises(RuntimeError, match="is in use by another live run"):  # the folder is locked while live
        Run("unit", cfg, cfg.run)
    first.release()
    again = Run("unit", cfg, cfg.run)  # same config, first run gone: allowed (resume), nothing carried over
    assert again.metrics == {}
    # the earlier metrics stay on disk until this run logs its own (a killed rerun loses nothing)
    assert json.loads((again.path / "metrics.json").read_text()) == {"stale": 1.0}
    again.log_metrics(fresh=2.0)
    assert json.loads((again.path / "metrics.json").read_text()) == {"fresh": 2.0}


def test_interrupted_run_says_so(tmp_path):
    yaml = tmp_path / "c.yaml"
    yaml.write_text(f"run:\n  results_dir: {tmp_path}\n  run_id: x\n")

    def body(cfg, run):
        run.log_metrics(done=1.0)
        raise KeyboardInterrupt

    from interp.study import Study

    study = Study(
        "unit",
        Cfg,
        cells=lambda cfg, done: [],
        analyse=lambda cfg, done: done,
        report=lambda cfg, r, run: body(cfg, run),
    )
    with pytest.raises(KeyboardInterrupt):
        run_study(study, str(yaml))
    info = json.loads((tmp_path / "unit" / "x" / "run.json").read_text())
    assert info["status"] == "interrupted" and info["error"].startswith("KeyboardInterrupt")
    assert json.loads((tmp_path / "unit" / "x" / "metrics.json").read_text()) == {"done": 1.0}  # finished work kept


# --------------------------------------------------------------------------- the disk cache


def test_truncated_or_altered_entries_are_named_removed_and_recomputed(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))
    key = cache_key(step="t")
    assert disk_cached(key, lambda: {"x": 1}) == {"x": 1}
    path = tmp_path / "intermediates" / f"{key}.res"
    data = path.read_bytes()
    for broken in (data[: len(data) // 2], data[:-8] + b"\x00" * 8):
        path.write_bytes(broken)
        stats = CacheStats()
        with pytest.warns(RuntimeWarning, match=f"{key}.res is unusable"):
            assert disk_cached(key, lambda: {"x": 2}, stats=stats) == {"x": 2}
        assert stats.corrupt == 1 and stats.computed == 1
        assert disk_cached(key, lambda: {"x": 3}) == {"x": 2}  # the recomputed entry is trusted again
        data = path.read_bytes()
    path.write_bytes(b"not an entry")  # e.g. a file from elsewhere, or the old pickle format
    with pytest.warns(RuntimeWarning, match="not an interp result file"):
        assert disk_cached(key, lambda: {"x": 4}) == {"x": 4}


def test_cache_stats_count_reuse_and_the_writing_commit(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))
    stats = CacheStats()
    disk_cached("a", lambda: 1, stats=stats, commit="abc")
    disk_cached("a", lambda: 1, stats=stats, commit="def")
    assert stats.computed == 1 and stats.reused == {"abc": 1}
    assert "1 of 2 cached steps reused (written by commit abc ×1)" in stats.summary()


def test_source_digest_ignores_comments_and_docstrings_not_code():
    base = source_digest('def f(x):\n    """doc"""\n    return x + 1  # note\n')
    assert base == source_digest("def f(x):\n    return x+1\n")
    assert base != source_digest("def f(x):\n    return 2 * (x + 1) + 1\n")


def test_code_fingerprint_follows_imports(monkeypatch):
    """A change in a module that interp.patching imports (engine) changes patching's fingerprint;
    one in a module it does not import (plots) does not."""
    import interp.cache as cache

    before = code_fingerprint(["interp.patching"])
    real = cache._module_info

    def altered(target):
        def info(name):
            digest, deps = real(name)
            return ("changed" if name == target else digest), deps

        return info

    monkeypatch.setattr(cache, "_module_info", altered("interp.engine"))
    cache._fingerprint.cache_clear()  # fingerprints are memoised per process
    assert code_fingerprint(["interp.patching"]) != before
    monkeypatch.setattr(cache, "_module_info", altered("interp.plots"))
    cache._fingerprint.cache_clear()
    assert code_fingerprint(["interp.patching"]) == before


def test_a_scalar_for_a_list_key_is_named(tmp_path):
    """`steps: 300` for a list field used to pass the loader and fail deep in the study."""
    from interp.studies.toy_steering import ToySettings

    with pytest.raises(ConfigError, match=r"grid.steps' expects a list, got 300"):
        load_config(ToySettings, None, ["grid.steps=300"])
    assert load_config(ToySettings, None, ["grid.steps=[300]"]).grid.steps == [300]


def test_a_running_status_whose_process_is_gone_reads_died_and_resumes(tmp_path):
    import subprocess
    import sys

    from interp.runner import folder_status

    cfg = Cfg(run=RunConfig(results_dir=str(tmp_path), run_id="r"))
    run = Run("unit", cfg, cfg.run)
    run.log_metrics(done=1.0)
    assert folder_status(run.path) == "running"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    info = json.loads((run.path / "run.json").read_text())
    info["pid"] = int(dead.stdout)  # a process that has exited: as after kill -9
    (run.path / "run.json").write_text(json.dumps(info))
    run.release()
    assert folder_status(run.path) == "died"
    again = Run("unit", cfg, cfg.run)  # a died run may be resumed; its metrics stay until new ones come
    assert again.resumed_from == "died" and json.loads((again.path / "metrics.json").read_text()) == {"done": 1.0}
