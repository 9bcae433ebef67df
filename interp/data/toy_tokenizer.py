"""A small deterministic byte-level BPE tokenizer for the random test models.

Trained in-process on words from the shipped function-vector tasks, so common English words
are one token (as with real tokenizers) while rare words split — which the tests need.
"""

from __future__ import annotations

import functools
import json
import os

from interp.data.datasets_io import dataset_path

_TASKS = ("antonym", "country-capital", "present-past", "capitalize", "singular-plural")
_EXTRA = "The capital of France is Paris. The opposite of hot is cold. When Mary and John went to the store"
VOCAB_SIZE = 3000


def _corpus() -> list[str]:
    lines = [_EXTRA]
    for task in _TASKS:
        pairs = json.loads(dataset_path("function_vectors", f"{task}.json").read_text())
        # leading spaces: words mid-sentence are what prompts and targets use
        lines.extend(f" {p['input']} {p['output']}" for p in pairs[:2000])
    return lines


@functools.lru_cache(maxsize=1)
def _tokenizer_json() -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=["<|bos|>", "<|eos|>", "<|pad|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return tok.to_str()


def toy_tokenizer():
    """A ``PreTrainedTokenizerFast`` (bos/eos/pad set, right padding).

    It is saved to and loaded from the cache dir because TransformerLens re-loads tokenizers
    by their ``name_or_path`` to build a BOS-prepending twin.
    """
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from interp.cache import cache_dir

    path = cache_dir() / "tokenizers" / f"toy-bpe-{VOCAB_SIZE}-v2"
    if not (path / "tokenizer.json").exists():
        tok = PreTrainedTokenizerFast(
            tokenizer_object=Tokenizer.from_str(_tokenizer_json()),
            bos_token="<|bos|>", eos_token="<|eos|>", pad_token="<|pad|>", padding_side="right",
        )  # fmt: skip
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tok.save_pretrained(str(tmp))
        tmp.replace(path) if not path.exists() else None
    return AutoTokenizer.from_pretrained(str(path))
