"""Cache keys are derived from everything a cell is given: the two stale-result reproductions of
issue 26 recompute, and the key follows answers, data files, settings and the model."""

import json
import shutil

import pytest


def _run(smoke_run, name, *overrides, run_id):
    folder, metrics = smoke_run(name, "run.use_cache=true", *overrides, run_id=run_id)
    info = json.loads((folder / "run.json").read_text())
    return metrics, info["cache"]


def test_demo_with_other_answers_recomputes(smoke_run, tmp_path, monkeypatch):
    """Same subjects, other answers: the patching numbers must be the new answers' (on main the
    second run reused the first run's patching result under a key that missed the answers)."""
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path / "cache"))
    first, c1 = _run(smoke_run, "demo", run_id="first")
    second, c2 = _run(smoke_run, "demo", "task.pairs=[[hot,small],[up,cold],[big,down]]", run_id="second")
    assert c1["computed"] == 1 and c2["computed"] == 1 and not c2["reused"]
    assert second["m_clean"] != first["m_clean"]
    again, c3 = _run(smoke_run, "demo", "task.pairs=[[hot,small],[up,cold],[big,down]]", run_id="again")
    assert c3["computed"] == 0 and sum(c3["reused"].values()) == 1 and again == second


def test_edited_dataset_file_recomputes(smoke_run, tmp_path, monkeypatch):
    """Edit antonym.json (every output set to its input): the function-vector cells recompute
    and the numbers change (on main the cached metrics came back identical)."""
    import interp.data.datasets_io as dio

    monkeypatch.setenv("INTERP_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "datasets"
    shutil.copytree(dio.DATA_ROOT, data)
    monkeypatch.setattr(dio, "DATA_ROOT", data)
    first, c1 = _run(smoke_run, "function_vectors", "models=[random:tiny-llama]", run_id="first")
    path = data / "function_vectors" / "antonym.json"
    pairs = json.loads(path.read_text())
    path.write_text(json.dumps([{"input": p["input"], "output": p["input"]} for p in pairs]))
    second, c2 = _run(smoke_run, "function_vectors", "models=[random:tiny-llama]", run_id="second")
    assert c1["computed"] == 2 and c2["computed"] == 2 and not c2["reused"]
    assert second["random:tiny-llama/antonym"] != first["random:tiny-llama/antonym"]


def test_cell_key_follows_every_input(tmp_path, monkeypatch):
    import torch

    from interp.executor import Cell
    from interp.studies.demo import TaskConfig, demo_cell

    monkeypatch.setenv("INTERP_CACHE", str(tmp_path / "cache"))
    base = Cell("x", "random:tiny-llama", demo_cell, (TaskConfig(), 1e-3))
    key = base.cache_key("demo", "cpu")
    assert (
        Cell("renamed", "random:tiny-llama", demo_cell, (TaskConfig(), 1e-3)).cache_key("demo", "cpu") == key
    )  # labels are names only
    assert Cell("x", "random:tiny-llama", demo_cell, (TaskConfig(), 1e-4)).cache_key("demo", "cpu") != key
    assert Cell("x", "random:tiny-gpt2", demo_cell, (TaskConfig(), 1e-3)).cache_key("demo", "cpu") != key
    assert (
        Cell("x", "random:tiny-llama", demo_cell, (TaskConfig(answer_prefix=""), 1e-3)).cache_key("demo", "cpu") != key
    )
    assert base.cache_key("other_study", "cpu") != key and base.cache_key("demo", "cuda:0") != key
    f = tmp_path / "data.json"
    f.write_text("[1]")
    k1 = Cell("x", None, demo_cell, (torch.ones(2),), (f,)).cache_key("demo", "cpu")
    f.write_text("[2]")
    assert Cell("x", None, demo_cell, (torch.ones(2),), (f,)).cache_key("demo", "cpu") != k1
    assert Cell("x", None, demo_cell, (torch.ones(2) * 2,), (f,)).cache_key("demo", "cpu") != k1
    with pytest.raises(TypeError, match="cannot derive a cache key from a builtins.object"):
        Cell("x", None, demo_cell, (object(),)).cache_key("demo", "cpu")
