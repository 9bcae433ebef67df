"""Correctness-direction steering (seed 004), one model.

Pick the arithmetic kind the model solves closest to half the time (on calibration problems,
or the configured kind), solve ``n_problems`` others greedily, split them train/test
(stratified by correctness). Direction at early / middle / late layers = mean residual at the
last prompt token over correctly solved train problems minus over wrongly solved ones. On the
test problems, add α·direction after the layer at the last prompt token and every generated
token, decode greedily and parse the answer — on the seed's raw α grid and, beside it, on a
bracketing grid of *relative* doses (d × the mean residual norm at the layer, along the
direction: :mod:`interp.steering.doses`), from no change to most outputs changed. :func:`alpha_tests` gives the exact
McNemar test
of each α against α = 0, and :func:`invariance_flags` flags byte-identical outputs across α.

    >>> r = correctness_study(model, CorrectnessSettings(), seed=0)
    >>> tests = alpha_tests(r, CorrectnessSettings().alphas)
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import torch

import interp
from interp.data.arithmetic import KINDS, parse_answer, problems, prompt
from interp.function_vectors import task_vectors
from interp.progress import progress as tqdm
from interp.stats import McNemar, identical_outputs, mcnemar_exact
from interp.steering import SteeringBatch
from interp.steering.controls import compare_to_controls, random_directions
from interp.steering.doses import dose_vectors, mean_residual_norm


@dataclass
class CorrectnessSettings:
    task: str = "auto"  # an arithmetic kind, or "auto": the kind whose calibration accuracy is closest to 0.5
    kinds: list[str] = field(default_factory=lambda: list(KINDS))  # candidates for "auto"
    n_calibrate: int = 60
    n_problems: int = 400
    test_fraction: float = 0.25
    layer_fractions: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.875])
    alphas: list[float] = field(
        default_factory=lambda: [-3.0, -2.5, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    )
    max_new_tokens: int = 4
    control_alpha: float = (
        50.0  # positive control: at this |α| the outputs must change, else the intervention is not reaching the model
    )
    # bracketing grid beside the raw one: the direction scaled to d × the mean residual norm at the layer
    relative_doses: list[float] = field(default_factory=lambda: [-1.0, -0.3, -0.1, -0.03, 0.03, 0.1, 0.3, 1.0])
    # specificity control: random directions of the direction's norm at every relative dose
    # (interp.steering.controls); 0 leaves it out
    n_controls: int = 3
    max_rows: int = 256


@dataclass
class CorrectnessResult:
    kind: str
    calibration: dict[str, float]  # kind -> accuracy on the calibration problems ("auto" only)
    too_few_problems: dict[str, int]  # kinds left out: fewer distinct problems than needed
    layers: list[int]
    n_layers: int
    n_train: tuple[int, int]  # correct, wrong train problems
    n_test: int
    test_base: np.ndarray  # unsteered correctness of the test problems
    base_accuracy: float  # on all problems
    norms: np.ndarray  # [layer] norm of the direction
    texts: dict[int, list[list[str]]]  # layer -> [alpha][problem] decoded answers
    correct: dict[int, np.ndarray]  # layer -> [alpha problem] correctness
    control: dict[int, list[int]]  # layer -> outputs changed at +control_alpha, −control_alpha
    resid_norm: np.ndarray | None = None  # [layer] mean residual norm after the layer at the test prompts' last token
    rel_texts: dict[int, list[list[str]]] = field(default_factory=dict)  # layer -> [relative dose][problem]
    rel_correct: dict[int, np.ndarray] = field(default_factory=dict)  # layer -> [relative dose problem]
    alphas: list[float] = field(default_factory=list)  # the raw grid (first axis of texts / correct)
    relative_doses: list[float] = field(default_factory=list)  # first axis of rel_texts / rel_correct
    # random directions at the same relative doses: layer -> [control dose problem] correctness / answers
    ctrl_correct: dict[int, np.ndarray] = field(default_factory=dict)
    ctrl_texts: dict[int, list[list[list[str]]]] = field(default_factory=dict)

    def control_changed(self, layer: int) -> np.ndarray:
        """[control dose] share of test outputs a random direction changed from α = 0."""
        base = self.texts[layer][self.alphas.index(0.0)]
        rows = self.ctrl_texts.get(layer, [])
        return np.array([[np.mean([x != y for x, y in zip(row, base)]) for row in ctrl] for ctrl in rows])

    def changed(self, layer: int, relative: bool = False) -> np.ndarray:
        """Share of test outputs that differ from the unsteered (α = 0) output, per α (or relative dose)."""
        base = self.texts[layer][self.alphas.index(0.0)]
        rows = self.rel_texts[layer] if relative else self.texts[layer]
        return np.array([np.mean([x != y for x, y in zip(row, base)]) for row in rows])

    def relative_of_raw(self, layer: int) -> np.ndarray:
        """The raw α grid in relative units: α·‖direction‖ / mean residual norm."""
        li = self.layers.index(layer)
        return np.asarray(self.alphas) * self.norms[li] / self.resid_norm[li]


def check_settings(cfg: CorrectnessSettings) -> None:
    if 0.0 not in cfg.alphas:
        raise ValueError(f"alphas={cfg.alphas} must contain 0.0 (the tests compare every α against it)")
    if cfg.task != "auto" and cfg.task not in KINDS:
        raise ValueError(f"task={cfg.task!r}; allowed: 'auto' or one of {list(KINDS)}")
    if not 0 < cfg.test_fraction < 1:
        raise ValueError(f"test_fraction={cfg.test_fraction}; must lie in (0, 1)")
    if 0.0 in cfg.relative_doses:
        raise ValueError(
            f"relative_doses={cfg.relative_doses}; leave out 0 (α = 0 of the raw grid is the unsteered reference)"
        )
    if isinstance(cfg.n_controls, bool) or not isinstance(cfg.n_controls, int) or cfg.n_controls < 0:
        raise ValueError(f"n_controls={cfg.n_controls!r}; must be an integer >= 0")
    # sizes larger than the data are errors before any compute (the number of distinct problems
    # of a kind does not depend on the seed)
    kinds = cfg.kinds if cfg.task == "auto" else [cfg.task]
    need = cfg.n_calibrate + cfg.n_problems
    short = {k: len(problems(k, need, 0)) for k in kinds}
    if all(n < need for n in short.values()):
        raise ValueError(
            f"no kind in {kinds} has n_calibrate + n_problems = {need} distinct problems ({short}); lower n_problems "
            "or add a kind"
        )


def _steering_batch(model, prompts: list[str], max_rows: int) -> SteeringBatch:
    return SteeringBatch(model, interp.tokenize(model, prompts, padding_side="left"), max_rows=max_rows)


def solve(model, sb: SteeringBatch, answers: list[int], max_new_tokens: int, layer: int = 0, vectors=None):
    """Greedy answers (decoded strings) and correctness, per vector (row) and problem (no vector: unsteered)."""
    vectors = torch.zeros(1, model.cfg.d_model) if vectors is None else vectors
    ids = sb.generate(layer, vectors, max_new_tokens)
    texts = [model.tokenizer.batch_decode(row, skip_special_tokens=True) for row in ids]
    correct = np.array([[parse_answer(t) == a for t, a in zip(row, answers)] for row in texts])
    return texts, correct


def _choose_kind(model, cfg: CorrectnessSettings, seed: int) -> tuple[str, dict, dict, dict]:
    """(kind, calibration accuracy per kind, kinds with too few problems, problem pools)."""
    calib = {}
    kinds = cfg.kinds if cfg.task == "auto" else [cfg.task]
    need = cfg.n_calibrate + cfg.n_problems
    pools = {k: problems(k, need, seed) for k in kinds}
    short = {k: len(p) for k, p in pools.items() if len(p) < need}  # add1 / mul1 have fewer than 100 distinct problems
    if len(short) == len(kinds):
        raise ValueError(
            f"no kind in {kinds} has n_calibrate + n_problems = {need} distinct problems ({short}); lower n_problems "
            "or add a kind"
        )
    kinds = [k for k in kinds if k not in short]
    if cfg.task != "auto":
        return cfg.task, calib, short, pools
    for k in tqdm(kinds, desc="calibration", leave=False):
        cal = pools[k][: cfg.n_calibrate]
        sb = _steering_batch(model, [prompt(p, k) for p in cal], cfg.max_rows)
        calib[k] = float(solve(model, sb, [p.answer for p in cal], cfg.max_new_tokens)[1].mean())
    return min(calib, key=lambda k: abs(calib[k] - 0.5)), calib, short, pools


def _split(base: np.ndarray, cfg: CorrectnessSettings, seed: int, kind: str) -> tuple[list[int], list[int], list[int]]:
    """Stratified split: the same test share of correct and of wrong problems; (test, good, bad)."""
    rng = random.Random(seed + 1)
    test = []
    for flag in (True, False):
        idx = [i for i in range(len(base)) if base[i] == flag]
        rng.shuffle(idx)
        test += idx[: round(cfg.test_fraction * len(idx))]
    test = sorted(test)
    test_set = set(test)
    train = [i for i in range(len(base)) if i not in test_set]
    good, bad = [i for i in train if base[i]], [i for i in train if not base[i]]
    if not good or not bad:
        raise ValueError(
            f"kind {kind!r}: the train split has {len(good)} correct and {len(bad)} wrong problems; a direction needs "
            "both"
        )
    return test, good, bad


def _steered(model, cfg, prompts, answers, test, layers, direction, relative, kind, controls) -> tuple[dict, ...]:
    """Greedy answers of the test problems under every raw α (and the positive control), relative
    dose and random control direction at each relative dose, per layer."""
    alphas = torch.tensor([*cfg.alphas, cfg.control_alpha, -cfg.control_alpha])
    texts, correct, control, rel_texts, rel_correct, ctrl_texts, ctrl_correct = {}, {}, {}, {}, {}, {}, {}
    n_raw, n_rel, n_ctrl = len(cfg.alphas), relative.shape[0], controls.shape[0]
    with _steering_batch(model, [prompts[i] for i in test], cfg.max_rows) as test_sb:  # shared by every layer
        for li, layer in enumerate(tqdm(layers, desc=f"{kind}: layers", leave=False)):
            ctrl = controls[:, :, li].reshape(n_ctrl * n_rel, -1)  # [control*dose d_model]
            steer = torch.cat([alphas[:, None] * direction[li], relative[:, li], ctrl])
            t, c = solve(model, test_sb, [answers[i] for i in test], cfg.max_new_tokens, layer, steer)
            texts[layer], correct[layer] = t[:n_raw], c[:n_raw]
            rel_texts[layer], rel_correct[layer] = t[n_raw + 2 : n_raw + 2 + n_rel], c[n_raw + 2 : n_raw + 2 + n_rel]
            first = n_raw + 2 + n_rel
            ctrl_texts[layer] = [t[first + k * n_rel : first + (k + 1) * n_rel] for k in range(n_ctrl)]
            ctrl_correct[layer] = c[first:].reshape(n_ctrl, n_rel, -1)
            control[layer] = [sum(x != y for x, y in zip(t[j], t[cfg.alphas.index(0.0)])) for j in (n_raw, n_raw + 1)]
    return texts, correct, control, rel_texts, rel_correct, ctrl_texts, ctrl_correct


def _dosed(direction: torch.Tensor, norms: torch.Tensor, cfg: CorrectnessSettings, seed: int, d_model: int):
    """The direction at every relative dose ``[dose layer d]``, and the specificity control: random
    directions of its norm at the same doses ``[control dose layer d]`` (seeded)."""
    n_layers = direction.shape[0]
    if not cfg.relative_doses:
        return torch.zeros(0, n_layers, d_model), torch.zeros(0, 0, n_layers, d_model)
    relative = dose_vectors(direction, norms, cfg.relative_doses)
    if not cfg.n_controls:
        return relative, torch.zeros(0, len(cfg.relative_doses), n_layers, d_model)
    dirs = random_directions(direction, cfg.n_controls, seed=seed + 7)
    return relative, torch.stack([dose_vectors(d, norms, cfg.relative_doses) for d in dirs])


def correctness_study(model, cfg: CorrectnessSettings, seed: int) -> CorrectnessResult:
    """Kind calibration, baseline solve, stratified split, direction, steered solves at every layer × α (and the
    control)."""
    kind, calib, short, pools = _choose_kind(model, cfg, seed)
    probs = pools[kind][cfg.n_calibrate :]
    prompts, answers = [prompt(p, kind) for p in probs], [p.answer for p in probs]
    _, base = solve(model, _steering_batch(model, prompts, cfg.max_rows), answers, cfg.max_new_tokens)
    base = base[0]
    test, good, bad = _split(base, cfg, seed, kind)
    n = model.cfg.n_layers
    layers = sorted({min(n - 1, round(f * n)) for f in cfg.layer_fractions})
    tok = lambda idx: interp.tokenize(model, [prompts[i] for i in idx], padding_side="left")  # noqa: E731
    direction = task_vectors(model, tok(good), layers) - task_vectors(model, tok(bad), layers)  # [layer d_model]
    norms = mean_residual_norm(model, tok(test), layers)
    relative, controls = _dosed(direction, norms, cfg, seed, model.cfg.d_model)
    texts, correct, control, rel_texts, rel_correct, ctrl_texts, ctrl_correct = _steered(
        model, cfg, prompts, answers, test, layers, direction, relative, kind, controls
    )
    return CorrectnessResult(
        kind,
        calib,
        short,
        layers,
        n,
        (len(good), len(bad)),
        len(test),
        base[test],
        float(base.mean()),
        direction.norm(dim=-1).numpy(),
        texts,
        correct,
        control,
        norms.numpy(),
        rel_texts,
        rel_correct,
        list(cfg.alphas),
        list(cfg.relative_doses),
        ctrl_correct=ctrl_correct,
        ctrl_texts=ctrl_texts,
    )


def alpha_tests(r: CorrectnessResult, alphas: list[float]) -> dict[tuple[int, float], McNemar]:
    """Exact McNemar of every α against α = 0 at the same layer, on the same test problems."""
    zero = alphas.index(0.0)
    return {
        (layer, a): mcnemar_exact(r.correct[layer][zero], r.correct[layer][ai])
        for ai, a in enumerate(alphas)
        for layer in r.layers
    }


def relative_tests(r: CorrectnessResult) -> dict[tuple[int, float], McNemar]:
    """Exact McNemar of every relative dose against α = 0 at the same layer."""
    zero = r.alphas.index(0.0)
    return {
        (layer, d): mcnemar_exact(r.correct[layer][zero], r.rel_correct[layer][di])
        for di, d in enumerate(r.relative_doses)
        for layer in r.layers
    }


def control_comparisons(r: CorrectnessResult) -> dict[tuple[int, float], object]:
    """Per (layer, relative dose): the direction's test accuracy against random directions of the
    same norm at the same dose (paired over problems; :func:`interp.steering.controls.compare_to_controls`)."""
    return {
        (layer, d): compare_to_controls(
            r.rel_correct[layer][di].astype(float), r.ctrl_correct[layer][:, di].astype(float)
        )
        for layer in r.layers
        if layer in r.ctrl_correct and r.ctrl_correct[layer].shape[0]
        for di, d in enumerate(r.relative_doses)
    }


def invariance_flags(r: CorrectnessResult, alphas: list[float]) -> dict[int, bool]:
    """Per layer: are the decoded outputs byte-identical across every α ("suspicious invariance")?"""
    return {layer: identical_outputs({a: r.texts[layer][ai] for ai, a in enumerate(alphas)}) for layer in r.layers}
