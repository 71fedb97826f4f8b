"""A judge model where the paper used one: power scoring and answer matching through a fake
OpenAI-compatible server, with the judge's own store (a rerun asks nothing)."""

import pytest
from analysis_helpers import _run
from fake_openai import FakeOpenAI

from utility_jax.analysis import maximization as M
from utility_jax.analysis.harness import judge_conf

QUESTIONS = M.load_questions()[:2]


def _respond(body):
    user = body["messages"][-1]["content"]
    if "POSSIBLE MATCHES:" in user:  # the judge: the first listed candidate
        return [user.split("POSSIBLE MATCHES:\n        ")[1].split("\n\n")[0]]
    for q in QUESTIONS:
        if user == q["question"]:  # a chatty free answer naming a candidate in other words
            return [f"I would probably say something like {q['possible_answers'][0].lower()}!"]
    return None  # forced-choice prompts: the server's hash rule


def _over(url):
    return [
        "agent=openai",
        f"agent.base_url={url}",
        "agent.model=subject-model",
        f"analysis.judge={{kind: openai, model: judge-model, base_url: '{url}'}}",
        "elicitation.k=1",
        "graph.edge_multiplier=0.5",
        "plots=false",
        "uncertainty.n_bootstrap=10",
    ]


def _models(server):
    return [b["model"] for b, _ in server.requests]


@pytest.mark.slow
def test_power_scored_by_a_judge_model_with_its_own_store(tmp_path):
    server = FakeOpenAI()
    try:
        over = _over(server.url) + ["analysis.n_other=5", "analysis.fitness=false"]
        n = _run(tmp_path, "power_seeking", *over)
        assert n["power_scored_by"] == "judge openai:judge-model"
        bodies = [b for b, _ in server.requests]
        power_q = [b for b in bodies if "more power" in b["messages"][-1]["content"]]
        assert power_q and {b["model"] for b in power_q} == {"judge-model"}
        assert "subject-model" in _models(server)  # the model's own utilities
        assert (tmp_path / "tasks" / "power_judge" / "responses.sqlite").exists()
        assert "power scored by judge openai:judge-model" in (tmp_path / "summary.txt").read_text()
        before = len(server.requests)
        _run(tmp_path, "power_seeking", *over)
        assert len(server.requests) == before
    finally:
        server.close()


def test_maximization_answers_matched_by_a_judge(tmp_path):
    server = FakeOpenAI(respond=_respond)
    try:
        over = _over(server.url) + ["analysis.max_questions=2", "analysis.matcher=judge"]
        n = _run(tmp_path, "maximization", *over)
        judged = [
            b for b, _ in server.requests if "POSSIBLE MATCHES" in b["messages"][-1]["content"]
        ]
        assert len(judged) == 2 and {b["model"] for b in judged} == {"judge-model"}
        assert judged[0]["messages"][-1]["content"].startswith(M.JUDGE_PROMPT[:60])
        assert n["matched_share"] == 1.0  # every paraphrase matched by the judge
        before = len(server.requests)
        _run(tmp_path, "maximization", *over)
        assert len(server.requests) == before  # free answers and judge replies are stored
        # the string matcher misses these paraphrases
        assert (
            M.match_answer(
                f"I would probably say something like {QUESTIONS[0]['possible_answers'][0].lower()}!",
                QUESTIONS[0]["possible_answers"],
                "exact",
            )
            is None
        )
    finally:
        server.close()


def test_judge_config_errors_name_the_setting():
    with pytest.raises(ValueError, match="analysis.judge needs a model"):
        judge_conf({"kind": "openai"}, "analysis")
    with pytest.raises(ValueError, match="analysis.judge.kind='gpt'"):
        judge_conf({"kind": "gpt", "model": "x"}, "analysis")
    assert judge_conf(None, "analysis") is None


def test_an_unreachable_judge_fails_the_run_instead_of_reporting_zero_rates(tmp_path):
    """Every judge request failing used to report top-k = 0.000 [0.000, 0.000] with 0 errors."""
    from utility_jax.run.incidents import RunIncidentError

    server = FakeOpenAI(respond=_respond)
    try:
        over = [o for o in _over(server.url) if not o.startswith("analysis.judge=")]
        dead = "http://127.0.0.1:9/v1"  # nothing listens on the discard port
        over += [
            f"analysis.judge={{kind: openai, model: judge-model, base_url: '{dead}', max_retries: 0}}",
            "analysis.max_questions=2",
            "analysis.matcher=judge",
        ]
        with pytest.raises(RunIncidentError, match="the judge: none of 2 requests succeeded"):
            _run(tmp_path, "maximization", *over)
        assert not (tmp_path / "analysis.json").exists()
    finally:
        server.close()
