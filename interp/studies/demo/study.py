"""Demo study: where does a small LM recall a country's capital?

On ``smollm2-135m-instruct`` (default): (1) check which clean prompts the model answers
correctly, (2) a logit-lens view of the answer across layers, (3) head-level activation
patching (clean z -> corrupted run, subject swapped) with recovery of the logit difference.

    interp run demo --config configs/demo.yaml [model.name=gemma-3-270m]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

import interp
from interp import plots
from interp.config import ModelConfig, PatchingConfig
from interp.executor import Cell
from interp.lens import logit_lens
from interp.patching import PatchingResult, last_logits, logit_diff_metric, patch_heads
from interp.runner import Run, RunConfig
from interp.stats import bootstrap_ci
from interp.study import Study


@dataclass
class TaskConfig:
    template: str = "The capital of {subject} is"
    # [subject, answer]; the corrupted prompt of pair i uses the subject of pair i+1
    pairs: list[list[str]] = field(default_factory=lambda: [["France", "Paris"], ["Italy", "Rome"]])
    answer_prefix: str = " "  # answers are scored as single tokens with this prefix


@dataclass
class DemoConfig:
    run: RunConfig = field(default_factory=RunConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    patching: PatchingConfig = field(default_factory=PatchingConfig)


@dataclass
class CleanTable:
    correct: torch.Tensor  # [prompt] bool: top-1 is the answer
    p_answer: torch.Tensor  # [prompt]
    top1: list[str]  # decoded top-1 token per prompt


@dataclass
class DemoCell:
    """Everything the demo computes on one model (the report renders from this alone)."""

    n_layers: int
    n_heads: int
    clean_prompts: list[str]
    clean: CleanTable
    corrupted: CleanTable
    lens_probs: dict[str, torch.Tensor]  # name -> [layer, prompt]
    lens_top1_probs: torch.Tensor  # [layer, prompt]
    lens_ranks_correct: torch.Tensor  # [layer, prompt]
    heads: PatchingResult
    lens_top_tokens: list[list[list[str]]] = field(default_factory=list)  # [layer][prompt] decoded top-3


def check(cfg: DemoConfig) -> None:
    if len(cfg.task.pairs) < 2:
        raise ValueError(f"task.pairs has {len(cfg.task.pairs)} entries; need at least 2 to build corrupted prompts")
    bad = [p for p in cfg.task.pairs if len(p) != 2 or not all(isinstance(x, str) and x for x in p)]
    if bad:
        raise ValueError(f"task.pairs: {bad[0]!r} is not a [subject, answer] pair of non-empty strings")
    if "{subject}" not in cfg.task.template:
        raise ValueError(f"task.template={cfg.task.template!r} must contain '{{subject}}'")
    cfg.patching.check()


def build_prompts(cfg: TaskConfig, model):
    subjects = [s for s, _ in cfg.pairs]
    answers = interp.data.single_token_ids(model, [cfg.answer_prefix + a for _, a in cfg.pairs], "task.pairs answers")
    clean = [cfg.template.format(subject=s) for s in subjects]
    corrupted = clean[1:] + clean[:1]
    return clean, corrupted, answers, torch.roll(answers, -1)


@torch.no_grad()
def clean_table(model, batch, answers) -> CleanTable:
    logits = last_logits(model, batch)
    top = logits.argmax(-1).cpu()
    p = logits.float().softmax(-1)[torch.arange(len(batch)), answers.to(logits.device)].cpu()
    return CleanTable(top == answers, p, [model.tokenizer.decode([int(t)]) for t in top])


def demo_cell(model, task: TaskConfig, tol: float) -> DemoCell:
    """The demo's computation on one model: clean runs, logit lens, head patching."""
    clean_p, corr_p, ans, corr_ans = build_prompts(task, model)
    clean, corr = interp.tokenize(model, clean_p), interp.tokenize(model, corr_p)
    lens = logit_lens(model, clean, {"correct": ans, "other capital": corr_ans}, top_k=3)
    heads = patch_heads(model, clean, corr, logit_diff_metric(ans, corr_ans), tol=tol)
    return DemoCell(
        model.cfg.n_layers,
        model.cfg.n_heads,
        clean_p,
        clean_table(model, clean, ans),
        clean_table(model, corr, corr_ans),
        dict(lens.probs),
        lens.top1_probs,
        lens.ranks["correct"],
        heads,
        lens.top_tokens,
    )


def cells(cfg: DemoConfig, done: dict) -> list[Cell]:
    return [Cell(cfg.model.name, cfg.model.name, demo_cell, (cfg.task, cfg.patching.tol))]


def analyse(cfg: DemoConfig, done: dict) -> DemoCell:
    return done[cfg.model.name]


