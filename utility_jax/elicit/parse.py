"""Classify free-text answers to forced-choice questions, without guessing.

Every answer is one of ``"A"``, ``"B"``, ``"refusal"`` (unparseable, empty or ``None`` content)
or ``"error"`` (a transport failure, assigned by the backends: never a vote).

Accepted (the letter itself is case-sensitive):

* the bare letter, possibly wrapped: ``A``, ``"B"``, ``**B**``, ``(A)``, ``[B]``, ```A```;
* the letter followed by punctuation or a line break: ``A.``, ``B)``, ``A: because...``;
* ``Option A`` / ``Choice B`` (also inside a sentence, if only one letter is ever named so);
* ``Answer: A`` (the last one wins); in reasoning mode only this form counts.

A capital article is not a vote: in ``A world where...`` the letter is followed by a word, so it
is unparseable. (The reference's regex was case-insensitive and read such articles as votes.)
"""

import re

__all__ = ["parse_answer", "LABELS"]

LABELS = ("A", "B", "refusal", "error")

_WRAP = " \t\r\n*_`\"'“”‘’"
_ANSWER = re.compile(r"\banswer\s*[:：]\s*[*_\"'(\[]*\s*([AB])(?![A-Za-z])", re.IGNORECASE)
_LEAD = re.compile(r"^[(\[]?([AB])[)\]]?[*_`\"'”’]*(?:$|[.:,;!?)\]]|\s*\n)")
_NAMED = re.compile(r"\b(?:option|choice)\s+[*_\"'(\[]*([AB])(?![A-Za-z])", re.IGNORECASE)


def _letter(m: re.Match | None) -> str | None:
    return m.group(1) if m and m.group(1) in ("A", "B") else None


def parse_answer(text: str | None, *, reasoning: bool = False) -> str:
    """Classify one answer as ``"A"``, ``"B"`` or ``"refusal"`` (see the module docstring)."""
    if text is None:
        return "refusal"
    t = text.strip()
    if not t:
        return "refusal"
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
