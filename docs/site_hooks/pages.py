"""mkdocs hook: the API reference and one page per study, generated from the code at build time.

API pages: one per public module of ``interp`` (every ``.py`` file whose dotted path has no part
starting with ``_`` other than packages' ``__init__``), each a mkdocstrings ``::: module`` block.
Study pages: one per name in :data:`interp.study.STUDIES`, from the study's description, its
module docstring, its configs and the reports committed under ``docs/results/<name>/``. The home
page is the README with its links made relative to ``docs/``.
"""

from __future__ import annotations

import ast
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "interp"


def public_modules() -> list[str]:
    """Dotted names of interp's public modules (studies included), sorted."""
    names = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if any(p.startswith("_") for p in parts) or "datasets" in parts:
            continue
        names.append(".".join(parts))
    return names


def _docstring_line(module: str) -> str:
    path = ROOT / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _index(title: str, intro: str, header: list[str], rows: list[str]) -> str:
    """A section's index page: a heading, a sentence and a table with one row per page."""
    table = "| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n"
    return f"# {title}\n\n{intro}\n\n" + table + "\n".join(rows) + "\n"


def _api_pages() -> dict[str, str]:
    pages = {}
    rows = []
    for module in public_modules():
        uri = f"api/{module}.md"
        pages[uri] = f"# `{module}`\n\n::: {module}\n    options:\n      show_root_heading: false\n"
        rows.append(f"| [`{module}`]({module}.md) | {_docstring_line(module).replace('|', '/')} |")
    intro = "Generated from the docstrings of every public module at build time."
    pages["api/index.md"] = _index("API reference", intro, ["module", "what it holds"], rows)
    return pages


def _study_pages() -> dict[str, str]:
    from interp.study import STUDIES, get_study

    pages, rows = {}, []
    for name in STUDIES:
        study = get_study(name)
        configs = sorted(p.name for p in (ROOT / "configs").glob(f"{name}*.yaml"))
        results = ROOT / "docs" / "results" / name
        # every report.md, investigation runs too (interp.results_table lists only full run folders)
        reports = sorted(p.parent.relative_to(results).as_posix() for p in results.rglob("report.md"))
        doc = ast.get_docstring(ast.parse((PKG / "studies" / name / "study.py").read_text())) or ""
        lines = [f"# `{name}`", "", study.description or "", "", doc, "", "## Run it", "", "```bash"]
        main = f"configs/{name}.yaml" if f"{name}.yaml" in configs else f"configs/{configs[0]}"
        lines += [f"interp run {name} --config {main}          # the full study", "```", ""]
        lines += ["Configs: " + ", ".join(f"`configs/{c}`" for c in configs) + ".", ""]
        lines += [
            "`interp report <run_dir>` re-renders a finished run from its cell results (no model, no compute).",
            "",
            "## Reports",
            "",
        ]
        if (results / "FINDINGS.md").exists():
            lines.append(
                f"What the runs show, with the commands that repeat them: [FINDINGS](../results/{name}/FINDINGS.md)."
            )
            lines.append("")
        lines += [f"- [`docs/results/{name}/{r}`](../results/{name}/{r}/report.md)" for r in reports]
        if not reports:
            lines.append("No committed report yet.")
        pages[f"studies/{name}.md"] = "\n".join(lines) + "\n"
        rows.append(f"| [`{name}`]({name}.md) | {study.description} | {len(reports)} |")
    intro = "Each study is one package under `interp/studies/<name>/`, run with `interp run <name>`."
    pages["studies/index.md"] = _index("Studies", intro, ["study", "what it tests", "committed reports"], rows)
    return pages


def _home_page() -> dict[str, str]:
    """The README as the site's home page, its repository links made relative to ``docs/``."""
    text = (ROOT / "README.md").read_text().replace("](docs/", "](")
    return {"index.md": text}


def on_files(files, config):
    for uri, content in {**_home_page(), **_api_pages(), **_study_pages()}.items():
        files.append(File.generated(config, uri, content=content))
    return files
