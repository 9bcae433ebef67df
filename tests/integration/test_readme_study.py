"""The README's "new study" example is runnable: one package's worth of code, run by the runner."""

import json
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_new_study_example_runs(tmp_path):
    from interp.runner import run_study

    text = README.read_text()
    block = re.search(r"```python\n(# interp/studies/my_study/__init__\.py.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - our own documentation
    cfg = tmp_path / "my.yaml"
    cfg.write_text("models: [random:tiny-llama]\nrun:\n  use_cache: false\n")
    report = run_study(namespace["STUDY"], str(cfg), [f"run.results_dir={tmp_path}", "run.run_id=r"])
    metrics = json.loads((report.parent / "metrics.json").read_text())
    assert list(metrics["top1"]) == ["random:tiny-llama"] and len(metrics["top1"]["random:tiny-llama"]) == 1
    assert "| model | top-1 |" in report.read_text()
