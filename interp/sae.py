"""Sparse autoencoders in SAE Lens' format: train them on a real model's activations, save and
load them, measure their quality, and pick the features the prompt-pairs study scores.

No pretrained SAE is reachable offline, so :func:`get_sae` trains one (SAE Lens' TopK SAE and
its ``SAETrainer``, fed from activations we collect) and caches it as an SAE Lens folder
(``cfg.json`` + ``sae_weights.safetensors``). The same function takes ``release/sae_id`` of an
SAE Lens pretrained release and then goes through ``SAE.from_pretrained``; everything
downstream sees an ``sae_lens.SAE`` either way.

    >>> sae, quality = get_sae(model, "smollm2-135m-instruct", SAETrainConfig(layer=15))
    >>> codes = sae.encode(resid)                      # [..., d_sae]
    >>> target = features_active_on_all(codes_pos)     # seed 002's target features

Training text (:func:`corpus_texts`): the project's own datasets (FACTOR news and expert
passages, TruthfulQA questions with their answers, the CAA questions) plus text the model
writes itself from prompts cut out of the same datasets, so the SAE sees the model's own
distribution too. The number of tokens of each kind is recorded in the quality report.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from interp.cache import first_damaged, folder_files, write_checksums
from interp.hooks import hook_name

QUALITY_FILE = "interp_quality.json"


@dataclass
class SAETrainConfig:
    """How an SAE is trained with SAE Lens: hook and layer, width (``expansion`` × d_model), TopK's k, the
    training tokens (and their generated share), context, epochs and batch size."""

    layer: int
    hook: str = "resid_post"
    expansion: int = 8  # d_sae = expansion × d_model
    k: int = 32  # TopK: active features per token
    n_tokens: int = 200_000  # training tokens (activations), dataset + generated text
    generated_share: float = 0.05  # share of the tokens from model-generated text (sampling on CPU is slow)
    context: int = 128  # tokens per training sequence
    epochs: int = 2  # passes over the collected activations
    batch_size: int = 1024
    lr: float = 4e-4
    eval_tokens: int = 8_192  # held-out tokens for the quality report
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("expansion", "k", "n_tokens", "context", "epochs", "batch_size", "eval_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}; must be ≥ 1")
        if not 0 <= self.generated_share < 1:
            raise ValueError(f"generated_share={self.generated_share}; must be in [0, 1)")
        if self.lr <= 0:
            raise ValueError(f"lr={self.lr}; must be > 0")


# ---------------------------------------------------------------- text


def corpus_texts(seed: int = 0) -> list[str]:
    """The project's datasets as plain text passages, shuffled with ``seed``."""
    from interp.data.datasets_io import CAA_BEHAVIORS, load_caa, load_factor, load_truthfulqa_mc

    texts = [f"{it.prefix}{it.completion}" for split in ("news", "expert") for it in load_factor(split)]
    for q in load_truthfulqa_mc("v1"):
        best = next(a for a, ok in q.mc1_targets.items() if ok)
        texts.append(f"Q: {q.question}\nA: {best}")
    for b in CAA_BEHAVIORS:
        texts += [it["question"] for it in load_caa(b, "generate")]
    random.Random(seed).shuffle(texts)
    return texts


@torch.no_grad()
def generated_texts(
    model: HookedTransformer, prompts: list[str], max_new_tokens: int = 96, batch: int = 32, seed: int = 0
) -> list[str]:
    """The model's own sampled continuations (temperature 1) of ``prompts``, prompt included."""
    from interp.progress import progress as tqdm

    out: list[str] = []
    torch.manual_seed(seed)
    for i in tqdm(range(0, len(prompts), batch), desc="generating SAE text", leave=False):
        chunk = prompts[i : i + batch]
        toks = model.to_tokens(chunk, padding_side="left")
        gen = model.generate(
            toks,
            max_new_tokens=max_new_tokens,
            do_sample=True,
            temperature=1.0,
            verbose=False,
            padding_side="left",
            stop_at_eos=False,
        )
        out += [model.tokenizer.decode(g, skip_special_tokens=True) for g in gen]
    return out


