"""LLM backends by kind: the built-in table, and a backend of one's own added with one module and
one agent config, nothing of the package edited."""

import json
import os
import subprocess
import sys

import pytest

from utility_jax.elicit.registry import AGENT_KINDS, BACKENDS, backend_module
from utility_jax.run.config import validate

_TOY = '''
import random

from utility_jax.elicit.backend import AnswerDistribution, Completion


class ToyBackend:
    """Answers "A" (the option shown first) with probability prefer_first."""

    name = "toy"

    def __init__(self, model, prefer_first):
        self.model, self.prefer_first = model, prefer_first

    def settings(self, mode):
        return {"prefer_first": self.prefer_first}

    def sample(self, prompts, n, *, seed, on_result=None):
        out = []
        for i, messages in enumerate(prompts):
            rng = random.Random(f"{seed}:{messages[-1]['content']}")
            got = [
                Completion("A" if rng.random() < self.prefer_first else "B", tokens_in=20, tokens_out=1)
                for _ in range(n)
            ]
            if on_result is not None:
                on_result(i, got)
            out.append(got)
        return out

    def answer_probs(self, prompts, on_result=None):
        out = [AnswerDistribution(self.prefer_first, 1 - self.prefer_first, 0.0) for _ in prompts]
        for i, d in enumerate(out):
            if on_result is not None:
                on_result(i, d)
        return out


def from_config(agent, elicitation):
    return ToyBackend(agent.model, float(agent.options["prefer_first"]))
'''

_TOY_AGENT = """kind: toy
backend: toy_backend_module
model: toy-1
options:
  prefer_first: 0.8
"""


def test_every_built_in_kind_has_a_module_that_builds_it():
    assert AGENT_KINDS == ("simulated", *BACKENDS)
    for kind in ("openai",):  # hf and jax import torch / transformers: their modules are tested
        assert callable(backend_module(kind).from_config)
    with pytest.raises(ValueError, match="has no LLM backend"):
        backend_module("astrology")
    with pytest.raises(ValueError, match="does not import"):
        backend_module("toy", "no_such_module_here")
    with pytest.raises(ValueError, match="has no from_config"):
        backend_module("toy", "utility_jax.elicit.store")


def test_an_unknown_kind_is_refused_unless_it_names_its_backend():
    with pytest.raises(ValueError, match="agent.kind='toy'"):
        validate({"agent": {"kind": "toy"}})
    conf = validate({"agent": {"kind": "toy", "backend": "toy_backend_module", "model": "m"}})
    assert conf.agent.backend == "toy_backend_module" and conf.agent.options == {}


def test_a_backend_of_ones_own_is_one_module_and_one_config(tmp_path):
    """A toy backend outside the package, its module and its agent config in the user's folders,
    run by the command line: its settings reach it, and its answers are read and fitted."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "toy_backend_module.py").write_text(_TOY)
    (tmp_path / "conf" / "agent").mkdir(parents=True)
    (tmp_path / "conf" / "agent" / "toy.yaml").write_text(_TOY_AGENT)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "utility_jax", "compute", "--config-dir", str(tmp_path / "conf")]
    cmd += ["agent=toy", "outcomes.limit=8", "uncertainty=none", "plots=false", "progress=false"]
    r = subprocess.run(
        cmd + [f"hydra.run.dir={out}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(code)},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["cost"]["answers"] > 0 and m["cost"]["refusal_rate"] == 0.0
    share = m["order"]["share_choosing_first_shown"]
    assert 0.7 < share < 0.9, share  # the option reached it: it prefers the first-shown 80%
    assert (out / "responses.sqlite").exists()
