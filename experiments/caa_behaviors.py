"""CAA behaviour evaluation across layers and models (seed 003; Rimsky et al.'s A/B datasets).

Per model and behaviour:
- **Vector** (per layer): mean residual after the layer at the answer-letter token of
  generate-split questions answered with the behaviour-matching letter, minus the same with the
  other letter.
- **Logit score**: A/B test questions end with the answer's "(" (inside the assistant turn
  for a chat model); the vector × multiplier is added after the layer at that last token (CAA
  adds at the positions after the instruction, which is this one token here); score =
  logit(matching letter) − logit(other). delta = mean(m=+1) − mean(m=−1); Cohen's d (+1 vs
  −1, pooled SD, CI) per layer; best layer by delta, also as a fraction of depth.
- **Generation score**: the same questions without the "(", greedy answers of
  ``max_new_tokens`` tokens steered at the last prompt token and every generated token,
  parsed into matching / not matching / unparseable (:mod:`interp.behaviors`); p(matching)
  among parseable answers, delta = p(+1) − p(−1), and its Pearson correlation with the logit
  delta over the generation layers.

    python -m experiments.caa_behaviors --config configs/caa_behaviors.yaml
"""

from __future__ import annotations

from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

import interp  # noqa: E402
from interp.behaviors import MATCHING, NOT_MATCHING, UNPARSEABLE, ab_prompt, answer_letter, behaviour_and_letter_shift, letter_ids, oriented_logit_diff, score_generation, uses_chat_template  # noqa: E402
from interp.data import CAA_BEHAVIORS, load_caa  # noqa: E402
from interp.engine import linear_friendly_weights  # noqa: E402
from interp.function_vectors import SteeringBatch, mean_difference_vectors  # noqa: E402
from interp.runner import Run, RunConfig, file_slug, main  # noqa: E402
from interp.stats import cohens_d, correlate  # noqa: E402


@dataclass
class GenerationConfig:
    enabled: bool = True
    layer_stride: int = 2  # generation layers: every layer_stride-th layer
    n_layers: int | None = None  # instead: about this many, every ceil(depth / n_layers)-th layer (same count across models)
    multipliers: list[float] = field(default_factory=lambda: [-1.0, 0.0, 1.0])
    max_new_tokens: int = 8


