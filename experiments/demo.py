"""Demo study: where does a small LM recall a country's capital?

On ``smollm2-135m-instruct`` (default): (1) check which clean prompts the model answers
correctly, (2) a logit-lens view of the answer across layers, (3) head-level activation
patching (clean z -> corrupted run, subject swapped) with recovery of the logit difference.

    python -m experiments.demo --config configs/demo.yaml [model.name=gemma-3-270m]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

import interp
from interp import plots
from interp.config import ModelConfig, PatchingConfig
from interp.lens import logit_lens
from interp.patching import last_logits, logit_diff_metric, patch_heads
from interp.runner import Run, RunConfig, main
from interp.stats import bootstrap_ci


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


def build_prompts(cfg: TaskConfig, model):
    if len(cfg.pairs) < 2:
        raise ValueError(f"task.pairs has {len(cfg.pairs)} entries; need at least 2 to build corrupted prompts")
    subjects = [s for s, _ in cfg.pairs]
    answers = interp.data.single_token_ids(model, [cfg.answer_prefix + a for _, a in cfg.pairs], "task.pairs answers")
    clean = [cfg.template.format(subject=s) for s in subjects]
    corrupted = clean[1:] + clean[:1]
    return clean, corrupted, answers, torch.roll(answers, -1)


@torch.no_grad()
def clean_run_table(model, batch, answers, words):
    logits = last_logits(model, batch)
    top = logits.argmax(-1).cpu()
    p = logits.float().softmax(-1)[torch.arange(len(batch)), answers.to(logits.device)].cpu()
    ok = top == answers
    rows = [[batch.prompts[i], words[i], repr(model.tokenizer.decode([int(top[i])])), float(p[i]), "yes" if ok[i] else "**no**"]
            for i in range(len(batch))]  # fmt: skip
    return ok, p, rows


def run(cfg: DemoConfig, run: Run) -> None:
    model = interp.load_model(cfg.model.name, device=run.device)
    clean_p, corr_p, ans, corr_ans = build_prompts(cfg.task, model)
    clean, corr = interp.tokenize(model, clean_p), interp.tokenize(model, corr_p)
    words = [a for _, a in cfg.task.pairs]
    ok, p_ans, rows = clean_run_table(model, clean, ans, words)
    ok_corr, _, _ = clean_run_table(model, corr, corr_ans, words[1:] + words[:1])
    usable = ok & ok_corr
    run.report.add_text(
        f"Model `{cfg.model.name}` ({model.cfg.n_layers} layers x {model.cfg.n_heads} heads). "
        f"Prompts: `{cfg.task.template}` with {len(clean_p)} subjects; the corrupted prompt swaps in the next subject.\n\n"
        f"## 1. Does the clean run succeed?\n\nThe model's top-1 next token is the right capital for "
        f"**{int(ok.sum())} of {len(ok)}** clean prompts. Patching figures below use the {int(usable.sum())} "
        "pairs where both the clean and the corrupted prompt are answered correctly."
    )
    run.report.add_table(["prompt", "answer", "top-1", "p(answer)", "correct"], rows)
    run.log_metrics(clean_accuracy=float(ok.float().mean()), n_pairs=len(ok), n_usable_pairs=int(usable.sum()))
    lens_section(model, run, clean, ans, corr_ans)
    patching_section(cfg, model, run, clean, corr, ans, corr_ans, usable)


def lens_section(model, run: Run, clean, ans, corr_ans) -> None:
    res = logit_lens(model, clean, {"correct": ans, "other capital": corr_ans})
    curves = {k: _band(v) for k, v in res.probs.items()} | {"top-1 token": _band(res.top1_probs)}
    layers = list(range(model.cfg.n_layers))
    run.report.add_text("## 2. Logit lens\n\nProbability of the correct capital, of the other prompt's capital and of the top-1 token after each layer (mean and 95% bootstrap CI over prompts).")
    run.save_figure(plots.lens_curves(layers, curves, "Logit lens on clean prompts"), "logit_lens.png", "Logit lens: token probability vs layer")
    first = _first_layer_rank0(res.ranks["correct"])
    run.log_metrics(lens_first_layer_top1_median=first, lens_final_p_correct=float(res.probs["correct"][-1].mean()))
    run.report.add_text(f"The correct capital first becomes the top-1 lens token at layer {first} (median over prompts).")


def _band(values: torch.Tensor):
    est = [bootstrap_ci(row.numpy(), n_boot=500) for row in values]
    return [e.mean for e in est], [e.ci_low for e in est], [e.ci_high for e in est]


def _first_layer_rank0(ranks: torch.Tensor) -> float:
    hit = (ranks == 0).int()
    first = torch.where(hit.any(0), hit.argmax(0), torch.full_like(hit[0], ranks.shape[0]))
    return float(first.float().median())


def patching_section(cfg: DemoConfig, model, run: Run, clean, corr, ans, corr_ans, usable) -> None:
    metric = logit_diff_metric(ans, corr_ans)
    res = run.cached(lambda: patch_heads(model, clean, corr, metric, tol=cfg.patching.tol),
                     step="demo.patch_heads", model=cfg.model.name, clean=clean.prompts, corr=corr.prompts, tol=cfg.patching.tol)  # fmt: skip
    rec = res.recovery[:, :, usable]
    mean = rec.nanmean(-1) if rec.shape[-1] else torch.full(rec.shape[:2], float("nan"))
    run.report.add_text(
        "## 3. Head patching\n\nDenoising: each head's output `z` at every position is copied from the clean run into "
        "the corrupted run; metric = logit(correct capital) - logit(other capital); recovery "
        "`(m_patched - m_corr)/(m_clean - m_corr)` (undefined when the gap is below "
        f"{cfg.patching.tol}: {int(res.undefined.sum())} pairs)."
    )
    run.save_figure(plots.layer_head_heatmap(mean.numpy(), f"Mean recovery per head ({int(usable.sum())} pairs)"),
                    "head_patching.png", "Head patching: mean recovery of the logit difference per (layer, head)")  # fmt: skip
    top = _top_heads(rec, cfg.patching.top_k_heads, cfg.patching.n_boot)
    run.report.add_table(["layer", "head", "mean recovery [95% CI]", "n"], top, caption="Heads with the largest mean recovery")
    run.log_metrics(head_recovery_mean=mean, top_heads=top, m_clean=res.m_clean, m_corr=res.m_corr)


def _top_heads(rec: torch.Tensor, k: int, n_boot: int) -> list[list]:
    mean = rec.nanmean(-1).nan_to_num(float("-inf"))
    order = mean.flatten().argsort(descending=True)[:k]
    rows = []
    for flat in order.tolist():
        layer, head = divmod(flat, rec.shape[1])
        est = bootstrap_ci(rec[layer, head].numpy(), n_boot=n_boot)
        rows.append([layer, head, f"{est.mean:.3f} [{est.ci_low:.3f}, {est.ci_high:.3f}]", est.n])
    return rows


if __name__ == "__main__":
    main("demo", DemoConfig, run)
