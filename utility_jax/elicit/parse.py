r"""Classify free-text answers to forced-choice questions.

Every answer is one of ``"A"``, ``"B"``, ``"refusal"`` (unparseable, empty or ``None`` content)
or ``"error"`` (a transport failure, assigned by the backends: never a vote). Two rules:

``rule="reference"`` (the default; the paper's rule, ``parse_responses_forced_choice`` in the
reference's ``compute_utilities/utils.py``): after stripping white space, the bare letter is a
vote; otherwise a letter counts when it stands alone, i.e. matches the case-sensitive regex
``(?:^|[^\w])(A)(?:[^\w]|$)``, and the answer is a vote only when exactly one of the two letters
does ("I prefer A.", "My answer is B", "**A**"). "A or B", "A over B" and answers naming neither
are refusals. One guard of ours: a capital ``A`` that opens a sentence and is followed by a
lower-case word that is not a verb or conjunction ("A world where...", "A storm is bad") is the
article, not a vote (the reference counted it as A). In reasoning mode the first
``Answer: X`` (case-insensitive) counts, as in the reference.

``rule="strict"`` (the project's earlier rule): only the letter at the start of the answer (bare,
wrapped in ``**``, quotes, brackets, or followed by punctuation or a line break), ``Option A`` /
``Choice B`` when only one letter is named so, and ``Answer: A`` (the last one wins; in reasoning
mode only this form counts). "I prefer A." is a refusal under this rule.

:func:`rule_disagrees` says when the two rules classify an answer differently; every LLM run
reports how many of its answers do (``AgentStats.parser_disagreements``).
"""

import re

__all__ = ["parse_answer", "rule_disagrees", "LABELS", "RULES"]

LABELS = ("A", "B", "refusal", "error")
RULES = ("reference", "strict")

_WRAP = " \t\r\n*_`\"'“”‘’"
_ANSWER = re.compile(r"\banswer\s*[:：]\s*[*_\"'(\[]*\s*([AB])(?![A-Za-z])", re.IGNORECASE)
_LEAD = re.compile(r"^[(\[]?([AB])[)\]]?[*_`\"'”’]*(?:$|[.:,;!?)\]]|\s*\n)")
_NAMED = re.compile(r"\b(?:option|choice)\s+[*_\"'(\[]*([AB])(?![A-Za-z])", re.IGNORECASE)

# the reference's rules, verbatim
_REF_REASONING = re.compile(r"Answer:\s*(A|B)", re.IGNORECASE)
_REF_ALONE = {c: re.compile(rf"(?:^|[^\w])({c})(?:[^\w]|$)") for c in ("A", "B")}
# our guard: a sentence-opening "A" + a lower-case word is an article, unless the word is one a
# vote is commonly followed by ("A is better", "A because...", "A would...")
_ARTICLE = re.compile(
    r"(?:^|[.!?:;\n]\s*|^[*_\"'“‘(\[]+)(?P<a>A)\s+(?P<w>[a-z][a-z'-]*)", re.MULTILINE
)
_VOTE_WORDS = frozenset(
    "is was would will seems sounds looks appears feels because since as for and or but so "
    "please it that which wins offers provides has gives makes means leads remains still "
    "definitely clearly certainly obviously better".split()
)


def _strip_articles(t: str) -> str:
    def sub(m: re.Match) -> str:
        if m.group("w") in _VOTE_WORDS:
            return m.group(0)
        s, i = m.group(0), m.start("a") - m.start()
        return s[:i] + "a" + s[i + 1 :]

    return _ARTICLE.sub(sub, t)


def _reference(t: str, reasoning: bool) -> str:
    if reasoning:
        m = _REF_REASONING.search(t)
        return m.group(1).upper() if m else "refusal"
    if t in ("A", "B"):
        return t
    t = _strip_articles(t)
    hits = [c for c, pat in _REF_ALONE.items() if pat.search(t)]
    return hits[0] if len(hits) == 1 else "refusal"


def _letter(m: re.Match | None) -> str | None:
    return m.group(1) if m and m.group(1) in ("A", "B") else None


def _strict(t: str, reasoning: bool) -> str:
    answers = [a for a in (m.group(1) for m in _ANSWER.finditer(t)) if a in ("A", "B")]
    if reasoning:
        return answers[-1] if answers else "refusal"
    core = t.strip(_WRAP)
    if core in ("A", "B"):
        return core
    lead = _letter(_LEAD.match(core))
    if lead:
        return lead
    if answers:
        return answers[-1]
    named = {a for a in (m.group(1) for m in _NAMED.finditer(core)) if a in ("A", "B")}
    if len(named) == 1:
        return named.pop()
    return "refusal"


def parse_answer(text: str | None, *, reasoning: bool = False, rule: str = "reference") -> str:
    """Classify one answer as ``"A"``, ``"B"`` or ``"refusal"`` (see the module docstring)."""
    if rule not in RULES:
        raise ValueError(f"unknown answer rule {rule!r}; choose one of {RULES}")
    if text is None:
        return "refusal"
    t = text.strip()
    if not t:
        return "refusal"
    return _reference(t, reasoning) if rule == "reference" else _strict(t, reasoning)


def rule_disagrees(text: str | None, *, reasoning: bool = False) -> bool:
    """Whether the reference and the strict rule classify ``text`` differently."""
    return parse_answer(text, reasoning=reasoning, rule="reference") != parse_answer(
        text, reasoning=reasoning, rule="strict"
    )
