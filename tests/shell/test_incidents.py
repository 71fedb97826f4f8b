"""A run always finishes with what it has, and says plainly what went wrong (issue: a real model
behind a real server). Each case here crashed or misled before."""

import json
import os
import socket

import jax
import numpy as np
import pytest

from utility_jax.elicit.llm import LLMAgent
from utility_jax.io.outcomes import OutcomeSet
from utility_jax.io.prompts import load_template
from utility_jax.run.config import ComputeUtilitiesConf, validate
from utility_jax.run.incidents import NoVotesError, vote_incidents
from utility_jax.run.pipeline import compute_utilities
from utility_jax.run.runner import run_compute_utilities

OUTCOMES = OutcomeSet.from_texts([f"You get {k} apples." for k in range(6)])


def _smoke(**over) -> dict:
    cfg = {
        "outcomes": {"limit": 30},
        "graph": {"edges_per_round": 50},
        "uncertainty": {"n_bootstrap": 0, "laplace": False},
        "plots": False,
        "progress": False,
        "name": "smoke",
    }
    for k, v in over.items():
        group, key = k.split(".")
        cfg.setdefault(group, {})[key] = v
    return cfg


def test_pairs_without_votes_are_reported_and_the_run_finishes(tmp_path):
    """Before: KeyError: 210 at the very end (triads sampled from pairs that kept no votes) and no
    output at all. Now: the run writes its folder and reports the pairs and why."""
    res = run_compute_utilities(
        _smoke(**{"agent.refusal_rate": 0.3, "elicitation.refusal": "drop", "elicitation.k": 2}),
        tmp_path,
    )
    inc = res.metrics["incidents"]
    assert inc["train"]["pairs_without_votes"] >= 1
    assert inc["train"]["without_votes_only_refusals"] == inc["train"]["pairs_without_votes"]
    assert inc["train"]["without_votes_no_answer"] == 0
    assert res.metrics["training_graph_transitivity"]["n_triads"] > 0
    text = (tmp_path / "summary.txt").read_text()
    assert "INCIDENT:" in text and "have no votes and are left out" in text
    assert json.loads((tmp_path / "metrics.json").read_text())["incidents"]["train"]["n_pairs"] > 0
    assert (tmp_path / "votes.csv").exists() and (tmp_path / "utilities.csv").exists()


def test_vote_incidents_counts_causes_and_never_compared_outcomes():
    pairs = np.array([[0, 1], [1, 2], [2, 3], [0, 3]])
    c = np.zeros((4, 2, 3))
    c[0, 0, 0] = c[0, 1, 1] = 2  # votes
    c[1, :, 2] = 1  # refusals only
    # pair 2: nothing answered (every request failed)
    c[3, 0, 1] = 1
    inc = vote_incidents(5, pairs, c, "drop")
    assert inc["pairs_without_votes"] == 2
    assert inc["without_votes_no_answer"] == 1 and inc["without_votes_only_refusals"] == 1
    assert inc["pairs_without_votes_examples"] == [[1, 2], [2, 3]]
    assert inc["outcomes_never_compared"] == [2, 4]
    # refusals count half a vote each side under the paper's rule: only pair 2 lacks votes
    assert vote_incidents(5, pairs, c, "half")["pairs_without_votes"] == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _agent(url, **kw):
    from utility_jax.elicit.openai_compat import OpenAIBackend

    backend = OpenAIBackend(
        url, "fake-model", timeout_s=2.0, backoff_base_s=0.001, backoff_max_s=0.01, **kw
    )
    return LLMAgent(backend, OUTCOMES, load_template())


def _conf(**el) -> ComputeUtilitiesConf:
    return validate(
        {"elicitation": {"k": 1, **el}, "graph": {"edges_per_round": 5}, "n_triads": 10}
    )


def test_a_dead_server_is_named_with_its_url():
    """Before: 'every answer was a dropped refusal: no votes to fit'."""
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    agent = _agent(url, max_retries=0)
    with pytest.raises(NoVotesError) as e:
        compute_utilities(OUTCOMES, agent, _conf(), key=jax.random.key(0))
    msg = str(e.value)
    assert "no request to openai:fake-model succeeded" in msg
    assert f"is a server running at {url}?" in msg and "APIConnectionError" in msg


