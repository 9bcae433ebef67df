"""Grid cells under the in-process and the Ray executor (interp.executor): the same numbers, a
failing cell reported while the others finish, and resume from the cache."""

import json

import pytest


def _run_json(folder):
    return json.loads((folder / "run.json").read_text())


def test_ray_grid_matches_in_process(smoke_run):
    # 2 models × 2 tasks on a local Ray instance of 2 CPUs: byte-identical metrics
    local, _ = smoke_run("function_vectors", run_id="local")
    ray_folder, _ = smoke_run("function_vectors", "run.executor=ray", "run.ray_cpus=2", run_id="ray")
    assert (ray_folder / "metrics.json").read_text() == (local / "metrics.json").read_text()
    assert _run_json(ray_folder)["status"] == "finished"


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_failing_cell_is_reported_and_the_others_finish(smoke_run, tmp_path, executor):
    from interp.errors import CellsFailedError

    with pytest.raises(
        CellsFailedError, match="2 cell"
    ):  # the exit status says incomplete, after everything is written
        smoke_run(
            "function_vectors",
            "tasks=[antonym,no-such-task]",
            f"run.executor={executor}",
            "run.ray_cpus=2",
            "run.cell_retries=1",
            run_id=executor,
        )
    folder = tmp_path / "function_vectors" / executor
    metrics = json.loads((folder / "metrics.json").read_text())
    info = _run_json(folder)
    assert info["status"] == "incomplete"
    assert set(info["failed_cells"]) == {"random:tiny-llama/no-such-task", "random:tiny-gpt2/no-such-task"}
    failure = info["failed_cells"]["random:tiny-llama/no-such-task"]
    assert failure["attempts"] == 2 and "task='no-such-task' is not available" in failure["error"]
    assert set(metrics) == {"random:tiny-llama/antonym", "random:tiny-gpt2/antonym"}  # the other cells finished
    report = (folder / "report.md").read_text()
    assert "FAILED CELLS: 2 cell(s)" in report and "random:tiny-gpt2/no-such-task" in report


def test_resume_reuses_finished_cells_under_either_executor(smoke_run, tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path / "cache"))
    from interp.errors import CellsFailedError

    with pytest.raises(CellsFailedError):
        smoke_run("function_vectors", "run.use_cache=true", "tasks=[antonym,no-such-task]", run_id="first")
    first = tmp_path / "function_vectors" / "first"
    m1 = json.loads((first / "metrics.json").read_text())
    assert _run_json(first)["cache"]["computed"] == 2  # the two antonym cells; the failed ones are not cached
    # the Ray rerun finds both finished cells in the cache and computes only what failed
    again, m2 = smoke_run(
        "function_vectors", "run.use_cache=true", "run.executor=ray", "run.ray_cpus=2", run_id="again"
    )
    info = _run_json(again)
    assert sum(info["cache"]["reused"].values()) == 2 and info["cache"]["computed"] == 2
    assert m2["random:tiny-llama/antonym"] == m1["random:tiny-llama/antonym"]
    assert info["status"] == "finished"


def test_cell_and_executor_arguments_are_checked(smoke_run):
    with pytest.raises(ValueError, match=r"run.executor='dask'; allowed: \['local', 'ray'\]"):
        smoke_run("function_vectors", "run.executor=dask", run_id="bad")
    from interp.executor import Cell, check_cells
    from interp.studies.function_vectors import task_study

    with pytest.raises(ValueError, match="duplicate labels"):
        check_cells([Cell("a", "m", task_study), Cell("a", "m", task_study)])
    with pytest.raises(TypeError, match="cannot be shipped to workers"):
        check_cells([Cell("a", "m", lambda model: 1)])
