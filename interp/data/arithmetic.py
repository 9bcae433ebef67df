"""Arithmetic problems for the correctness-direction study (seed 004): seeded, with few-shot
prompts and an integer answer parsed from a free continuation.

Kinds: ``add1`` (one-digit + one-digit), ``add21`` (two-digit + one-digit), ``add2``
(two-digit + two-digit), ``sub21`` (two-digit − one-digit), ``sub2`` (two-digit − smaller
two-digit), ``mul1`` (one-digit × one-digit), ``word`` (a one-sentence addition word problem).
The study picks the kind a model solves about half the time; the mixed-width kinds sit between
the one-digit kinds (too easy, and too few distinct problems) and the two-digit ones.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

KINDS = ("add1", "add21", "add2", "sub21", "sub2", "mul1", "word")
_NAMES = ("Tom", "Ana", "Li", "Sara", "Omar", "Kim", "Ben", "Eva")
_THINGS = ("apples", "books", "coins", "pens", "cards", "shells")


@dataclass(frozen=True)
class Problem:
    """One arithmetic problem: the question text and its integer answer."""

    question: str
    answer: int


def _one(kind: str, rng: random.Random) -> Problem:
    if kind == "add1":
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        return Problem(f"{a} + {b} =", a + b)
    if kind == "add21":
        a, b = rng.randint(10, 99), rng.randint(2, 9)
        return Problem(f"{a} + {b} =", a + b)
    if kind == "sub21":
        a, b = rng.randint(10, 99), rng.randint(2, 9)
        return Problem(f"{a} - {b} =", a - b)
    if kind == "add2":
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        return Problem(f"{a} + {b} =", a + b)
    if kind == "sub2":
        a = rng.randint(20, 99)
        b = rng.randint(10, a - 1)
        return Problem(f"{a} - {b} =", a - b)
    if kind == "mul1":
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        return Problem(f"{a} * {b} =", a * b)
    if kind == "word":
        name, thing = rng.choice(_NAMES), rng.choice(_THINGS)
        a, b = rng.randint(2, 20), rng.randint(2, 20)
        return Problem(f"{name} has {a} {thing} and gets {b} more. How many {thing} does {name} have now?", a + b)
    raise ValueError(f"kind={kind!r}; allowed: {list(KINDS)}")


SHOTS = {
    "add1": [Problem("3 + 4 =", 7), Problem("8 + 6 =", 14)],
    "add21": [Problem("23 + 4 =", 27), Problem("57 + 8 =", 65)],
    "sub21": [Problem("64 - 3 =", 61), Problem("91 - 7 =", 84)],
    "add2": [Problem("23 + 41 =", 64), Problem("57 + 38 =", 95)],
    "sub2": [Problem("64 - 23 =", 41), Problem("91 - 57 =", 34)],
    "mul1": [Problem("3 * 4 =", 12), Problem("7 * 6 =", 42)],
    "word": [
        Problem("Mia has 4 cups and gets 5 more. How many cups does Mia have now?", 9),
        Problem("Raj has 12 stamps and gets 7 more. How many stamps does Raj have now?", 19),
    ],
}


def problems(kind: str, n: int, seed: int = 0) -> list[Problem]:
    """``n`` distinct problems of ``kind`` (fewer when the kind has fewer distinct ones: add1
    and mul1 have 81 and 64), none equal to a few-shot example."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; allowed: {list(KINDS)}")
    if n < 1:
        raise ValueError(f"n={n}; need at least one problem")
    rng = random.Random(seed)
    seen = {p.question for p in SHOTS[kind]}
    out: list[Problem] = []
    for _ in range(50 * n):
        p = _one(kind, rng)
        if p.question not in seen:
            seen.add(p.question)
            out.append(p)
            if len(out) == n:
                break
    return out


def prompt(problem: Problem, kind: str) -> str:
    """Two worked examples, then the question; the model continues after ``"A:"``."""
    shots = "".join(f"Q: {s.question}\nA: {s.answer}\n\n" for s in SHOTS[kind])
    return f"{shots}Q: {problem.question}\nA:"


_INT = re.compile(r"^\s*(-?\d+)")


def parse_answer(text: str) -> int | None:
    """The integer a continuation starts with (``" 17\\n\\nQ:"`` → 17), else None."""
    m = _INT.match(text)
    return int(m.group(1)) if m else None
