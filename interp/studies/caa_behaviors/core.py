"""CAA on Rimsky et al.'s A/B behaviour datasets across layers (seed 003).

Per behaviour: the vector per layer is CAA's (:class:`interp.steering.CAA`) on the residual
after the layer at the answer-letter token of generate-split questions, answered with the
behaviour-matching letter (positive) and the other letter (negative); ``balance_letters``
weighs A-matching and B-matching questions equally. Logit score on test questions: the vector ×
multiplier added after the layer at the last prompt token (the answer's "("), score =
logit(matching letter) − logit(other). Generation score: greedy answers of the open prompt,
steered at the last prompt token and every generated token, parsed into matching / not /
unparseable (:mod:`interp.behaviors`).

    >>> sweep = behavior_sweep(model, "refusal", CAABehaviorSettings())
    >>> s = summarize(sweep, CAABehaviorSettings(), model.cfg.n_layers)   # best layer, paired d_z ...
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import torch

import interp
from interp.behaviors import (
    MATCHING,
    UNPARSEABLE,
    ab_prompt,
    answer_letter,
    behaviour_and_letter_ci,
    behaviour_and_letter_shift,
    letter_ids,
    oriented_logit_diff,
    score_generation,
    uses_chat_template,
)
from interp.data import CAA_BEHAVIORS, load_caa
from interp.hooks import add_vector
from interp.patching import last_logits
from interp.progress import progress as tqdm
from interp.selection import Selection, SelectionConfig, Split, select
from interp.selection import split_items as split_indices
from interp.stats import Correlation, EffectSize, Estimate, bootstrap_ci, correlate, paired_d
from interp.steering import CAA, SteeringBatch, last_token_residuals
from interp.steering.controls import ControlComparison, compare_to_controls, random_directions
from interp.steering.doses import mean_residual_norm


@dataclass
class GenerationConfig:
    enabled: bool = True
    layer_stride: int = 2  # generation layers: every layer_stride-th layer
    n_layers: int | None = (
        None  # instead: about this many, every ceil(depth / n_layers)-th layer (same count across models)
    )
    multipliers: list[float] = field(default_factory=lambda: [-1.0, 0.0, 1.0])
    max_new_tokens: int = 8


@dataclass
class CAABehaviorSettings:
    behaviors: list[str] = field(default_factory=lambda: list(CAA_BEHAVIORS))
    n_generate: int = 100  # generate-split questions for the vector (each answered both ways)
    n_test: int = 50  # A/B test questions (the datasets have 50)
    multipliers: list[float] = field(default_factory=lambda: [-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
    layers: list[int] | None = None  # default: every layer_stride-th layer from 0
    layer_stride: int = 1
    chat: bool = True  # use the chat template where the tokenizer has one
    too_long: str = "error"  # a question longer than the model's context: "error" or "skip" (counted in the report)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    max_rows: int = 256
    # True: the vector is the equal-weight mean of the A-matching and the B-matching questions'
    # differences, so a letter imbalance in the generate split puts no "A vs B" direction into it
    balance_letters: bool = False
    # the test questions are split: the best layer is chosen on the selection part (stratified by
    # the matching letter) and every figure at that layer is reported on the other part
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    # generate-split questions after the vector's (never used for it) that choose the layers; all
    # n_test A/B test questions then report. 0: split the test questions instead (``selection``)
    n_select: int = 30
    n_controls: int = 3  # random directions of the vector's norm at every dose (0: none)
    all_positions: bool = True  # also add the vector at every position after the instruction


@dataclass
class BehaviorSweep:
    """One behaviour on one model: per-question logit scores for every layer and multiplier,
    and (generation on) parsed answers at the generation layers."""

    layers: list[int]
    ld: np.ndarray  # [layer multiplier question] logit(matching) − logit(other)
    n_generate: int
    n_test: int
    skipped: int  # questions left out as too long for the context
    matching: list[str]  # the test questions' matching answers, e.g. "(A)"
    gen_layers: list[int] | None = None
    gen_labels: np.ndarray | None = None  # [gen layer gen multiplier question] MATCHING / NOT_MATCHING / UNPARSEABLE
    gen_examples: dict[str, list[str]] | None = None
    n_layers: int | None = None  # the model's depth
    chat: bool | None = None  # whether the prompts went through the model's chat template
    resid_norm: np.ndarray | None = (
        None  # [layer] mean residual norm after the layer at the steered (last prompt) token
    )
    vector_norm: np.ndarray | None = None  # [layer] ‖CAA vector‖
    multipliers: list[float] | None = None  # the second axis of ld
    n_select: int = 0  # the first n_select questions (axis 2 of ld) choose layers; the rest are the test questions
    vectors: np.ndarray | None = None  # [layer d_model] the CAA vectors

    def relative_doses(self, layer: int) -> np.ndarray | None:
        """Per multiplier m: the push m·‖v‖ in units of the mean residual norm at ``layer`` (signed)."""
        if self.resid_norm is None or self.vector_norm is None:
            return None
        li = self.layers.index(layer)
        return np.asarray(self.multipliers) * self.vector_norm[li] / self.resid_norm[li]


@dataclass
class BehaviorSummary:
    """Everything at the best layer is on the *test* questions; the layer is chosen on the
    selection questions (``selection``: its optimism gap and the best-on-test layer, labelled)."""

    delta: np.ndarray  # per layer: mean(m=+1) − mean(m=−1), all test questions (for the layer curve)
    best_layer: int  # chosen on the selection questions
    best_fraction: float
    d: EffectSize  # +1 vs −1 at the best layer, test questions
    delta_best: float  # test questions
    base_matching: float  # share of test questions where the matching letter wins at m = 0 (NaN without m = 0)
    split: tuple[float, float]  # the +1 − (−1) shift at the best layer: behaviour part, letter part (test questions)
    selection: Selection | None = None
    test_idx: np.ndarray | None = None  # the test questions (indices into the sweep's questions)
    gen_p: np.ndarray | None = None  # [gen layer gen multiplier] p(matching) among parseable answers
    gen_unparseable: np.ndarray | None = None
    gen_delta: np.ndarray | None = None
    gen_corr: Correlation | None = None  # logit delta vs generation delta over the generation layers


def check_settings(s: CAABehaviorSettings) -> None:
    if s.layer_stride < 1:
        raise ValueError(f"layer_stride={s.layer_stride}; must be ≥ 1")
    if s.too_long not in ("error", "skip"):
        raise ValueError(f"too_long={s.too_long!r}; allowed: ['error', 'skip']")
    for m in (1.0, -1.0):
        if m not in s.multipliers:
            raise ValueError(f"multipliers={s.multipliers} must contain {m} (delta = mean(+1) − mean(−1))")
    if s.generation.n_layers is not None and s.generation.n_layers < 1:
        raise ValueError(f"generation.n_layers={s.generation.n_layers}; must be ≥ 1 (or null for layer_stride)")
    if s.generation.enabled and not {1.0, -1.0} <= set(s.generation.multipliers):
        raise ValueError(f"generation.multipliers={s.generation.multipliers} must contain +1 and −1")


def gen_stride(g: GenerationConfig, depth: int) -> int:
    """Every how many layers the generation score is computed."""
    return -(-depth // g.n_layers) if g.n_layers else g.layer_stride


def fitting_items(model, items: list[dict], s: CAABehaviorSettings, where: str) -> tuple[list[dict], int]:
    """Items whose prompt (plus answer letter and generated tokens) fits the model's context,
    and how many did not."""
    room = model.cfg.n_ctx - 1 - (s.generation.max_new_tokens if s.generation.enabled else 0)
    keep = []
    for i, it in enumerate(items):
        length = len(model.to_tokens(ab_prompt(model, it["question"], s.chat), truncate=False)[0])
        if length <= room:
            keep.append(it)
        elif s.too_long == "error":
            raise ValueError(
                f"{where}[{i}] is {length} tokens; the model's context allows {room} here (n_ctx={model.cfg.n_ctx}). "
                "Set too_long=skip to leave such questions out (the report counts them)."
            )
    if not keep:
        raise ValueError(f"{where}: no question fits the model's context (n_ctx={model.cfg.n_ctx})")
    return keep, len(items) - len(keep)


def split_items(model, behavior: str, split: str, s: CAABehaviorSettings) -> tuple[list[dict], int]:
    """The first n_generate / n_test questions of a split that fit the model's context (and how many did not)."""
    n = s.n_generate if split == "generate" else s.n_test
    return fitting_items(model, load_caa(behavior, split)[:n], s, f"{behavior}/{split}")


