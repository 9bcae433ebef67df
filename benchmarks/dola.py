"""DoLa sweep speed: one forward per question for every bucket and α vs recomputing each
configuration from a plain full forward, in the same run.

    .venv/bin/python -m benchmarks.dola [--model smollm2-135m-instruct] [--questions 2] [--threads 2]

(1) ``interp.dola.ContinuationScorer``: the 6-shot primer's keys/values once, each question
once, its options as one batch on top, lens logits of the candidate layers at the option
tokens only, all (bucket, α, post-softmax) from :func:`interp.dola.dola_sweep`.
(2) The reference: for every configuration, each option's full prompt (primer + question +
option) through ``model.run_with_cache``, lens logits of the bucket's layers at the option
tokens, :func:`interp.dola.dola_scores` (the unshared definition). The script checks that
both give the same answer scores, then prints both times, the ratio and a final JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import interp
from interp.data import load_truthfulqa_mc
from interp.dola import (
    ALPHAS,
    BUCKETS,
    TRUTHFULQA_PRIMER,
    ContinuationScorer,
    TruthfulQAItem,
    candidate_layers,
    dola_scores,
)
from interp.engine import final_logits
from interp.hooks import act_name, hidden_state_hook


@torch.no_grad()
def reference(model, item, bucket_layers: list[int], alpha: float, post: bool) -> np.ndarray:
    """Answer scores for one configuration from plain full forwards (one per option)."""
    # model.to_tokens' default: the model's own BOS convention, as the scorer uses
    prefix = torch.cat([model.to_tokens(TRUTHFULQA_PRIMER)[0], model.to_tokens(item.context, prepend_bos=False)[0]])
    out = []
    for option in item.options:
        opt = model.to_tokens(" " + option.strip(), prepend_bos=False)[0]
        toks = torch.cat([prefix, opt])[None].to(model.cfg.device)
        names = [hidden_state_hook(j) for j in bucket_layers]
        _, cache = model.run_with_cache(
            toks, names_filter=lambda n: n in names or n == act_name("resid_post", model.cfg.n_layers - 1)
        )
        rows = torch.arange(len(prefix) - 1, len(prefix) - 1 + len(opt))
        final = (
            final_logits(model, cache[act_name("resid_post", model.cfg.n_layers - 1)][0, rows]).float().log_softmax(-1)
        )
        layers = torch.stack([final_logits(model, cache[n][0, rows]).float().log_softmax(-1) for n in names])
        scores, _ = dola_scores(layers, final, alpha, post_softmax=post)
        out.append(float(scores[torch.arange(len(opt)), opt.to(scores.device)].sum()))
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--questions", type=int, default=2)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (CI has 2 cores); 0 = torch default")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = interp.load_model(args.model, device=args.device)
    items = [TruthfulQAItem.from_question(q).item for q in load_truthfulqa_mc()[: args.questions]]
    buckets = list(BUCKETS)
    configs = [(b, a, p) for b in buckets for a in ALPHAS for p in (False, True)]
    print(
        f"model={args.model} device={model.cfg.device} threads={torch.get_num_threads()} questions={len(items)} "
        f"options={sum(len(i.options) for i in items)} configurations={len(configs)}"
    )

    scorer = ContinuationScorer(model, buckets, ALPHAS, shared_prefix=TRUTHFULQA_PRIMER)
    scorer.score_all(items[:1])  # warm-up (prefix cache, allocator)
    scorer = ContinuationScorer(model, buckets, ALPHAS, shared_prefix=TRUTHFULQA_PRIMER)
    t0 = time.perf_counter()
    ours = scorer.score_all(items)
    t_ours = time.perf_counter() - t0
    print(f"interp one-pass sweep: {t_ours:.2f} s")

    t0 = time.perf_counter()
    err = 0.0
    for i, item in enumerate(items):
        for b, a, p in configs:
            ref = reference(model, item, candidate_layers(model.cfg.n_layers, b), a, p)
            err = max(err, float(np.abs(ref - ours[i].scores[("dola", b, a, p)]).max()))
    t_ref = time.perf_counter() - t0
    print(f"per-configuration full forwards: {t_ref:.2f} s; max |ours - reference| answer score = {err:.2e}")
    print(f"speed-up: x{t_ref / t_ours:.1f}")
    print(
        json.dumps(
            {
                "model": args.model,
                "questions": len(items),
                "configurations": len(configs),
                "seconds_ours": t_ours,
                "seconds_reference": t_ref,
                "speedup": t_ref / t_ours,
                "max_abs_diff": err,
            }
        )
    )


if __name__ == "__main__":
    main()