def report(cfg: DemoConfig, r: DemoCell, run: Run) -> None:
    words = [a for _, a in cfg.task.pairs]
    ok, usable = r.clean.correct, r.clean.correct & r.corrupted.correct
    run.report.add_text(
        f"Model `{cfg.model.name}` ({r.n_layers} layers x {r.n_heads} heads). "
        f"Prompts: `{cfg.task.template}` with {len(r.clean_prompts)} subjects; the corrupted prompt swaps in the next "
        "subject.\n\n"
        f"## 1. Does the clean run succeed?\n\nThe model's top-1 next token is the right capital for "
        f"**{int(ok.sum())} of {len(ok)}** clean prompts. Patching figures below use the {int(usable.sum())} "
        "pairs where both the clean and the corrupted prompt are answered correctly."
    )
    rows = [
        [r.clean_prompts[i], words[i], repr(r.clean.top1[i]), float(r.clean.p_answer[i]), "yes" if ok[i] else "**no**"]
        for i in range(len(ok))
    ]
    run.report.add_table(["prompt", "answer", "top-1", "p(answer)", "correct"], rows)
    run.log_metrics(clean_accuracy=float(ok.float().mean()), n_pairs=len(ok), n_usable_pairs=int(usable.sum()))
    _lens_section(run, r)
    _patching_section(cfg, run, r, usable)


def _lens_section(run: Run, r: DemoCell) -> None:
    curves = {k: _band(v) for k, v in r.lens_probs.items()} | {"top-1 token": _band(r.lens_top1_probs)}
    run.report.add_text(
        "## 2. Logit lens\n\nProbability of the correct capital, of the other prompt's capital and of the top-1 "
        "token after each layer (mean and 95% bootstrap CI over prompts)."
    )
    fig = plots.lens_curves(list(range(r.n_layers)), curves, "Logit lens on clean prompts")
    run.save_figure(fig, "logit_lens.png", "Logit lens: token probability vs layer")
    first = _first_layer_rank0(r.lens_ranks_correct)
    run.log_metrics(lens_first_layer_top1_median=first, lens_final_p_correct=float(r.lens_probs["correct"][-1].mean()))
    run.report.add_text(
        f"The correct capital first becomes the top-1 lens token at layer {first} (median over prompts)."
    )
    if r.lens_top_tokens:  # which tokens the "top-1 token" curve is, for the first prompt
        run.report.add_text(f"Decoded top-3 lens tokens for `{r.clean_prompts[0]}` (last six layers):")
        rows = [[f"L{i}"] + [repr(t) for t in r.lens_top_tokens[i][0]] for i in range(r.n_layers)][-6:]
        run.report.add_table(["layer", "top-1", "top-2", "top-3"], rows)


def _band(values: torch.Tensor):
    est = [bootstrap_ci(row.numpy(), n_boot=500) for row in values]
    return [e.mean for e in est], [e.ci_low for e in est], [e.ci_high for e in est]


def _first_layer_rank0(ranks: torch.Tensor) -> float:
    hit = (ranks == 0).int()
    first = torch.where(hit.any(0), hit.argmax(0), torch.full_like(hit[0], ranks.shape[0]))
    return float(first.float().median())


def _patching_section(cfg: DemoConfig, run: Run, r: DemoCell, usable: torch.Tensor) -> None:
    res = r.heads
    mean = res.mean_recovery(usable)
    run.report.add_text(
        "## 3. Head patching\n\nDenoising: each head's output `z` at every position is copied from the clean run into "
        "the corrupted run; metric = logit(correct capital) - logit(other capital); recovery "
        "`(m_patched - m_corr)/(m_clean - m_corr)` (undefined when the gap is below "
        f"{cfg.patching.tol}: {int(res.undefined.sum())} pairs)."
    )
    fig = plots.layer_head_heatmap(mean.numpy(), f"Mean recovery per head ({int(usable.sum())} pairs)")
    run.save_figure(fig, "head_patching.png", "Head patching: mean recovery of the logit difference per (layer, head)")
    top = [
        [layer, head, f"{e.mean:.3f} [{e.ci_low:.3f}, {e.ci_high:.3f}]", e.n]
        for (layer, head), e in res.top(cfg.patching.top_k_heads, cfg.patching.n_boot, include=usable)
    ]
    run.report.add_table(
        ["layer", "head", "mean recovery [95% CI]", "n"], top, caption="Heads with the largest mean recovery"
    )
    run.log_metrics(head_recovery_mean=mean, top_heads=top, m_clean=res.m_clean, m_corr=res.m_corr)


STUDY = Study(
    "demo",
    DemoConfig,
    cells=cells,
    analyse=analyse,
    report=report,
    check=check,
    description="factual recall on SmolLM2: clean-run check, logit lens, head patching",
)