def selection_items(model, behavior: str, s: CAABehaviorSettings) -> tuple[list[dict], int]:
    """The ``n_select`` generate-split questions after the vector's ``n_generate`` (disjoint from
    them and from the test questions) that fit the context, and how many did not."""
    if s.n_select == 0:
        return [], 0
    items = load_caa(behavior, "generate")[s.n_generate : s.n_generate + s.n_select]
    if len(items) < s.n_select:
        raise ValueError(
            f"n_select={s.n_select}: {behavior}'s generate split has only {len(items)} questions after the "
            f"vector's n_generate={s.n_generate}"
        )
    return fitting_items(model, items, s, f"{behavior}/generate (selection)")


def caa_vectors(
    model, items: list[dict], layers: list[int], chat: bool, balance_letters: bool, chunk: int = 25
) -> torch.Tensor:
    """CAA vector per layer [layer d_model] from generate-split questions (see module doc)."""
    tok = lambda prompts: interp.tokenize(model, prompts, padding_side="left")  # noqa: E731
    open_prompts = [ab_prompt(model, it["question"], chat) for it in items]
    acts = {}
    for side, label in (("pos", "answer_matching_behavior"), ("neg", "answer_not_matching_behavior")):
        texts = [p + answer_letter(it[label]) for p, it in zip(open_prompts, items)]
        # chunks keep the padded batch small
        acts[side] = torch.cat(
            [last_token_residuals(model, tok(texts[i : i + chunk]), layers) for i in range(0, len(texts), chunk)]
        )
    letters = [answer_letter(it["answer_matching_behavior"]) for it in items] if balance_letters else None
    if letters is not None and len(set(letters)) < 2:
        raise ValueError(
            f"balance_letters=true needs generate questions matching on A and on B; got only {sorted(set(letters))}"
        )
    return torch.stack(
        [CAA().fit(acts["neg"][:, li], acts["pos"][:, li], groups=letters).vector for li in range(len(layers))]
    )


