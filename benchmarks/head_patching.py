"""Head patching speed: interp.patching.patch_heads vs transformer_lens.patching, same run.

    .venv/bin/python -m benchmarks.head_patching [--model smollm2-135m-instruct] [--pairs 4]

Both compute the metric of every (layer, head) z-patch over all positions on the same prompts;
the script checks that they agree before it prints times and the ratio.
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

import interp
from interp.patching import last_logits, logit_diff_metric, patch_heads

SUBJECTS = [("France", "Paris"), ("Italy", "Rome"), ("Germany", "Berlin"), ("Spain", "Madrid"),
            ("Japan", "Tokyo"), ("Russia", "Moscow"), ("Greece", "Athens"), ("China", "Beijing")]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from transformer_lens import patching as tl_patching
    model = interp.load_model(args.model, device=args.device)
    subj = SUBJECTS[: args.pairs + 1]
    clean = interp.tokenize(model, [f"The capital of {s} is" for s, _ in subj[:-1]])
    corr = interp.tokenize(model, [f"The capital of {s} is" for s, _ in subj[1:]])
    metric = logit_diff_metric(last_logits(model, clean).argmax(-1), last_logits(model, corr).argmax(-1))

    t0 = time.perf_counter()
    ours = patch_heads(model, clean, corr, metric, progress=False)
    t_ours = time.perf_counter() - t0
    with torch.no_grad():
        _, cache = model.run_with_cache(clean.tokens.to(model.cfg.device))
        t0 = time.perf_counter()
        ref = tl_patching.get_act_patch_attn_head_out_all_pos(
            model, corr.tokens.to(model.cfg.device), cache, lambda logits: metric(logits[:, -1]).mean()
        )
        t_ref = time.perf_counter() - t0
    err = (ours.metric.mean(-1) - ref.cpu()).abs().max().item()
    print(f"model={args.model} device={model.cfg.device} pairs={args.pairs} grid={tuple(ref.shape)}")
    print(f"max |ours - transformer_lens| = {err:.2e}")
    print(f"interp.patch_heads: {t_ours:.2f} s   transformer_lens.patching: {t_ref:.2f} s   speed-up x{t_ref / t_ours:.1f}")


if __name__ == "__main__":
    main()
