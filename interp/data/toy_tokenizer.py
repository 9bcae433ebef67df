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
    for path in _corpus_files():
        pairs = json.loads(path.read_text())
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


def _corpus_files() -> list:
    return [dataset_path("function_vectors", f"{task}.json") for task in _TASKS]


def _key() -> str:
    """Derived from what the tokenizer is trained on (the corpus files' content and the code of
    this module), never a hand-bumped version: edit a task file and a new tokenizer is built."""
    from interp.cache import code_fingerprint, data_digest

    return f"{data_digest(_corpus_files())[:12]}-{code_fingerprint([__name__])[:8]}"


def _sound(folder) -> bool:
    """The saved tokenizer's files match the hashes recorded when they were written (else warn)."""
    import warnings

    from interp.cache import first_damaged, folder_files

    reason = first_damaged(folder_files(folder))
    if reason is not None:
        warnings.warn(f"cached toy tokenizer {folder} is unusable ({reason}); rebuilding", RuntimeWarning)
    return reason is None


def tokenizer_dir():
    """The folder holding the saved toy tokenizer (built on first use). Under the cache dir when
    it is writable; otherwise a private temp folder (a read-only cache still works)."""
    import tempfile
    from pathlib import Path

    from interp.cache import cache_dir, folder_files, write_checksums

    path = cache_dir() / "tokenizers" / f"toy-bpe-{VOCAB_SIZE}-{_key()}"
    if (path / "tokenizer.json").exists():
        if _sound(path):
            return path
        import shutil

        shutil.rmtree(path, ignore_errors=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    except OSError:  # read-only cache: build it where we may write
        return _private_dir(path.name)
    _build().save_pretrained(str(tmp))
    write_checksums(folder_files(tmp))  # recorded when written: an altered tokenizer is rebuilt, never used
    try:
        os.replace(tmp, path)
    except OSError:  # another process won the race: theirs is the same tokenizer
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _build():
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tokenizer_json()),
        bos_token="<|bos|>",
        eos_token="<|eos|>",
        pad_token="<|pad|>",
        padding_side="right",
    )


@functools.lru_cache(maxsize=None)
def _private_dir(name: str):
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp(prefix="interp-")) / name
    _build().save_pretrained(str(path))
    return path


def toy_tokenizer():
    """A ``PreTrainedTokenizerFast`` (bos/eos/pad set, right padding).

    It is saved to and loaded from the cache dir because TransformerLens re-loads tokenizers
    by their ``name_or_path`` to build a BOS-prepending twin.
    """
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir()))