def behavior_sweep(model, behavior: str, s: CAABehaviorSettings) -> BehaviorSweep:
    """Vectors, logit scores at every layer × multiplier and (generation on) steered answers."""
    gen_items, gen_skipped = split_items(model, behavior, "generate", s)
    test_items, test_skipped = split_items(model, behavior, "test_ab", s)
    sel_items, sel_skipped = selection_items(model, behavior, s)
    n_test = len(test_items)
    test_items = sel_items + test_items  # the selection questions first: ld's question axis
    layers = s.layers if s.layers is not None else list(range(0, model.cfg.n_layers, s.layer_stride))
    vectors = caa_vectors(model, gen_items, layers, s.chat, s.balance_letters)
    tok = lambda prompts: interp.tokenize(model, prompts, padding_side="left")  # noqa: E731
    test_prompts = [ab_prompt(model, it["question"], s.chat) for it in test_items]
    cols = letter_ids(model, test_prompts[0])
    matching = [it["answer_matching_behavior"] for it in test_items]
    mult = torch.tensor(s.multipliers)
    ld = np.zeros((len(layers), len(mult), len(test_items)))
    nz = mult != 0  # m = 0 is the unsteered score, the same at every layer: computed once
    with SteeringBatch(model, tok(test_prompts), max_rows=s.max_rows) as sb:
        if not nz.all():
            ld[:, ~nz.numpy()] = oriented_logit_diff(
                sb.logits(layers[0], torch.zeros(1, model.cfg.d_model), columns=cols), matching
            ).numpy()
        for li, layer in enumerate(tqdm(layers, desc=f"{behavior}: logit", leave=False)):
            ld[li, nz.numpy()] = oriented_logit_diff(
                sb.logits(layer, mult[nz, None] * vectors[li], columns=cols), matching
            ).numpy()
    out = BehaviorSweep(
        layers,
        ld,
        len(gen_items),
        n_test,
        gen_skipped + test_skipped + sel_skipped,
        matching,
        n_layers=model.cfg.n_layers,
        chat=uses_chat_template(model) and s.chat,
        resid_norm=mean_residual_norm(model, tok(test_prompts), layers).numpy(),
        vector_norm=vectors.norm(dim=-1).numpy(),
        multipliers=list(s.multipliers),
        n_select=len(sel_items),
        vectors=vectors.float().numpy(),
    )
    if s.generation.enabled:
        free = [ab_prompt(model, it["question"], s.chat, answer_open=False) for it in test_items[len(sel_items) :]]
        with SteeringBatch(model, tok(free), max_rows=s.max_rows) as gsb:
            _generation_scores(model, gsb, layers, vectors, matching[len(sel_items) :], s.generation, out)
    return out


