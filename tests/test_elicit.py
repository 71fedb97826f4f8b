"""Elicitation: parsing, prompts, the hf backend on a tiny local model, the store, the OpenAI
backend against a local fake server, and the compute_utilities loop through them."""

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jax
import numpy as np
import pytest
from conftest import ANCHOR

from utility_jax.elicit.llm import LLMAgent
from utility_jax.elicit.parse import parse_answer
from utility_jax.elicit.prompts import load_template, render_pair, template_names
from utility_jax.elicit.store import ResponseStore, StoreConfigError
from utility_jax.outcomes import OutcomeSet

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


@pytest.mark.parametrize(
    "text,want",
    [
        ("A", "A"),
        ("B", "B"),
        (" A\n", "A"),
        ("A.", "A"),
        ("**B**", "B"),
        ("Option A", "A"),
        ('"B"', "B"),
        ("(A)", "A"),
        ("B) because it is better", "B"),
        ("Answer: B", "B"),
        ("I prefer Option B.", "B"),
        ("A world where everyone is happy.", "refusal"),
        ("A storm is bad", "refusal"),
        ("Option A or Option B", "refusal"),
        ("", "refusal"),
        (None, "refusal"),
        ("a", "refusal"),
        ("I cannot choose between these.", "refusal"),
        ("A. The first one.", "A"),
        ("B\nBecause...", "B"),
    ],
)
def test_parse_answer(text, want):
    assert parse_answer(text) == want


def test_parse_reasoning_mode_takes_the_last_answer_line():
    assert (
        parse_answer("Option A seems good... Answer: A. Hmm, actually Answer: B", reasoning=True)
        == "B"
    )
    assert parse_answer("A", reasoning=True) == "refusal"  # the format was asked for
    assert parse_answer('Thinking.\n\n"Answer: A"', reasoning=True) == "A"


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
    from tiny_lm import build_tiny_qwen2

    corpus = [
        load_template().render(a, b) for a in OUTCOMES.texts for b in OUTCOMES.texts if a != b
    ]
    return build_tiny_qwen2(tmp_path_factory.mktemp("tiny_qwen2"), corpus)


@pytest.fixture(scope="module")
def hf_backend(tiny_model):
    os.environ["HF_HUB_OFFLINE"] = "1"
    from utility_jax.elicit.hf import HFBackend

    return HFBackend(str(tiny_model), batch_size=4, max_new_tokens=1)


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
    np.testing.assert_allclose(counts[0, 0, 0], 10 * d01.p_a / (d01.p_a + d01.p_b), rtol=1e-6)
    np.testing.assert_allclose(counts[0, 1, 0], 10 * d10.p_a / (d10.p_a + d10.p_b), rtol=1e-6)
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
    store.close()
    with pytest.raises(StoreConfigError, match="k: 3 -> 4"):
        ResponseStore(path, config={"k": 4})
    ResponseStore(path, config={"k": 4}, force=True).close()


# --------------------------------------------------------------------------- openai backend
class _FakeServer:
    """An OpenAI-compatible /chat/completions on 127.0.0.1 with scripted failures."""

    def __init__(self, script=()):
        self.script = list(script)  # statuses to return first, e.g. [429, 500]
        self.requests = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append((body, dict(self.headers)))
                status = outer.script.pop(0) if outer.script else 200
                if status != 200:
                    self.send_response(status)
                    self.end_headers()
                    self.wfile.write(b'{"error": "scripted"}')
                    return
                user = body["messages"][-1]["content"]
                if body.get("logprobs"):
                    out = {
                        "choices": [
                            {
                                "message": {"content": "A"},
                                "logprobs": {
                                    "content": [
                                        {
                                            "token": "A",
                                            "logprob": -0.1,
                                            "top_logprobs": [
                                                {"token": "A", "logprob": float(np.log(0.6))},
                                                {"token": " B", "logprob": float(np.log(0.3))},
                                                {"token": "I", "logprob": float(np.log(0.1))},
                                            ],
                                        }
                                    ]
                                },
                            }
                        ],
                        "usage": {"prompt_tokens": 50},
                    }
                else:
                    n = body.get("n", 1)
                    first = user.split("Option A:\n")[1].split("\n")[0]
                    content = None if "ten dollars" in first else ("A" if "lunch" in first else "B")
                    out = {
                        "choices": [{"message": {"content": content}} for _ in range(n)],
                        "usage": {"prompt_tokens": 50, "completion_tokens": n},
                    }
                data = json.dumps(out).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake():
    servers = []

    def make(script=()):
        s = _FakeServer(script)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def _openai(url, **kw):
    from utility_jax.elicit.openai_compat import OpenAIBackend

    return OpenAIBackend(url, "fake-model", backoff_base_s=0.001, backoff_max_s=0.01, **kw)


def test_openai_n_samples_in_one_request_with_retries(fake, monkeypatch):
    monkeypatch.setenv("TEST_KEY_VAR", "sk-secret")
    srv = fake(script=[429, 503])
    be = _openai(srv.url, api_key_env="TEST_KEY_VAR")
    agent = LLMAgent(be, OUTCOMES, load_template(), mode="sample")
    counts = agent.query(np.array([[0, 1]]), 10, key=jax.random.key(0))
    # order 0 shows the lunch as A -> "A"; order 1 shows it as B -> "B": 20 votes for outcome 0
    np.testing.assert_array_equal(counts[0], [[10, 0, 0], [0, 10, 0]])
    assert (
        len(srv.requests) == 4 and be.retries == 2
    )  # two prompts, n=10 each, two retried failures
    assert all(r[0]["n"] == 10 for r in srv.requests)
    assert srv.requests[-1][1]["Authorization"] == "Bearer sk-secret"


def test_openai_none_content_is_a_refusal_and_errors_are_not_votes(fake, tmp_path):
    srv = fake()
    be = _openai(srv.url)
    store = ResponseStore(tmp_path / "s.sqlite")
    agent = LLMAgent(be, OUTCOMES, load_template(), mode="sample", store=store)
    counts = agent.query(
        np.array([[4, 1]]), 3, key=jax.random.key(0)
    )  # "ten dollars" -> None content
    assert counts[0, 0, 2] == 3 and agent.stats.refusals == 3
    bad = fake(script=[400] * 10)
    agent2 = LLMAgent(
        _openai(bad.url, max_retries=2), OUTCOMES, load_template(), mode="sample", store=store
    )
    c = agent2.query(np.array([[0, 1]]), 2, key=jax.random.key(0))
    assert c.sum() == 0 and agent2.stats.errors == 4 and store.count("errors") == 4
    assert len(bad.requests) == 2  # a 400 is not retried
    err = store.db.execute("SELECT error FROM errors").fetchone()[0]
    assert "HTTP 400" in err and "sk-" not in err
    store.close()


def test_openai_logprob_mode(fake):
    srv = fake(script=[500])
    agent = LLMAgent(_openai(srv.url), OUTCOMES, load_template(), mode="logprob")
    counts = agent.query(np.array([[0, 1]]), 10, key=jax.random.key(0))
    np.testing.assert_allclose(counts[0, :, 0], 10 * 0.6 / 0.9, rtol=1e-6)
    assert srv.requests[-1][0]["top_logprobs"] == 20 and srv.requests[-1][0]["max_tokens"] == 1
    assert agent.other_mass[0] == pytest.approx(0.1, abs=1e-6)


# --------------------------------------------------------------------------- the loop
def test_compute_utilities_with_hf_agent_resumes_from_its_store(tiny_model, tmp_path):
    from test_configs import _compose

    from utility_jax.runner import run_compute_utilities

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
