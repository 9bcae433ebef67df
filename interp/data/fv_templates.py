"""Prompt templates of eight kinds per word-pair task, for the cross-template transfer study
(seed 000: natural language, symbolic, functional, verbose, instruction, question-answer,
role-play, formal).

Every template has ``{x}`` (the input) and ends with ``{y}`` (the output); the model predicts
the first token of ``" " + y`` after the template's stem. Templates were written for this
project. A user adds a task by adding an entry here (or passes ``templates:`` in the config).
"""

from __future__ import annotations

TEMPLATE_KINDS = ("natural", "symbolic", "functional", "verbose", "instruction", "qa", "roleplay", "formal")

TEMPLATES: dict[str, dict[str, str]] = {
    "antonym": {
        "natural": "The opposite of {x} is {y}",
        "symbolic": "{x} ↔ {y}",
        "functional": "antonym({x}) = {y}",
        "verbose": "If you take the word {x} and look for the word that means the exact opposite, you get {y}",
        "instruction": "Give the antonym of the word.\nWord: {x}\nAntonym: {y}",
        "qa": "Question: What is the opposite of {x}?\nAnswer: {y}",
        "roleplay": "Teacher: What is the opposite of {x}?\nStudent: {y}",
        "formal": "In lexical semantics, the antonym of the term '{x}' is {y}",
    },
    "capitalize": {
        "natural": "The word {x} written with a capital letter is {y}",
        "symbolic": "{x} ⇒ {y}",
        "functional": "capitalize({x}) = {y}",
        "verbose": "If you take the word {x} and write its first letter as an upper-case letter, you get {y}",
        "instruction": "Capitalize the first letter of the word.\nWord: {x}\nCapitalized: {y}",
        "qa": "Question: How is {x} written with a capital first letter?\nAnswer: {y}",
        "roleplay": "Editor: Capitalize {x}, please.\nWriter: {y}",
        "formal": "Under orthographic capitalisation, the token '{x}' becomes {y}",
    },
    "sentiment": {
        "natural": "The review {x} sounds {y}",
        "symbolic": "{x} → {y}",
        "functional": "sentiment({x}) = {y}",
        "verbose": "If you read the review {x} and decide whether its author liked the film, the sentiment is {y}",
        "instruction": "Classify the sentiment of the review as positive or negative.\nReview: {x}\nSentiment: {y}",
        "qa": "Question: Is the review {x} positive or negative?\nAnswer: {y}",
        "roleplay": "Critic: {x}\nProducer: That review is {y}",
        "formal": "Under binary sentiment annotation, the text '{x}' is labelled {y}",
    },
    "country-capital": {
        "natural": "The capital of {x} is {y}",
        "symbolic": "{x} ↦ {y}",
        "functional": "capital({x}) = {y}",
        "verbose": "If you travel to {x} and visit the city where its national government sits, you are in {y}",
        "instruction": "Name the capital city of the country.\nCountry: {x}\nCapital: {y}",
        "qa": "Question: What is the capital of {x}?\nAnswer: {y}",
        "roleplay": "Tourist: Which city is the capital of {x}?\nGuide: {y}",
        "formal": "The seat of government of the state of {x} is {y}",
    },
    "english-french": {
        "natural": "The English word {x} in French is {y}",
        "symbolic": "{x} ≈ {y}",
        "functional": "french({x}) = {y}",
        "verbose": "If you take the English word {x} and say the same thing in the French language, you say {y}",
        "instruction": "Translate the word from English to French.\nEnglish: {x}\nFrench: {y}",
        "qa": "Question: How do you say {x} in French?\nAnswer: {y}",
        "roleplay": "Student: How do I say {x} in French?\nTutor: {y}",
        "formal": "The French lexical equivalent of the English term '{x}' is {y}",
    },
    "uppercase": {
        "natural": "The word {x} written in capital letters is {y}",
        "symbolic": "{x} ⇑ {y}",
        "functional": "upper({x}) = {y}",
        "verbose": "If you take the word {x} and write every one of its letters as an upper-case letter, you get {y}",
        "instruction": "Write the word in capital letters.\nWord: {x}\nUppercase: {y}",
        "qa": "Question: How is {x} written in all capitals?\nAnswer: {y}",
        "roleplay": "Editor: Put {x} in all caps, please.\nWriter: {y}",
        "formal": "Under full orthographic capitalisation, the token '{x}' becomes {y}",
    },
    "present-past": {
        "natural": "The past tense of {x} is {y}",
        "symbolic": "{x} ⇐ {y}",
        "functional": "past({x}) = {y}",
        "verbose": "If you take the verb {x} and say that it already happened yesterday, you say {y}",
        "instruction": "Give the past tense of the verb.\nVerb: {x}\nPast tense: {y}",
        "qa": "Question: What is the past tense of {x}?\nAnswer: {y}",
        "roleplay": "Teacher: What is the past tense of {x}?\nStudent: {y}",
        "formal": "In English morphology, the preterite form of the verb '{x}' is {y}",
    },
    "singular-plural": {
        "natural": "The plural of {x} is {y}",
        "symbolic": "{x} ⇉ {y}",
        "functional": "plural({x}) = {y}",
        "verbose": "If you take the noun {x} and talk about more than one of them, you say {y}",
        "instruction": "Give the plural of the noun.\nNoun: {x}\nPlural: {y}",
        "qa": "Question: What is the plural of {x}?\nAnswer: {y}",
        "roleplay": "Teacher: What is the plural of {x}?\nStudent: {y}",
        "formal": "In English morphology, the plural form of the noun '{x}' is {y}",
    },
    "person-sport": {
        "natural": "The sport {x} plays is {y}",
        "symbolic": "{x} ⚑ {y}",
        "functional": "sport({x}) = {y}",
        "verbose": "If you watch the athlete {x} at work and name the game being played, it is {y}",
        "instruction": "Name the sport the athlete plays.\nAthlete: {x}\nSport: {y}",
        "qa": "Question: Which sport does {x} play?\nAnswer: {y}",
        "roleplay": "Fan: What sport does {x} play?\nCommentator: {y}",
        "formal": "By professional affiliation, the athlete {x} competes in {y}",
    },
}


def task_templates(task: str, kinds: list[str] | None = None) -> dict[str, str]:
    """The templates of ``task`` (all eight kinds, or the ``kinds`` asked for)."""
    if task not in TEMPLATES:
        raise ValueError(
            f"task={task!r} has no templates; allowed: {sorted(TEMPLATES)} (or pass templates in the config)"
        )
    kinds = list(TEMPLATE_KINDS) if kinds is None else kinds
    unknown = [k for k in kinds if k not in TEMPLATES[task]]
    if unknown:
        raise ValueError(f"kinds={unknown} not known for task={task!r}; allowed: {list(TEMPLATES[task])}")
    return {k: TEMPLATES[task][k] for k in kinds}