def test_a_wrong_key_names_the_variable(tmp_path, monkeypatch):
    from fake_openai import FakeOpenAI

    monkeypatch.setenv("MY_KEY_VAR", "sk-wrong")
    srv = FakeOpenAI(script=[401] * 200)
    try:
        agent = _agent(srv.url, api_key_env="MY_KEY_VAR", max_retries=0)
        with pytest.raises(NoVotesError, match=r"HTTP 401 from .*: check the key in \$MY_KEY_VAR"):
            compute_utilities(OUTCOMES, agent, _conf(), key=jax.random.key(0))
    finally:
        srv.close()


def test_only_refusals_under_drop_says_so():
    from utility_jax.elicit.simulated import SimulatedAgent

    agent = SimulatedAgent(np.zeros(6), np.ones(6), refusal_rate=1.0)
    with pytest.raises(NoVotesError, match="was a refusal and elicitation.refusal=drop"):
        compute_utilities(OUTCOMES, agent, _conf(refusal="drop"), key=jax.random.key(0))


def test_a_high_error_rate_writes_the_folder_then_fails(tmp_path):
    """Before: a run with a 23% transport-error rate exited 0, the rate buried in summary.txt.
    Now the folder is written (nothing paid for is lost), then the run fails with the reason."""
    from fake_openai import FakeOpenAI

    from utility_jax.run.incidents import RunIncidentError

    srv = FakeOpenAI(script=[400, "ok", "ok"] * 40)  # one request in three is refused
    try:
        cfg = _smoke(
            **{
                "agent.kind": "openai",
                "agent.base_url": srv.url,
                "agent.model": "fake-model",
                "agent.max_retries": 0,
                "agent.concurrency": 1,
                "agent.max_error_rate": 0.1,
                "outcomes.limit": 8,
                "elicitation.k": 2,
                "graph.edges_per_round": 10,
            }
        )
        with pytest.raises(
            RunIncidentError, match=r"folder, but it failed: \d+\.\d% of requests"
        ) as e:
            run_compute_utilities(cfg, tmp_path)
        # a 400 is never asked again: the message does not promise that a rerun fixes it
        assert "refused for good" in str(e.value) and "asks the" not in str(e.value)
        assert e.value.result is not None
    finally:
        srv.close()
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["incidents"]["error_rate"] > 0.1 and "HTTP 400" in m["incidents"]["last_error"]
    assert (tmp_path / "responses.jsonl").exists() and "INCIDENT: transport-error rate" in (
        tmp_path / "summary.txt"
    ).read_text()


@pytest.mark.parametrize(
    "override,match",
    [
        # each was accepted, hung, or failed with a raw error before
        ({"agent": {"concurrency": 0}}, r"agent.concurrency=0 is out of range: it must be in \[1"),
        ({"graph": {"edges_per_round": 0}}, r"graph.edges_per_round=0 is out of range"),
        ({"graph": {"holdout_fraction": 2}}, r"graph.holdout_fraction=2.0 is out of range"),
        ({"agent": {"refusal_rate": 1.5}}, r"agent.refusal_rate=1.5 is out of range"),
        ({"graph": {"edge_multiplier": -1}}, r"graph.edge_multiplier=-1.0 is out of range"),
        ({"uncertainty": {"n_bootstrap": -5}}, r"uncertainty.n_bootstrap=-5 is out of range"),
        ({"agent": {"max_retries": -1}}, r"agent.max_retries=-1 is out of range"),
        ({"foo": 1}, r"unknown config keys \['foo'\]"),
        ({"agent": {"sigma_min": 0.9, "sigma_max": 0.5}}, r"agent.sigma_max=0.5 is below"),
    ],
)
def test_settings_are_range_checked_with_the_key(override, match):
    with pytest.raises(ValueError, match=match):
        validate(override)


