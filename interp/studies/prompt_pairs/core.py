"""Prompt-pairs steering environment scored with SAE features and generated words (seed 002
§3.2, Figure 4.1), one dataset on one model.

- **Activations**: residual after ``layer`` at the last token of both prompts of every pair
  (the target word, one token).
- **Adapters** (:mod:`interp.steering`) fitted on ``n`` pairs for every ``n`` in ``n_train``,
  ``draws`` random subsets per ``n``; ``n_test`` pairs held out.
- **SAE metrics** (an SAE Lens SAE, :mod:`interp.sae`): target features = active on (a share
  ``target_share`` of) the positive examples of the fitting pool; test features = a random
  ``n_test_features`` of those never active on any pool example. Read from the SAE code of
  adapter(negative activation) of each held-out pair; baseline: the negative activation itself;
  reference: the positive one.
- **Dose**: each cell records the adapter's push ‖adapter(a) − a‖ / ‖a‖ on the held-out
  negative activations (the relative dose of :mod:`interp.steering.doses`; trained adapters
  choose their own). The **dose sweep** takes each adapter fitted on the largest n (first
  draw) and scales its edit, ``a + s · (adapter(a) − a)`` for s in ``dose_scales`` (for CAA
  exactly λ = s · λ₀), recording push, SAE and word metrics and the share of continuations that
  changed from the unsteered ones — from a dose that changes nothing to one that rewrites most
  continuations.
- **Output metric** (:mod:`interp.semantic`): the held-out prompt without its target word is
  continued greedily with the adapter after ``layer`` at the last prompt token and every
  generated token; cosine of the first word, and of the first content word, with the positive
  target; the share of content words that are one of the dataset's positive / negative targets.

    >>> r = dataset_study(model, sae, layer, "sentiment", PromptPairsSettings(), WordEmbedder())
    >>> per_pair(r.cells, "caa", 1024, "cosine", draws=3)      # per held-out pair, mean over draws
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import torch

import interp
from interp.data.prompt_pairs import DATASETS, check_single_token, split_pairs
from interp.hooks import act_name, capture
from interp.progress import progress as tqdm
from interp.sae import features_active_on_all, features_inactive_on_all
from interp.semantic import first_content_word, first_word, word_cosines
from interp.steering import ADAPTERS, SteeringBatch, make_adapter
from interp.steering.controls import random_unit_directions
from interp.steering.doses import relative_push

METRICS = ("target", "test", "cosine", "cosine_content")
METRIC_TITLES = {
    "target": "target SAE features (mean activation)",
    "test": "test SAE features (mean activation)",
    "cosine": "cosine(first generated word, target)",
    "cosine_content": "cosine(first content word, target)",
}


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
class PromptPairsSettings:
    datasets: list[str] = field(default_factory=lambda: list(DATASETS))
    layer_fraction: float = 0.5
    n_test: int = 100
    n_train: list[int] = field(default_factory=lambda: [4, 8, 16, 32, 64, 128, 256, 512, 1024])
    draws: int = 3  # random fitting subsets per n (different pairs, different adapter seeds)
    adapters: dict = field(default_factory=lambda: {"caa": {}, "ace": {}, "loreft": {}, "lorest": {}})
    n_test_features: int = 100
    target_share: float = 1.0  # target features: active on this share of the pool's positive examples (seed 002: all)
    max_new_tokens: int = 5
    dose_scales: list[float] = field(default_factory=lambda: [0.1, 0.3, 1.0, 3.0, 10.0])  # [] switches the sweep off
    n_controls: int = 2  # random directions at every adapter's push, every dose scale (0: none)
    sae: SAEConfig = field(default_factory=SAEConfig)
    sae_pretrained: dict = field(default_factory=dict)  # model name -> SAE Lens "release:sae_id" or folder


@dataclass
class PromptPairsResult:
    base: dict  # metric -> per held-out pair, no adapter (plus words, texts, hit_pos, hit_neg)
    reference: dict  # SAE metrics of the positive activations
    cells: dict  # (adapter, n, draw) -> metrics as in ``base``
    n_target: int
    n_test_features: int
    n_silent: int  # features never active on the pool
    n_target_at: dict[float, int]  # features active on at least this share of positives
    target_also_on_negatives: float  # how often the target features fire on negatives (NaN without target features)
    n_pool: int
    n_test: int
    examples: list[tuple[str, str, str]]  # (prompt, positive target, unsteered continuation)
    doses: dict = field(default_factory=dict)  # (adapter, scale) -> metrics as in ``cells`` plus "changed"
    # (adapter, scale, control) -> the same metrics with the edit replaced by a random direction
    # of the same norm, pair by pair (the push without the adapter's direction)
    controls: dict = field(default_factory=dict)


def check_settings(s: PromptPairsSettings) -> None:
    if not s.datasets:
        raise ValueError("datasets must be non-empty")
    for d in s.datasets:
        if d not in DATASETS:
            raise ValueError(f"datasets contains {d!r}; allowed: {sorted(DATASETS)}")
    for a in s.adapters:
        if a not in ADAPTERS:
            raise ValueError(f"adapters contains {a!r}; allowed: {list(ADAPTERS)}")
    if not 0 <= s.layer_fraction < 1:
        raise ValueError(f"layer_fraction={s.layer_fraction}; must be in [0, 1)")
    if not s.n_train or min(s.n_train) < 1:
        raise ValueError(f"n_train={s.n_train}; need sizes ≥ 1")
    if any(x <= 0 for x in s.dose_scales):
        raise ValueError(f"dose_scales={s.dose_scales}; scales of the adapter's edit must be positive")
    if s.draws < 1 or s.n_test < 1:
        raise ValueError(f"draws={s.draws}, n_test={s.n_test}; both must be ≥ 1")


def study_layer(n_layers: int, fraction: float) -> int:
    """The block at ``fraction`` of depth (rounded, at most the last)."""
    return min(int(round(fraction * n_layers)), n_layers - 1)


@torch.no_grad()
def target_token_residuals(model, texts: list[str], layer: int, target_ids: list[int], batch: int = 64) -> torch.Tensor:
    """Residual after ``layer`` at each text's last token [n d_model], checking that token is the target."""
    out = []
    for i in range(0, len(texts), batch):
        b = interp.tokenize(model, texts[i : i + batch])
        last = b.tokens[torch.arange(len(b)), b.last_index]
        want = torch.tensor(target_ids[i : i + batch])
        if not torch.equal(last, want):
            j = int((last != want).nonzero()[0])
            raise ValueError(
                f"prompt {texts[i + j]!r} does not end in its target token (got "
                f"{model.tokenizer.decode([int(last[j])])!r})"
            )
        with capture(model, [act_name("resid_post", layer)], positions=b.last_index.to(model.cfg.device)) as acts:
            interp.run_batch(model, b, stop_at_layer=layer + 1)
        out.append(next(iter(acts.values())).reshape(len(b), -1).float().cpu())
    return torch.cat(out)


