"""Head patching speed and memory: interp vs transformer_lens.patching, in the same run.

    .venv/bin/python -m benchmarks.patching [--model smollm2-135m-instruct] [--pairs 4] [--threads 2]

Every head's output z is patched over all positions (clean → corrupted, IOI pairs with an
ABC corruption) by (1) ``interp.patching.patch`` (batched engine), (2)
``transformer_lens.patching.get_act_patch_attn_head_out_all_pos`` (one forward per head), and
(3) estimated by ``interp.attribution.attribution_patching``. The script checks that (1) and
(2) agree, then prints the times, their ratio, peak memory of (1) against its budget, and a
final line of JSON. ``--threads 2`` mimics the 2-core CI machine on a bigger one. On CUDA
(``--device cuda``, the default when available) memory is ``torch.cuda.max_memory_allocated``;
on CPU it is the peak resident set size sampled every 2 ms, above the level before the run,
measured in a fresh child process per budget after one plain forward of the batch (so the
first call's one-off allocations are not counted).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import torch

import interp
from interp.attribution import attribution_patching
from interp.data.ioi import DEFAULT_TEMPLATES, ioi_pairs
from interp.patching import logit_diff_metric, patch


class PeakMemory:
    """Peak memory above the starting level while the block runs (bytes)."""

    def __init__(self, device: str):
        self.device, self.peak = device, 0

    def __enter__(self):
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
            return self
        import psutil

        proc = psutil.Process()
        self.start = proc.memory_info().rss
        self._stop = threading.Event()

        def sample():
            while not self._stop.is_set():
                self.peak = max(self.peak, proc.memory_info().rss - self.start)
                time.sleep(0.002)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.start
        else:
            self._stop.set()
            self._thread.join()


def timed(fn, device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def _memory_in_child(args, budget: float) -> dict:
    """Peak memory of one exact run at ``budget`` GiB, measured in a fresh process."""
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.patching",
        "--memory-only",
        "--model",
        args.model,
        "--pairs",
        str(args.pairs),
        "--threads",
        str(args.threads),
        "--budget-gb",
        str(budget),
    ] + (["--device", args.device] if args.device else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (CI has 2 cores); 0 = torch default")
    parser.add_argument("--budget-gb", type=float, default=4.0, help="memory budget of the batched engine")
    parser.add_argument("--skip-reference", action="store_true", help="do not run transformer_lens.patching")
    parser.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from transformer_lens import patching as tl_patching
    model = interp.load_model(args.model, device=args.device)
    device = str(model.cfg.device)
    # one template: equal-length prompts, so transformer_lens (no attention mask) reads the same last token
    pairs = ioi_pairs(args.pairs, seed=0, templates=DEFAULT_TEMPLATES[:1])
    clean, corr = interp.tokenize(model, pairs.clean), interp.tokenize(model, pairs.corrupted)
    io = interp.data.single_token_ids(model, pairs.io, "io names")
    s = interp.data.single_token_ids(model, pairs.s, "s names")
    metric = logit_diff_metric(io, s)
    heads = model.cfg.n_layers * model.cfg.n_heads
    print(
        f"model={args.model} device={device} threads={torch.get_num_threads()} pairs={args.pairs} "
        f"tokens/prompt={corr.tokens.shape[1]} heads={heads}"
    )

    run_ours = lambda budget: patch(model, clean, corr, metric, site="z", progress=False, memory_budget_gb=budget)  # noqa: E731
    if args.memory_only:  # child process: a fresh allocator, so the peak is not hidden by earlier runs
        with torch.no_grad():  # one plain forward first: lazy one-off allocations are not the engine's
            interp.run_batch(model, corr)
        with PeakMemory(device) as mem:
            res = run_ours(args.budget_gb)
        print(json.dumps({"peak_gb": mem.peak / 2**30, "metric": res.metric.mean(-1).flatten().tolist()}))
        return
    small_budget = 0.25
    mem, mem_small = _memory_in_child(args, args.budget_gb), _memory_in_child(args, small_budget)
    ours, t_ours = timed(lambda: run_ours(args.budget_gb), device)
    small_metric = torch.tensor(mem_small["metric"]).view_as(ours.metric.mean(-1))
    assert torch.allclose(small_metric, ours.metric.mean(-1), atol=1e-4), (
        "chunking to a small budget changed the results"
    )
    # attribution takes under a second, so its time is the median of 5 runs (exact runs once)
    runs = [timed(lambda: attribution_patching(model, clean, corr, metric, sites=("z",)), device) for _ in range(5)]
    attr, t_attr = runs[0][0], float(np.median([t for _, t in runs]))
    exact_cells = ours.metric.mean(-1).flatten().numpy() - ours.m_corr.mean().item()
    attr_cells = attr["z"].metric.mean(-1).flatten().numpy() - attr["z"].m_corr.mean().item()
    pearson = float(np.corrcoef(exact_cells, attr_cells)[0, 1])
    print(
        f"interp.patching.patch (z, all positions): {t_ours:.2f} s; peak memory {mem['peak_gb']:.3f} GiB "
        f"(budget {args.budget_gb} GiB), {mem_small['peak_gb']:.3f} GiB with a {small_budget} GiB budget (same numbers)"
    )
    print(f"attribution patching: {t_attr:.3f} s, Pearson vs exact over the {heads} heads = {pearson:.3f}")

    result = {
        "model": args.model,
        "device": device,
        "threads": torch.get_num_threads(),
        "heads": heads,
        "pairs": args.pairs,
        "tokens_per_prompt": int(corr.tokens.shape[1]),
        "ours_s": round(t_ours, 3),
        "attribution_s": round(t_attr, 4),
        "attribution_vs_exact_pearson": round(pearson, 4),
        "peak_memory_gb": round(mem["peak_gb"], 3),
        "memory_budget_gb": args.budget_gb,
        "peak_memory_small_budget_gb": round(mem_small["peak_gb"], 3),
        "small_budget_gb": small_budget,
    }
    if not args.skip_reference:
        with torch.no_grad():
            _, cache = model.run_with_cache(clean.tokens.to(device))

            def reference():
                return tl_patching.get_act_patch_attn_head_out_all_pos(
                    model, corr.tokens.to(device), cache, lambda logits: metric(logits[:, -1]).mean()
                )

            ref, t_ref = timed(reference, device)
        err = (ours.metric.mean(-1) - ref.cpu()).abs().max().item()
        print(f"transformer_lens.patching: {t_ref:.2f} s; max |ours - transformer_lens| = {err:.2e}")
        print(f"speed-up: exact x{t_ref / t_ours:.1f}, attribution x{t_ref / t_attr:.0f} (vs transformer_lens exact)")
        result |= {
            "transformer_lens_s": round(t_ref, 3),
            "speedup": round(t_ref / t_ours, 2),
            "attribution_speedup": round(t_ref / t_attr, 1),
            "max_abs_diff": err,
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