def _token_rows(model: HookedTransformer, texts: list[str], context: int, n_tokens: int) -> tuple[Tensor, int]:
    """Texts tokenized and packed (separated by EOS) into rows of ``context`` tokens, each row
    starting with BOS; rows until ``n_tokens`` non-BOS tokens. Returns rows and token count."""
    tok = model.tokenizer
    sep = tok.eos_token_id if tok.eos_token_id is not None else tok.bos_token_id
    bos = tok.bos_token_id if tok.bos_token_id is not None else sep
    stream: list[int] = []
    rows: list[list[int]] = []
    per_row = context - 1
    for t in texts:
        stream += tok.encode(t, add_special_tokens=False) + [sep]
        while len(stream) >= per_row:
            rows.append([bos] + stream[:per_row])
            stream = stream[per_row:]
            if len(rows) * per_row >= n_tokens:
                return torch.tensor(rows), len(rows) * per_row
    if not rows:
        raise ValueError(f"texts give fewer than context - 1 = {per_row} tokens; nothing to train on")
    return torch.tensor(rows), len(rows) * per_row


@torch.no_grad()
def collect_activations(
    model: HookedTransformer, rows: Tensor, hook: str, layer: int, batch: int = 16
) -> Float[Tensor, "n d"]:
    """Activations at ``(hook, layer)`` for every non-BOS position of ``rows`` (BOS's norm is
    an outlier that would dominate the SAE's loss), running each batch only up to the layer."""
    from interp.progress import progress as tqdm

    name = hook_name(model, (hook, layer))
    out = []
    for i in tqdm(range(0, len(rows), batch), desc=f"activations L{layer}", leave=False):
        _, cache = model.run_with_cache(
            rows[i : i + batch].to(model.cfg.device), names_filter=name, stop_at_layer=layer + 1
        )
        out.append(cache[name][:, 1:].reshape(-1, model.cfg.d_model).float().cpu())
    acts = torch.cat(out)
    if not torch.isfinite(acts).all():
        raise ValueError(f"activations at {name} contain NaN/inf ({int((~torch.isfinite(acts)).sum())} entries)")
    return acts


# ---------------------------------------------------------------- training


def _batches(acts: Tensor, batch_size: int, seed: int) -> Iterator[Tensor]:
    """Shuffled minibatches, reshuffled every epoch, forever (SAE Lens' DataProvider)."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(len(acts), generator=gen)
        for i in range(0, len(acts) - batch_size + 1, batch_size):
            yield acts[perm[i : i + batch_size]]


def train_sae(acts: Float[Tensor, "n d"], cfg: SAETrainConfig, metadata: dict | None = None):
    """A TopK SAE (SAE Lens ``TopKTrainingSAE`` + ``SAETrainer``) on ``acts``; returns the
    inference ``sae_lens.SAE``. The input norm scaling SAE Lens estimates is folded back into the
    weights, so the returned SAE takes raw activations."""
    from sae_lens import SAE
    from sae_lens.config import SAETrainerConfig
    from sae_lens.saes.sae import SAEMetadata
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.training.sae_trainer import SAETrainer

    n, d = acts.shape
    if n < cfg.batch_size:
        raise ValueError(f"{n} activations are fewer than batch_size={cfg.batch_size}")
    if cfg.k > cfg.expansion * d:
        raise ValueError(f"k={cfg.k} exceeds d_sae={cfg.expansion * d}")
    torch.manual_seed(cfg.seed)
    sae_cfg = TopKTrainingSAEConfig(
        d_in=d,
        d_sae=cfg.expansion * d,
        k=cfg.k,
        normalize_activations="expected_average_only_in",
        metadata=SAEMetadata(**(metadata or {})),
    )
    training = TopKTrainingSAE(sae_cfg)
    # the decoder bias starts at the data mean (the usual geometric-median init, cheaper)
    with torch.no_grad():
        training.b_dec.copy_(acts[: min(n, 50_000)].mean(0) / _scale(acts))
    total = cfg.epochs * (n // cfg.batch_size) * cfg.batch_size
    trainer_cfg = SAETrainerConfig(
        total_training_samples=total,
        train_batch_size_samples=cfg.batch_size,
        lr=cfg.lr,
        lr_end=cfg.lr / 10,
        lr_scheduler_name="constant",
        lr_decay_steps=max(1, total // cfg.batch_size // 5),
        dead_feature_window=max(1, n // cfg.batch_size // 2),
        feature_sampling_window=10**9,
        n_batches_for_norm_estimate=min(50, n // cfg.batch_size),
    )
    trainer = SAETrainer(trainer_cfg, training, _batches(acts, cfg.batch_size, cfg.seed))
    trained = trainer.fit()
    with _tmpdir() as tmp:
        trained.save_inference_model(tmp)
        return SAE.load_from_disk(tmp)


def _scale(acts: Tensor) -> float:
    """SAE Lens' ``expected_average_only_in`` factor: √d / mean ‖a‖ (estimated the same way)."""
    return float(acts[: min(len(acts), 50_000)].norm(dim=-1).mean() / math.sqrt(acts.shape[1]))


