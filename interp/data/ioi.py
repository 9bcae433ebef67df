"""Indirect-object-identification (IOI) prompt pairs, in the style of Wang et al. (2022).

Clean: "When Mary and John went to the store, John gave a drink to" → " Mary" (the indirect
object, IO; John is the subject, S). Two name orders: ABBA (the IO named first, as above) and
BABA ("When John and Mary went to the store, John gave a drink to" → " Mary"), so a "pick the
first name" heuristic cannot pass for IOI. Corrupted ("ABC"): the second subject mention is replaced
by a third name, "…, Tom gave a drink to", which removes the cue that tells IO from S while
keeping every token position aligned. Metric: logit(IO) − logit(S).

The templates and names are ours; every name must be a single token for the model (checked
by :func:`interp.data.single_token_ids` when the answers are built).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

DEFAULT_TEMPLATES = [
    "When{A} and{B} went to the store,{B} gave a drink to",
    "After{A} and{B} went to the park,{B} gave a ball to",
    "Then,{A} and{B} had a long argument. Afterwards{B} said to",
    "While{A} and{B} were working at the office,{B} handed a report to",
    "When{A} and{B} arrived at the party,{B} brought a cake to",
    "Yesterday{A} and{B} met at the station, and{B} sent a letter to",
]
DEFAULT_NAMES = [
    " Mary",
    " John",
    " Tom",
    " James",
    " Anna",
    " Paul",
    " Lisa",
    " Mark",
    " Sarah",
    " David",
    " Kate",
    " Peter",
]


@dataclass
class IOIPairs:
    """IOI prompts with their ABC corruptions and the indirect-object / subject names (one each per prompt)."""

    clean: list[str]
    corrupted: list[str]
    io: list[str]  # indirect object (the right answer in the clean prompt)
    s: list[str]  # subject (the wrong answer)
    third: list[str]  # the name that replaces S2 in the corrupted prompt
    order: list[str] = field(default_factory=list)  # "ABBA" (IO first) or "BABA" (S first), per pair


ORDERS = ("ABBA", "BABA")


def _fill(template: str, first: str, second: str, third: str) -> str:
    """The template with its three name slots ({A}, {B}, {B} in reading order) filled."""
    parts = re.split(r"\{A\}|\{B\}", template)
    return parts[0] + first + parts[1] + second + parts[2] + third + parts[3]


def ioi_pairs(
    n: int,
    seed: int = 0,
    templates: list[str] | None = None,
    names: list[str] | None = None,
    orders: list[str] | tuple[str, ...] = ("ABBA",),
) -> IOIPairs:
    """``n`` clean/ABC-corrupted pairs per name order, templates cycled, names drawn without
    replacement per pair. The ABBA pairs are the same for every ``orders`` (their own seeded
    draw); BABA pairs swap the first two names of a draw from ``seed + 1``."""
    templates = DEFAULT_TEMPLATES if templates is None else templates
    names = DEFAULT_NAMES if names is None else names
    if n < 1:
        raise ValueError(f"n={n!r}; need at least one pair")
    if not templates:
        raise ValueError("templates is empty")
    for t in templates:
        if "{A}" not in t or t.count("{B}") != 2:
            raise ValueError(f"template {t!r} must contain {{A}} once and {{B}} twice (IO, S1, S2)")
    if len(set(names)) < 3:
        raise ValueError(f"names has {len(set(names))} distinct entries; IOI pairs need at least 3")
    if not orders or any(o not in ORDERS for o in orders) or len(set(orders)) != len(orders):
        raise ValueError(f"orders={list(orders)!r}; allowed: a non-empty list of distinct {list(ORDERS)}")
    out = IOIPairs([], [], [], [], [], [])
    for order in orders:
        rng = random.Random(seed + ORDERS.index(order))
        for i in range(n):
            t = templates[i % len(templates)]
            a, b, c = rng.sample(sorted(set(names)), 3)  # a: IO, b: S, c: the corrupting third name
            first, second = (a, b) if order == "ABBA" else (b, a)
            out.clean.append(_fill(t, first, second, b))
            out.corrupted.append(_fill(t, first, second, c))  # S2 replaced: positions stay aligned
            out.io.append(a)
            out.s.append(b)
            out.third.append(c)
            out.order.append(order)
    return out