def test_a_folder_as_the_outcome_file_is_named(tmp_path):
    from utility_jax.io.outcomes import OutcomeSetError

    with pytest.raises(OutcomeSetError, match="is a folder, not an outcome file"):
        run_compute_utilities(_smoke(**{"outcomes.path": str(tmp_path)}), tmp_path / "run")


def test_a_model_without_preferences_is_not_reported_as_accurate():
    """Before: a 50/50 model scored held-out accuracy 1.0 (every prediction ties at 0.5 and the
    reference's rule counts a tie as correct), with no word. Now the tie-as-half accuracy sits
    beside it and a warning says why."""
    import jax.numpy as jnp

    from utility_jax.core.metrics import evaluate_pairwise
    from utility_jax.core.model import ThurstonianFit

    fit = ThurstonianFit(
        jnp.zeros(4),
        jnp.zeros(4),
        jnp.asarray(True),
        jnp.asarray(1),
        jnp.asarray(0.0),
        jnp.asarray(0.0),
    )
    d = __import__("utility_jax").PairwiseData.from_counts(
        4, [0, 1, 2], [1, 2, 3], [10, 10, 10], [20, 20, 20]
    )
    ev = evaluate_pairwise(fit, d)
    assert ev["accuracy"] == 1.0 and ev["accuracy_ties_half"] == 0.5 and ev["n_model_ties"] == 3
    from utility_jax.run.evaluation import degenerate_warnings

    w = degenerate_warnings({"heldout": ev}, fit, "case3")
    assert len(w) == 1 and "tie at 0.5" in w[0] and "0.5000" in w[0]


def test_discounting_gives_no_verdict_to_curves_worse_than_a_constant():
    """Before: a random server got "hyperbolic in 100% of draws" with both R^2 at -8.8."""
    from utility_jax.analysis.discounting import _verdict

    flat = {
        "hyperbolic": {"sse_log": 5.0, "r2_log": -8.8},
        "exponential": {"sse_log": 5.1, "r2_log": -8.9},
    }
    assert _verdict(flat) == "neither"
    tie = {
        "hyperbolic": {"sse_log": 1.0, "r2_log": 0.5},
        "exponential": {"sse_log": 1.0, "r2_log": 0.5},
    }
    assert _verdict(tie) == "neither"
    good = {
        "hyperbolic": {"sse_log": 0.1, "r2_log": 0.9},
        "exponential": {"sse_log": 1.0, "r2_log": 0.2},
    }
    assert _verdict(good) == "hyperbolic"


def test_a_key_echoed_by_the_server_is_never_stored(tmp_path, monkeypatch):
    """Before: the store's errors table kept the server's error body verbatim, key included."""
    import sqlite3

    from fake_openai import FakeOpenAI

    from utility_jax.elicit.openai_compat import OpenAIBackend
    from utility_jax.elicit.store import ResponseStore

    monkeypatch.setenv("ECHO_KEY", "sk-very-secret-0123")
    srv = FakeOpenAI(script=["echo401"] * 10)
    try:
        store = ResponseStore(tmp_path / "r.sqlite", config={"x": 1})
        backend = OpenAIBackend(srv.url, "fake-model", api_key_env="ECHO_KEY", max_retries=0)
        agent = LLMAgent(backend, OUTCOMES, load_template(), store=store)
        agent.query(np.array([[0, 1]]), 2, key=jax.random.key(0))
        assert srv.requests[0][1]["authorization"] == "Bearer sk-very-secret-0123"  # it was sent
        agent.close(export_dir=tmp_path)
    finally:
        srv.close()
    dump = "\n".join(sqlite3.connect(tmp_path / "r.sqlite").iterdump())
    assert "HTTP 401" in dump and "[REDACTED]" in dump
    assert "sk-very-secret-0123" not in dump and "sk-very-secret" not in agent.last_error


