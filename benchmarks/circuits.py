"""Edge attribution speed of ``interp.circuits`` against auto-circuit 1.0.1 and against its
floor (one forward + backward of the same batch), in the same run, with the ratios printed.

    .venv/bin/python -m benchmarks.circuits [--steps 5] [--threads 2] [--reference DIR] [--no-smollm2]

Workload (issue 29's shared one): a random GPT-2-small-shaped HookedTransformer (12 layers, 12
heads, d_model 768, d_mlp 3072, vocabulary 50257, LayerNorm, separate Q/K/V inputs), 8 pairs of
15 tokens that differ from position 10, logit-difference metric.

Second workload (issue 29's floor): EAP over every edge of SmolLM2-135M-Instruct on 8 IOI pairs
(4 per name order) against one forward + backward of the same batch — with the weights' gradients
as a training step computes them, and with activation gradients only (what EAP itself needs).

The reference: auto-circuit 1.0.1 with ``--no-deps`` plus its runtime extras, installed into
``DIR`` (default ``benchmarks/.auto-circuit``, git-ignored) by ``--install``, never into the
project's environment; it runs in a child process (:mod:`benchmarks.autocircuit_ref`). Without it
the script says so and times ours alone. Scores are compared edge by edge under the two
libraries' conventions: EAP ours = −theirs (their loss is the negated metric); EAP-IG over
activations ours × (steps + 1) = −theirs (they sum the steps + 1 mask points, we average them).
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
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp.circuits import Graph, eap, eap_ig
from interp.data.tokenize import TokenBatch
from interp.patching import logit_diff_metric

DEFAULT_TARGET = Path(__file__).resolve().parent / ".auto-circuit"
EXTRAS = ["ordered-set", "plotly", "blobfile", "attrs", "vscode-tqdm", "word2word"]


def workload(seed: int = 0, ids: bool = False):
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
    correct, wrong = torch.randint(0, 50257, (8,), generator=g), torch.randint(0, 50257, (8,), generator=g)
    return model, mk(clean), mk(corr), ((correct, wrong) if ids else logit_diff_metric(correct, wrong))


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


def smollm2(threads: int) -> dict:
    """EAP over every edge of SmolLM2 on 8 IOI pairs against one forward + backward."""
    import interp
    from interp.circuits import _frozen_params
    from interp.data.ioi import ioi_pairs
    from interp.hooks import hooks

    model = interp.load_model("smollm2-135m-instruct", device="cpu")
    pairs = ioi_pairs(4, 0, orders=("ABBA", "BABA"))
    clean, corr = interp.tokenize(model, pairs.clean), interp.tokenize(model, pairs.corrupted)
    metric = logit_diff_metric(interp.single_token_ids(model, pairs.io), interp.single_token_ids(model, pairs.s))
    g = Graph.of(model)

    def fb() -> None:
        metric(interp.last_logits(model, clean)).mean().backward()
        model.zero_grad(set_to_none=True)

    def fb_acts() -> None:
        with _frozen_params(model):
            emb = {}

            def leaf(a, hook):
                emb["x"] = a.detach().requires_grad_(True)
                return emb["x"]

            with hooks(model, [("blocks.0.hook_resid_pre", leaf)]):
                metric(interp.last_logits(model, clean)).mean().backward()

    fb()  # warm-up
    t_fb, _ = timed(fb, repeats=3)
    t_fba, _ = timed(fb_acts, repeats=3)
    t_eap, _ = timed(lambda: eap(model, g, clean, corr, metric), repeats=2)
    print(f"[benchmark] SmolLM2 ({g.n_edges} edges, {len(clean)} IOI pairs of {clean.tokens.shape[1]} tokens):")
    print(f"[benchmark]   one forward + backward (weight gradients too): {t_fb:.2f} s")
    print(f"[benchmark]   one forward + backward (activation gradients only): {t_fba:.2f} s")
    print(f"[benchmark]   interp EAP over every edge: {t_eap:.2f} s = {t_eap / t_fb:.2f}x forward+backward")
    return {"edges": g.n_edges, "forward_backward_s": t_fb, "forward_backward_activations_s": t_fba, "eap_s": t_eap}


def install(target: Path) -> None:
    """auto-circuit without its pinned dependencies, and the extras it imports, into ``target``."""
    pip = [sys.executable, "-m", "pip", "install", "-q", "--target"]
    subprocess.run(pip + [str(target / "pkg"), "--no-deps", "auto-circuit==1.0.1"], check=True)
    subprocess.run(pip + [str(target / "deps"), *EXTRAS], check=True)


def reference(target: Path, steps: int, threads: int) -> dict | None:
    """auto-circuit's scores and times from a child process, or None (with the reason printed)."""
    if not (target / "pkg" / "auto_circuit").is_dir():
        print(f"[benchmark] auto-circuit not found under {target}; run with --install to compare (skipped)")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ref.pt"
        paths = [str(target / "pkg"), str(target / "deps")]
        cmd = [sys.executable, "-m", "benchmarks.autocircuit_ref", str(out), "--target", *paths]
        subprocess.run(cmd + ["--steps", str(steps), "--threads", str(threads)], check=True)
        return torch.load(out)