def _generation_scores(
    model, gsb: SteeringBatch, layers, vectors, matching, g: GenerationConfig, out: BehaviorSweep
) -> None:
    gen_layers = layers[:: gen_stride(g, len(layers))]
    gm = torch.tensor(g.multipliers)
    labels = np.empty((len(gen_layers), len(gm), len(matching)), dtype=object)
    texts = {}
    steered = gm != 0  # m = 0 adds a zero vector: the same unsteered answers at every layer, generated once
    unsteered = (
        gsb.generate(gen_layers[0], torch.zeros(1, model.cfg.d_model), g.max_new_tokens)[0]
        if not steered.all()
        else None
    )
    for gi, layer in enumerate(tqdm(gen_layers, desc="generation", leave=False)):
        ids = torch.empty(len(gm), len(matching), g.max_new_tokens, dtype=torch.long)
        if steered.any():
            ids[steered] = gsb.generate(layer, gm[steered, None] * vectors[layers.index(layer)], g.max_new_tokens)
        if unsteered is not None:
            ids[~steered] = unsteered
        for mi in range(len(gm)):
            decoded = model.tokenizer.batch_decode(ids[mi], skip_special_tokens=True)
            labels[gi, mi] = [score_generation(t, m) for t, m in zip(decoded, matching)]
            texts[(layer, float(gm[mi]))] = decoded
    out.gen_layers, out.gen_labels = gen_layers, labels
    out.gen_examples = {f"L{k[0]} m={k[1]:+g}": v[:3] for k, v in texts.items()}


def p_matching(labels) -> float:
    """Share of matching answers among the parseable ones (NaN when none parses)."""
    parsed = [x for x in labels if x != UNPARSEABLE]
    return float(np.mean([x == MATCHING for x in parsed])) if parsed else float("nan")


def question_split(r: BehaviorSweep, s: CAABehaviorSettings):
    """Selection / test questions: the sweep's held-out generate-split questions choose and every
    A/B test question reports; without them (``n_select = 0``) a split of the test questions,
    stratified by the matching letter."""
    if r.n_select:
        return Split(np.arange(r.n_select), np.arange(r.n_select, len(r.matching)))
    return split_indices(len(r.matching), s.selection.test_fraction, s.selection.seed, groups=r.matching)


