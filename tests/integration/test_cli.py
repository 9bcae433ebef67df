"""The ``interp`` command line: run from any folder, config errors as one line with status 2 and
no run folder, ``interp list`` and ``interp report`` (re-render without compute)."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _interp(*args, cwd, env_cache):
    import os

    env = {**os.environ, "INTERP_CACHE": str(env_cache)}
    return subprocess.run(
        [sys.executable, "-m", "interp.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_run_from_another_folder_then_rerender(tmp_path):
    cfg = ROOT / "configs" / "demo.smoke.yaml"
    proc = _interp("run", "demo", "--config", str(cfg), "run.run_id=r1", cwd=tmp_path, env_cache=tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr[-2000:]
    folder = tmp_path / "results" / "demo" / "r1"  # ./results of the folder it ran in
    report, metrics = (folder / "report.md").read_text(), (folder / "metrics.json").read_text()
    assert json.loads(metrics)["n_pairs"] == 3 and (folder / "cells" / "index.json").exists()
    (folder / "report.md").unlink()
    (folder / "head_patching.png").unlink()
    proc = _interp(
        "report", str(folder), cwd=tmp_path, env_cache=tmp_path / "empty-cache"
    )  # no cache, no model: no compute
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (folder / "report.md").read_text() == report and (folder / "metrics.json").read_text() == metrics
    assert (folder / "head_patching.png").stat().st_size > 1000
    assert not (tmp_path / "empty-cache" / "intermediates").exists()


@pytest.mark.parametrize(
    "overrides, expect",
    [
        (["model.nmae=x"], "unknown config key 'model.nmae'"),
        (["model.name=no-such-model"], "model 'no-such-model' is unknown; allowed"),
        (["run.executor=dask"], "run.executor='dask'; allowed: ['local', 'ray']"),
        (["run.seed=true"], "run.seed=True; must be an integer"),
        (["run.run_id=../.."], "run.run_id='../..'; must be one plain folder name"),
        (["task.pairs=[[hot,cold]]"], "task.pairs has 1 entries"),
    ],
)
def test_config_errors_are_one_line_status_2_and_no_folder(tmp_path, overrides, expect):
    cfg = ROOT / "configs" / "demo.smoke.yaml"
    proc = _interp(
        "run",
        "demo",
        "--config",
        str(cfg),
        "--out",
        str(tmp_path / "out"),
        *overrides,
        cwd=tmp_path,
        env_cache=tmp_path / "c",
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(cfg) in lines[0] and expect in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()


def test_unreachable_ray_address_is_named_fast(tmp_path):
    cfg = ROOT / "configs" / "demo.smoke.yaml"
    t0 = time.time()
    proc = _interp(
        "run",
        "demo",
        "--config",
        str(cfg),
        "--out",
        str(tmp_path / "out"),
        "run.executor=ray",
        "run.ray_address=127.0.0.1:9",
        cwd=tmp_path,
        env_cache=tmp_path / "c",
    )
    assert proc.returncode == 2 and "run.ray_address='127.0.0.1:9' is unreachable" in proc.stderr
    # generous for a loaded 2-core machine; a Ray connect that hangs takes minutes
    assert time.time() - t0 < 60 and not (tmp_path / "out").exists()


def test_empty_models_and_tasks_are_config_errors(tmp_path):
    cfg = ROOT / "configs" / "function_vectors.smoke.yaml"
    for override, expect in (("models=[]", "models=[]"), ("tasks=[]", "tasks=[]")):
        proc = _interp(
            "run",
            "function_vectors",
            "--config",
            str(cfg),
            "--out",
            str(tmp_path / "out"),
            override,
            cwd=tmp_path,
            env_cache=tmp_path / "c",
        )
        assert proc.returncode == 2 and expect in proc.stderr
    assert not (tmp_path / "out").exists()


def test_list_names_every_study(tmp_path):
    from interp.study import STUDIES

    proc = _interp("list", cwd=tmp_path, env_cache=tmp_path / "c")
    assert proc.returncode == 0 and [line.split()[0] for line in proc.stdout.splitlines()] == list(STUDIES)


def test_rerunning_a_finished_run_id_refuses_and_keeps_its_metrics(tmp_path):
    cfg = ROOT / "configs" / "demo.smoke.yaml"
    args = ("run", "demo", "--config", str(cfg), "--out", str(tmp_path), "run.run_id=done")
    assert _interp(*args, cwd=tmp_path, env_cache=tmp_path / "c").returncode == 0
    metrics = (tmp_path / "demo" / "done" / "metrics.json").read_text()
    proc = _interp(*args, cwd=tmp_path, env_cache=tmp_path / "c")
    assert proc.returncode == 2 and "holds a finished run, kept as it is" in proc.stderr
    assert (tmp_path / "demo" / "done" / "metrics.json").read_text() == metrics


def test_land_copies_a_finished_run_as_a_committed_report(tmp_path):
    from interp import results_table

    cfg = ROOT / "configs" / "demo.smoke.yaml"
    args = ("run", "demo", "--config", str(cfg), "--out", str(tmp_path / "runs"), "run.run_id=r1")
    assert _interp(*args, cwd=tmp_path, env_cache=tmp_path / "c").returncode == 0
    run = tmp_path / "runs" / "demo" / "r1"
    (run / ".lock").touch()  # a run folder's lock must never reach a committed report
    root = tmp_path / "results"
    dest = results_table.land(run, "landed", root=root)
    assert dest == root / "demo" / "landed"
    assert not (dest / ".lock").exists() and (dest / "cells" / "index.json").exists()
    assert (dest / "metrics.json").read_text() == (run / "metrics.json").read_text()
    footer = (dest / "report.md").read_text().split("\n---\n")[-1]
    assert f"Run `{dest}`" in footer and f"`interp report {dest}` re-renders" in footer and str(run) not in footer
    # re-rendering the landed copy keeps a footer that names it, and changes nothing else
    landed = (dest / "report.md").read_text()
    proc = _interp("report", str(dest), cwd=tmp_path, env_cache=tmp_path / "empty")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (dest / "report.md").read_text() == landed
    with pytest.raises(FileExistsError, match="exists; pass replace=True"):
        results_table.land(run, "landed", root=root)
    dest = results_table.land(run, "landed", cells=False, replace=True, root=root)
    assert not (dest / "cells").exists() and "MB, not committed)." in (dest / "report.md").read_text()
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "status": "running", "pid": -1}))
    with pytest.raises(ValueError, match="says 'died'; only a finished run can be landed"):
        results_table.land(run, "other", root=root)
