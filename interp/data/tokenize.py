"""Batch tokenisation with padding and per-prompt positions, and single-token checks.

Example:
    >>> batch = tokenize(model, ["The capital of France is", "Hi"], padding_side="left")
    >>> batch.tokens.shape, batch.last_index  # last real token of each prompt
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Int
from torch import Tensor
from transformer_lens import HookedTransformer


@dataclass
class TokenBatch:
    """Padded prompts. ``last_index[b]`` is the position of prompt b's last real token, which
    is what :mod:`interp.hooks` takes as per-prompt ``positions``."""

    tokens: Int[Tensor, "batch pos"]
    attention_mask: Int[Tensor, "batch pos"]
    last_index: Int[Tensor, " batch"]
    padding_side: str
    prompts: list[str]

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def to(self, device) -> "TokenBatch":
        return TokenBatch(
            self.tokens.to(device),
            self.attention_mask.to(device),
            self.last_index.to(device),
            self.padding_side,
            self.prompts,
        )

    @property
    def is_padded(self) -> bool:
        return bool((self.attention_mask == 0).any())

    @property
    def shape(self):
        # model(batch) reads input.shape first; say what to call instead of an AttributeError
        raise TypeError(
            "a TokenBatch is not a token tensor: forward it with interp.run_batch(model, batch) (it passes the "
            "attention mask, so padding is handled) or interp.run_with_cache(model, batch, names); "
            "batch.tokens is the raw [batch, pos] tensor"
        )


def _pad_id(model: HookedTransformer) -> int:
    tok = model.tokenizer
    if tok.pad_token_id is not None:
        return tok.pad_token_id
    return tok.eos_token_id if tok.eos_token_id is not None else 0


def tokenize(
    model: HookedTransformer,
    prompts: Sequence[str],
    padding_side: str = "right",  # "left" or "right"; checked below with a clear error
    prepend_bos: bool | None = None,
) -> TokenBatch:
    """Tokenise ``prompts`` one by one (so pads never get confused with BOS) and pad them.

    ``prepend_bos=None`` uses the model's default (False for the SmolLM2 chat model, True for
    Gemma and the random models).
    """
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of strings, got a single str; wrap it in a list")
    if not isinstance(prompts, Sequence):
        raise TypeError(f"prompts={prompts!r:.60}; expected a list of strings")
    bad = [i for i, p in enumerate(prompts) if not isinstance(p, str)]
    if bad:
        raise TypeError(
            f"prompts[{bad[0]}]={prompts[bad[0]]!r:.60} is a {type(prompts[bad[0]]).__name__}; every prompt must be a "
            "str"
        )
    if len(prompts) == 0:
        raise ValueError("prompts is empty; expected at least one prompt")
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side={padding_side!r}; allowed: 'left', 'right'")
    if model.tokenizer is None:
        raise ValueError("model has no tokenizer; pass token tensors to it directly")
    rows = [model.to_tokens(p, prepend_bos=prepend_bos, truncate=False)[0].cpu() for p in prompts]
    n_ctx = model.cfg.n_ctx
    too_long = [i for i, r in enumerate(rows) if len(r) > n_ctx]
    if too_long:
        i = too_long[0]
        raise ValueError(
            f"prompts[{i}] is {len(rows[i])} tokens; the model's context is n_ctx={n_ctx} "
            f"({len(too_long)} prompt(s) too long). Shorten or leave out such prompts."
        )
    return pad_token_rows(rows, _pad_id(model), padding_side, list(prompts))


def pad_token_rows(
    rows: Sequence[Tensor],
    pad_id: int,
    padding_side: str,
    prompts: list[str],  # rows: 1-D, lengths differ
) -> TokenBatch:
    """Stack 1-D token rows into a padded batch with attention mask and last-token index."""
    lengths = torch.tensor([len(r) for r in rows])
    if (lengths == 0).any():
        bad = int((lengths == 0).nonzero()[0, 0])
        raise ValueError(f"prompts[{bad}]={prompts[bad]!r} tokenises to zero tokens")
    width = int(lengths.max())
    tokens = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, row in enumerate(rows):
        start = 0 if padding_side == "right" else width - len(row)
        tokens[b, start : start + len(row)] = row
        mask[b, start : start + len(row)] = 1
    last = lengths - 1 if padding_side == "right" else torch.full_like(lengths, width - 1)
    return TokenBatch(tokens, mask, last, padding_side, prompts)


def read_positions(batch: TokenBatch, position: int | Tensor | None) -> Int[Tensor, " batch"]:
    """One read position per prompt (the logit lens, vector extraction): ``None`` -> each prompt's last real token; an
    int ``p >= 0`` -> position ``p`` in every prompt; ``p < 0`` -> counted back from each prompt's
    last real token (``-1`` = last, padding-aware); a tensor ``[batch]`` -> one per prompt."""
    last = batch.last_index
    if position is None:
        return last
    if isinstance(position, Tensor):
        if position.shape != (len(batch),):
            raise ValueError(f"position has shape {tuple(position.shape)}; expected one per prompt: ({len(batch)},)")
        pos = position.long()
    elif isinstance(position, int) and not isinstance(position, bool):
        pos = last + 1 + position if position < 0 else torch.full_like(last, position)
    else:
        raise TypeError(f"position={position!r}; expected None, an int or a [batch] tensor of positions")
    real = batch.attention_mask.bool()
    for b, p in enumerate(pos.tolist()):
        if not 0 <= p < real.shape[1] or not real[b, p]:
            raise ValueError(
                f"position={position!r} reads position {p} of prompt {b}, which is not a real token "
                f"(its real tokens: {real[b].nonzero()[:, 0].tolist()})"
            )
    return pos


def run_batch(model: HookedTransformer, batch: TokenBatch, **kwargs) -> Tensor:
    """Forward a padded batch with its attention mask (TL then also shifts rotary positions of
    left-padded rows), returning logits ``[batch pos d_vocab]``."""
    if batch.is_padded:
        kwargs.setdefault("attention_mask", batch.attention_mask.to(model.cfg.device))
    return model(batch.tokens.to(model.cfg.device), **kwargs)


def single_token_id(model: HookedTransformer, word: str, argument: str = "target") -> int:
    """The id of ``word`` if it is exactly one token for this model, else a ValueError that
    shows how it splits. Mind the leading space: ``" Paris"`` and ``"Paris"`` differ."""
    ids = model.tokenizer.encode(word, add_special_tokens=False)
    if len(ids) != 1:
        pieces = [model.tokenizer.decode([i]) for i in ids]
        raise ValueError(
            f"{argument}={word!r} is {len(ids)} tokens for this model, not one: {pieces} "
            f"(ids {ids}). Use a word that is a single token (often with a leading space)."
        )
    return ids[0]


def single_token_ids(model: HookedTransformer, words: Sequence[str], argument: str = "targets") -> Int[Tensor, " n"]:
    """The ids of ``words``, each required to be exactly one token (see :func:`single_token_id`); ``argument`` names
    them in errors."""
    if len(words) == 0:
        raise ValueError(f"{argument} is empty; expected at least one word")
    return torch.tensor([single_token_id(model, w, f"{argument}[{i}]") for i, w in enumerate(words)])
