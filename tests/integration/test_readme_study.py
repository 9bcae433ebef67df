"""The "new study" example of the studies guide (docs/guide/studies.md) is runnable: one package's worth
of code, run by the runner. And the README stays short, with pictures and links that exist."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
GUIDE = ROOT / "docs" / "guide" / "studies.md"


def test_readme_new_study_example_runs(tmp_path):
    from interp.runner import run_study

    text = GUIDE.read_text()
    block = re.search(r"```python\n(# interp/studies/my_study/__init__\.py.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(compile(block, str(GUIDE), "exec"), namespace)  # noqa: S102 - our own documentation
    cfg = tmp_path / "my.yaml"
    cfg.write_text("models: [random:tiny-llama]\nrun:\n  use_cache: false\n")
    report = run_study(namespace["STUDY"], str(cfg), [f"run.results_dir={tmp_path}", "run.run_id=r"])
    metrics = json.loads((report.parent / "metrics.json").read_text())
    assert list(metrics["top1"]) == ["random:tiny-llama"] and len(metrics["top1"]["random:tiny-llama"]) == 1
    assert "| model | top-1 |" in report.read_text()


def test_readme_is_short_with_figures_and_links_that_exist():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(images) >= 3
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    missing = [p for p in links if not p.startswith("http") and not (ROOT / p).exists()]
    assert not missing, f"README links to files that do not exist: {missing}"
    assert all(p.endswith(".png") for p in images)


@pytest.mark.slow
def test_readme_short_study_runs_on_smollm2():
    """The README's "short study, end to end" code runs as printed (SmolLM2, 48 IOI pairs)."""
    text = README.read_text()
    block = re.search(r"## A short study, end to end\n\n```python\n(.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own documentation
    assert namespace["heads"].recovery.shape[:2] == (30, 9)
    assert len(namespace["att"]["z"].verification.cells) == 5