class _tmpdir:
    def __enter__(self) -> Path:
        import tempfile

        self._d = tempfile.TemporaryDirectory()
        return Path(self._d.name)

    def __exit__(self, *exc) -> None:
        self._d.cleanup()


# ---------------------------------------------------------------- quality


@torch.no_grad()
def sae_quality(sae, acts: Float[Tensor, "n d"], batch: int = 4096) -> dict:
    """Explained variance ``1 − Σ‖a − â‖² / Σ‖a − ā‖²``, mean L0 (active features per token),
    the share of dead features (never active on ``acts``) and the relative reconstruction
    error, on held-out activations."""
    if len(acts) == 0:
        raise ValueError("acts is empty; quality needs held-out activations")
    sse = sst = l0 = 0.0
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    mean = acts.mean(0)
    for i in range(0, len(acts), batch):
        a = acts[i : i + batch].to(sae.W_enc)
        codes = sae.encode(a)
        rec = sae.decode(codes)
        sse += float((a - rec).pow(2).sum())
        sst += float((a - mean.to(a)).pow(2).sum())
        active = codes > 0
        l0 += float(active.sum())
        fired |= active.any(0).cpu()
    return {
        "explained_variance": 1 - sse / sst,
        "l0": l0 / len(acts),
        "dead_share": float((~fired).float().mean()),
        "n_eval_tokens": len(acts),
        "d_sae": sae.cfg.d_sae,
    }


@torch.no_grad()
def spliced_loss(model: HookedTransformer, sae, rows: Tensor, hook: str, layer: int, batch: int = 8) -> dict:
    """Next-token loss with the activation replaced by the SAE's reconstruction, next to the
    clean loss and the zero-ablation loss; ``loss_recovered = (zero − spliced) / (zero − clean)``."""
    name = hook_name(model, (hook, layer))
    totals = {"clean": 0.0, "spliced": 0.0, "zero": 0.0}
    n = 0

    def splice(act, hook):
        out = sae.decode(sae.encode(act.float())).to(act.dtype)
        out[:, 0] = act[:, 0]  # BOS stays: the SAE never saw it
        return out

    def zero(act, hook):
        out = torch.zeros_like(act)
        out[:, 0] = act[:, 0]
        return out

    for i in range(0, len(rows), batch):
        toks = rows[i : i + batch].to(model.cfg.device)
        totals["clean"] += float(model(toks, return_type="loss", loss_per_token=True)[:, 1:].sum())
        for key, fn in (("spliced", splice), ("zero", zero)):
            totals[key] += float(
                model.run_with_hooks(toks, return_type="loss", loss_per_token=True, fwd_hooks=[(name, fn)])[:, 1:].sum()
            )
        n += toks.shape[0] * (toks.shape[1] - 2)
    loss = {k: v / n for k, v in totals.items()}
    gap = loss["zero"] - loss["clean"]
    loss["loss_recovered"] = (loss["zero"] - loss["spliced"]) / gap if gap > 1e-6 else float("nan")
    return loss


# ---------------------------------------------------------------- cache / load