def test_one_writer_per_store_and_the_first_answer_wins(tmp_path):
    """Before: two processes shared a store, paid for prompts twice and overwrote answers."""
    import subprocess
    import sys

    from utility_jax.elicit.store import ResponseStore, StoreLockedError

    path = tmp_path / "r.sqlite"
    s1 = ResponseStore(path)
    code = f"from utility_jax.elicit.store import ResponseStore; ResponseStore({str(path)!r})"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert f"store {path} is in use by pid {os.getpid()}" in p.stderr
    row = dict(request_key="k", sample_index=0, backend="b", model="m", settings={}, prompt=[])
    s1.put([{**row, "raw_text": "A", "label": "A"}])
    s1.put([{**row, "raw_text": "B", "label": "B"}])  # a late duplicate never replaces it
    assert [r["label"] for r in s1.get("k")] == ["A"]
    s1.close()
    s2 = ResponseStore(path)  # released on close (and by the OS when a process dies)
    assert s2.count() == 1
    s2.close()
    with pytest.raises(StoreLockedError, match="in use by pid"):
        held = ResponseStore(path)
        try:
            ResponseStore(path)
        finally:
            held.close()


def test_resume_rules_transport_free_fit_to_a_subfolder_answers_refused(tmp_path):
    """Before: changing agent.concurrency was refused, while a changed fitter silently
    overwrote votes, utilities and metrics in the same folder."""
    from utility_jax.elicit.store import StoreConfigError

    base = _smoke(**{"outcomes.limit": 10, "graph.edges_per_round": 10})
    r1 = run_compute_utilities(base, tmp_path)
    # transport settings: a plain resume into the same folder
    r2 = run_compute_utilities({**base, "agent": {"concurrency": 3, "max_retries": 2}}, tmp_path)
    assert not (tmp_path / "refits").exists()
    np.testing.assert_array_equal(np.asarray(r2.fit.mu), np.asarray(r1.fit.mu))
    metrics = (tmp_path / "metrics.json").read_text()
    # the fit's settings: a new sub-folder; the first results stay as they were
    r3 = run_compute_utilities({**base, "fitter": {"model": "logit"}}, tmp_path)
    (sub,) = (tmp_path / "refits").iterdir()
    assert sub.name.startswith("logit-") and (sub / "metrics.json").exists()
    assert (tmp_path / "metrics.json").read_text() == metrics
    assert r3.fit.link == "logit" and r1.fit.link == "probit"
    # the questions or their answers: refused, naming the key
    with pytest.raises(StoreConfigError, match=r"changed: elicitation.k"):
        run_compute_utilities({**base, "elicitation": {"k": 3}}, tmp_path)
    with pytest.raises(StoreConfigError, match=r"agent.position_bias"):
        run_compute_utilities({**base, "agent": {"position_bias": 0.5}}, tmp_path)


def test_one_process_per_run_folder(tmp_path):
    from utility_jax.elicit.store import FolderLock, StoreLockedError

    held = FolderLock(tmp_path / ".run.lock", f"run folder {tmp_path}").acquire()
    try:
        with pytest.raises(StoreLockedError, match=f"run folder {tmp_path} is in use by pid"):
            run_compute_utilities(_smoke(), tmp_path)
    finally:
        held.release()


@pytest.mark.slow  # CI budget: the fast tier must stay under 20 minutes cold
def test_http_requests_are_not_logged_at_info(caplog):
    """Before: every HTTP request was an INFO line (702 for one smoke run). Now INFO carries the
    per-round summary only; the requests stay at DEBUG."""
    import logging

    from fake_openai import FakeOpenAI

    srv = FakeOpenAI()
    try:
        with caplog.at_level(logging.INFO):
            res = compute_utilities(OUTCOMES, _agent(srv.url), _conf(), key=jax.random.key(0))
    finally:
        srv.close()
    info = [r for r in caplog.records if r.levelno == logging.INFO]
    assert not [r for r in info if "HTTP Request" in r.getMessage()]
    rounds = [r for r in info if r.getMessage().startswith("round ")]
    assert len(rounds) == len(res.rounds) >= 1


