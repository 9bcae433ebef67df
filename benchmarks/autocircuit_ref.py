"""auto-circuit 1.0.1's EAP and EAP-IG on the shared circuits workload, run in a child process
by :mod:`benchmarks.circuits` (auto-circuit stays out of the project's environment: it lives in a
``pip install --target`` folder whose path is appended after our site-packages).

    python -m benchmarks.autocircuit_ref OUT.pt --target DIR [--steps 5] [--threads 2]

Writes ``{"eap": {edge name: score}, "eap_ig": {...}, "eap_s": seconds, "eap_ig_s": seconds}``
with edge names in auto-circuit's own spelling (``A3.2->A5.1.Q``). Two import shims make it load
on TransformerLens 3.x: its key/value cache class moved to
``transformer_lens.cache.key_value_cache.TransformerLensKeyValueCache``.
"""

from __future__ import annotations

import argparse
import sys
import time
import types


def shim_transformer_lens() -> None:
    import transformer_lens
    from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

    module = types.ModuleType("transformer_lens.past_key_value_caching")
    module.HookedTransformerKeyValueCache = TransformerLensKeyValueCache
    sys.modules["transformer_lens.past_key_value_caching"] = module
    transformer_lens.HookedTransformerKeyValueCache = TransformerLensKeyValueCache


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--target", required=True, nargs="+", help="folders holding auto-circuit and its extra packages")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    sys.path.extend(args.target)  # after site-packages: our torch / numpy / transformer-lens win
    import torch

    torch.set_num_threads(args.threads)
    shim_transformer_lens()
    from auto_circuit.data import PromptDataLoader, PromptDataset
    from auto_circuit.prune_algos.mask_gradient import mask_gradient_prune_scores
    from auto_circuit.utils.graph_utils import patchable_model

    from benchmarks.circuits import workload

    model, clean, corr, (correct, wrong) = workload(ids=True)
    model.set_use_attn_result(True)
    model.set_use_hook_mlp_in(True)
    model.set_use_split_qkv_input(True)
    data = PromptDataset(clean.tokens, corr.tokens, [c[None] for c in correct], [w[None] for w in wrong])
    loader = PromptDataLoader(data, seq_len=None, diverge_idx=0, batch_size=len(clean), shuffle=False)
    pm = patchable_model(model, factorized=True, slice_output="last_seq", separate_qkv=True, device=torch.device("cpu"))
    out = {"n_edges": len(pm.edges)}
    runs = {"eap": dict(mask_val=0.0), "eap_ig": dict(integrated_grad_samples=args.steps)}
    for name, kw in runs.items():
        t = time.perf_counter()
        scores = mask_gradient_prune_scores(pm, loader, None, grad_function="logit", answer_function="avg_diff", **kw)
        out[f"{name}_s"] = time.perf_counter() - t
        out[name] = {e.name: float(scores[e.dest.module_name][e.patch_idx]) for e in pm.edges}
        pm.zero_grad(set_to_none=True)
    torch.save(out, args.out)


if __name__ == "__main__":
    main()