def sae_dir(model_name: str, cfg: SAETrainConfig, root: Path | None = None) -> Path:
    """The cache folder of the SAE trained with ``cfg`` on ``model_name``. Its name is derived from
    everything the SAE depends on: the model's identity (converted weights' checksum), every
    field of ``cfg``, the training corpus files and the code of this module (and what it
    imports) — never a hand-bumped version."""
    from interp.cache import cache_dir, cache_key, code_fingerprint, data_digest
    from interp.data.datasets_io import data_dir
    from interp.models import model_identity

    corpus = data_digest([data_dir("factor"), data_dir("truthfulqa"), data_dir("caa")])
    key = cache_key(model=model_identity(model_name), cfg=cfg, corpus=corpus, code=code_fingerprint([__name__]))[:16]
    return (root or cache_dir()) / "saes" / f"{model_name.replace('/', '__')}-{cfg.hook}-L{cfg.layer}-{key}"


def load_sae(spec: str, device: str = "cpu"):
    """An ``sae_lens.SAE`` from a local SAE Lens folder (``cfg.json`` + weights) or, for
    ``release/sae_id`` / ``release:sae_id`` that is not a folder, from SAE Lens' pretrained
    registry (``SAE.from_pretrained``, needs the hub)."""
    from sae_lens import SAE

    path = Path(spec)
    if path.is_dir():
        if not (path / "cfg.json").exists():
            raise FileNotFoundError(f"sae={spec!r} is a folder without cfg.json; not an SAE Lens SAE")
        return SAE.load_from_disk(path, device=device)
    release, sep, sae_id = spec.partition(":") if ":" in spec else spec.partition("/")
    if not sep or not sae_id:
        raise ValueError(f"sae={spec!r}; give an SAE Lens folder or 'release:sae_id' of a pretrained release")
    return SAE.from_pretrained(release, sae_id, device=device)


def _training_rows(model: HookedTransformer, cfg: SAETrainConfig) -> tuple[Tensor, Tensor, int, int]:
    """(train rows, held-out eval rows, dataset tokens, generated tokens): dataset text plus
    ``generated_share`` of model-written text (96 sampled tokens after short dataset prompts)."""
    texts = corpus_texts(cfg.seed)
    eval_rows, _ = _token_rows(model, texts[-2000:], cfg.context, cfg.eval_tokens)  # held-out tail of the corpus
    n_gen = int(cfg.n_tokens * cfg.generated_share)
    rows_data, tok_data = _token_rows(model, texts[:-2000], cfg.context, cfg.n_tokens - n_gen)
    parts, tok_gen = [rows_data], 0
    if n_gen:
        rng = random.Random(cfg.seed + 1)
        n_prompts = n_gen // 90 + 2  # each text adds ≈ 96 generated tokens plus its short prompt
        prompts = [" ".join(t.split()[: rng.randint(4, 16)]) for t in rng.sample(texts[:-2000], n_prompts)]
        rows_gen, tok_gen = _token_rows(model, generated_texts(model, prompts, seed=cfg.seed), cfg.context, n_gen)
        parts.append(rows_gen)
    return torch.cat(parts), eval_rows, tok_data, tok_gen


