"""The package's shape, checked: no import cycle, no study imported by a method module or by the
generic plots, no hand-written cache key, and every study a complete package."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "interp"


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def _imports(name: str, path: Path, mods: dict) -> set[str]:
    """Every interp module ``name`` imports, at module level or inside functions."""
    is_pkg = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            found |= {f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in mods}
    out = set()
    for m in found:
        while m and m not in mods:
            m = m.rpartition(".")[0]
        if m and m != name and m.startswith("interp"):
            out.add(m)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(m, p, mods) for m, p in mods.items()}


def test_no_import_cycle_in_interp():
    graph, state, cycles = _graph(), {}, []

    def visit(m, stack):
        state[m] = "open"
        for d in sorted(graph[m]):
            if state.get(d) == "open":
                cycles.append(stack[stack.index(d) :] + [d])
            elif d not in state:
                visit(d, stack + [d])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, f"import cycles: {cycles[:3]}"


def test_method_modules_and_plots_import_no_study():
    allowed = {"interp.cli", "interp.study", "interp.runner"}  # the study layer's own machinery
    offenders = {
        m: sorted(d for d in deps if d.startswith("interp.studies"))
        for m, deps in _graph().items()
        if not m.startswith("interp.studies") and m not in allowed
    }
    offenders = {m: d for m, d in offenders.items() if d}
    assert not offenders, offenders
    assert not any(d.startswith("interp.studies") for d in _graph()["interp.plots"])


# what hand-written keys looked like: step names, version strings, exclude lists, format numbers
HAND_WRITTEN = [
    r"cache_parts",
    r"\"step\"\s*:",
    r"\bstep=\"",
    r"_CODE_VERSION",
    r"_CACHE_FORMAT",
    r"\.v\d+\"",
    r"\.cached\(",
    r"-v\d+\"",
]


@pytest.mark.parametrize("pattern", HAND_WRITTEN)
def test_no_hand_written_cache_key(pattern):
    hits = [
        f"{p.relative_to(ROOT)}:{i + 1}"
        for folder in ("interp", "experiments")
        for p in (ROOT / folder).rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines())
        if re.search(pattern, line)
    ]
    assert not hits, f"{pattern!r} found at {hits}"


def test_every_study_is_one_package_with_an_alias_and_a_smoke_config():
    from interp.study import STUDIES, Study, get_study

    for name in STUDIES:
        study = get_study(name)
        assert isinstance(study, Study) and study.description
        assert (PKG / "studies" / name / "__init__.py").exists()
        assert f'alias("{name}")' in (ROOT / "experiments" / f"{name}.py").read_text()
        assert (ROOT / "configs" / f"{name}.smoke.yaml").exists()
    assert sorted(p.name for p in (PKG / "studies").iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(
        STUDIES
    )
