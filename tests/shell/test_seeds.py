"""Seeds tied to the answer, not to the order of asking: on a server that honours seeds (as
vLLM does), raising K asks only the new samples, each with a seed never used for that prompt,
and a run's answers do not depend on which prompts were asked first."""

import collections

import numpy as np
import pytest
from fake_openai import FakeOpenAI
from test_configs import _compose

from utility_jax.elicit.store import answer_seed
from utility_jax.run.incidents import RunIncidentError
from utility_jax.run.runner import run_compute_utilities

OVER = [
    "agent=openai",
    "agent.model=fake",
    "outcomes.limit=10",
    "graph.edges_per_round=10",
    "uncertainty=none",
    "plots=false",
    "progress=false",
]


def test_answer_seeds_are_a_function_of_run_seed_prompt_and_sample():
    s = answer_seed(0, "k1", 0)
    assert s == answer_seed(0, "k1", 0) and 0 <= s < 2**31
    others = {answer_seed(0, "k1", 1), answer_seed(0, "k2", 0), answer_seed(1, "k1", 0)}
    assert s not in others and len(others) == 3


def test_raising_k_asks_only_the_new_samples_with_new_seeds(tmp_path):
    srv = FakeOpenAI(honour_seeds=True)
    store = tmp_path / "shared.sqlite"
    try:
        base = [*OVER, f"agent.base_url={srv.url}", f"elicitation.store={store}"]
        run_compute_utilities(_compose(*base, "elicitation.k=3"), tmp_path / "k3")
        first = list(srv.seeded)
        run_compute_utilities(_compose(*base, "elicitation.k=5"), tmp_path / "k5")
        second = srv.seeded[len(first) :]
    finally:
        srv.close()
    asked_before = collections.defaultdict(set)
    for prompt, seed, n in first:
        assert n == 3
        asked_before[prompt].add(seed)
    again = [(p, s, n) for p, s, n in second if p in asked_before]
    assert len(again) == len(asked_before)  # every earlier prompt asked once more...
    assert all(n == 2 for _, _, n in again)  # ...for exactly the 2 missing samples
    assert all(s not in asked_before[p] for p, s, _ in again)  # with a seed of their own
    # (a new pair the larger K's fit chose is asked for all 5)
    assert all(n == 5 for p, _, n in second if p not in asked_before)


@pytest.mark.slow  # CI budget: the fast tier must stay under 20 minutes cold
def test_the_order_of_asking_does_not_change_the_answers(tmp_path):
    """Half the prompts answered first (a stop), then the rest: the same seeds, hence the same
    votes, as asking them all at once."""
    srv = FakeOpenAI(honour_seeds=True)
    try:
        base = [*OVER, f"agent.base_url={srv.url}", "elicitation.k=3"]
        whole = run_compute_utilities(_compose(*base), tmp_path / "whole")
        seeds_whole = sorted(srv.seeded)
        srv.seeded.clear()
        # requests 31-38 fail; the rerun asks them after everything else
        srv.script = ["ok"] * 30 + [500] * 8
        try:
            run_compute_utilities(_compose(*base, "agent.max_retries=0"), tmp_path / "late")
        except RunIncidentError:
            pass  # the error rate passed agent.max_error_rate: the folder is written, then it fails
        res = run_compute_utilities(_compose(*base), tmp_path / "late")  # retries the failed
    finally:
        srv.close()
    assert sorted(srv.seeded) == seeds_whole
    np.testing.assert_array_equal(res.train_counts, whole.train_counts)
    votes = (tmp_path / "late" / "votes.csv").read_bytes()
    assert votes == (tmp_path / "whole" / "votes.csv").read_bytes()
