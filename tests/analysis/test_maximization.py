"""The maximization analysis: its core on known answers (fast) and end to end on a planted agent (slow)."""

import numpy as np
import pytest
from analysis_helpers import EXP, _run, templates_json

from utility_jax.analysis import maximization as M


@pytest.mark.parametrize(
    "answer,matcher,want",
    [
        ("CA", "contains", 0),
        ("**California.**", "exact", 1),
        ("I would choose New York, clearly.", "contains", 2),
        ("New York or California", "contains", 1),  # the longer name wins
        ("Texas or Idaho", "contains", None),  # two equally long names: ambiguous
        ("Nothing", "contains", None),
        ("Californa", "fuzzy", 1),
        ("Californa", "contains", None),
        (None, "contains", None),
    ],
)
def test_match_answer(answer, matcher, want):
    cands = ["CA", "California", "New York", "Texas", "Idaho"]
    got = M.match_answer(answer, cands, matcher)
    assert got == want


def test_topk_rates_known_answer_and_reference_questions():
    u = [np.array([3.0, 2, 1, 0, -1, -2]), np.array([0.0, 1, 2, 3, 4, 5]), np.array([1.0, 0])]
    assert M.topk_rates(u, [0, 2, None]) == {
        "top1": 1 / 3,
        "top3": 1 / 3,
        "top5": 2 / 3,
    }  # ranks 1, 4, miss
    qs = M.load_questions(EXP / "maximization" / "util_max_questions.json")
    assert len(qs) == 30 and all(10 <= len(q["possible_answers"]) <= 69 for q in qs)


@pytest.mark.slow
@pytest.mark.parametrize("p_max", [1.0, 0.0])
def test_maximization_maximiser_vs_random_answerer(tmp_path, p_max):
    """A maximiser names its top candidate: top-1 = 1 (5 questions, 10 candidates); an agent
    answering at random: top-1 <= 0.4 (chance 0.1; P(>= 3 of 5 hits) < 0.01)."""
    n = _run(tmp_path, "maximization", f"analysis.planted_maximizer={p_max}")
    top1 = n["rates"]["top1"]["estimate"]
    assert n["matched_share"] == 1.0
    assert top1 == 1.0 if p_max == 1.0 else top1 <= 0.4
    assert (tmp_path / "tasks" / "q00" / "free_answer.json").exists()


@pytest.mark.slow  # CI budget: the fast tier must stay under 20 minutes cold
def test_maximization_through_an_openai_server_resumes_without_new_calls(tmp_path):
    """An LLM agent: pair prompts carry the question as {scenario}; the free answer is asked at
    temperature 0 with the paper's direct-question system message; a rerun into the same folder
    asks nothing again (answers and free answers come from the stores)."""
    from fake_openai import FakeOpenAI

    server = FakeOpenAI()
    try:
        over = [
            "agent=openai",
            f"agent.base_url={server.url}",
            "agent.model=fake-model",
            "analysis.max_questions=2",
            "elicitation.k=2",
            "plots=false",
        ]
        n = _run(tmp_path, "maximization", *over)
        assert n["n_questions"] == 2 and n["agent"] == "openai:fake-model"
        bodies = [b for b, _ in server.requests]
        q0 = M.load_questions()[0]
        pair = [b for b in bodies if q0["pair_prompt"] in b["messages"][-1]["content"]]
        free = [b for b in bodies if b["messages"][-1]["content"] == q0["question"]]
        assert pair and len(free) == 1 and free[0]["temperature"] == 0
        assert (
            free[0]["messages"][0]["content"]
            == templates_json()["other_fixed_strings"][
                "maximization_direct_question_system_message"
            ]
        )
        # the fake server answers "A"/"B": no candidate matches, and that is reported
        assert n["matched_share"] == 0.0 and n["rates"]["top1"]["estimate"] == 0.0
        before = len(server.requests)
        _run(tmp_path, "maximization", *over)
        assert len(server.requests) == before
    finally:
        server.close()