def their_name(name: str) -> str:
    """auto-circuit's edge name (``A3.2->A5.1.Q``) in our spelling (``L3H2 -> L5H1.q``)."""
    src, dest = name.split("->")

    def node(n: str, receiver: bool) -> str:
        if n in ("Resid Start", "Resid End"):
            return "embed" if n == "Resid Start" else "logits"
        if n.startswith("MLP "):
            return f"L{n[4:]}.mlp" + ("_in" if receiver else "")
        parts = n[1:].split(".")
        if len(parts) == 2:
            return f"L{parts[0]}H{parts[1]}"
        return f"L{parts[0]}H{parts[1]}.q" if parts[2] == "Q" else f"L{parts[0]}.{parts[2]}{parts[1]}"

    return f"{node(src, False)} -> {node(dest, True)}"


def agreement(ours, theirs: dict, scale: float) -> dict:
    """Max |ours − scale·theirs| relative to the largest |score|, over the same edges."""
    mine = dict(zip(ours.names(), ours.scores.tolist()))
    mapped = {their_name(k): scale * v for k, v in theirs.items()}
    if set(mapped) != set(mine):
        raise SystemExit(f"edge sets differ: {len(mine)} ours vs {len(mapped)} theirs")
    a, b = torch.tensor([mine[k] for k in mapped]), torch.tensor(list(mapped.values()))
    return {
        "edges": len(a),
        "max_rel_diff": float((a - b).abs().max() / b.abs().max()),
        "pearson": float(torch.corrcoef(torch.stack([a, b]))[0, 1]),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reference", type=Path, default=DEFAULT_TARGET)
    p.add_argument("--install", action="store_true", help="install auto-circuit into --reference first")
    p.add_argument("--no-smollm2", action="store_true", help="skip the SmolLM2 forward+backward comparison")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.install:
        install(args.reference)
    model, clean, corr, metric = workload()
    g = Graph.of(model)
    print(f"[benchmark] graph: {len(g.senders)} senders, {len(g.receivers)} receivers, {g.n_edges} edges")
    t_fb, _ = timed(lambda: forward_backward(model, clean, metric), repeats=3)
    t_eap, s_eap = timed(lambda: eap(model, g, clean, corr, metric))
    t_ig, s_ig = timed(lambda: eap_ig(model, g, clean, corr, metric, steps=args.steps))
    t_act, s_act = timed(lambda: eap_ig(model, g, clean, corr, metric, steps=args.steps, interpolate="activations"))
    print(f"[benchmark] one forward + backward: {t_fb:.2f} s")
    print(f"[benchmark] interp EAP: {t_eap:.2f} s ({t_eap / t_fb:.1f}x forward+backward)")
    print(f"[benchmark] interp EAP-IG inputs ({args.steps} steps): {t_ig:.2f} s")
    print(f"[benchmark] interp EAP-IG activations ({args.steps} steps): {t_act:.2f} s")
    out = {"edges": g.n_edges, "forward_backward_s": t_fb, "eap_s": t_eap, "eap_ig_inputs_s": t_ig}
    out |= {"eap_ig_activations_s": t_act, "steps": args.steps, "eap_over_forward_backward": t_eap / t_fb}
    ref = reference(args.reference, args.steps, args.threads)
    if ref is not None:
        out["auto_circuit"] = {"edges": ref["n_edges"], "eap_s": ref["eap_s"], "eap_ig_s": ref["eap_ig_s"]}
        out["eap_speedup"] = ref["eap_s"] / t_eap
        out["eap_ig_speedup"] = ref["eap_ig_s"] / t_act
        out["eap_agreement"] = agreement(s_eap, ref["eap"], -1.0)
        out["eap_ig_agreement"] = agreement(s_act, ref["eap_ig"], -1.0 / (args.steps + 1))
        print(f"[benchmark] auto-circuit EAP: {ref['eap_s']:.2f} s (interp x{out['eap_speedup']:.1f} faster)")
        print(f"[benchmark] auto-circuit EAP-IG: {ref['eap_ig_s']:.2f} s (interp x{out['eap_ig_speedup']:.1f} faster)")
        print(f"[benchmark] agreement EAP {out['eap_agreement']}, EAP-IG {out['eap_ig_agreement']}")
    if not args.no_smollm2:
        out["smollm2"] = smollm2(args.threads)
        out["smollm2"]["eap_over_forward_backward"] = out["smollm2"]["eap_s"] / out["smollm2"]["forward_backward_s"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