def test_a_model_refusing_most_answers_fails_with_the_rate_and_examples(tmp_path):
    """Before: a model answering in lowercase (every reply a refusal under the reference rule)
    reported "held-out accuracy 1.0000 (random 0.5000)" and exited 0. Now the folder is written,
    then the run fails naming the rate and example replies."""
    from fake_openai import FakeOpenAI

    from utility_jax.run.incidents import RunIncidentError

    srv = FakeOpenAI(respond=lambda body: ["a", "b", "i'd go with b"])
    try:
        cfg = _smoke(
            **{
                "agent.kind": "openai",
                "agent.base_url": srv.url,
                "agent.model": "lowercase-model",
                "outcomes.limit": 6,
                "elicitation.k": 2,
                "graph.edges_per_round": 10,
            }
        )
        with pytest.raises(RunIncidentError, match=r"100\.0% of answers were refusals") as e:
            run_compute_utilities(cfg, tmp_path)
        # the command line: exit 4 with the reasons, no traceback
        import subprocess

        from fake_openai import compute_cmd

        p = subprocess.run(
            compute_cmd(srv.url, tmp_path / "cli"), capture_output=True, text=True, timeout=300
        )
        assert p.returncode == 4 and "FAILED:" in p.stderr, p.stderr[-2000:]
        assert "Traceback" not in p.stderr and (tmp_path / "cli" / "summary.txt").exists()
    finally:
        srv.close()
    assert "'a'" in str(e.value) and "agent.max_refusal_rate=0.5" in str(e.value)
    text = (tmp_path / "summary.txt").read_text()
    assert "INCIDENT: refusal rate 100.00% passes agent.max_refusal_rate" in text
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["incidents"]["refusal_rate_exceeded"] and m["incidents"]["refusal_examples"]


def test_a_key_given_as_api_key_env_is_refused_and_never_shown(monkeypatch):
    """Before: agent.api_key_env=<the key> was written into .hydra/ and printed, and an unset
    variable silently sent "EMPTY" to a remote server."""
    from utility_jax.elicit.openai_compat import OpenAIBackend

    key = "sk-proj-4fT9xQ2mZ8Lr7Kp3Vn6Wc1Yb5Hd0Js"
    for bad in (key, "Ab3" * 10):
        with pytest.raises(ValueError, match="NAME of an environment variable") as e:
            OpenAIBackend("https://api.example.com/v1", "m", api_key_env=bad)
        assert bad not in str(e.value)
    monkeypatch.delenv("UNSET_KEY_VAR", raising=False)
    with pytest.raises(ValueError, match=r"\$UNSET_KEY_VAR \(agent.api_key_env\) is not set"):
        OpenAIBackend("https://api.example.com/v1", "m", api_key_env="UNSET_KEY_VAR")
    OpenAIBackend("http://localhost:8000/v1", "m", api_key_env="UNSET_KEY_VAR")  # local vLLM
    monkeypatch.setenv("UNSET_KEY_VAR", "sk-x")
    OpenAIBackend("https://api.example.com/v1", "m", api_key_env="UNSET_KEY_VAR")


def test_a_resume_on_a_new_server_address_keeps_every_answer(tmp_path):
    """Before: a changed agent.base_url (the model served from another node) could resume only
    with elicitation.force=true, which turns off every other check."""
    from fake_openai import FakeOpenAI

    from utility_jax.elicit.store import StoreConfigError

    a, b = FakeOpenAI(), FakeOpenAI()
    try:

        def cfg(url, **over):
            return _smoke(
                **{
                    "agent.kind": "openai",
                    "agent.base_url": url,
                    "agent.model": "same-model",
                    "outcomes.limit": 6,
                    "elicitation.k": 2,
                    "graph.edges_per_round": 10,
                    **over,
                }
            )

        r1 = run_compute_utilities(cfg(a.url), tmp_path)
        r2 = run_compute_utilities(cfg(b.url), tmp_path)  # the same model on a new node
        assert b.n_requests == 0 and not (tmp_path / "refits").exists()
        np.testing.assert_array_equal(r2.train_counts, r1.train_counts)
        with pytest.raises(StoreConfigError, match="agent.model"):  # another model: refused
            run_compute_utilities(cfg(b.url, **{"agent.model": "other-model"}), tmp_path)
    finally:
        a.close()
        b.close()
