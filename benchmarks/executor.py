"""In-process vs Ray executor on a small real grid, in the same run: wall time, ratio, and
whether the two metrics.json files are identical.

    .venv/bin/python -m benchmarks.executor [--tasks capitalize present-past singular-plural uppercase] [--cpus 2]

Grid: ``experiments.function_vectors`` on SmolLM2-135M (one cell per task; reduced settings:
10 ICL prompts of 5 shots, 20 evaluation queries, k ∈ {5, 10}, λ ∈ {1, 4}, every layer, no
patching), cache off. In-process runs the cells one after another with ``--cpus`` torch threads;
Ray runs them as tasks of 1 CPU each on a local instance of ``--cpus`` CPUs (start-up included:
that is what a user waits for). Prints one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(out: str, run_id: str, tasks: list[str], extra: list[str], env: dict) -> float:
    cmd = [
        sys.executable,
        "-m",
        "experiments.function_vectors",
        "--config",
        "configs/function_vectors.smoke.yaml",
        f"run.results_dir={out}",
        f"run.run_id={run_id}",
        "run.use_cache=false",
        "models=[smollm2-135m-instruct]",
        f"tasks=[{','.join(tasks)}]",
        "n_icl=10",
        "n_shots=5",
        "n_eval=20",
        "ks=[5,10]",
        "scales=[1.0,4.0]",
        "default_k=10",
        "patching=false",
        *extra,
    ]
    t = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{run_id} failed:\n{proc.stderr[-2000:]}")
    return time.time() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["capitalize", "present-past", "singular-plural", "uppercase"])
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.cpus)}
    with tempfile.TemporaryDirectory() as out:
        # warm the model cache (conversion is not what is compared)
        _run(out, "warm", args.tasks[:1], ["n_eval=6", "n_icl=4"], env)
        local = _run(out, "local", args.tasks, [], env)
        ray = _run(out, "ray", args.tasks, ["run.executor=ray", f"run.ray_cpus={args.cpus}", "run.cell_cpus=1"], env)
        same = (Path(out) / "function_vectors/local/metrics.json").read_text() == (
            Path(out) / "function_vectors/ray/metrics.json"
        ).read_text()
    print(
        f"in-process {local:.1f} s, Ray {ray:.1f} s ({args.cpus} CPUs, {len(args.tasks)} cells): Ray / in-process = "
        f"{ray / local:.2f}; "
        f"metrics identical: {same}"
    )
    print(
        json.dumps(
            {
                "cells": len(args.tasks),
                "cpus": args.cpus,
                "in_process_s": round(local, 1),
                "ray_s": round(ray, 1),
                "ratio_ray_over_in_process": round(ray / local, 3),
                "metrics_identical": same,
            }
        )
    )


if __name__ == "__main__":
    main()