def summarize(r: BehaviorSweep, s: CAABehaviorSettings, n_layers: int) -> BehaviorSummary:
    """Best layer by logit delta chosen on the selection questions; delta, paired d_z, the shift's
    behaviour / letter split there on the test questions; the generation curves."""
    mult = list(s.multipliers)
    plus, minus, zero = mult.index(1.0), mult.index(-1.0), (mult.index(0.0) if 0.0 in mult else None)
    delta = r.ld[:, plus].mean(-1) - r.ld[:, minus].mean(-1)
    split = question_split(r, s)
    sel = select({layer: r.ld[li, plus] - r.ld[li, minus] for li, layer in enumerate(r.layers)}, split)
    best, t = r.layers.index(sel.config), split.test
    out = BehaviorSummary(
        delta=delta,
        best_layer=sel.config,
        best_fraction=sel.config / max(n_layers - 1, 1),
        d=paired_d(r.ld[best, plus][t], r.ld[best, minus][t]),
        delta_best=sel.test.mean,
        base_matching=float((r.ld[best, zero][t] > 0).mean()) if zero is not None else float("nan"),
        split=behaviour_and_letter_shift(r.ld[best, plus][t] - r.ld[best, minus][t], [r.matching[i] for i in t]),
        selection=sel,
        test_idx=t,
    )
    if r.gen_labels is not None:
        gm = list(s.generation.multipliers)
        gp, gn = gm.index(1.0), gm.index(-1.0)
        cells = [[r.gen_labels[gi, mi] for mi in range(len(gm))] for gi in range(len(r.gen_layers))]
        out.gen_p = np.array([[p_matching(c) for c in row] for row in cells])
        out.gen_unparseable = np.array([[np.mean([x == UNPARSEABLE for x in c]) for c in row] for row in cells])
        out.gen_delta = out.gen_p[:, gp] - out.gen_p[:, gn]
        out.gen_corr = correlate(delta[[r.layers.index(layer) for layer in r.gen_layers]], out.gen_delta)
    return out


@dataclass
class DoseRow:
    """One behaviour's dose response at its best layer (see :func:`dose_response_rows`)."""

    behavior: str
    layer: int  # the best layer (by the ±1 delta, chosen on the selection questions)
    means: list[float]  # per multiplier: mean logit difference (test questions)
    shares: list[float]  # per multiplier: share of test questions where the matching letter wins
    wide: float  # the widest symmetric multiplier pair ±wide
    wide_d: EffectSize | None = (
        None  # paired d_z at ±wide on the test questions, at the layer where it is largest on the selection questions
    )
    wide_layer: int | None = None
    relative: list[float] | None = None  # per multiplier: the push in units of the mean residual norm at the layer
    changed: list[float] | None = (
        None  # per multiplier: share of test questions whose preferred letter differs from m = 0
    )
    split: tuple[float, float] | None = None  # m=+wide vs 0 at the best layer: behaviour / letter part (needs m = 0)
    letter_peak: tuple[int, float, float] | None = (
        None  # (layer, letter part, behaviour part) of the largest |letter part|
    )


def dose_response_rows(
    sweeps: dict[str, BehaviorSweep], summaries: dict[str, BehaviorSummary], multipliers: list[float]
) -> list[DoseRow]:
    """Every multiplier at the best layer, and, when the sweep goes past ±1, the widest symmetric
    pair's effect at the layer where it is largest (±1 alone can hide a vector that only acts
    when pushed harder). The shift at the widest multiplier is split into a behaviour part and a
    letter part (towards "A" on every question, :func:`interp.behaviors.behaviour_and_letter_shift`):
    a vector can move answers by letter, not content."""
    mult = list(multipliers)
    wide = max((m for m in mult if m > 0 and -m in mult), default=1.0)
    p, n = mult.index(wide), mult.index(-wide)
    rows = []
    for b, s in summaries.items():
        r = sweeps[b]
        t = s.test_idx if s.test_idx is not None else np.arange(r.ld.shape[-1])
        sel = np.setdiff1d(np.arange(r.ld.shape[-1]), t) if s.test_idx is not None else t
        ld, matching = r.ld[..., t], [r.matching[i] for i in t]
        li = r.layers.index(s.best_layer)
        row = DoseRow(
            b,
            s.best_layer,
            [float(ld[li, mi].mean()) for mi in range(len(mult))],
            [float((ld[li, mi] > 0).mean()) for mi in range(len(mult))],
            wide,
        )
        rel = r.relative_doses(s.best_layer) if r.multipliers == mult else None
        row.relative = None if rel is None else [float(x) for x in rel]
        if 0.0 in mult:
            z = ld[li, mult.index(0.0)] > 0
            row.changed = [float(((ld[li, mi] > 0) != z).mean()) for mi in range(len(mult))]
        if wide > 1:
            dl = r.ld[:, p, sel].mean(-1) - r.ld[:, n, sel].mean(
                -1
            )  # the layer for ±wide: chosen on the selection questions too
            lw = int(np.argmax(dl))
            row.wide_d, row.wide_layer = paired_d(ld[lw, p], ld[lw, n]), r.layers[lw]
        if 0.0 in mult:
            shift = ld[:, p] - ld[:, mult.index(0.0)]
            split = np.array([behaviour_and_letter_shift(shift[j], matching) for j in range(len(r.layers))])
            lj = int(np.nanargmax(np.abs(split[:, 1]))) if np.isfinite(split[:, 1]).any() else li
            row.split = (float(split[li, 0]), float(split[li, 1]))
            row.letter_peak = (r.layers[lj], float(split[lj, 1]), float(split[lj, 0]))
        rows.append(row)
    return rows