def _train_at_site(model: HookedTransformer, model_name: str, cfg: SAETrainConfig) -> tuple[object, dict]:
    """Train the SAE on the model's activations at ``(cfg.hook, cfg.layer)``; (SAE, quality report)."""
    import time

    start = time.time()
    rows, eval_rows, tok_data, tok_gen = _training_rows(model, cfg)
    n_eval_rows = -(-cfg.eval_tokens // (cfg.context - 1))
    acts = collect_activations(model, rows, cfg.hook, cfg.layer)
    eval_acts = collect_activations(model, eval_rows[:n_eval_rows], cfg.hook, cfg.layer)
    meta = {
        "model_name": model_name,
        "hook_name": hook_name(model, (cfg.hook, cfg.layer)),
        "context_size": cfg.context,
        "prepend_bos": True,
    }
    sae = train_sae(acts, cfg, meta)
    quality = sae_quality(sae, eval_acts)
    quality.update(spliced_loss(model, sae, eval_rows[: min(len(eval_rows), 16)], cfg.hook, cfg.layer))
    quality.update(
        {
            "train_tokens_dataset": tok_data,
            "train_tokens_generated": tok_gen,
            "epochs": cfg.epochs,
            "train_seconds": round(time.time() - start, 1),
            "config": asdict(cfg),
            "source": "trained",
        }
    )
    return sae, quality


def get_sae(
    model: HookedTransformer,
    model_name: str,
    cfg: SAETrainConfig,
    pretrained: str | None = None,
    root: Path | None = None,
) -> tuple[object, dict]:
    """The SAE for ``model`` at ``(cfg.hook, cfg.layer)`` and its quality report.

    ``pretrained`` (an SAE Lens release ``release:sae_id`` or a folder) is loaded as is. Otherwise
    the SAE trained with ``cfg`` is loaded from the cache, or trained and cached: activations of
    ``cfg.n_tokens`` tokens (dataset text, and ``generated_share`` of model-written text: 96
    sampled tokens after each of enough short dataset prompts), ``cfg.epochs`` passes, quality on
    ``cfg.eval_tokens`` held-out
    dataset tokens. A finished SAE is written atomically (a folder renamed into place)."""
    if not 0 <= cfg.layer < model.cfg.n_layers:
        raise ValueError(
            f"layer={cfg.layer} is out of range for a {model.cfg.n_layers}-layer model (0…{model.cfg.n_layers - 1})"
        )
    if pretrained is not None:
        sae = load_sae(pretrained, device=str(model.cfg.device))
        if sae.cfg.d_in != model.cfg.d_model:
            raise ValueError(f"sae={pretrained!r} has d_in={sae.cfg.d_in}; the model's d_model is {model.cfg.d_model}")
        return sae, {"source": pretrained}
    out = sae_dir(model_name, cfg, root)
    if (out / QUALITY_FILE).exists():
        reason = first_damaged(folder_files(out))
        if reason is None:
            return load_sae(str(out)), json.loads((out / QUALITY_FILE).read_text())
        import shutil
        import warnings

        warnings.warn(f"cached SAE {out} is unusable: {reason}; removed, retraining", RuntimeWarning, stacklevel=2)
        shutil.rmtree(out, ignore_errors=True)
    sae, quality = _train_at_site(model, model_name, cfg)
    tmp = out.with_name(out.name + ".partial")
    sae.save_model(tmp)
    (tmp / QUALITY_FILE).write_text(json.dumps(quality, indent=1))
    write_checksums(folder_files(tmp))  # recorded when written: flipped bits are retrained, never loaded
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    return sae, quality


# ---------------------------------------------------------------- feature selection (seed 002)


def features_active_on_all(codes: Float[Tensor, "n f"], threshold: float = 0.0, min_share: float = 1.0) -> Tensor:
    """Indices of features active (> ``threshold``) on every row: seed 002's target features,
    computed on the positive examples. ``min_share`` < 1 relaxes "every" to that share of rows."""
    if codes.ndim != 2 or codes.shape[0] == 0:
        raise ValueError(f"codes must be [n ≥ 1, d_sae]; got shape {tuple(codes.shape)}")
    if not 0 < min_share <= 1:
        raise ValueError(f"min_share={min_share}; must be in (0, 1]")
    if min_share == 1:
        return torch.nonzero((codes > threshold).all(0)).flatten()
    return torch.nonzero((codes > threshold).float().mean(0) >= min_share - 1e-9).flatten()


def features_inactive_on_all(*codes: Tensor, n: int | None = None, seed: int = 0, threshold: float = 0.0) -> Tensor:
    """Features never active on any row of any of ``codes`` (seed 002's test features: inactive
    on both the positive and the negative examples); a seeded random ``n`` of them if given."""
    if not codes or any(c.ndim != 2 or c.shape[0] == 0 for c in codes):
        raise ValueError("codes must be one or more non-empty [n, d_sae] tensors")
    silent = ~torch.stack([(c > threshold).any(0) for c in codes]).any(0)
    idx = torch.nonzero(silent).flatten()
    if n is not None and len(idx) > n:
        idx = idx[torch.randperm(len(idx), generator=torch.Generator().manual_seed(seed))[:n]].sort().values
    return idx
