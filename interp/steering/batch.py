"""Many steered runs of one batch of prompts, each paying only for what the steering changes.

:class:`SteeringBatch` takes raw vectors (added to, or written over, the residual after a
layer at the last prompt token: CAA, function vectors, task vectors) or any fitted adapter
(ACE, LoReFT, LoReST, or a callable on residuals). :func:`mean_difference_vectors` and
:func:`last_token_residuals` build vectors from prompts.

    >>> sb = SteeringBatch(model, interp.tokenize(model, prompts, padding_side="left"), answer_ids)
    >>> with sb:                                       # optional: holds the fast weight layout
    ...     acc = sb.accuracy(12, alphas[:, None] * v)  # [vector batch]
    ...     ids = sb.generate(12, adapter, max_new_tokens=5)  # [1 batch new]
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Union

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from interp.data.tokenize import TokenBatch, read_positions, run_batch
from interp.engine import final_logits, linear_friendly_weights, prefix_cache, repeat_cache
from interp.function_vectors import check_answers, task_vectors
from interp.hooks import act_name, add_vector, capture, check_finite, check_layer, hooks

# raw vectors [n_vectors, d_model] (already scaled), or a fitted adapter / any callable that
# maps residuals [..., d_model] to steered residuals of the same shape
Steer = Union[Tensor, Callable[[Tensor], Tensor]]


@torch.no_grad()
def last_token_residuals(
    model: HookedTransformer, batch: TokenBatch, layers: Iterable[int], position=None
) -> Float[Tensor, "batch layer d_model"]:
    """Per prompt, the residual after each of ``layers`` at its last real token, or at
    ``position`` (:func:`interp.data.tokenize.read_positions`; ``-2``: the token before the last)
    (float, CPU)."""
    layers = [check_layer(model, layer) for layer in layers]
    names = [act_name("resid_post", layer) for layer in layers]
    with capture(model, names, positions=read_positions(batch, position)) as acts:
        run_batch(model, batch, stop_at_layer=max(layers) + 1)
    return torch.stack([acts[n][:, 0].float() for n in names], 1).cpu()


@torch.no_grad()
def mean_difference_vectors(
    model: HookedTransformer,
    positive: TokenBatch,
    negative: TokenBatch,
    layers: Iterable[int] | None = None,
    position=None,
) -> Float[Tensor, "layer d_model"]:
    """Per layer, the mean last-token residual after the layer over ``positive`` prompts minus
    the same over ``negative`` prompts (the two sets need not be paired; seed 000's
    mean-difference function vector: clean ICL minus shuffled-label ICL of the same template).
    ``position`` reads another token instead (:func:`interp.data.tokenize.read_positions`; e.g.
    ``-2`` for the answer letter of prompts that end "(A" / "(B" and a closing token, as
    steering-vectors' ``read_token_index``)."""
    vec = task_vectors(model, positive, layers, position) - task_vectors(model, negative, layers, position)
    check_finite(vec, "mean-difference vectors")
    return vec


def check_sampling(temperature: float, top_p: float) -> None:
    """Sampling settings: ``temperature >= 0`` (0: greedy) and ``0 < top_p <= 1``."""
    if not isinstance(temperature, (int, float)) or not temperature >= 0:
        raise ValueError(f"temperature={temperature!r}; expected a number >= 0 (0: greedy decoding)")
    if not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
        raise ValueError(f"top_p={top_p!r}; expected a number in (0, 1] (1: the full distribution)")


def next_tokens(
    logits: Float[Tensor, "batch d_vocab"], temperature: float, top_p: float, generator: torch.Generator
) -> Int[Tensor, " batch"]:
    """The argmax (``temperature == 0``) or a sample from ``softmax(logits / temperature)`` kept
    to the nucleus: the most likely tokens whose cumulative probability first reaches ``top_p``."""
    if temperature == 0:
        return logits.argmax(-1)
    probs = (logits.float() / temperature).softmax(-1)
    sorted_p, order = probs.sort(-1, descending=True)
    # drop a token when the tokens before it already reach top_p (the first token always stays)
    drop = sorted_p.cumsum(-1) - sorted_p >= top_p
    sorted_p = sorted_p.masked_fill(drop, 0.0)
    pick = torch.multinomial(sorted_p, 1, generator=generator)
    return order.gather(-1, pick)[:, 0]


class SteeringBatch:
    """Prompts prepared for many steered runs: one forward keeps the residual after every layer
    at the last token and the keys/values of every earlier position. Steering at the last token
    after layer ``l`` changes nothing before it, so each steered run only recomputes that one
    position through layers ``l+1 ..`` (left padding puts every prompt's last token in the same
    column). Same numbers as one hooked forward per vector
    (:func:`interp.function_vectors.steered_accuracy`).

    ``answer_ids`` (one id per prompt) is needed only for :meth:`accuracy` and
    :meth:`baseline_accuracy`. Every method keeps TransformerLens' per-forward weight copies
    away (:func:`interp.engine.linear_friendly_weights`); ``with sb:`` holds that layout across
    many calls instead of setting it up per call.
    """

    @torch.no_grad()  # without it autograd keeps every layer's activations of the batch (GBs)
    def __init__(
        self,
        model: HookedTransformer,
        batch: TokenBatch,
        answer_ids: Int[Tensor, " batch"] | None = None,
        max_rows: int = 256,
    ):
        if answer_ids is not None:
            check_answers(batch, answer_ids, model.cfg.d_vocab)
        if batch.padding_side != "left" and batch.is_padded:
            raise ValueError(
                "batch must be left-padded (tokenize(..., padding_side='left')) so every last token shares a column"
            )
        if max_rows < 1:
            raise ValueError(f"max_rows={max_rows}; must be >= 1")
        self.model, self.batch, self.max_rows = model, batch, max_rows
        self.answer_ids = None if answer_ids is None else answer_ids.cpu()
        self._held: contextlib.ExitStack | None = None
        n, width, dev = model.cfg.n_layers, batch.tokens.shape[1], model.cfg.device
        self.mask = batch.attention_mask.to(dev)
        with self._fast():
            # one pass over the batch: the prefix's keys/values, then the last column on top of
            # a growing copy of them, capturing the residual after every layer there
            self.prefix = prefix_cache(model, batch, width - 1) if width > 1 else None
            names = [act_name("resid_post", layer) for layer in range(n)]
            last = batch.tokens[:, -1:].to(dev)
            with capture(model, names) as acts:
                if self.prefix is None:
                    model(last, stop_at_layer=n)
                else:
                    ones = torch.ones(len(batch), 1, dtype=self.mask.dtype, device=dev)
                    model(
                        last,
                        stop_at_layer=n,
                        past_kv_cache=repeat_cache(self.prefix, 1, 0, frozen=False),
                        attention_mask=ones,
                    )
        self.last_resid = torch.stack(
            [acts[name][:, -1] for name in names]
        )  # [layer batch d_model], model dtype/device

    def __len__(self) -> int:
        return len(self.batch)

    def __enter__(self) -> "SteeringBatch":
        self._held = contextlib.ExitStack()
        self._held.enter_context(linear_friendly_weights(self.model))
        return self

    def __exit__(self, *exc) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.close()

    def _fast(self):
        # re-entrant: inside `with sb:` the weights are already swapped and nothing is copied
        return linear_friendly_weights(self.model)

    def _answers(self) -> Tensor:
        if self.answer_ids is None:
            raise ValueError("this SteeringBatch has no answer_ids; pass answer_ids= to score accuracy")
        return self.answer_ids

    @torch.no_grad()
    def baseline_predictions(self) -> Int[Tensor, " batch"]:
        """Unsteered top-1 token per prompt, from the cached final residual (no forward)."""
        return final_logits(self.model, self.last_resid[-1]).argmax(-1).cpu()

    def baseline_accuracy(self) -> Float[Tensor, " batch"]:
        """Unsteered top-1 correctness per prompt, from the cached final residual (no forward)."""
        return (self.baseline_predictions() == self._answers()).float()

    def _vectors(self, steer: Steer) -> Tensor | None:
        """``steer`` as checked vectors [n, d_model], or None for an adapter / callable."""
        if not isinstance(steer, Tensor):
            if not callable(steer):
                raise TypeError(
                    f"steer must be vectors [n_vectors, d_model] or a fitted adapter; got {type(steer).__name__}"
                )
            if getattr(steer, "fitted", True) is False:
                raise RuntimeError(f"{type(steer).__name__} is not fitted; call .fit(neg, pos) first")
            return None
        d = self.model.cfg.d_model
        if steer.ndim != 2 or steer.shape[1] != d or steer.shape[0] == 0:
            raise ValueError(f"vectors has shape {tuple(steer.shape)}; expected [n_vectors >= 1, d_model={d}]")
        check_finite(steer, "vectors")
        return steer

    def _edit(self, steer: Callable[[Tensor], Tensor], resid: Tensor) -> Tensor:
        """An adapter's edit of ``resid``, checked: same shape, finite (a NaN edit would turn into
        accuracy 0 with no error)."""
        out = steer(resid)
        if not isinstance(out, Tensor) or out.shape != resid.shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(
                f"{type(steer).__name__} returned {got} for a residual of shape {tuple(resid.shape)}; an adapter must "
                "keep the shape"
            )
        check_finite(out, f"the output of {type(steer).__name__}")
        return out

    def _check_columns(self, columns) -> Tensor | None:
        if columns is None:
            return None
        if not isinstance(columns, Tensor) or columns.ndim != 1 or columns.dtype.is_floating_point:
            raise ValueError(f"columns={columns!r}; expected a 1-d integer tensor of token ids")
        v = self.model.cfg.d_vocab
        if len(columns) and (int(columns.min()) < 0 or int(columns.max()) >= v):
            raise ValueError(f"columns holds ids outside 0..{v - 1}: {columns.tolist()[:8]}")
        return columns.to(self.last_resid.device)

    @torch.no_grad()
    def logits(
        self, layer: int, steer: Steer, mode: str = "add", columns: Int[Tensor, " k"] | None = None
    ) -> Float[Tensor, "vector batch k"]:
        """Final-position logits of every prompt with ``steer[v]`` added to (``mode="add"``) or
        written over (``"replace"``, task vectors) the residual after ``layer`` at the last
        token; row ``v`` for vector ``v``. An adapter replaces that residual by
        ``adapter(residual)`` (one row). ``columns``: only these token ids (the last axis
        follows their order), e.g. the two answer letters."""
        layer = check_layer(self.model, layer)
        if mode not in ("add", "replace"):
            raise ValueError(f"mode={mode!r}; allowed: ['add', 'replace']")
        vectors = self._vectors(steer)
        b = len(self.batch)
        cols = self._check_columns(columns)
        with self._fast():  # one weight-layout swap per call (none inside `with sb:`)
            if vectors is None:
                return self._finish(layer, self._edit(steer, self.last_resid[layer])[:, None], 1, cols)
            per = max(1, self.max_rows // b)  # vectors per stacked forward
            out = []
            for start in range(0, vectors.shape[0], per):
                vec = vectors[start : start + per].to(self.last_resid)
                c = vec.shape[0]
                x = vec.repeat_interleave(b, 0)
                x = (x if mode == "replace" else self.last_resid[layer].repeat(c, 1) + x)[:, None]  # [c*b 1 d_model]
                out.append(self._finish(layer, x, c, cols))
        return torch.cat(out)

    def _finish(self, layer: int, x: Tensor, copies: int, cols: Tensor | None) -> Tensor:
        """Run the steered last column ``x`` [copies*batch 1 d_model] from ``layer + 1`` to the
        logits (inside the caller's fast weight layout)."""
        model, n = self.model, self.model.cfg.n_layers
        if layer < n - 1:
            kv = repeat_cache(self.prefix, copies, layer + 1) if self.prefix is not None else None
            x = model(
                x,
                start_at_layer=layer + 1,
                stop_at_layer=n,
                attention_mask=self.mask.repeat(copies, 1),
                past_kv_cache=kv,
            )
        logits = final_logits(model, x[:, -1], cols)
        logits = logits if cols is None else logits[:, cols]
        return logits.float().cpu().view(copies, len(self.batch), -1)

    def predictions(self, layer: int, steer: Steer, mode: str = "add") -> Int[Tensor, "vector batch"]:
        """Top-1 token of every prompt under each vector (see :meth:`logits`)."""
        return self.logits(layer, steer, mode).argmax(-1)

    def accuracy(self, layer: int, steer: Steer, mode: str = "add") -> Float[Tensor, "vector batch"]:
        """Per (vector, prompt): 1 if the first answer token is the steered top-1."""
        return (self.predictions(layer, steer, mode) == self._answers()[None]).float()

    @torch.no_grad()
    def generate(
        self,
        layer: int,
        steer: Steer,
        max_new_tokens: int,
        steer_generated: bool = True,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
    ) -> Int[Tensor, "vector batch new"]:
        """Continuation of every prompt under each vector (or the one adapter): steering after
        ``layer`` at the last prompt token and (``steer_generated``) at every generated token —
        CAA's "all positions after the instruction". The prompt prefix's keys and values are
        computed once; each vector recomputes the last prompt token and then decodes with a
        growing cache. ``temperature=0`` decodes greedily; above 0 it samples from the softmax at
        that temperature, restricted to the smallest set of tokens whose probability reaches
        ``top_p`` (nucleus sampling), reproducibly under ``seed``."""
        layer = check_layer(self.model, layer)
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={max_new_tokens}; must be >= 1")
        check_sampling(temperature, top_p)
        gen = torch.Generator(device=self.model.cfg.device).manual_seed(seed)
        pick = lambda logits: next_tokens(logits, temperature, top_p, gen)  # noqa: E731
        vectors = self._vectors(steer)
        if self.prefix is None:
            raise ValueError("generate needs prompts of at least two tokens (a cached prefix)")
        n_ctx, width = self.model.cfg.n_ctx, self.batch.tokens.shape[1]
        if width + max_new_tokens - 1 > n_ctx:
            raise ValueError(
                f"max_new_tokens={max_new_tokens}: prompts of {width} positions plus the new tokens exceed the "
                f"model's context n_ctx={n_ctx}; at most {n_ctx - width + 1} new tokens fit"
            )
        hook = act_name("resid_post", layer)
        if vectors is None:

            def fn(act: Tensor, hook) -> Tensor:
                with torch.no_grad():
                    return self._edit(steer, act)

            ctx = hooks(self.model, [(hook, fn)]) if steer_generated else contextlib.nullcontext()
            return self._decode(layer, 1, lambda x: self._edit(steer, x), ctx, max_new_tokens, pick)
        b, per, out = len(self.batch), max(1, self.max_rows // len(self.batch)), []
        for start in range(0, vectors.shape[0], per):
            vec = vectors[start : start + per].to(self.last_resid)
            rows_vec = vec.repeat_interleave(b, 0)  # [c*b d_model]
            # one row per prompt, also while decoding one position at a time
            ctx = (
                add_vector(self.model, hook, rows_vec, layout="prompt") if steer_generated else contextlib.nullcontext()
            )
            out.append(self._decode(layer, vec.shape[0], lambda x: x + rows_vec[:, None], ctx, max_new_tokens, pick))
        return torch.cat(out)

    def _decode(
        self, layer: int, copies: int, steer: Callable[[Tensor], Tensor], ctx, max_new_tokens: int, pick: Callable
    ) -> Tensor:
        """Decoding (``pick``: argmax or a sample) of ``copies`` stacked copies of the batch: the last prompt token runs
        through layers 0..layer on the cached prefix, ``steer`` edits its residual there, the rest
        of the model finishes it; further tokens decode inside ``ctx`` (the hook, or none)."""
        model, n, b, dev = self.model, self.model.cfg.n_layers, len(self.batch), self.model.cfg.device
        cache = repeat_cache(self.prefix, copies, 0, frozen=False)
        last_tok = self.batch.tokens[:, -1:].to(dev).repeat(copies, 1)
        ones = torch.ones(copies * b, 1, dtype=self.mask.dtype, device=dev)
        with self._fast():
            # the last prompt token through layers 0..layer (unsteered there; appends its keys/values)
            x = model(last_tok, stop_at_layer=layer + 1, past_kv_cache=cache, attention_mask=ones)
            x = steer(x)
            if layer < n - 1:
                x = model(
                    x,
                    start_at_layer=layer + 1,
                    stop_at_layer=n,
                    attention_mask=self.mask.repeat(copies, 1),
                    past_kv_cache=cache,
                )
            nxt = pick(final_logits(model, x[:, -1]))
            steps = [nxt]
            with ctx:
                for _ in range(max_new_tokens - 1):
                    x = model(nxt[:, None], stop_at_layer=n, past_kv_cache=cache, attention_mask=ones)
                    nxt = pick(final_logits(model, x[:, -1]))
                    steps.append(nxt)
        return torch.stack(steps, 1).cpu().view(copies, b, -1)
