"""Many steering vectors over one prompt set: ``SteeringBatch`` vs one hooked forward per vector.

    .venv/bin/python -m benchmarks.steering [--model smollm2-135m-instruct] [--vectors 32] [--prompts 40] [--threads 2]

The workload of the FV sweeps and the transfer study: ``--vectors`` vectors (random, scaled
to the residual's typical norm) added at the last token after each of ``--layers`` layers of
zero-shot prompts from the antonym task. (1) ``SteeringBatch.predictions`` (one forward of the
prompts, then only the last column from the steered layer on, many vectors per forward);
(2) the plain route: ``add_vector`` hook + a full forward of the padded batch per (vector,
layer), which is what ``steered_accuracy`` does. The script checks that both give the same
top-1 tokens, prints both times and their ratio, and a final line of JSON.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import interp
from interp.data import load_fv_task
from interp.engine import final_logits, linear_friendly_weights
from interp.hooks import act_name, add_vector
from interp.mediation import first_token_ids
from interp.steering import SteeringBatch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--vectors", type=int, default=32)
    ap.add_argument("--prompts", type=int, default=40)
    ap.add_argument("--layers", type=int, nargs="*", default=None, help="default: 4 layers spread over the depth")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = interp.load_model(args.model, device=args.device)
    n = model.cfg.n_layers
    layers = args.layers or [n // 8, n // 3, (2 * n) // 3, n - 2]
    pairs = load_fv_task("antonym")[: args.prompts]
    prompts = [f"Question: What is the opposite of {p['input']}?\nAnswer:" for p in pairs]
    answers = first_token_ids(model, [" " + p["output"] for p in pairs])
    batch = interp.tokenize(model, prompts, padding_side="left")
    g = torch.Generator().manual_seed(0)
    vectors = torch.randn(args.vectors, model.cfg.d_model, generator=g)
    rows = torch.arange(len(batch))
    with linear_friendly_weights(model):
        t0 = time.perf_counter()
        sb = SteeringBatch(model, batch, answers)
        ours = {layer: sb.predictions(layer, vectors * 4) for layer in layers}
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        plain = {}
        with torch.no_grad():
            for layer in layers:
                preds = []
                for v in vectors:
                    with add_vector(model, act_name("resid_post", layer), v * 4, positions=batch.last_index):
                        resid = model(batch.tokens, attention_mask=batch.attention_mask, stop_at_layer=n)
                    preds.append(final_logits(model, resid[rows, batch.last_index]).argmax(-1))
                plain[layer] = torch.stack(preds)
        t_plain = time.perf_counter() - t0
    agree = float(torch.cat([(ours[layer] == plain[layer]).float().flatten() for layer in layers]).mean())
    print(
        f"model {args.model}: {args.vectors} vectors x {len(layers)} layers {layers} x {len(batch)} prompts "
        f"(width {batch.tokens.shape[1]} tokens), {torch.get_num_threads()} threads, device {model.cfg.device}"
    )
    print(f"SteeringBatch          {t_ours:8.2f} s")
    print(f"hooked full forwards   {t_plain:8.2f} s")
    print(f"speed-up               {t_plain / t_ours:8.1f}x   (top-1 agreement {agree:.4f})")
    print(
        json.dumps(
            {
                "model": args.model,
                "vectors": args.vectors,
                "layers": layers,
                "prompts": len(batch),
                "ours_s": round(t_ours, 3),
                "plain_s": round(t_plain, 3),
                "ratio": round(t_plain / t_ours, 2),
                "agreement": agree,
            }
        )
    )


if __name__ == "__main__":
    main()
