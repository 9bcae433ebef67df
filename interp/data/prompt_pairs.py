"""Prompt-pair datasets for seed 002's §3.2 environment, written for this project.

Each dataset is a set of templates with a ``<context>`` slot and a final single-word
``<target>``, a list of contexts, and target pairs ``(positive, negative)`` in opposition. A pair
is two prompts with the same template and context whose last words are the two targets, e.g.

    Everyone thought the dancer would lose. In the end they won   (positive)
    Everyone thought the dancer would lose. In the end they lost  (negative)

Steering goes from the negative target to the positive one. Every dataset has 8 templates ×
20 contexts × 8 target pairs = 1280 pairs, enough for 1024 fitting pairs plus 100 held out.
Targets are meant to be one token with a leading space; :func:`check_single_token` verifies
that for a given tokenizer (the study refuses multi-token targets).
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class PromptPair:
    """One prompt pair of the prompt-pairs datasets: the shared prefix and the negative / positive target words."""

    dataset: str
    template: int
    prefix: str  # the prompt up to (not including) the target word
    positive: str  # target words, without the leading space
    negative: str

    @property
    def pos_text(self) -> str:
        return f"{self.prefix} {self.positive}"

    @property
    def neg_text(self) -> str:
        return f"{self.prefix} {self.negative}"


DATASETS: dict[str, dict[str, list]] = {
    "sentiment": {
        "templates": [
            "I finally tried <context> last week, and honestly it was <target>",
            "My friends asked me about <context>. I told them it was <target>",
            "After a whole evening at <context>, I would describe it as <target>",
            "In one word, <context> was <target>",
            "Everyone has been talking about <context>, and I found it <target>",
            "Looking back on <context>, the experience was <target>",
            "We went to <context> on Saturday. It was <target>",
            "If you ask me, <context> is simply <target>",
        ],
        "contexts": [
            "the new pizza place",
            "the museum exhibit",
            "the hotel downtown",
            "the concert",
            "the cooking class",
            "the train journey",
            "the cinema",
            "the book club",
            "the yoga retreat",
            "the coffee shop",
            "the art gallery",
            "the theme park",
            "the online course",
            "the hiking trail",
            "the theatre",
            "the restaurant",
            "the night market",
            "the road trip",
            "the wedding",
            "the spa",
        ],
        "targets": [
            ("great", "terrible"),
            ("wonderful", "awful"),
            ("amazing", "boring"),
            ("excellent", "horrible"),
            ("fantastic", "disappointing"),
            ("perfect", "bad"),
            ("lovely", "miserable"),
            ("beautiful", "ugly"),
        ],
    },
    "outcome": {
        "templates": [
            "Everyone thought <context> would lose. In the end they <target>",
            "Nobody expected much from <context>, but in the final they <target>",
            "After months of training, <context> finally competed and <target>",
            "The crowd held its breath as <context> <target>",
            "On the last day of the tournament, <context> <target>",
            "It came down to the final minute, and <context> <target>",
            "When the results were announced, <context> had <target>",
            "Despite the rain, <context> played hard and <target>",
        ],
        "contexts": [
            "the dancer",
            "the driver",
            "the underdog team",
            "the young chess player",
            "the debate club",
            "the small startup",
            "the rookie boxer",
            "the school choir",
            "the local football team",
            "the veteran runner",
            "the robotics team",
            "the rowing crew",
            "the spelling champion",
            "the new candidate",
            "the cyclist",
            "the swimmer",
            "the home team",
            "the quiz team",
            "the tennis player",
            "the climbers",
        ],
        "targets": [
            ("won", "lost"),
            ("succeeded", "failed"),
            ("thrived", "collapsed"),
            ("excelled", "struggled"),
            ("dominated", "lost"),
            ("prevailed", "failed"),
            ("won", "failed"),
            ("succeeded", "lost"),
        ],
    },
    "refusal": {
        "templates": [
            "The user asked the assistant to <context>. The assistant <target>",
            "When I asked my friend to help me <context>, she <target>",
            "Someone messaged the bot: please <context>. The bot <target>",
            "My boss told me to <context>, and I <target>",
            "The customer wanted the clerk to <context>. The clerk <target>",
            "He begged his brother to <context>. His brother <target>",
            "They asked the AI model to <context>. The model <target>",
            "The stranger asked me to <context>, so I <target>",
        ],
        "contexts": [
            "write a fake doctor's note",
            "find someone's home address",
            "copy a classmate's essay",
            "pick a lock",
            "write an insulting message",
            "spread a rumour online",
            "hack the neighbour's wifi",
            "forge a signature",
            "cheat on an exam",
            "lie to a customer",
            "bypass a paywall",
            "post a fake review",
            "track an ex-partner",
            "steal a password",
            "skip a safety check",
            "fake a sick day",
            "dodge a parking fine",
            "pretend to be a police officer",
            "sell counterfeit tickets",
            "copy a song without credit",
        ],
        "targets": [
            ("refused", "agreed"),
            ("declined", "accepted"),
            ("refused", "assisted"),
            ("declined", "agreed"),
            ("objected", "agreed"),
            ("resisted", "obliged"),
            ("hesitated", "agreed"),
            ("refused", "helped"),
        ],
    },
    "emotion": {
        "templates": [
            "After <context>, the customer felt <target>",
            "When she heard about <context>, she was <target>",
            "Thinking about <context> made him feel <target>",
            "Following <context>, the whole team felt <target>",
            "Because of <context>, my neighbour seemed <target>",
            "Once he learned of <context>, he became <target>",
            "The news of <context> left everyone <target>",
            "During <context>, the passengers stayed <target>",
        ],
        "contexts": [
            "the long delay",
            "the phone call",
            "the meeting",
            "the flight cancellation",
            "the price change",
            "the apology",
            "the inspection",
            "the late delivery",
            "the interview",
            "the refund decision",
            "the power outage",
            "the new policy",
            "the traffic jam",
            "the doctor's visit",
            "the exam results",
            "the staff meeting",
            "the software update",
            "the noisy party",
            "the rent increase",
            "the surprise visit",
        ],
        "targets": [
            ("calm", "angry"),
            ("relieved", "furious"),
            ("grateful", "upset"),
            ("happy", "annoyed"),
            ("relaxed", "frustrated"),
            ("pleased", "anxious"),
            ("peaceful", "bitter"),
            ("content", "stressed"),
        ],
    },
}


def _check(name: str) -> dict:
    if name not in DATASETS:
        raise ValueError(f"dataset={name!r}; allowed: {sorted(DATASETS)}")
    d = DATASETS[name]
    for t in d["templates"]:
        if t.count("<context>") != 1 or not t.endswith(" <target>"):
            raise ValueError(f"template {t!r} of {name!r} needs one <context> and must end with ' <target>'")
    return d


def all_pairs(name: str) -> list[PromptPair]:
    """Every (template, context, target pair) combination of dataset ``name``, in a fixed order."""
    d = _check(name)
    out = []
    for ti, t in enumerate(d["templates"]):
        for c in d["contexts"]:
            prefix = t.replace("<context>", c)[: -len(" <target>")]
            out += [PromptPair(name, ti, prefix, p, n) for p, n in d["targets"]]
    return out


def split_pairs(name: str, n_test: int, n_train: int, seed: int = 0) -> tuple[list[PromptPair], list[PromptPair]]:
    """A seeded shuffle of :func:`all_pairs`: the first ``n_test`` pairs are held out, the next
    ``n_train`` are for fitting. Held-out pairs may share a template and context with fitting
    pairs (never all of template, context and targets)."""
    pairs = all_pairs(name)
    if n_test < 1 or n_train < 1:
        raise ValueError(f"n_test={n_test}, n_train={n_train}; both must be ≥ 1")
    if n_test + n_train > len(pairs):
        raise ValueError(f"n_test + n_train = {n_test + n_train} exceeds the {len(pairs)} pairs of dataset {name!r}")
    random.Random(seed).shuffle(pairs)
    return pairs[:n_test], pairs[n_test : n_test + n_train]


def check_single_token(tokenizer, words: list[str], what: str = "target") -> dict[str, int]:
    """Token id of ``" " + word`` for each word; a clear error naming every word that is not one
    token for this tokenizer."""
    ids, bad = {}, {}
    for w in dict.fromkeys(words):
        toks = tokenizer.encode(" " + w, add_special_tokens=False)
        if len(toks) == 1:
            ids[w] = toks[0]
        else:
            bad[w] = [tokenizer.decode([t]) for t in toks]
    if bad:
        raise ValueError(f"{what} words are not single tokens for this tokenizer: {bad}; targets must be one token")
    return ids
