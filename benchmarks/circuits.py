"""Edge attribution speed of ``interp.circuits`` against its floor, in the same run: EAP over
every edge and EAP-IG, each against one forward + backward of the same batch (issue 29's target:
EAP within 3× of it), with the ratio printed.

    .venv/bin/python -m benchmarks.circuits [--steps 5] [--threads 2]

Workload (issue 29's shared one): a random GPT-2-small-shaped HookedTransformer (12 layers, 12
heads, d_model 768, d_mlp 3072, vocabulary 50257, LayerNorm, separate Q/K/V inputs), 8 pairs of
15 tokens that differ from position 10, logit-difference metric. The comparison with
auto-circuit 1.0.1 (which must live in its own environment: it pins old packages) is not part of
this script yet, so no speed-up over it is claimed.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp.circuits import Graph, eap, eap_ig
from interp.data.tokenize import TokenBatch
from interp.patching import logit_diff_metric


def workload(seed: int = 0):
    cfg = HookedTransformerConfig(
        n_layers=12,
        d_model=768,
        n_heads=12,
        d_head=64,
        d_mlp=3072,
        d_vocab=50257,
        n_ctx=64,
        act_fn="gelu_new",
        normalization_type="LN",
        seed=seed,
    )
    model = HookedTransformer(cfg).eval()
    g = torch.Generator().manual_seed(seed)
    clean = torch.randint(0, 50257, (8, 15), generator=g)
    corr = clean.clone()
    corr[:, 10:] = torch.randint(0, 50257, (8, 5), generator=g)
    mk = lambda t: TokenBatch(t, torch.ones_like(t), torch.full((8,), 14), "right", ["-"] * 8)  # noqa: E731
    metric = logit_diff_metric(torch.randint(0, 50257, (8,), generator=g), torch.randint(0, 50257, (8,), generator=g))
    return model, mk(clean), mk(corr), metric


def timed(fn, repeats: int = 1):
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def forward_backward(model, batch: TokenBatch, metric) -> None:
    logits = model(batch.tokens)
    metric(logits[:, -1]).mean().backward()
    model.zero_grad(set_to_none=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model, clean, corr, metric = workload()
    g = Graph.of(model)
    print(f"[benchmark] graph: {len(g.senders)} senders, {len(g.receivers)} receivers, {g.n_edges} edges")
    t_fb, _ = timed(lambda: forward_backward(model, clean, metric), repeats=3)
    t_eap, s_eap = timed(lambda: eap(model, g, clean, corr, metric))
    t_ig, s_ig = timed(lambda: eap_ig(model, g, clean, corr, metric, steps=args.steps))
    print(f"[benchmark] one forward + backward: {t_fb:.2f} s")
    print(f"[benchmark] interp EAP: {t_eap:.2f} s ({t_eap / t_fb:.1f}x forward+backward)")
    print(f"[benchmark] interp EAP-IG ({args.steps} steps): {t_ig:.2f} s")
    out = {"edges": g.n_edges, "forward_backward_s": t_fb, "eap_s": t_eap, "eap_ig_s": t_ig, "steps": args.steps}
    out["eap_over_forward_backward"] = t_eap / t_fb
    out["scores_finite"] = bool(torch.isfinite(s_eap.scores).all() and torch.isfinite(s_ig.scores).all())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