@torch.no_grad()
def sae_codes(sae, acts: torch.Tensor) -> torch.Tensor:
    """The SAE's feature activations [n d_sae] of residuals [n d_model] (float, CPU)."""
    return sae.encode(acts.to(sae.W_enc.device)).float().cpu()


class _Scorer:
    """SAE metrics of steered activations and word metrics of steered continuations for one dataset."""

    def __init__(self, model, sae, name: str, test, pool_codes: tuple, s: PromptPairsSettings, seed: int, embed):
        self.model, self.sae, self.embed = model, sae, embed
        pos_codes, neg_codes = pool_codes
        self.target = features_active_on_all(pos_codes, min_share=s.target_share)
        self.test_f = features_inactive_on_all(pos_codes, neg_codes, n=s.n_test_features, seed=seed)
        self.pos_words = [p.positive for p in test]
        targets = DATASETS[name]["targets"]
        self.pos_set, self.neg_set = {targets[i][0] for i in range(8)}, {targets[i][1] for i in range(8)}

    def sae_metrics(self, steered: torch.Tensor) -> dict:
        codes = sae_codes(self.sae, steered)
        t = codes[:, self.target].mean(1).numpy() if len(self.target) else np.full(len(codes), np.nan)
        return {"target": t, "test": codes[:, self.test_f].mean(1).numpy()}

    def output_metrics(self, tokens: torch.Tensor) -> dict:
        texts = [self.model.tokenizer.decode(t) for t in tokens]
        gen, content = [first_word(t) for t in texts], [first_content_word(t) for t in texts]
        return {
            "cosine": word_cosines(self.embed, gen, self.pos_words),
            "cosine_content": word_cosines(self.embed, content, self.pos_words),
            "words": gen,
            "texts": texts,
            "hit_pos": np.mean([g in self.pos_set for g in content]),
            "hit_neg": np.mean([g in self.neg_set for g in content]),
        }