def dose_response(
    sweeps: dict[str, BehaviorSweep], summaries: dict[str, BehaviorSummary], multipliers: list[float]
) -> tuple[list[str], list[list[str]]]:
    """:func:`dose_response_rows` as a report table (header, rows)."""
    rows = dose_response_rows(sweeps, summaries, multipliers)
    wide = rows[0].wide if rows else 1.0
    head = ["behaviour", "layer"] + [f"m={m:+g}" for m in multipliers]
    if rows and rows[0].relative is not None:
        head.insert(2, "relative dose of m=+1 (× mean residual norm)")
    if wide > 1:
        head.append(f"paired d_z m=±{wide:g} (its layer chosen on selection questions)")
    if 0.0 in multipliers:
        head += [f"m={wide:+g} vs 0 at that layer: behaviour / letter shift", "largest |letter shift| over layers"]
    table = []
    for r in rows:
        row = [r.behavior, f"L{r.layer}"] + [
            f"{m:+.2f} ({sh:.2f}{'' if r.changed is None else f'; {c:.2f} changed'})"
            for m, sh, c in zip(r.means, r.shares, r.changed or r.means)
        ]
        if r.relative is not None:
            row.insert(2, f"{r.relative[multipliers.index(1.0)]:.3f}")
        if r.wide_d is not None:
            row.append(f"{r.wide_d} (L{r.wide_layer})")
        if r.split is not None:
            lj, let, beh = r.letter_peak
            row += [f"{r.split[0]:+.2f} / {r.split[1]:+.2f}", f"{let:+.2f} (L{lj}; behaviour {beh:+.2f})"]
        table.append(row)
    return head, table


# ----------------------------------------------------------------------------- controls (stage 2)
# Run after the sweep, at the layers the selection questions chose: random directions of the
# vector's norm at every multiplier (does the direction matter, or would any push of that size
# move the letters?), the vector at every position after the instruction (CAA's own placement)
# beside the answer's "(" only, and the unsteered letter-swap check (does the model read the
# options at all?).


@dataclass
class ControlSweep:
    layers: list[int]  # the layers evaluated (the best layer first)
    multipliers: list[float]
    ld_controls: np.ndarray  # [layer control multiplier question] random directions of norm ‖v‖, times m
    ld_all_positions: (
        np.ndarray | None
    )  # [layer multiplier question] the vector at every position after the instruction
    n_after: int  # positions after the instruction (the all-positions option steers these)
    ld_swapped: np.ndarray  # [question] unsteered, options' texts swapped; oriented to where the matching text now is
    n_controls: int


_OPTIONS = re.compile(r"\(A\)(?P<a>.*?)\n(?P<sep>\s*)\(B\)(?P<b>.*)$", re.S)


def swap_options(question: str) -> str:
    """The question with the texts of its (A) and (B) options exchanged (the letters stay)."""
    m = _OPTIONS.search(question)
    if m is None:
        raise ValueError(f"question has no '(A) … (B) …' options at its end: {question[-80:]!r}")
    return question[: m.start()] + f"(A){m['b']}\n{m['sep']}(B){m['a']}"


def other_letter(matching: str) -> str:
    return "(B)" if answer_letter(matching) == "A" else "(A)"


