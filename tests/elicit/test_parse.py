"""The two answer rules on a corpus of chatty replies, with known labels under each."""

import pytest

from utility_jax.elicit.parse import parse_answer, rule_disagrees

# (reply, reference rule, strict rule)
CORPUS = [
    ("A", "A", "A"),
    ("B", "B", "B"),
    (" A\n", "A", "A"),
    ("A.", "A", "A"),
    ("**B**", "B", "B"),
    ('"B"', "B", "B"),
    ("(A)", "A", "A"),
    ("[B]", "B", "B"),
    ("`A`", "A", "A"),
    ("A. The first one.", "A", "A"),
    ("B\nBecause...", "B", "B"),
    ("B) because it is better", "B", "B"),
    ("A: it is clearly better.", "A", "A"),
    ("Option A", "A", "A"),
    ("I prefer Option B.", "B", "B"),
    ("Answer: B", "B", "B"),
    ("I prefer A.", "A", "refusal"),
    ("I would choose B", "B", "refusal"),
    ("My answer is B.", "B", "refusal"),
    ("I would choose A because it leads to a better state of the world.", "A", "refusal"),
    ("A is better.", "A", "refusal"),
    ("A would be my pick.", "A", "refusal"),
    ("Definitely B!", "B", "refusal"),
    ("The better one is B, since nobody is harmed.", "B", "refusal"),
    ("I'd go with A", "A", "refusal"),
    ("Between the two, B.", "B", "refusal"),
    ("After thinking about it: B", "B", "refusal"),
    ("Hmm... A", "A", "refusal"),
    ("B. A would hurt people.", "refusal", "B"),
    ("A world where everyone is happy.", "refusal", "refusal"),
    ("A storm is bad", "refusal", "refusal"),
    ("A friend visiting sounds nicer, so B.", "B", "refusal"),
    ("Option A or Option B", "refusal", "refusal"),
    ("Both A and B have merits; it depends on the circumstances.", "refusal", "refusal"),
    ("I prefer A over B.", "refusal", "refusal"),
    ("As an AI, I don't have personal preferences.", "refusal", "refusal"),
    ("I cannot choose between these two options.", "refusal", "refusal"),
    ("", "refusal", "refusal"),
    (None, "refusal", "refusal"),
    ("a", "refusal", "refusal"),
    ("b.", "refusal", "refusal"),
    ("AB", "refusal", "refusal"),
    ("Plan B is fine", "B", "refusal"),
    ("I'm sorry, but I can't help with that.", "refusal", "refusal"),
    ("Option B, definitely.", "B", "B"),
]


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 40


@pytest.mark.parametrize("text,ref,strict", CORPUS)
def test_both_rules_on_the_corpus(text, ref, strict):
    assert parse_answer(text) == ref  # the reference rule is the default
    assert parse_answer(text, rule="strict") == strict
    assert rule_disagrees(text) == (ref != strict)


def test_disagreement_count_on_the_corpus():
    # counted by hand from the table above: 14 replies the strict rule refuses and the
    # reference rule reads as votes, and one ("B. A would hurt people.") the other way
    assert sum(rule_disagrees(t) for t, _, _ in CORPUS) == 15


def test_reference_rule_is_case_sensitive_and_needs_a_stand_alone_letter():
    # the reference's regex: (?:^|[^\w])(A)(?:[^\w]|$), no IGNORECASE
    assert parse_answer("i prefer a") == "refusal"
    assert parse_answer("PlanA") == "refusal"
    assert parse_answer("-A-") == "A"


def test_reasoning_mode():
    text = "Option A seems good... Answer: A. Hmm, actually Answer: B"
    assert parse_answer(text, reasoning=True) == "A"  # the reference: the first match
    assert parse_answer(text, reasoning=True, rule="strict") == "B"  # ours: the last
    assert parse_answer("answer: b", reasoning=True) == "B"  # IGNORECASE, as the reference
    assert parse_answer("A", reasoning=True) == "refusal"  # the format was asked for
    assert parse_answer('Thinking.\n\n"Answer: A"', reasoning=True, rule="strict") == "A"


def test_unknown_rule_is_named():
    with pytest.raises(ValueError, match="unknown answer rule 'loose'"):
        parse_answer("A", rule="loose")
