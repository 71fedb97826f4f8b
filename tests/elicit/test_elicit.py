"""Elicitation: parsing, prompts, the hf backend on a tiny local model, the store, the OpenAI
backend against a local fake server, and the compute_utilities loop through them."""

import json
import os
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import ANCHOR

from utility_jax.elicit.llm import LLMAgent
from utility_jax.elicit.parse import parse_answer
from utility_jax.elicit.store import ResponseStore, StoreConfigError
from utility_jax.io.outcomes import OutcomeSet
from utility_jax.io.prompts import load_template, render_pair, template_names

OUTCOMES = OutcomeSet.from_texts(
    [
        "You get a free lunch.",
        "A storm damages your house.",
        "You learn to play the violin.",
        "Your favourite team loses.",
        "You find ten dollars.",
        "A friend visits you.",
    ]
)


def test_paper_templates_are_exact():
    ref = json.loads((ANCHOR / "derived" / "prompt_templates.json").read_text())["templates"]
    assert (
        load_template("default").text
        == ref["compute_utilities/templates.py"]["comparison_prompt_template_default"]
    )
    assert (
        load_template("reasoning").text
        == ref["compute_utilities/templates.py"]["comparison_prompt_template_reasoning_default"]
    )
    assert load_template("reasoning").reasoning and not load_template("default").reasoning
    assert {"lottery", "policy_ai", "power", "time_discounting", "future_values"} <= set(
        template_names()
    )
    msgs = render_pair(load_template(), "X happens.", "Y happens.", "You are a helpful assistant.")
    assert msgs[0] == {"role": "system", "content": "You are a helpful assistant."}
    assert "Option A:\nX happens.\n\nOption B:\nY happens." in msgs[1]["content"]
    with pytest.raises(ValueError, match="unknown prompt template"):
        load_template("nope")


# --------------------------------------------------------------------------- hf backend
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    pytest.importorskip("torch")
    from utility_jax.finetune.testing import build_random_qwen2

    corpus = [
        load_template().render(a, b) for a in OUTCOMES.texts for b in OUTCOMES.texts if a != b
    ]
    return build_random_qwen2(tmp_path_factory.mktemp("tiny_qwen2"), corpus)


@pytest.fixture(scope="module")
def hf_backend(tiny_model):
    os.environ["HF_HUB_OFFLINE"] = "1"
    from utility_jax.elicit.hf import HFBackend

    return HFBackend(str(tiny_model), batch_size=4, max_new_tokens=1)


def test_hf_temperature_zero_is_greedy(tiny_model):
    """Temperature 0 (free answers in maximisation) decodes greedily: the seed does not matter,
    and the first token is the argmax of the next-token distribution."""
    import torch

    from utility_jax.elicit.hf import HFBackend

    be = HFBackend(str(tiny_model), batch_size=2, max_new_tokens=3, temperature=0.0)
    msgs = [[{"role": "user", "content": load_template().render(a, b)}] for a, b in [("x", "y")]]
    a = be.sample(msgs, 1, seed=0)[0][0]
    b = be.sample(msgs, 1, seed=123)[0][0]
    assert a.error is None and a.text == b.text
    enc = be._encode([be.render(msgs[0])])
    with torch.no_grad():
        logits = be.lm(**enc).logits[0, -1]
    first = be.tokenizer.decode([int(logits.argmax())], skip_special_tokens=True)
    assert a.text.startswith(first)