def _residuals(model, layer: int, test: list, pool: list) -> dict:
    """Residuals at the target token, per (split, side)."""
    ids = check_single_token(model.tokenizer, [w for p in test + pool for w in (p.positive, p.negative)])
    return {
        (split, side): target_token_residuals(
            model,
            [p.pos_text if side == "positive" else p.neg_text for p in pairs],
            layer,
            [ids[getattr(p, side)] for p in pairs],
        )
        for split, pairs in (("test", test), ("pool", pool))
        for side in ("positive", "negative")
    }


def _score(scorer, sb, held_out, layer: int, s: PromptPairsSettings, edit) -> dict:
    """SAE and word metrics of one edit on the held-out negatives, with its push per pair."""
    with torch.no_grad():
        steered = edit(held_out)
    return {
        **scorer.sae_metrics(steered),
        **scorer.output_metrics(sb.generate(layer, edit, s.max_new_tokens)[0]),
        "push": relative_push(held_out, steered).numpy(),
    }


def _fit_cells(name: str, s: PromptPairsSettings, acts: dict, seed: int, score) -> tuple[dict, dict]:
    """Every adapter × fitting size × draw, scored; and the first draw at the largest size per adapter."""
    rng = np.random.default_rng(seed)
    cells, fitted = {}, {}
    grid = [(a, n, d) for a in s.adapters for n in s.n_train for d in range(s.draws)]
    n_pool = len(acts["pool", "negative"])
    for a, n, d in tqdm(grid, desc=f"{name}: adapters", leave=False):
        idx = torch.as_tensor(rng.permutation(n_pool)[:n])
        acfg = ADAPTERS[a][1](**s.adapters[a])
        if hasattr(acfg, "seed"):
            acfg.seed = seed + d
        adapter = make_adapter(a, acfg).fit(acts["pool", "negative"][idx], acts["pool", "positive"][idx])
        cells[a, n, d] = score(adapter)
        if n == max(s.n_train) and d == 0:
            fitted[a] = adapter
    return cells, fitted


def _dose_cells(name: str, s: PromptPairsSettings, cells: dict, fitted: dict, base: dict, score) -> dict:
    """Each fitted adapter's edit scaled by every dose scale (s = 1: the cell itself)."""
    doses = {}
    for a, scale in tqdm([(a, x) for a in fitted for x in s.dose_scales], desc=f"{name}: doses", leave=False):
        doses[a, scale] = dict(cells[a, max(s.n_train), 0]) if scale == 1.0 else score(_scaled(fitted[a], scale))
        doses[a, scale]["changed"] = float(np.mean([t != b for t, b in zip(doses[a, scale]["texts"], base["texts"])]))
    return doses


