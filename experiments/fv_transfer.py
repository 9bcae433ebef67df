"""Cross-template function-vector transfer (seed 000).

For each model, task and prompt template (eight kinds, :mod:`interp.data.fv_templates`):
the function vector at every studied layer is the mean-difference vector (seed 000's
extraction): mean last-token residual after the layer over clean ICL prompts minus the same
over shuffled-label ICL prompts of that template. It is added, times α, at the last token of
zero-shot prompts; accuracy is the first answer token at top-1.

- α per (source template, layer) is chosen on validation queries of the source's own
  template; every number in the report is on other (test) queries.
- IID accuracy: source = target template. Transfer accuracy: every ordered pair of templates.
- Cosine between the two templates' vectors at the same layer.
- Diagnostics (:mod:`interp.stats`): Pearson and Spearman pooled, per task and per task x
  layer with the Simpson's-paradox check, dissociation cases (cos > cos_min, transfer <
  transfer_max), AUROC of cosine for transfer failure, PC1 variance of the template vectors
  per task x layer, and an IID gate (tasks below ``iid_threshold`` dropped) — gated and
  ungated side by side.

    python -m experiments.fv_transfer --config configs/fv_transfer.yaml
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
from interp.data import load_fv_task  # noqa: E402
from interp.data.fv_templates import TEMPLATE_KINDS, task_templates  # noqa: E402
from interp.engine import linear_friendly_weights  # noqa: E402
from interp.function_vectors import SteeringBatch, mean_difference_vectors, top1_accuracy  # noqa: E402
from interp.mediation import first_token_ids, icl_prompts  # noqa: E402
from interp.runner import Run, RunConfig, file_slug, main  # noqa: E402
from interp.stats import auroc, bootstrap_ci, dissociation_cases, grouped_correlation, iid_gate, pc1_variance  # noqa: E402


@dataclass
class TransferConfig:
    run: RunConfig = field(default_factory=RunConfig)
    models: list[str] = field(default_factory=lambda: ["smollm2-135m-instruct", "gemma-3-270m"])
    tasks: list[str] = field(default_factory=lambda: ["antonym", "capitalize", "sentiment", "country-capital", "english-french"])
    templates: list[str] = field(default_factory=lambda: list(TEMPLATE_KINDS))
    custom_templates: dict = field(default_factory=dict)  # {task: {kind: "... {x} ... {y}"}}: adds or overrides
    extraction: str = "shuffled"  # mean difference: clean ICL minus "shuffled" (shuffled-label ICL) or "zero_shot" (the same queries without demonstrations)
    n_icl: int = 20  # clean and baseline prompts per template for the mean difference
    n_shots: int = 5
    n_val: int = 20  # queries to choose α on (source template only)
    n_eval: int = 40  # test queries, shared by all templates (disjoint from val and from the ICL pool)
    alphas: list[float] = field(default_factory=lambda: [1.0, 2.0, 4.0, 8.0])
    layers: list[int] | None = None  # default: every layer_stride-th layer
    layer_stride: int = 1
    separator: str = "\n\n"
    cos_min: float = 0.8  # dissociation case: cos > cos_min and transfer < transfer_max
    transfer_max: float = 0.4
    iid_threshold: float = 0.5
    max_rows: int = 512


EXTRACTIONS = ("shuffled", "zero_shot")


def _templates(task: str, cfg: TransferConfig) -> dict[str, str]:
    custom = cfg.custom_templates.get(task, {})
    known = [k for k in cfg.templates if k not in custom]
    out = task_templates(task, known) if known else {}
    out.update(custom)
    if len(out) < 2:
        raise ValueError(f"task={task!r} has {len(out)} templates; transfer needs at least 2")
    return out


def _task_transfer(model, task: str, cfg: TransferConfig, seed: int) -> dict:
    pairs = load_fv_task(task)
    if len(pairs) < cfg.n_val + cfg.n_eval + cfg.n_shots + 1:
        raise ValueError(f"task {task!r} has {len(pairs)} pairs; n_val + n_eval + n_shots + 1 = {cfg.n_val + cfg.n_eval + cfg.n_shots + 1} needed")
    order = random.Random(seed).sample(range(len(pairs)), len(pairs))
    val_q = [pairs[i] for i in order[: cfg.n_val]]
    test_q = [pairs[i] for i in order[cfg.n_val : cfg.n_val + cfg.n_eval]]
    pool = [pairs[i] for i in order[cfg.n_val + cfg.n_eval :]]  # ICL demonstrations never contain a val/test query
    templates = _templates(task, cfg)
    kinds = list(templates)
    n = model.cfg.n_layers
    layers = cfg.layers if cfg.layers is not None else list(range(0, n, cfg.layer_stride))
    ans_val = first_token_ids(model, [" " + q["output"] for q in val_q])
    ans_test = first_token_ids(model, [" " + q["output"] for q in test_q])
    tok = lambda prompts: interp.tokenize(model, prompts, padding_side="left")  # noqa: E731
    vectors, val_sb, test_sb, zero_shot, icl = {}, {}, {}, {}, {}
    for kind in tqdm(kinds, desc=f"{task}: vectors", leave=False):
        tpl = templates[kind]
        clean = icl_prompts(pool, cfg.n_icl, cfg.n_shots, seed=seed + 1, template=tpl, separator=cfg.separator)
        if cfg.extraction == "shuffled":
            base = icl_prompts(pool, cfg.n_icl, cfg.n_shots, seed=seed + 1, template=tpl, separator=cfg.separator, shuffle_labels=True)
        else:
            base = icl_prompts(pool, cfg.n_icl, 0, template=tpl, queries=[{"input": q, "output": ""} for q in clean.queries])
        vectors[kind] = mean_difference_vectors(model, tok(clean.prompts), tok(base.prompts), layers)
        zv = icl_prompts(pool, len(val_q), 0, template=tpl, queries=val_q).prompts
        zt = icl_prompts(pool, len(test_q), 0, template=tpl, queries=test_q).prompts
        val_sb[kind] = SteeringBatch(model, tok(zv), ans_val, max_rows=cfg.max_rows)
        test_sb[kind] = SteeringBatch(model, tok(zt), ans_test, max_rows=cfg.max_rows)
        zero_shot[kind] = test_sb[kind].baseline_accuracy().numpy()
        shots = icl_prompts(pool, len(test_q), cfg.n_shots, seed=seed + 2, template=tpl, separator=cfg.separator, queries=test_q)
        icl[kind] = top1_accuracy(model, tok(shots.prompts), ans_test).numpy()
    alphas = torch.tensor(cfg.alphas)
    k, L = len(kinds), len(layers)
    alpha_star, val_acc = np.zeros((k, L)), np.zeros((k, L))
    transfer = np.zeros((L, k, k))  # [layer, source, target] mean test accuracy
    with linear_friendly_weights(model):
        for li, layer in enumerate(tqdm(layers, desc=f"{task}: layers", leave=False)):
            for si, src in enumerate(kinds):
                acc = val_sb[src].accuracy(layer, alphas[:, None] * vectors[src][li]).mean(1)
                best = int(acc.argmax())  # first maximum: the smallest α among ties
                alpha_star[si, li], val_acc[si, li] = cfg.alphas[best], float(acc[best])
            steer = torch.stack([float(alpha_star[si, li]) * vectors[src][li] for si, src in enumerate(kinds)])
            for ti, tgt in enumerate(kinds):
                transfer[li, :, ti] = test_sb[tgt].accuracy(layer, steer).mean(1).numpy()
    stack = torch.stack([vectors[kind] for kind in kinds], 1)  # [layer kind d_model]
    unit = stack / stack.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    cos = (unit @ unit.transpose(1, 2)).numpy()  # [layer source target]
    pc1 = np.array([pc1_variance(stack[li].numpy()) for li in range(L)])
    return {"layers": layers, "kinds": kinds, "templates": templates, "transfer": transfer, "cos": cos, "pc1": pc1,
            "alpha_star": alpha_star, "val_acc": val_acc, "zero_shot": zero_shot, "icl": icl}  # fmt: skip


def _best_layer(r: dict) -> int:
    """Index of the layer with the best mean validation accuracy over templates (chosen on
    validation queries, so the test numbers reported there are not selected on)."""
    return int(np.argmax(r["val_acc"].mean(0)))


def _pairs(results: dict) -> dict:
    """Off-diagonal (source != target) pairs of every task and layer, flattened."""
    cos, tr, task_g, tl_g = [], [], [], []
    for task, r in results.items():
        k = len(r["kinds"])
        off = ~np.eye(k, dtype=bool)
        for li, layer in enumerate(r["layers"]):
            cos += list(r["cos"][li][off])
            tr += list(r["transfer"][li][off])
            task_g += [task] * int(off.sum())
            tl_g += [f"{task}@L{layer}"] * int(off.sum())
    return {"cos": np.array(cos), "transfer": np.array(tr), "task": task_g, "task_layer": tl_g}


def _subset(p: dict, tasks: list[str]) -> dict:
    keep = np.array([t in tasks for t in p["task"]], dtype=bool)
    return {"cos": p["cos"][keep], "transfer": p["transfer"][keep], "task": [t for t, k in zip(p["task"], keep) if k],
            "task_layer": [t for t, k in zip(p["task_layer"], keep) if k]}  # fmt: skip


def _diagnostics(p: dict, cfg: TransferConfig) -> dict:
    if len(p["cos"]) == 0:
        return {}
    out = {}
    for method in ("pearson", "spearman"):
        by_task = grouped_correlation(p["cos"], p["transfer"], p["task"], method)
        by_tl = grouped_correlation(p["cos"], p["transfer"], p["task_layer"], method)
        sig = [c for c in by_tl.groups.values() if c.defined and c.p < 0.05]
        out[method] = {"pooled": by_task.pooled, "by_task": by_task.groups, "simpson_task": by_task.simpson,
                       "simpson_task_layer": by_tl.simpson, "n_task_layer": len(by_tl.groups),
                       "n_defined": sum(c.defined for c in by_tl.groups.values()),
                       "sig_pos": sum(c.r > 0 for c in sig), "sig_neg": sum(c.r < 0 for c in sig)}  # fmt: skip
    out["dissociation"] = dissociation_cases(p["cos"], p["transfer"], p["task"], cfg.cos_min, cfg.transfer_max)
    fail = p["transfer"] < cfg.transfer_max
    out["auroc"] = auroc(p["cos"], fail)
    out["failure_rate"] = float(fail.mean())
    high = p["cos"] > cfg.cos_min
    out["failure_given_high_cos"] = float(fail[high].mean()) if high.any() else float("nan")
    out["n_high_cos"] = int(high.sum())
    out["n_pairs"] = int(len(p["cos"]))
    return out


# --------------------------------------------------------------------------- figures


def _heatmaps(name: str, results: dict):
    tasks = list(results)
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.9 * len(tasks), 3.6), squeeze=False, gridspec_kw={"wspace": 0.55})
    for ax, task in zip(axes[0], tasks):
        r = results[task]
        li = _best_layer(r)
        m = r["transfer"][li]
        im = ax.imshow(m, vmin=0, vmax=1, cmap="viridis")
        for (s, t), v in np.ndenumerate(m):
            ax.text(t, s, f"{v:.2f}"[1:] if v < 1 else "1", ha="center", va="center", fontsize=5, color="w" if v < 0.6 else "k")
        ax.set_xticks(range(len(r["kinds"])), r["kinds"], rotation=90, fontsize=6)
        ax.set_yticks(range(len(r["kinds"])), r["kinds"], fontsize=6)
        ax.set_title(f"{task} (layer {r['layers'][li]})", fontsize=8)
        ax.set_xlabel("test template", fontsize=7)
    axes[0, 0].set_ylabel("vector from template", fontsize=7)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.7, label="steered accuracy")
    fig.suptitle(f"{name}: transfer accuracy at each task's best layer (diagonal = IID)", fontsize=9)
    return fig


def _scatter(name: str, p: dict, diag: dict):
    fig, ax = plt.subplots(figsize=(6.2, 4.4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, task in enumerate(dict.fromkeys(p["task"])):
        sel = np.array([t == task for t in p["task"]])
        x, y = p["cos"][sel], p["transfer"][sel]
        c = colours[i % len(colours)]
        r = diag["pearson"]["by_task"][task]
        ax.scatter(x, y, s=6, alpha=0.35, color=c, label=f"{task}: r = {r.r:+.2f}" if r.defined else f"{task}: r undefined")
        if np.ptp(x) > 0 and np.ptp(y) > 0:
            slope, icept = np.polyfit(x, y, 1)
            xs = np.linspace(x.min(), x.max(), 10)
            ax.plot(xs, slope * xs + icept, color=c, lw=1.5)
    pooled = diag["pearson"]["pooled"]
    if pooled.defined:
        slope, icept = np.polyfit(p["cos"], p["transfer"], 1)
        xs = np.linspace(p["cos"].min(), p["cos"].max(), 10)
        ax.plot(xs, slope * xs + icept, color="k", ls="--", lw=2, label=f"pooled: r = {pooled.r:+.2f}")
    ax.set_xlabel("cosine between the two templates' vectors (same layer)")
    ax.set_ylabel("transfer accuracy")
    flag = " — SIMPSON'S PARADOX" if diag["pearson"]["simpson_task"].flagged else ""
    ax.set_title(f"{name}: cosine vs transfer, all layers and template pairs{flag}", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    return fig


def _layer_curves(name: str, results: dict):
    tasks = list(results)
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.3 * len(tasks), 2.8), squeeze=False, sharey=True)
    for ax, task in zip(axes[0], tasks):
        r = results[task]
        k = len(r["kinds"])
        iid = np.array([np.diag(m) for m in r["transfer"]])  # [layer kind]
        off = np.array([m[~np.eye(k, dtype=bool)].mean() for m in r["transfer"]])
        ax.plot(r["layers"], iid.mean(1), marker="o", ms=2, label="IID (mean over templates)")
        ax.fill_between(r["layers"], iid.min(1), iid.max(1), alpha=0.15)
        ax.plot(r["layers"], off, marker="o", ms=2, label="transfer (mean over pairs)")
        ax.axhline(np.mean([v.mean() for v in r["zero_shot"].values()]), color="0.4", ls="--", lw=0.8, label="zero-shot, unsteered")
        ax.axhline(np.mean([v.mean() for v in r["icl"].values()]), color="0.4", ls=":", lw=0.8, label="ICL (n_shots)")
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("layer")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("accuracy")
    axes[0, 0].legend(fontsize=6)
    fig.suptitle(f"{name}: steered accuracy by layer (band: range over templates)", fontsize=9)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- report


def _num(x: float, digits: int = 2) -> str:
    return "undefined" if np.isnan(x) else f"{x:.{digits}f}"


def _fmt_corr(c) -> str:
    return "undefined" if not c.defined else f"{c.r:+.3f} (p={c.p:.2g}, n={c.n})"


def _correlation_rows(label: str, diag: dict) -> list[list[str]]:
    if not diag:
        return [[label, "no pairs", "", "", "", "", ""]]
    rows = []
    for method in ("pearson", "spearman"):
        d = diag[method]
        per = "; ".join(f"{t}: {_fmt_corr(c)}" for t, c in d["by_task"].items())
        rows.append([label, method, _fmt_corr(d["pooled"]), per, "FLAGGED" if d["simpson_task"].flagged else "no",
                     f"{d['sig_pos']} / {d['sig_neg']} of {d['n_defined']}",
                     "FLAGGED" if d["simpson_task_layer"].flagged else "no"])  # fmt: skip
    return rows


def run(cfg: TransferConfig, run: Run) -> None:
    if cfg.extraction not in EXTRACTIONS:
        raise ValueError(f"extraction={cfg.extraction!r}; allowed: {list(EXTRACTIONS)}")
    baseline = "their shuffled-label twins" if cfg.extraction == "shuffled" else "the same queries without demonstrations (zero-shot)"
    run.report.add_text(
        f"Cross-template transfer of mean-difference function vectors (seed 000). Tasks {cfg.tasks}; templates "
        f"{cfg.templates} (texts in `interp/data/fv_templates.py`, listed per task below). Vector per (task, template, "
        f"layer) = mean last-token residual after the layer over {cfg.n_icl} clean {cfg.n_shots}-shot ICL prompts minus "
        f"over {baseline}. Added × α at the last token of zero-shot prompts; α ∈ {cfg.alphas} chosen per "
        f"(source template, layer) on {cfg.n_val} validation queries of the source template; accuracies (first answer "
        f"token top-1) on {cfg.n_eval} other test queries shared by all templates. Best layer per task: highest mean "
        f"validation accuracy over templates. Dissociation: cos > {cfg.cos_min} and transfer < {cfg.transfer_max}; "
        f"transfer failure for the AUROC: transfer < {cfg.transfer_max}; IID gate: task IID ≥ {cfg.iid_threshold}."
    )
    all_metrics = {}
    for name in cfg.models:
        model = interp.load_model(name, device=run.device)
        results = {}
        for ti, task in enumerate(cfg.tasks):
            seed = cfg.run.seed + 1000 * ti
            keep = {k: v for k, v in vars(cfg).items() if k not in ("run", "models", "tasks", "cos_min", "transfer_max", "iid_threshold", "max_rows")}
            if cfg.extraction == "shuffled":
                keep.pop("extraction")  # the default: keeps the cache keys of runs from before the option existed
            results[task] = run.cached(lambda: _task_transfer(model, task, cfg, seed), step="fv_transfer.task", model=name, task=task,
                                       cfg=keep, templates=_templates(task, cfg), seed=seed)  # fmt: skip
        del model
        rows, iid = [], {}
        for task, r in results.items():
            li = _best_layer(r)
            m = r["transfer"][li]
            k = len(r["kinds"])
            iid[task] = float(np.diag(m).mean())
            ci = bootstrap_ci(np.diag(m), n_boot=1000)
            rows.append([task, f"L{r['layers'][li]}", f"{iid[task]:.2f} [{ci.ci_low:.2f}, {ci.ci_high:.2f}]",
                         f"{m[~np.eye(k, dtype=bool)].mean():.2f}",
                         f"{(m - np.array([r['zero_shot'][t].mean() for t in r['kinds']])[None])[~np.eye(k, dtype=bool)].mean():+.2f}",
                         f"{np.mean([v.mean() for v in r['zero_shot'].values()]):.2f}",
                         f"{np.mean([v.mean() for v in r['icl'].values()]):.2f}",
                         f"{r['cos'][li][~np.eye(k, dtype=bool)].mean():.2f}",
                         f"{np.nanmean(r['pc1']):.2f} ({np.nanmin(r['pc1']):.2f}–{np.nanmax(r['pc1']):.2f})",
                         ", ".join(f"{a:g}" for a in r["alpha_star"][:, li])])  # fmt: skip
        kept, dropped = iid_gate(iid, cfg.iid_threshold)
        pairs = _pairs(results)
        diag_all = _diagnostics(pairs, cfg)
        diag_gated = _diagnostics(_subset(pairs, kept), cfg)
        run.report.add_text(f"## {name}")
        run.report.add_table(["task", "best layer", "IID (95% CI over templates)", "transfer (mean off-diagonal)", "transfer − unsteered target", "zero-shot unsteered",
                              f"{cfg.n_shots}-shot ICL", "mean cos", "PC1 variance (mean, range over layers)", "α* per template"], rows,
                             caption=f"{name}: per task at its best layer (templates in order {r['kinds']}). "
                                     f"IID gate ≥ {cfg.iid_threshold}: kept {kept or 'none'}, dropped {dropped or 'none'}.")  # fmt: skip
        run.report.add_table(["tasks", "method", "pooled r", "per task r", "Simpson (task)", "task×layer: sig + / sig − of defined",
                              "Simpson (task×layer)"],
                             _correlation_rows(f"all ({len(results)})", diag_all) + _correlation_rows(f"gated ({len(kept)})", diag_gated),
                             caption=f"{name}: cosine vs transfer over all layers and ordered template pairs, ungated and IID-gated")  # fmt: skip
        d_rows = []
        for label, d in (("all", diag_all), ("gated", diag_gated)):
            if not d:
                d_rows.append([label, "no pairs", "", "", "", ""])
                continue
            per = ", ".join(f"{t}: {c}" for t, c in d["dissociation"].items() if t != "total")
            from_dropped = sum(c for t, c in d["dissociation"].items() if t in dropped)
            d_rows.append([label, f"{d['dissociation']['total']} ({per})", f"{from_dropped}", _num(d["auroc"], 3),
                           f"{d['failure_rate']:.2f} / {_num(d['failure_given_high_cos'])} (n={d['n_high_cos']})", f"{d['n_pairs']}"])  # fmt: skip
        run.report.add_table(["tasks", "dissociation cases (per task)", "of them from gated-out tasks", "AUROC cos → failure",
                              "failure rate: all / given high cos", "pairs"], d_rows,
                             caption=f"{name}: dissociation cases (cos > {cfg.cos_min}, transfer < {cfg.transfer_max}) and cosine as a failure predictor")  # fmt: skip
        slug = file_slug(name)
        run.save_figure(_heatmaps(name, results), f"transfer_{slug}.png", f"{name}: transfer matrices at each task's best layer")
        if diag_all:
            run.save_figure(_scatter(name, pairs, diag_all), f"cos_vs_transfer_{slug}.png",
                            f"{name}: cosine vs transfer coloured by task, per-task and pooled least-squares lines")  # fmt: skip
        run.save_figure(_layer_curves(name, results), f"layers_{slug}.png", f"{name}: IID and transfer accuracy by layer")
        all_metrics[name] = {
            "iid": iid, "kept": kept, "dropped": dropped,
            "per_task": {t: {"best_layer": r["layers"][_best_layer(r)], "transfer_best_layer": r["transfer"][_best_layer(r)],
                             "kinds": r["kinds"], "zero_shot": {k: float(v.mean()) for k, v in r["zero_shot"].items()},
                             "icl": {k: float(v.mean()) for k, v in r["icl"].items()}, "pc1": r["pc1"]} for t, r in results.items()},
            "diagnostics": {"all": _jsonable_diag(diag_all), "gated": _jsonable_diag(diag_gated)},
        }  # fmt: skip
        run.log_metrics(**all_metrics)
    tpl_rows = [[task, kind, f"`{t!r}`"] for task in cfg.tasks for kind, t in _templates(task, cfg).items()]
    run.report.add_table(["task", "kind", "template"], tpl_rows, caption="Templates (the model predicts the first token of ' y' after the stem)")


def _jsonable_diag(d: dict) -> dict:
    if not d:
        return {}
    out = {k: v for k, v in d.items() if k not in ("pearson", "spearman")}
    for method in ("pearson", "spearman"):
        m = d[method]
        out[method] = {"pooled": vars(m["pooled"]), "by_task": {t: vars(c) for t, c in m["by_task"].items()},
                       "simpson_task": str(m["simpson_task"]), "simpson_task_layer": str(m["simpson_task_layer"]),
                       "sig_pos": m["sig_pos"], "sig_neg": m["sig_neg"], "n_defined": m["n_defined"]}  # fmt: skip
    return out


if __name__ == "__main__":
    main("fv_transfer", TransferConfig, run)
