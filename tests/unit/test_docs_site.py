"""The docs site's generated parts cover the package: every public module gets an API page, every
study a page, and every public function and class of the library (studies aside) has the docstring
that page shows. `make docs` (in CI) then builds it with --strict."""

import ast
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _hooks():
    spec = importlib.util.spec_from_file_location("site_pages", ROOT / "docs" / "site_hooks" / "pages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_public_module_and_study_gets_a_page():
    from interp.study import STUDIES

    pages = _hooks()
    modules = pages.public_modules()
    for name in ("interp.patching", "interp.circuits", "interp.steering.io", "interp.lens", "interp.studies.dola"):
        assert name in modules
    assert not [m for m in modules if any(part.startswith("_") for part in m.split("."))]
    api = pages._api_pages()
    assert set(api) == {f"api/{m}.md" for m in modules} | {"api/index.md"}
    studies = pages._study_pages()
    assert set(studies) == {f"studies/{n}.md" for n in STUDIES} | {"studies/index.md"}
    assert "interp run dola --config configs/dola.yaml" in studies["studies/dola.md"]
    home = pages._home_page()["index.md"]
    assert "](docs/" not in home and "](results/README.md)" in home


def test_every_public_library_function_and_class_has_a_docstring():
    missing = []
    for path in sorted((ROOT / "interp").rglob("*.py")):
        rel = path.relative_to(ROOT)
        if "studies" in rel.parts or any(p.startswith("_") and p != "__init__.py" for p in rel.parts):
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                if not ast.get_docstring(node):
                    missing.append(f"{rel}:{node.name}")
    assert not missing, f"public names without a docstring (the API reference shows only their signature): {missing}"
