"""How long a cached model load takes in a fresh process (conversion cache present), now that
every load checks the SHA-256 recorded at conversion. Prints one JSON line per model.

    .venv/bin/python -m benchmarks.model_load [--models smollm2-135m-instruct gemma-3-270m]

The reference is the same load with the hash check skipped (same run, ratio printed): the cost
of integrity.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

LOAD = """
import time, interp, interp.models as m
if {skip}:
    m.verify_checksum = lambda *a, **k: None
t = time.perf_counter(); interp.load_model({name!r}, device="cpu"); print(time.perf_counter() - t)
"""


def timed(name: str, skip: bool, repeats: int) -> float:
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", LOAD.format(name=name, skip=skip)], capture_output=True, text=True, check=True
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        for _ in range(repeats)
    ]
    return sorted(runs)[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["smollm2-135m-instruct", "gemma-3-270m"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import interp

    for name in args.models:
        interp.load_model(name, device="cpu")  # convert once if needed
        checked, unchecked = timed(name, False, args.repeats), timed(name, True, args.repeats)
        print(
            json.dumps(
                {
                    "model": name,
                    "cached_load_s": round(checked, 2),
                    "without_hash_check_s": round(unchecked, 2),
                    "ratio": round(checked / unchecked, 2),
                }
            )
        )


if __name__ == "__main__":
    main()
