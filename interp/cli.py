"""The ``interp`` command line.

    interp list                                   # the studies and what each tests
    interp run <study> [--config FILE] [--out DIR] [key=value ...]
    interp report <run_dir>                       # re-render a finished run, no compute
    interp results [--check]                      # docs/results/README.md from the committed reports
    interp land <run_dir> [--as ID] [--no-cells] [--replace]   # a finished run into docs/results/<study>/

A configuration error (unknown key, wrong type, unknown model, bad executor ...) prints one
line naming the file, the key and what is allowed, exits with status 2 and leaves no run folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from interp.config import ConfigError

_CONFIG_ERRORS = (ConfigError, ValueError, TypeError, FileNotFoundError, ConnectionError)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="interp", description="Run interp studies and render their reports")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the studies")
    r = sub.add_parser("run", help="run a study")
    r.add_argument("study")
    r.add_argument("--config", help="YAML config (default: the study's defaults)")
    r.add_argument("--out", help="results folder (default: ./results or the config's run.results_dir)")
    r.add_argument("overrides", nargs="*", help="key=value overrides, e.g. models=[gemma-3-270m]")
    rep = sub.add_parser("report", help="re-render a finished run's report from its stored results")
    rep.add_argument("run_dir")
    res = sub.add_parser("results", help="render docs/results/README.md from the committed reports' metrics.json")
    res.add_argument("--check", action="store_true", help="exit 1 when the committed file differs, write nothing")
    land = sub.add_parser("land", help="copy a finished run into docs/results/<study>/<id> and re-render the table")
    land.add_argument("run_dir")
    land.add_argument("--as", dest="as_id", help="the report's folder name (default: the run folder's name)")
    land.add_argument("--no-cells", action="store_true", help="leave the cell results out (large runs)")
    land.add_argument("--replace", action="store_true", help="overwrite a report of that name")
    return p


def _land(args: argparse.Namespace) -> int:
    from interp import results_table

    try:
        dest = results_table.land(args.run_dir, args.as_id, cells=not args.no_cells, replace=args.replace)
        results_table.write()
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"interp: {err}", file=sys.stderr)
        return 2
    print(f"[interp] landed {args.run_dir} as {dest}; results table re-rendered — now say what it shows in FINDINGS.md")
    return 0


def _results(check: bool) -> int:
    from interp import results_table

    if check:
        if results_table.stale():
            print("interp: docs/results/README.md is stale; run `interp results` and commit it", file=sys.stderr)
            return 1
        print("[interp] docs/results/README.md matches the reports")
        return 0
    print(f"[interp] results table written: {results_table.write()}")
    return 0


def _list() -> int:
    from interp.study import STUDIES, get_study

    for name in STUDIES:
        print(f"{name:22s} {get_study(name).description}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from interp.runner import load_study_config, run_checked
    from interp.study import get_study

    where = args.config or "<defaults>"
    try:
        study = get_study(args.study)
        # every check happens here, once, before a run folder exists
        overrides = list(args.overrides) + ([f"run.results_dir={args.out}"] if args.out else [])
        cfg = load_study_config(study, args.config, overrides)
        _check_folder(cfg, study.name)
    except _CONFIG_ERRORS as err:
        print(f"interp: config error in {where}: {err}", file=sys.stderr)
        return 2
    run_checked(study, cfg)
    return 0


def _check_folder(cfg, name: str) -> None:
    from interp.runner import folder_status

    if cfg.run.run_id is None:
        return
    folder = Path(cfg.run.results_dir) / name / cfg.run.run_id
    if folder_status(folder) == "finished":
        raise ValueError(
            f"run.run_id={cfg.run.run_id!r}: {folder} holds a finished run, kept as it is; choose another run.run_id "
            "(or leave it unset); `interp report` re-renders it"
        )


def main(argv: list[str] | None = None) -> int:
    """The ``interp`` command line (``run``, ``report``, ``list``, ``results``); returns the exit status."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # overrides may come before or after --config / --out
    if extra and (args.command != "run" or any("=" not in x or x.startswith("-") for x in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    if args.command == "list":
        return _list()
    if args.command == "run":
        return _run(args)
    if args.command == "results":
        return _results(args.check)
    if args.command == "land":
        return _land(args)
    from interp.runner import rerender

    print(f"[interp] report re-rendered: {rerender(Path(args.run_dir))}")
    return 0


def alias(study: str, argv: list[str] | None = None) -> None:
    """``python -m experiments.<study> --config FILE [key=value ...]``: ``interp run <study> ...``."""
    argv = sys.argv[1:] if argv is None else argv
    sys.exit(main(["run", study, *argv]))


if __name__ == "__main__":
    sys.exit(main())