def positions_after_instruction(model, question: str, chat: bool) -> int:
    """How many final tokens of the A/B prompt come after the question text (the assistant turn
    and the answer's "("): CAA's "every position after the instruction"."""
    full = model.tokenizer.encode(ab_prompt(model, question, chat), add_special_tokens=False)
    text = ab_prompt(model, question, chat)
    head = model.tokenizer.encode(text[: text.rindex(question) + len(question)], add_special_tokens=False)
    common = next((i for i, (x, y) in enumerate(zip(full, head)) if x != y), min(len(full), len(head)))
    return len(full) - common


@torch.no_grad()
def control_sweep(model, behavior: str, s: CAABehaviorSettings, layers: list[int], vectors, seed: int) -> ControlSweep:
    """Stage 2 at ``layers`` (``vectors``: [len(layers), d_model], the sweep's vectors there) on
    the A/B test questions: random-direction controls, the all-positions option, the letter swap."""
    test_items, _ = split_items(model, behavior, "test_ab", s)
    prompts = [ab_prompt(model, it["question"], s.chat) for it in test_items]
    matching = [it["answer_matching_behavior"] for it in test_items]
    batch = interp.tokenize(model, prompts, padding_side="left")
    cols = letter_ids(model, prompts[0])
    mult = torch.tensor(s.multipliers)
    vec = torch.as_tensor(np.asarray(vectors), dtype=torch.float32)
    n_c, d = max(s.n_controls, 0), model.cfg.d_model
    ld_c = np.zeros((len(layers), n_c, len(mult), len(prompts)))
    ctrl = random_directions(vec, n_c, seed) if n_c else None  # [control layer d]
    with SteeringBatch(model, batch, max_rows=s.max_rows) as sb:
        for li, layer in enumerate(layers):
            if ctrl is not None:
                steer = (mult[None, :, None] * ctrl[:, li, None, :]).reshape(-1, d)
                ld = oriented_logit_diff(sb.logits(layer, steer, columns=cols), matching)
                ld_c[li] = ld.view(n_c, len(mult), len(prompts)).numpy()
    n_after = min(positions_after_instruction(model, it["question"], s.chat) for it in test_items)
    ld_all = None
    if s.all_positions:
        ld_all = np.zeros((len(layers), len(mult), len(prompts)))
        after = list(range(-n_after, 0))  # left padding: the same columns in every prompt
        for li, layer in enumerate(layers):
            for mi, m in enumerate(mult.tolist()):
                with add_vector(model, ("resid_post", layer), vec[li] * m, positions=after):
                    ld_all[li, mi] = oriented_logit_diff(last_logits(model, batch)[:, cols].float(), matching).numpy()
    swapped = [ab_prompt(model, swap_options(it["question"]), s.chat) for it in test_items]
    logits = last_logits(model, interp.tokenize(model, swapped, padding_side="left"))[:, cols].float()
    ld_swap = oriented_logit_diff(logits, [other_letter(m) for m in matching]).numpy()
    return ControlSweep(list(layers), list(s.multipliers), ld_c, ld_all, n_after, ld_swap, n_c)


def letter_layer(r: BehaviorSweep, s: CAABehaviorSettings) -> tuple[int, float]:
    """The layer and multiplier where the vector moves letters most (largest |letter part| of the
    shift from m = 0 at the widest multiplier of either sign), chosen on the selection questions."""
    mult = list(s.multipliers)
    if 0.0 not in mult:
        raise ValueError(f"multipliers={mult} must contain 0 (the shifts are measured from the unsteered score)")
    sel = question_split(r, s).selection
    zero, matching = mult.index(0.0), [r.matching[i] for i in sel]
    best = (r.layers[0], max(mult), -1.0)
    for m in (max(mult), min(mult)):
        mi = mult.index(m)
        for li, layer in enumerate(r.layers):
            _, let = behaviour_and_letter_shift(r.ld[li, mi, sel] - r.ld[li, zero, sel], matching)
            if np.isfinite(let) and abs(let) > best[2]:
                best = (layer, m, abs(let))
    return best[0], best[1]