def dataset_study(model, sae, layer: int, name: str, s: PromptPairsSettings, embed, seed: int = 0) -> PromptPairsResult:
    """Every adapter × fitting size × draw on one dataset (see module doc)."""
    test, pool = split_pairs(name, s.n_test, max(s.n_train), seed=seed)
    acts = _residuals(model, layer, test, pool)
    pos_codes, neg_codes = sae_codes(sae, acts["pool", "positive"]), sae_codes(sae, acts["pool", "negative"])
    scorer = _Scorer(model, sae, name, test, (pos_codes, neg_codes), s, seed, embed)
    sb = SteeringBatch(model, interp.tokenize(model, [p.prefix for p in test], padding_side="left"))
    base = {
        **scorer.sae_metrics(acts["test", "negative"]),
        **scorer.output_metrics(sb.generate(layer, lambda a: a, s.max_new_tokens)[0]),
    }
    score = functools.partial(_score, scorer, sb, acts["test", "negative"], layer, s)
    cells, fitted = _fit_cells(name, s, acts, seed, score)
    doses = _dose_cells(name, s, cells, fitted, base, score)
    controls = _control_cells(name, s, fitted, base, score, model.cfg.d_model, seed)
    active_share = (pos_codes > 0).float().mean(0)
    target = scorer.target
    return PromptPairsResult(
        base=base,
        reference=scorer.sae_metrics(acts["test", "positive"]),
        cells=cells,
        n_target=len(target),
        n_test_features=len(scorer.test_f),
        n_silent=len(features_inactive_on_all(pos_codes, neg_codes)),
        n_target_at={sh: int((active_share >= sh - 1e-9).sum()) for sh in (1.0, 0.95, 0.9, 0.8, 0.5)},
        target_also_on_negatives=float((neg_codes[:, target] > 0).float().mean()) if len(target) else float("nan"),
        n_pool=len(pool),
        n_test=len(test),
        examples=[(p.prefix, p.positive, base["texts"][i]) for i, p in enumerate(test[:5])],
        doses=doses,
        controls=controls,
    )


def _control_cells(name: str, s: PromptPairsSettings, fitted: dict, base: dict, score, d_model: int, seed: int):
    """Every dose cell again with the adapter's edit replaced by a random direction of the same
    norm on each pair (one fixed direction per control, shared by every adapter and scale)."""
    if not s.n_controls or not fitted:
        return {}
    dirs = random_unit_directions(d_model, s.n_controls, seed=seed + 7)  # [control d_model]
    out = {}
    grid = [(a, x, c) for a in fitted for x in s.dose_scales for c in range(s.n_controls)]
    for a, x, c in tqdm(grid, desc=f"{name}: controls", leave=False):
        out[a, x, c] = score(_random_push(_scaled(fitted[a], x), dirs[c]))
        out[a, x, c]["changed"] = float(np.mean([t != b for t, b in zip(out[a, x, c]["texts"], base["texts"])]))
    return out


def _random_push(edit, direction: torch.Tensor):
    """``a + ‖edit(a) − a‖ · direction`` row by row: the edit's push, in a random direction."""

    def push(a: torch.Tensor) -> torch.Tensor:
        size = (edit(a) - a).norm(dim=-1, keepdim=True)
        return a + size * direction.to(a)

    return push


def _scaled(adapter, scale: float):
    """The adapter's edit scaled by ``scale``: ``a + scale · (adapter(a) − a)``."""
    return lambda a: a + scale * (adapter(a) - a)


def mean_ci(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and normal 95% CI over the defined values (NaN: undefined, left out)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    half = 1.96 * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
    return float(v.mean()), float(v.mean() - half), float(v.mean() + half)


def per_pair(cells: dict, adapter: str, n: int, metric: str, draws: int) -> np.ndarray:
    """A metric per held-out pair, averaged over the fitting draws (NaN where undefined in all)."""
    stack = np.stack([np.asarray(cells[adapter, n, d][metric], dtype=float) for d in range(draws)])
    ok = np.isfinite(stack)
    count = ok.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.where(ok, stack, 0.0).sum(0) / count, np.nan)