@dataclass
class CAAConfig:
    run: RunConfig = field(default_factory=RunConfig)
    models: list[str] = field(default_factory=lambda: ["smollm2-135m-instruct", "gemma-3-270m"])
    behaviors: list[str] = field(default_factory=lambda: list(CAA_BEHAVIORS))
    n_generate: int = 100  # generate-split questions for the vector (each answered both ways)
    n_test: int = 50  # A/B test questions (the datasets have 50)
    multipliers: list[float] = field(default_factory=lambda: [-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
    layers: list[int] | None = None  # default: every layer
    chat: bool = True  # use the chat template where the tokenizer has one
    too_long: str = "error"  # a question longer than the model's context: "error" or "skip" (counted in the report)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    max_rows: int = 256
    # True: the vector is the equal-weight mean of the A-matching and the B-matching questions'
    # differences, so a letter imbalance in the generate split puts no "A vs B" direction into it
    balance_letters: bool = False


def _check(cfg: CAAConfig) -> None:
    if cfg.too_long not in ("error", "skip"):
        raise ValueError(f"too_long={cfg.too_long!r}; allowed: ['error', 'skip']")
    for m in (1.0, -1.0):
        if m not in cfg.multipliers:
            raise ValueError(f"multipliers={cfg.multipliers} must contain {m} (delta = mean(+1) − mean(−1))")
    if cfg.generation.n_layers is not None and cfg.generation.n_layers < 1:
        raise ValueError(f"generation.n_layers={cfg.generation.n_layers}; must be ≥ 1 (or null for layer_stride)")
    if cfg.generation.enabled and not {1.0, -1.0} <= set(cfg.generation.multipliers):
        raise ValueError(f"generation.multipliers={cfg.generation.multipliers} must contain +1 and −1")


def _fitting(model, items: list[dict], cfg: CAAConfig, where: str) -> tuple[list[dict], int]:
    """Items whose prompt (plus answer letter and generated tokens) fits the model's context."""
    room = model.cfg.n_ctx - 1 - (cfg.generation.max_new_tokens if cfg.generation.enabled else 0)
    keep = []
    for i, it in enumerate(items):
        length = len(model.to_tokens(ab_prompt(model, it["question"], cfg.chat), truncate=False)[0])
        if length <= room:
            keep.append(it)
        elif cfg.too_long == "error":
            raise ValueError(f"{where}[{i}] is {length} tokens; the model's context allows {room} here (n_ctx={model.cfg.n_ctx}). "
                             "Set too_long=skip to leave such questions out (the report counts them).")  # fmt: skip
    if not keep:
        raise ValueError(f"{where}: no question fits the model's context (n_ctx={model.cfg.n_ctx})")
    return keep, len(items) - len(keep)


def _split_items(model, behavior: str, split: str, cfg: CAAConfig) -> tuple[list[dict], int]:
    """The first n_generate / n_test questions of a split that fit the model's context (and how many did not)."""
    n = cfg.n_generate if split == "generate" else cfg.n_test
    return _fitting(model, load_caa(behavior, split)[:n], cfg, f"{behavior}/{split}")


def _behavior_study(model, behavior: str, cfg: CAAConfig) -> dict:
    gen_items, gen_skipped = _split_items(model, behavior, "generate", cfg)
    test_items, test_skipped = _split_items(model, behavior, "test_ab", cfg)
    n = model.cfg.n_layers
    layers = cfg.layers if cfg.layers is not None else list(range(n))
    tok = lambda prompts: interp.tokenize(model, prompts, padding_side="left")  # noqa: E731
    open_prompts = [ab_prompt(model, it["question"], cfg.chat) for it in gen_items]
    pos = [p + answer_letter(it["answer_matching_behavior"]) for p, it in zip(open_prompts, gen_items)]
    neg = [p + answer_letter(it["answer_not_matching_behavior"]) for p, it in zip(open_prompts, gen_items)]
    def mean_diff(idx: list[int]) -> torch.Tensor:
        total = torch.zeros(len(layers), model.cfg.d_model)
        for i in range(0, len(idx), 25):  # chunks keep the padded batch small
            chunk = idx[i : i + 25]
            total += mean_difference_vectors(model, tok([pos[j] for j in chunk]), tok([neg[j] for j in chunk]), layers) * len(chunk)
        return total / len(idx)

    if cfg.balance_letters:
        on_a = [j for j, it in enumerate(gen_items) if answer_letter(it["answer_matching_behavior"]) == "A"]
        on_b = sorted(set(range(len(gen_items))) - set(on_a))
        if not on_a or not on_b:
            raise ValueError(f"{behavior}: balance_letters=true needs generate questions matching on A and on B; got {len(on_a)} A, {len(on_b)} B")
        vectors = (mean_diff(on_a) + mean_diff(on_b)) / 2
    else:
        vectors = mean_diff(list(range(len(pos))))
    test_prompts = [ab_prompt(model, it["question"], cfg.chat) for it in test_items]
    cols = letter_ids(model, test_prompts[0])
    matching = [it["answer_matching_behavior"] for it in test_items]
    sb = SteeringBatch(model, tok(test_prompts), torch.zeros(len(test_items), dtype=torch.long), max_rows=cfg.max_rows)
    mult = torch.tensor(cfg.multipliers)
    ld = np.zeros((len(layers), len(mult), len(test_items)))
    nz = mult != 0  # m = 0 is the unsteered score, the same at every layer: computed once
    with linear_friendly_weights(model):
        if not nz.all():
            ld[:, ~nz.numpy()] = oriented_logit_diff(sb.logits(layers[0], torch.zeros(1, model.cfg.d_model), columns=cols), matching).numpy()
        for li, layer in enumerate(tqdm(layers, desc=f"{behavior}: logit", leave=False)):
            ld[li, nz.numpy()] = oriented_logit_diff(sb.logits(layer, mult[nz, None] * vectors[li], columns=cols), matching).numpy()
    out = {"layers": layers, "ld": ld, "n_generate": len(gen_items), "n_test": len(test_items),
           "skipped": gen_skipped + test_skipped}  # fmt: skip
    if cfg.generation.enabled:
        g = cfg.generation
        gen_layers = layers[:: gen_stride(g, len(layers))]
        free = [ab_prompt(model, it["question"], cfg.chat, answer_open=False) for it in test_items]
        gsb = SteeringBatch(model, tok(free), torch.zeros(len(test_items), dtype=torch.long), max_rows=cfg.max_rows)
        gm = torch.tensor(g.multipliers)
        labels = np.empty((len(gen_layers), len(gm), len(test_items)), dtype=object)
        texts = {}
        steered = gm != 0  # m = 0 adds a zero vector: the same unsteered answers at every layer, generated once
        with linear_friendly_weights(model):
            unsteered = gsb.generate(gen_layers[0], torch.zeros(1, model.cfg.d_model), g.max_new_tokens)[0] if not steered.all() else None
            for gi, layer in enumerate(tqdm(gen_layers, desc=f"{behavior}: generation", leave=False)):
                ids = torch.empty(len(gm), len(test_items), g.max_new_tokens, dtype=torch.long)
                if steered.any():
                    ids[steered] = gsb.generate(layer, gm[steered, None] * vectors[layers.index(layer)], g.max_new_tokens)
                if unsteered is not None:
                    ids[~steered] = unsteered
                for mi in range(len(gm)):
                    decoded = model.tokenizer.batch_decode(ids[mi], skip_special_tokens=True)
                    labels[gi, mi] = [score_generation(t, m) for t, m in zip(decoded, matching)]
                    texts[(layer, float(gm[mi]))] = decoded
        out.update({"gen_layers": gen_layers, "gen_labels": labels, "gen_examples": {f"L{k[0]} m={k[1]:+g}": v[:3] for k, v in texts.items()}})
    return out


def gen_stride(g: GenerationConfig, depth: int) -> int:
    """Every how many layers the generation score is computed."""
    return -(-depth // g.n_layers) if g.n_layers else g.layer_stride


def _p_matching(labels) -> float:
    parsed = [x for x in labels if x != UNPARSEABLE]
    return float(np.mean([x == MATCHING for x in parsed])) if parsed else float("nan")


def _summary(r: dict, cfg: CAAConfig, n_layers: int) -> dict:
    mult = list(cfg.multipliers)
    plus, minus, zero = mult.index(1.0), mult.index(-1.0), (mult.index(0.0) if 0.0 in mult else None)
    delta = r["ld"][:, plus].mean(-1) - r["ld"][:, minus].mean(-1)
    best = int(np.argmax(delta))
    d = cohens_d(r["ld"][best, plus], r["ld"][best, minus])
    out = {"delta": delta, "best_layer": r["layers"][best], "best_fraction": r["layers"][best] / max(n_layers - 1, 1), "d": d,
           "delta_best": float(delta[best]),
           "base_matching": float((r["ld"][best, zero] > 0).mean()) if zero is not None else float("nan")}  # fmt: skip
    if "gen_labels" in r:
        gm = list(cfg.generation.multipliers)
        gp, gn = gm.index(1.0), gm.index(-1.0)
        p = np.array([[_p_matching(r["gen_labels"][gi, mi]) for mi in range(len(gm))] for gi in range(len(r["gen_layers"]))])
        unparse = np.array([[np.mean([x == UNPARSEABLE for x in r["gen_labels"][gi, mi]]) for mi in range(len(gm))] for gi in range(len(r["gen_layers"]))])
        gen_delta = p[:, gp] - p[:, gn]
        idx = [r["layers"].index(layer) for layer in r["gen_layers"]]
        out.update({"gen_p": p, "gen_unparseable": unparse, "gen_delta": gen_delta, "gen_corr": correlate(delta[idx], gen_delta)})
    return out


def _dose_response(results: dict, summaries: dict, cfg: CAAConfig, matching: dict[str, list[str]]) -> tuple[list[str], list[list[str]]]:
    """Every multiplier at the best layer, and, when the sweep goes past ±1, the widest symmetric pair's
    effect at the layer where it is largest: ±1 alone can hide a vector that only acts when pushed harder.
    The shift at the widest multiplier is split into a behaviour part and a letter part (towards "A" on
    every question, `behaviour_and_letter_shift`): a vector can move answers by letter, not content."""
    mult = list(cfg.multipliers)
    wide = max((m for m in mult if m > 0 and -m in mult), default=1.0)
    head = ["behaviour", "layer"] + [f"m={m:+g}" for m in mult]
    if wide > 1:
        head.append(f"Cohen's d m=±{wide:g} (at its best layer)")
    if 0.0 in mult:
        head += [f"m={wide:+g} vs 0 at that layer: behaviour / letter shift", "largest |letter shift| over layers"]
    rows = []
    for b, s in summaries.items():
        r = results[b]
        li = r["layers"].index(s["best_layer"])
        row = [b, f"L{s['best_layer']}"] + [f"{r['ld'][li, mi].mean():+.2f} ({(r['ld'][li, mi] > 0).mean():.2f})" for mi in range(len(mult))]
        p, n = mult.index(wide), mult.index(-wide)
        if wide > 1:
            dl = r["ld"][:, p].mean(-1) - r["ld"][:, n].mean(-1)
            li = int(np.argmax(dl))
            row.append(f"{cohens_d(r['ld'][li, p], r['ld'][li, n])} (L{r['layers'][li]})")
        if 0.0 in mult:
            shift = r["ld"][:, p] - r["ld"][:, mult.index(0.0)]
            split = np.array([behaviour_and_letter_shift(shift[j], matching[b]) for j in range(len(r["layers"]))])
            lj = int(np.nanargmax(np.abs(split[:, 1]))) if np.isfinite(split[:, 1]).any() else li
            row += [f"{split[li, 0]:+.2f} / {split[li, 1]:+.2f}", f"{split[lj, 1]:+.2f} (L{r['layers'][lj]}; behaviour {split[lj, 0]:+.2f})"]
        rows.append(row)
    return head, rows


def _heatmap(table: dict, models: list[str], behaviors: list[str]):
    """Cohen's d at the best layer, next to the +1 − (−1) shift split into its behaviour and letter
    parts: a d that comes from a push towards one letter (plus a letter-unbalanced test set) shows
    up as a letter part with no behaviour part."""
    d = np.array([[table[m][b]["d"].d for m in models] for b in behaviors])
    beh = np.array([[table[m][b]["split"][0] for m in models] for b in behaviors])
    let = np.array([[table[m][b]["split"][1] for m in models] for b in behaviors])
    fig, axes = plt.subplots(1, 3, figsize=(3 * (2.0 + 1.6 * len(models)), 0.45 * len(behaviors) + 1.8))
    def abs_max(*arrays) -> float:
        finite = np.abs(np.concatenate([a.ravel() for a in arrays]))
        finite = finite[np.isfinite(finite)]
        # A floor on the colour range (d = 0.5, "medium"; 0.5 logits), or a run where nothing moves
        # paints d = 0.09 as dark as a real effect.
        return max(finite.max(initial=0.0), 0.5)

    shift_lim = abs_max(beh, let)  # one scale for both parts of the shift, so they compare by colour
    panels = [(d, "Cohen's d (m=+1 vs m=−1)", abs_max(d)), (beh, "behaviour part of the shift (logits)", shift_lim),
              (let, "letter part of the shift (logits, + = towards A)", shift_lim)]  # fmt: skip
    for k, (ax, (vals, title, lim)) in enumerate(zip(axes, panels)):
        im = ax.imshow(vals, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        for (i, j), v in np.ndenumerate(vals):
            # White text on the saturated end of the map, or it disappears into dark red / blue.
            colour = "white" if np.isfinite(v) and abs(v) > 0.6 * lim else "black"
            label = "undef." if np.isnan(v) else f"{v:+.2f}" + (f"\nL{table[models[j]][behaviors[i]]['best_layer']}" if k == 0 else "")
            ax.text(j, i, label, ha="center", va="center", fontsize=7, color=colour)
        ax.set_xticks(range(len(models)), models, fontsize=7)
        ax.set_yticks(range(len(behaviors)), behaviors if k == 0 else [], fontsize=8)
        ax.set_title(title, fontsize=8)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle("CAA at each behaviour's best layer: effect size, and the m=+1 vs m=−1 shift split by equal-weight letter groups", fontsize=9)
    fig.tight_layout()
    return fig


def _grid(n: int, w: float, h: float, cols: int = 4):
    """n panels in rows of at most `cols` (seven behaviours in one row are unreadable); spare axes hidden."""
    ncol = min(n, cols)
    nrow = -(-n // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(w * ncol, h * nrow), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _violins(name: str, results: dict, summaries: dict, cfg: CAAConfig):
    behaviors = list(results)
    fig, axes = _grid(len(behaviors), 3.0, 3.0)
    for ax, b in zip(axes, behaviors):
        r, s = results[b], summaries[b]
        li = r["layers"].index(s["best_layer"])
        data = [r["ld"][li, mi] for mi in range(len(cfg.multipliers))]
        ax.violinplot(data, showmedians=True)
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_xticks(range(1, len(cfg.multipliers) + 1), [f"{m:+g}" for m in cfg.multipliers], fontsize=7)
        ax.set_title(f"{b}\n(L{s['best_layer']})", fontsize=8)
        ax.set_xlabel("multiplier", fontsize=7)
    axes[0].set_ylabel("logit(matching) − logit(other)")
    fig.suptitle(f"{name}: per-question logit difference at each behaviour's best layer", fontsize=9)
    fig.tight_layout()
    return fig


def _layer_curves(name: str, results: dict, summaries: dict):
    behaviors = list(results)
    fig, axes = _grid(len(behaviors), 3.2, 2.8)
    for ax, b in zip(axes, behaviors):
        r, s = results[b], summaries[b]
        ax.plot(r["layers"], s["delta"], color="C0", marker="o", ms=2, label="logit delta")
        ax.set_xlabel("layer", fontsize=7)
        ax.tick_params(labelsize=7)
        title = b
        if "gen_delta" in s:
            ax2 = ax.twinx()
            ax2.plot(r["gen_layers"], s["gen_delta"], color="C3", marker="s", ms=2, label="generation delta")
            ax2.set_ylim(-1.05, 1.05)
            ax2.tick_params(labelsize=7, colors="C3")
            c = s["gen_corr"]
            title += f"\nr = {c.r:+.2f}" if c.defined else "\nr undefined"
        ax.set_title(title, fontsize=8)
        ax.axhline(0, color="0.5", lw=0.6)
    axes[0].set_ylabel("logit delta (m=+1 − m=−1)", color="C0", fontsize=8)
    with_gen = any("gen_delta" in s for s in summaries.values())
    fig.suptitle(f"{name}: logit delta (blue) vs generation delta p(matching | +1) − p(matching | −1) (red) by layer" if with_gen
                 else f"{name}: logit delta by layer (generation score off)", fontsize=9)  # fmt: skip
    fig.tight_layout()
    return fig


def run(cfg: CAAConfig, run: Run) -> None:
    _check(cfg)
    g = cfg.generation
    run.report.add_text(
        f"CAA on the A/B behaviour datasets {cfg.behaviors}: vector per layer from {cfg.n_generate} generate-split questions "
        f"(answer-letter token, matching minus not matching{'; A- and B-matching questions weighted equally' if cfg.balance_letters else ''}), applied at the last prompt token (the answer's '(') with "
        f"multipliers {cfg.multipliers} on {cfg.n_test} test questions. Logit score = logit(matching letter) − logit(other); "
        f"delta = mean(+1) − mean(−1); Cohen's d (+1 vs −1, pooled SD, 95% CI). Best layer = largest delta. "
        + (f"Generation: greedy {g.max_new_tokens} tokens, steered at the last prompt token and every generated token, "
           f"multipliers {g.multipliers}, "
           + (f"every ⌈depth / {g.n_layers}⌉-th layer; " if g.n_layers else f"every {g.layer_stride}-th layer; ")
           + "p(matching) among parseable answers. "
           if g.enabled else "Generation score off. ")
        + "Chat template applied where the tokenizer has one."
    )
    table: dict = {}
    for name in cfg.models:
        model = interp.load_model(name, device=run.device)
        n_layers, chat = model.cfg.n_layers, uses_chat_template(model) and cfg.chat
        results, summaries = {}, {}
        for b in cfg.behaviors:
            key = {k: v for k, v in vars(cfg).items() if k not in ("run", "models", "behaviors", "max_rows")}
            if not cfg.balance_letters:  # the default adds nothing to the key: results cached before the option existed stay valid
                key.pop("balance_letters")
            # the resolved stride, not n_layers, goes into the key: same layers, same cached result
            depth = len(cfg.layers) if cfg.layers is not None else n_layers
            key["generation"] = {**{k: v for k, v in vars(cfg.generation).items() if k != "n_layers"}, "layer_stride": gen_stride(cfg.generation, depth)}
            results[b] = run.cached(lambda: _behavior_study(model, b, cfg), step="caa.behavior", model=name, behavior=b, cfg=key)
            summaries[b] = _summary(results[b], cfg, n_layers)
        # the test questions' matching letters (the study's own selection; cached results do not store them)
        matching = {b: [it["answer_matching_behavior"] for it in _split_items(model, b, "test_ab", cfg)[0]] for b in cfg.behaviors}
        for b, s in summaries.items():
            li, mult = results[b]["layers"].index(s["best_layer"]), list(cfg.multipliers)
            s["split"] = behaviour_and_letter_shift(results[b]["ld"][li, mult.index(1.0)] - results[b]["ld"][li, mult.index(-1.0)], matching[b])
        del model
        table[name] = summaries
        rows = []
        for b, s in summaries.items():
            row = [b, f"{results[b]['n_generate']} / {results[b]['n_test']}" + (f" ({results[b]['skipped']} too long)" if results[b]["skipped"] else ""),
                   f"L{s['best_layer']} ({s['best_fraction']:.2f})", f"{s['delta_best']:+.2f}", str(s["d"]),
                   " / ".join("undef." if np.isnan(x) else f"{x:+.2f}" for x in s["split"]), f"{s['base_matching']:.2f}"]
            if "gen_p" in s:
                gi = results[b]["gen_layers"].index(min(results[b]["gen_layers"], key=lambda x: abs(x - s["best_layer"])))
                row += [" / ".join("undef." if np.isnan(v) else f"{v:.2f}" for v in s["gen_p"][gi]) + f" (L{results[b]['gen_layers'][gi]})",
                        f"{s['gen_unparseable'].mean():.2f}", str(s["gen_corr"])]  # fmt: skip
            rows.append(row)
        head = ["behaviour", "questions: vector / test", "best layer (fraction of depth)", "logit delta", "Cohen's d [95% CI]",
                "delta's behaviour / letter part", "matching at m=0"]  # fmt: skip
        if g.enabled:
            head += [f"p(matching) at m={g.multipliers} (nearest gen. layer)", "unparseable share", "r(logit delta, gen. delta) over layers"]
        run.report.add_text(f"## {name} ({'chat template' if chat else 'plain prompt'}, {n_layers} layers)")
        run.report.add_table(head, rows, caption=f"{name}: CAA per behaviour at its best layer")
        run.report.add_table(*_dose_response(results, summaries, cfg, matching),
                             caption=f"{name}: dose response at the best layer — mean logit difference (share of questions where the matching letter wins)")  # fmt: skip
        slug = file_slug(name)
        run.save_figure(_violins(name, results, summaries, cfg), f"violins_{slug}.png", f"{name}: per-question logit differences by multiplier")
        run.save_figure(_layer_curves(name, results, summaries), f"layers_{slug}.png",
                       f"{name}: logit vs generation delta by layer" if g.enabled else f"{name}: logit delta by layer")
        run.log_metrics(**{name: {b: {"best_layer": s["best_layer"], "best_fraction": s["best_fraction"], "delta": s["delta"],
                                      "d": vars(s["d"]), "gen_delta": s.get("gen_delta"),
                                      "gen_corr": vars(s["gen_corr"]) if "gen_corr" in s else None,
                                      "shift_pm1_behaviour_letter": s["split"],
                                      "examples": results[b].get("gen_examples")} for b, s in summaries.items()}})  # fmt: skip
    run.save_figure(_heatmap(table, cfg.models, cfg.behaviors), "effect_sizes.png", "Cohen's d per behaviour × model at the best layer, and the shift's behaviour and letter parts")


if __name__ == "__main__":
    main("caa_behaviors", CAAConfig, run)