def control_layers(r: BehaviorSweep, summary: BehaviorSummary, s: CAABehaviorSettings) -> list[int]:
    """Where stage 2 runs: the best layer, then the letter layer when it differs."""
    lay, _ = letter_layer(r, s)
    return [summary.best_layer] + ([lay] if lay != summary.best_layer else [])


@dataclass
class ControlRow:
    """One (layer, multiplier) of a behaviour on the test questions: the vector's shift from m = 0
    beside random directions of the same norm, its behaviour / letter split, and the vector added
    at every position after the instruction."""

    layer: int
    role: str  # "best layer" / "letter layer"
    m: float
    relative: float  # m·‖v‖ / mean residual norm
    vs_control: ControlComparison  # per-question shift of the vector vs the controls'
    changed: float  # share of questions whose preferred letter differs from m = 0 (vector)
    changed_control: float  # the same, mean over the controls
    behaviour: tuple[float, float, float]  # (part, lo, hi)
    letter: tuple[float, float, float]
    all_positions: Estimate | None = None  # shift from m = 0 with the vector at every position after the instruction
    all_positions_changed: float | None = None
    all_positions_split: tuple | None = None


def control_rows(r: BehaviorSweep, summary: BehaviorSummary, cs: ControlSweep, letter_m: float) -> list[ControlRow]:
    mult = cs.multipliers
    zero = mult.index(0.0)
    t = question_split_test(r)
    matching = [r.matching[i] for i in t]
    rows = []
    for li, layer in enumerate(cs.layers):
        lj = r.layers.index(layer)
        base = r.ld[lj, zero, t]
        rel = r.relative_doses(layer)
        for mi, m in enumerate(mult):
            if m == 0:
                continue
            shift = r.ld[lj, mi, t] - base
            ctrl = cs.ld_controls[li, :, mi] - base[None]
            row = ControlRow(
                layer,
                "best layer" if li == 0 else f"letter layer (largest letter part, m={letter_m:+g}, on selection)",
                m,
                float("nan") if rel is None else float(rel[mi]),
                compare_to_controls(shift, ctrl) if cs.n_controls else None,
                float(((r.ld[lj, mi, t] > 0) != (base > 0)).mean()),
                float(((cs.ld_controls[li, :, mi] > 0) != (base > 0)[None]).mean()) if cs.n_controls else float("nan"),
                *behaviour_and_letter_ci(shift, matching),
            )
            if cs.ld_all_positions is not None:
                a_shift = cs.ld_all_positions[li, mi] - base
                row.all_positions = bootstrap_ci(a_shift)
                row.all_positions_changed = float(((cs.ld_all_positions[li, mi] > 0) != (base > 0)).mean())
                row.all_positions_split = behaviour_and_letter_ci(a_shift, matching)
            rows.append(row)
    return rows


def question_split_test(r: BehaviorSweep) -> np.ndarray:
    """The A/B test questions' indices into the sweep's question axis (stage 2 runs on these)."""
    return np.arange(r.n_select, len(r.matching))


@dataclass
class ContentCheck:
    """Unsteered, with the options' texts swapped between (A) and (B): whether the preferred
    answer follows the content (the precondition for reading a letter shift as behaviour)."""

    follows_content: Estimate  # share of test questions preferring the same content both ways
    prefers_a: float  # share preferring (A) in the original order
    prefers_a_swapped: float
    n: int


def content_check(r: BehaviorSweep, cs: ControlSweep, zero: int) -> ContentCheck:
    t = question_split_test(r)
    orig = r.ld[0, zero, t]  # m = 0: the same at every layer
    matching = [r.matching[i] for i in t]
    is_a = np.array([answer_letter(m) == "A" for m in matching])
    a_orig = np.where(is_a, orig > 0, orig < 0)  # matching is A and preferred, or matching is B and not
    a_swap = np.where(
        ~is_a, cs.ld_swapped > 0, cs.ld_swapped < 0
    )  # after the swap the matching text sits at the other letter
    follows = (orig > 0) == (cs.ld_swapped > 0)
    return ContentCheck(bootstrap_ci(follows.astype(float)), float(a_orig.mean()), float(a_swap.mean()), len(t))