def test_logprob_mode_equals_an_independent_softmax(hf_backend, tiny_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    lm = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    agent = LLMAgent(hf_backend, OUTCOMES, load_template(), mode="logprob")
    prompts = [
        agent.messages(0, 1),
        agent.messages(1, 0),
        agent.messages(2, 5),
        agent.messages(3, 4),
        agent.messages(5, 2),
    ]
    got = hf_backend.answer_probs(prompts)  # batched and left-padded
    a_ids = {
        tok.encode(s, add_special_tokens=False)[0]
        for s in ("A", " A")
        if len(tok.encode(s, add_special_tokens=False)) == 1
    }
    b_ids = {
        tok.encode(s, add_special_tokens=False)[0]
        for s in ("B", " B")
        if len(tok.encode(s, add_special_tokens=False)) == 1
    }
    assert a_ids and b_ids
    for msgs, g in zip(prompts, got, strict=True):
        text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        ids = torch.tensor(
            [tok(text, add_special_tokens=False)["input_ids"]]
        )  # one row, no padding
        with torch.no_grad():
            p = torch.softmax(lm(ids).logits[0, -1].double(), -1)
        assert g.p_a == pytest.approx(float(p[list(a_ids)].sum()), abs=1e-5)
        assert g.p_b == pytest.approx(float(p[list(b_ids)].sum()), abs=1e-5)
        assert g.p_other == pytest.approx(1 - float(p[list(a_ids | b_ids)].sum()), abs=1e-5)


def test_both_orders_are_asked_and_pooled(hf_backend):
    agent = LLMAgent(hf_backend, OUTCOMES, load_template(), mode="logprob")
    counts = agent.query(np.array([[0, 1], [2, 3]]), 10, key=jax.random.key(0))
    assert counts.shape == (2, 2, 3)
    np.testing.assert_allclose(
        counts[..., :2].sum(-1), 10, rtol=1e-9
    )  # K fractional votes per order
    d01 = hf_backend.answer_probs([agent.messages(0, 1)])[0]
    d10 = hf_backend.answer_probs([agent.messages(1, 0)])[0]
    # float32 log-probs of a tiny model: relative tolerance with an absolute floor (a vote
    # share of ~1e-5 differs by ~1e-10 between two forward passes of different batch shapes)
    tol = dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(counts[0, 0, 0], 10 * d01.p_a / (d01.p_a + d01.p_b), **tol)
    np.testing.assert_allclose(counts[0, 1, 0], 10 * d10.p_a / (d10.p_a + d10.p_b), **tol)
    assert agent.stats.forward_passes == 4


def test_sample_mode_frequencies_match_logprob_probabilities(hf_backend):
    """1,500 one-token samples per prompt: the share of "A" among A/B answers is within 4 binomial
    standard errors of the log-prob mode's renormalised P(A)."""
    agent = LLMAgent(hf_backend, OUTCOMES, load_template(), mode="sample")
    msgs = [agent.messages(0, 1), agent.messages(4, 2)]
    probs = hf_backend.answer_probs(msgs)
    samples = hf_backend.sample(msgs, 1500, seed=0)
    for d, comps in zip(probs, samples, strict=True):
        labels = [parse_answer(c.text) for c in comps]
        na, nb = labels.count("A"), labels.count("B")
        p = d.p_a / (d.p_a + d.p_b)
        se = np.sqrt(p * (1 - p) / (na + nb))
        assert abs(na / (na + nb) - p) < 4 * se + 1e-3, (na, nb, p)
        # and the refusal share (other tokens) matches the mass outside {A, B}
        assert (
            abs(labels.count("refusal") / len(labels) - d.p_other)
            < 4 * np.sqrt(d.p_other * (1 - d.p_other) / len(labels)) + 1e-3
        )


def test_store_reuses_every_answer_and_refuses_another_config(hf_backend, tmp_path):
    path = tmp_path / "responses.sqlite"
    pairs = np.array([[0, 1], [2, 3], [4, 5]])
    store = ResponseStore(path, config={"k": 3})
    a1 = LLMAgent(hf_backend, OUTCOMES, load_template(), mode="sample", store=store)
    c1 = a1.query(pairs, 3, key=jax.random.key(1))
    assert a1.stats.model_calls == 6 and a1.cache_hits == 0 and store.count() == 18
    store.close()
    store = ResponseStore(path, config={"k": 3})
    a2 = LLMAgent(hf_backend, OUTCOMES, load_template(), mode="sample", store=store)
    c2 = a2.query(pairs, 3, key=jax.random.key(99))  # another key: still nothing is asked again
    np.testing.assert_array_equal(c1, c2)
    assert a2.stats.model_calls == 0 and a2.cache_hits == 18
    # asking for more samples asks only for the missing ones
    c3 = a2.query(pairs[:1], 5, key=jax.random.key(2))
    assert a2.stats.model_calls == 2 and store.count() == 22 and c3.sum() == 10
    n = store.export_jsonl(tmp_path / "r.jsonl")
    rows = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert n == 22 and {"raw_text", "label", "prompt", "tokens_in", "latency_s"} <= set(rows[0])
    import pyarrow.parquet as pq

    assert store.export_parquet(tmp_path / "r.parquet") == 22
    table = pq.read_table(tmp_path / "r.parquet").to_pylist()
    assert sorted(r["label"] for r in table) == sorted(r["label"] for r in rows)
    store.close()
    with pytest.raises(StoreConfigError, match="k: 3 -> 4"):
        ResponseStore(path, config={"k": 4})
    ResponseStore(path, config={"k": 4}, force=True).close()


# --------------------------------------------------------------------------- openai backend
@pytest.fixture
def fake():
    from fake_openai import FakeOpenAI

    servers = []

    def make(*a, **kw):
        s = FakeOpenAI(*a, **kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def _openai(url, **kw):
    from utility_jax.elicit.openai_compat import OpenAIBackend

    kw.setdefault("timeout_s", 5.0)
    return OpenAIBackend(url, "fake-model", backoff_base_s=0.001, backoff_max_s=0.01, **kw)


def test_openai_n_samples_in_one_request_through_failures(fake, monkeypatch):
    """429, 500, a timeout and a malformed JSON body are retried; the answers are the server's."""
    from fake_openai import answers_for

    monkeypatch.setenv("TEST_KEY_VAR", "sk-secret")
    srv = fake(script=[429, 500, "timeout", "badjson"], delay_s=1.5)
    be = _openai(srv.url, api_key_env="TEST_KEY_VAR", timeout_s=0.5, concurrency=1)
    agent = LLMAgent(be, OUTCOMES, load_template(), mode="sample")
    counts = agent.query(np.array([[0, 1]]), 10, key=jax.random.key(0))
    want = []
    for msgs in (agent.messages(0, 1), agent.messages(1, 0)):
        a = answers_for(msgs[-1]["content"], 10)
        want.append([a.count("A"), a.count("B"), 0])
    np.testing.assert_array_equal(counts[0], want)
    assert be.retries == 4 and len(srv.answered) == 2  # one answered request per order, n=10 each
    assert all(r[0]["n"] == 10 for r in srv.requests)
    assert srv.requests[-1][1]["authorization"] == "Bearer sk-secret"


def test_openai_empty_and_null_content_are_refusals_and_errors_are_not_votes(fake, tmp_path):
    srv = fake(script=["empty", "none"])
    store = ResponseStore(tmp_path / "s.sqlite")
    agent = LLMAgent(
        _openai(srv.url, concurrency=1), OUTCOMES, load_template(), mode="sample", store=store
    )
    counts = agent.query(np.array([[4, 1]]), 3, key=jax.random.key(0))
    assert counts[0, :, 2].sum() == 6 and agent.stats.refusals == 6
    bad = fake(script=[400] * 10)
    agent2 = LLMAgent(
        _openai(bad.url, max_retries=2), OUTCOMES, load_template(), mode="sample", store=store
    )
    c = agent2.query(np.array([[0, 1]]), 2, key=jax.random.key(0))
    assert c.sum() == 0 and agent2.stats.errors == 4 and store.count("errors") == 2
    assert len(bad.requests) == 2  # a 400 is not retried
    err = store.db.execute("SELECT error FROM errors").fetchone()[0]
    assert "HTTP 400" in err and "sk-" not in err
    down = _openai("http://127.0.0.1:9/v1", max_retries=1)  # nothing listens there
    agent3 = LLMAgent(down, OUTCOMES, load_template(), mode="sample")
    assert agent3.query(np.array([[0, 1]]), 2, key=jax.random.key(0)).sum() == 0
    assert agent3.stats.errors == 4 and down.retries == 2
    store.close()


def test_openai_logprob_mode(fake):
    from fake_openai import answers_for

    srv = fake(script=[500])
    agent = LLMAgent(_openai(srv.url), OUTCOMES, load_template(), mode="logprob")
    counts = agent.query(np.array([[0, 1]]), 10, key=jax.random.key(0))
    pa = answers_for(agent.messages(0, 1)[-1]["content"], 1000).count("A") / 1000 * 0.9
    np.testing.assert_allclose(counts[0, 0, 0], 10 * pa / 0.9, rtol=1e-6)
    assert srv.requests[-1][0]["top_logprobs"] == 20 and srv.requests[-1][0]["max_tokens"] == 1
    assert agent.other_mass[0] == pytest.approx(0.1, abs=1e-6)


@pytest.mark.slow  # CI budget: the fast tier must stay under 20 minutes cold
def test_sigkill_mid_run_loses_nothing_and_repeats_no_call(fake, tmp_path):
    """Kill the run (SIGKILL) after 25 answered requests, run it again in the same folder, and
    compare with an uninterrupted run: same votes, and every prompt answered exactly once."""
    import signal
    import subprocess

    from fake_openai import compute_cmd as cmd

    env = {**os.environ, "UTILITY_JAX_ANCHOR_DATA": str(ANCHOR)}
    crash = fake(hang_after=25)
    proc = subprocess.Popen(
        cmd(crash.url, tmp_path / "a"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert crash.blocked.wait(120), "the run never reached the 26th request"
    time.sleep(1.0)  # let the client commit what it has received
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    answered_before = list(crash.answered)
    assert len(answered_before) == 25
    crash.release()
    subprocess.run(
        cmd(crash.url, tmp_path / "a"), env=env, check=True, capture_output=True, timeout=300
    )
    # no answered prompt was asked again
    assert len(crash.answered) == len(set(crash.answered))
    clean = fake()
    subprocess.run(
        cmd(clean.url, tmp_path / "b"), env=env, check=True, capture_output=True, timeout=300
    )
    assert sorted(crash.answered) == sorted(clean.answered)
    assert (tmp_path / "a" / "votes.csv").read_text() == (tmp_path / "b" / "votes.csv").read_text()


# --------------------------------------------------------------------------- the loop
def test_compute_utilities_with_hf_agent_resumes_from_its_store(tiny_model, tmp_path):
    from test_configs import _compose

    from utility_jax.run.runner import run_compute_utilities

    over = [
        "agent=hf",
        f"agent.model={tiny_model}",
        "elicitation=logprob",
        "outcomes.limit=12",
        "graph.edges_per_round=10",
        "uncertainty=none",
        "progress=false",
        "plots=false",
    ]
    r1 = run_compute_utilities(_compose(*over), tmp_path)
    m1 = r1.metrics["cost"]
    assert m1["forward_passes"] == 2 * (r1.metrics["n_train_pairs"] + r1.metrics["n_heldout_pairs"])
    assert m1["cache_hits"] == 0 and (tmp_path / "responses.jsonl").exists()
    r2 = run_compute_utilities(_compose(*over), tmp_path)  # the same run folder: a resume
    assert r2.metrics["cost"]["forward_passes"] == 0
    assert r2.metrics["cost"]["cache_hits"] == m1["forward_passes"]
    np.testing.assert_allclose(np.asarray(r2.fit.mu), np.asarray(r1.fit.mu))
    with pytest.raises(StoreConfigError):
        run_compute_utilities(_compose(*over, "elicitation.k=5"), tmp_path)


def test_parser_corpus_of_realistic_replies():
    corpus = json.loads((Path(__file__).parents[1] / "data" / "parser_corpus.json").read_text())[
        "cases"
    ]
    kinds = {c["kind"] for c in corpus}
    assert {
        "terse",
        "verbose",
        "markdown",
        "refusal",
        "both letters",
        "article",
        "reasoning",
    } <= kinds
    wrong = []
    for c in corpus:
        r = c.get("reasoning", False)
        got = (
            parse_answer(c["text"], reasoning=r, rule="strict"),
            parse_answer(c["text"], reasoning=r),
        )
        want = (c["label"], c.get("label_reference", c["label"]))
        if got != want:
            wrong.append((c["text"], want, got))
    assert not wrong, wrong
