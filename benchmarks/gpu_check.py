"""GPU readiness in one command: smoke configs on the device, the patching benchmark, and CUDA
vs CPU logits on both real models; prints one JSON line at the end.

    .venv/bin/python -m benchmarks.gpu_check                 # on a CUDA machine (≈ 2-4 min)
    .venv/bin/python -m benchmarks.gpu_check --device cpu    # dry run of the same steps on CPU

Each step runs with a timeout and records ``ok`` / ``failed`` with its error, so one broken
step does not hide the others. Parity: the same 6 prompts through each real model on CPU
(float32) and on the device (float32), max |Δ logit| over all positions and the share of
positions whose top-1 token agrees (the GGUF-converted weights are identical on both).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
SMOKES = [
    "demo",
    "function_vectors",
    "fv_transfer",
    "caa_behaviors",
    "dola",
    "head_patching",
    "correctness_steering",
    "prompt_pairs",
    "toy_steering",
]
PROMPTS = [
    "The capital of France is",
    "Question: What is the opposite of hot?\nAnswer:",
    "1 2 3 4 5 6",
    "When Mary and John went to the store, John gave a drink to",
    "def add(a, b):\n    return",
    "The word apple in French is",
]


def _step(fn, *args) -> dict:
    t = time.time()
    try:
        out = fn(*args) or {}
        return {"status": "ok", "seconds": round(time.time() - t, 1), **out}
    except Exception as err:  # noqa: BLE001 - a step's failure is its result
        return {"status": "failed", "seconds": round(time.time() - t, 1), "error": f"{type(err).__name__}: {err}"[:500]}


def smoke(name: str, device: str, timeout: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cmd = [
            sys.executable,
            "-m",
            f"experiments.{name}",
            "--config",
            f"configs/{name}.smoke.yaml",
            f"run.results_dir={out}",
            "run.run_id=gpu",
            f"run.device={device}",
            "run.use_cache=false",
        ]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(
                proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
            )
        info = json.loads((Path(out) / name / "gpu" / "run.json").read_text())
        return {"device": info["device"], "run_status": info["status"]}


def patching(device: str, timeout: int) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.patching", "--device", device, "--pairs", "4", "--threads", "0"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}")
    return {"result": json.loads(proc.stdout.strip().splitlines()[-1])}


@torch.no_grad()
def parity(name: str, device: str) -> dict:
    import interp

    logits = {}
    for dev in ("cpu", device):
        model = interp.load_model(name, device=dev, dtype="float32")
        batch = interp.tokenize(model, PROMPTS)
        out = interp.run_batch(model, batch).float().cpu()
        logits[dev] = out[batch.attention_mask.bool()]  # real positions only
        del model
        if device == "cpu":
            break
    ref, got = logits["cpu"], logits[device]
    return {
        "max_abs_diff": float((ref - got).abs().max()),
        "top1_agreement": float((ref.argmax(-1) == got.argmax(-1)).float().mean()),
        "positions": int(ref.shape[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else None)
    parser.add_argument("--smokes", nargs="*", default=SMOKES)
    parser.add_argument("--timeout", type=int, default=240, help="seconds per step")
    args = parser.parse_args()
    if args.device is None:
        raise SystemExit("no CUDA device here: pass --device cpu for a dry run of the same steps")
    t0 = time.time()
    report = {
        "device": args.device,
        "cuda_available": torch.cuda.is_available(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "threads": torch.get_num_threads(),
    }
    report["parity"] = {m: _step(parity, m, args.device) for m in ("smollm2-135m-instruct", "gemma-3-270m")}
    report["patching_benchmark"] = _step(patching, args.device, args.timeout)
    report["smoke"] = {}
    for name in args.smokes:
        report["smoke"][name] = _step(smoke, name, args.device, args.timeout)
        print(
            f"[gpu_check] {name}: {report['smoke'][name]['status']} ({report['smoke'][name]['seconds']} s)",
            file=sys.stderr,
            flush=True,
        )
    steps = [*report["parity"].values(), report["patching_benchmark"], *report["smoke"].values()]
    report["ok"] = all(s["status"] == "ok" for s in steps)
    report["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(report))
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
