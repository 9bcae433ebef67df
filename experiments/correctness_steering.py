"""Correctness-direction steering sweep (seed 004).

Per model: pick the arithmetic kind the model solves closest to half the time (on
calibration problems, or the configured kind), solve ``n_problems`` others greedily, split them
train/test (stratified by correctness). Direction at early / middle / late layers = mean
residual at the last prompt token over correctly solved train problems minus over wrongly
solved ones. On the test problems, add α·direction after the layer at the last prompt token
and every generated token, decode greedily and parse the answer.

Report: accuracy table layer × α with counts; an exact McNemar test of each α against α = 0
(same layer, same problems) and the smallest change the test set could detect; a flag when the
decoded outputs are byte-identical across every α of a layer ("suspicious invariance").

    python -m experiments.correctness_steering --config configs/correctness_steering.yaml
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

import interp  # noqa: E402
from interp.data.arithmetic import KINDS, parse_answer, problems, prompt  # noqa: E402
from interp.engine import linear_friendly_weights  # noqa: E402
from interp.function_vectors import SteeringBatch, task_vectors  # noqa: E402
from interp.runner import Run, RunConfig, file_slug, main  # noqa: E402
from interp.stats import bootstrap_ci, identical_outputs, mcnemar_exact, mcnemar_min_detectable  # noqa: E402


@dataclass
class CorrectnessConfig:
    run: RunConfig = field(default_factory=RunConfig)
    models: list[str] = field(default_factory=lambda: ["smollm2-135m-instruct", "gemma-3-270m"])
    task: str = "auto"  # an arithmetic kind, or "auto": the kind whose calibration accuracy is closest to 0.5
    kinds: list[str] = field(default_factory=lambda: list(KINDS))  # candidates for "auto"
    n_calibrate: int = 60
    n_problems: int = 400
    test_fraction: float = 0.25
    layer_fractions: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.875])
    alphas: list[float] = field(default_factory=lambda: [-3.0, -2.5, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    max_new_tokens: int = 4
    control_alpha: float = 50.0  # positive control: at this |α| the outputs must change, else the intervention is not reaching the model
    max_rows: int = 256


def _check(cfg: CorrectnessConfig) -> None:
    if 0.0 not in cfg.alphas:
        raise ValueError(f"alphas={cfg.alphas} must contain 0.0 (the tests compare every α against it)")
    if cfg.task != "auto" and cfg.task not in KINDS:
        raise ValueError(f"task={cfg.task!r}; allowed: 'auto' or one of {list(KINDS)}")
    if not 0 < cfg.test_fraction < 1:
        raise ValueError(f"test_fraction={cfg.test_fraction}; must lie in (0, 1)")


def _steering_batch(model, prompts: list[str], max_rows: int) -> SteeringBatch:
    batch = interp.tokenize(model, prompts, padding_side="left")
    return SteeringBatch(model, batch, torch.zeros(len(prompts), dtype=torch.long), max_rows=max_rows)


def _solve(model, sb: SteeringBatch, answers: list[int], max_new_tokens: int, layer: int = 0, vectors=None):
    """Greedy answers (decoded strings) and correctness, per vector (row) and problem."""
    vectors = torch.zeros(1, model.cfg.d_model) if vectors is None else vectors
    ids = sb.generate(layer, vectors, max_new_tokens)
    texts = [model.tokenizer.batch_decode(row, skip_special_tokens=True) for row in ids]
    correct = np.array([[parse_answer(t) == a for t, a in zip(row, answers)] for row in texts])
    return texts, correct


def _study(model, cfg: CorrectnessConfig, seed: int) -> dict:
    calib = {}
    kinds = cfg.kinds if cfg.task == "auto" else [cfg.task]
    need = cfg.n_calibrate + cfg.n_problems
    pools = {k: problems(k, need, seed) for k in kinds}
    short = {k: len(p) for k, p in pools.items() if len(p) < need}  # add1 / mul1 have fewer than 100 distinct problems
    if len(short) == len(kinds):
        raise ValueError(f"no kind in {kinds} has n_calibrate + n_problems = {need} distinct problems ({short}); lower n_problems or add a kind")
    kinds = [k for k in kinds if k not in short]
    with linear_friendly_weights(model):
        if cfg.task == "auto":
            for k in tqdm(kinds, desc="calibration", leave=False):
                cal = pools[k][: cfg.n_calibrate]
                sb = _steering_batch(model, [prompt(p, k) for p in cal], cfg.max_rows)
                calib[k] = float(_solve(model, sb, [p.answer for p in cal], cfg.max_new_tokens)[1].mean())
            kind = min(calib, key=lambda k: abs(calib[k] - 0.5))
        else:
            kind = cfg.task
        probs = pools[kind][cfg.n_calibrate :]
        prompts, answers = [prompt(p, kind) for p in probs], [p.answer for p in probs]
        _, base = _solve(model, _steering_batch(model, prompts, cfg.max_rows), answers, cfg.max_new_tokens)
        base = base[0]
        # stratified split: the same test share of correct and of wrong problems
        rng = random.Random(seed + 1)
        test = []
        for flag in (True, False):
            idx = [i for i in range(len(probs)) if base[i] == flag]
            rng.shuffle(idx)
            test += idx[: round(cfg.test_fraction * len(idx))]
        test = sorted(test)
        test_set = set(test)
        train = [i for i in range(len(probs)) if i not in test_set]
        good, bad = [i for i in train if base[i]], [i for i in train if not base[i]]
        if not good or not bad:
            raise ValueError(f"kind {kind!r}: the train split has {len(good)} correct and {len(bad)} wrong problems; a direction needs both")
        n = model.cfg.n_layers
        layers = sorted({min(n - 1, round(f * n)) for f in cfg.layer_fractions})
        tok = lambda idx: interp.tokenize(model, [prompts[i] for i in idx], padding_side="left")  # noqa: E731
        direction = task_vectors(model, tok(good), layers) - task_vectors(model, tok(bad), layers)  # [layer d_model]
        alphas = torch.tensor([*cfg.alphas, cfg.control_alpha, -cfg.control_alpha])
        texts, correct, control = {}, {}, {}
        test_sb = _steering_batch(model, [prompts[i] for i in test], cfg.max_rows)  # shared by every layer
        for li, layer in enumerate(tqdm(layers, desc=f"{kind}: layers", leave=False)):
            t, c = _solve(model, test_sb, [answers[i] for i in test], cfg.max_new_tokens, layer, alphas[:, None] * direction[li])
            texts[layer], correct[layer] = t[: len(cfg.alphas)], c[: len(cfg.alphas)]
            control[layer] = [sum(x != y for x, y in zip(t[j], t[cfg.alphas.index(0.0)])) for j in (len(cfg.alphas), len(cfg.alphas) + 1)]
    return {"kind": kind, "calibration": calib, "too_few_problems": short, "layers": layers, "n_layers": n, "n_train": (len(good), len(bad)), "n_test": len(test),
            "test_base": base[test], "base_accuracy": float(base.mean()), "norms": direction.norm(dim=-1).numpy(),
            "texts": texts, "correct": correct, "control": control}  # fmt: skip


def _figure(name: str, r: dict, cfg: CorrectnessConfig):
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for layer in r["layers"]:
        est = [bootstrap_ci(row.astype(float), n_boot=1000) for row in r["correct"][layer]]
        (line,) = ax.plot(cfg.alphas, [e.mean for e in est], marker="o", ms=3, label=f"layer {layer}")
        ax.fill_between(cfg.alphas, [e.ci_low for e in est], [e.ci_high for e in est], color=line.get_color(), alpha=0.12)
    ax.set_xlabel("α (multiple of the correct − wrong direction)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{name}: {r['kind']} accuracy under steering (95% bootstrap CI, n={r['n_test']})", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def run(cfg: CorrectnessConfig, run: Run) -> None:
    _check(cfg)
    run.report.add_text(
        f"Correctness-direction steering (seed 004). Task: {cfg.task} (candidates {cfg.kinds}; 'auto' picks the kind whose accuracy on "
        f"{cfg.n_calibrate} calibration problems is closest to 0.5). {cfg.n_problems} other problems, two-shot prompts, greedy "
        f"{cfg.max_new_tokens} tokens, answer = the integer the continuation starts with. Train/test split {1 - cfg.test_fraction:.0%}/"
        f"{cfg.test_fraction:.0%} stratified by correctness. Direction = mean(correct) − mean(wrong) residual at the last prompt token, "
        f"at layers ≈ {cfg.layer_fractions} of depth; α ∈ {cfg.alphas}, added at the last prompt token and every generated token. "
        f"Cells: accuracy (correct/n); * = exact McNemar p < 0.05 against α = 0 of the same layer. Positive control: α = ±{cfg.control_alpha:g} "
        f"must change the outputs, else an invariance would say nothing about the model."
    )
    for mi, name in enumerate(cfg.models):
        model = interp.load_model(name, device=run.device)
        seed = cfg.run.seed + 1000 * mi
        key = {k: v for k, v in vars(cfg).items() if k not in ("run", "models", "max_rows")}
        r = run.cached(lambda: _study(model, cfg, seed), step="correctness.study", model=name, cfg=key, seed=seed)
        del model
        zero = cfg.alphas.index(0.0)
        rows, tests, flags = [], {}, {}
        for ai, a in enumerate(cfg.alphas):
            row = [f"{a:+g}"]
            for layer in r["layers"]:
                c = r["correct"][layer]
                m = mcnemar_exact(c[zero], c[ai])
                tests[(layer, a)] = m
                row.append(f"{c[ai].mean():.1%} ({int(c[ai].sum())}/{c.shape[1]})" + ("*" if m.p < 0.05 else ""))
            rows.append(row)
        for layer in r["layers"]:
            flags[layer] = identical_outputs({a: r["texts"][layer][ai] for ai, a in enumerate(cfg.alphas)})
        run.report.add_text(f"## {name}")
        calib = ", ".join(f"{k}: {v:.2f}" for k, v in r["calibration"].items()) or "not run (task fixed)"
        if r["too_few_problems"]:
            calib += "; not candidates, too few distinct problems: " + ", ".join(f"{k} ({n})" for k, n in r["too_few_problems"].items())
        run.report.add_text(
            f"Task **{r['kind']}** (calibration accuracy {calib}); accuracy on all {cfg.n_problems} problems "
            f"{r['base_accuracy']:.1%}; train {r['n_train'][0]} correct + {r['n_train'][1]} wrong, test {r['n_test']}. "
            f"Direction norms: " + ", ".join(f"L{layer}: {v:.2f}" for layer, v in zip(r["layers"], r["norms"])) + ". "
            f"Smallest accuracy change an exact McNemar test on {r['n_test']} problems could detect: "
            f"{mcnemar_min_detectable(r['n_test']):.1%} (all discordant pairs in one direction)."
        )
        run.report.add_table(["α", *[f"layer {layer} ({layer / r['n_layers']:.0%} of depth)" for layer in r["layers"]]], rows,
                             caption=f"{name}: test accuracy by layer and α")  # fmt: skip
        run.report.add_table(["layer", "outputs identical across all α", f"control: outputs changed at α = +{cfg.control_alpha:g} / −{cfg.control_alpha:g}",
                              "min McNemar p (α ≠ 0)", "gained / lost at that α"],
                             [[f"L{layer}", "YES — suspicious invariance" if flags[layer] else "no",
                               f"{r['control'][layer][0]} / {r['control'][layer][1]} of {r['n_test']}",
                               *(lambda m: [f"{m.p:.3g}", f"{m.gained} / {m.lost}"])(min((tests[(layer, a)] for a in cfg.alphas if a != 0.0), key=lambda m: m.p))]
                              for layer in r["layers"]],
                             caption=f"{name}: invariance flag and the strongest α effect per layer")  # fmt: skip
        run.save_figure(_figure(name, r, cfg), f"accuracy_{file_slug(name)}.png", f"{name}: accuracy vs α per layer")
        run.log_metrics(**{name: {"kind": r["kind"], "calibration": r["calibration"], "layers": r["layers"], "base_accuracy": r["base_accuracy"],
                                  "accuracy": {str(layer): r["correct"][layer].mean(1) for layer in r["layers"]},
                                  "identical_across_alpha": {str(k): v for k, v in flags.items()},
                                  "control_changed": {str(k): v for k, v in r["control"].items()},
                                  "mcnemar_p": {f"L{k[0]} a={k[1]:+g}": m.p for k, m in tests.items()}}})  # fmt: skip


if __name__ == "__main__":
    main("correctness_steering", CorrectnessConfig, run)
