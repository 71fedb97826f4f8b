"""Know the cost before you spend: a dry run sends nothing; a budget stops the run cleanly, and
resuming it ends with the same votes as a run without a limit."""

import json
import subprocess

import numpy as np
import pytest
from fake_openai import SMALL_RUN, FakeOpenAI, compute_cmd
from test_configs import _compose

from utility_jax.elicit.budget import BudgetExceeded, BudgetGuard
from utility_jax.elicit.store import ResponseStore
from utility_jax.run.runner import run_compute_utilities

OVER = [*SMALL_RUN, "agent.model=gpt-4o"]  # a priced model


def test_dry_run_counts_everything_and_sends_nothing(tmp_path):
    srv = FakeOpenAI()
    try:
        pl = run_compute_utilities(
            _compose(*OVER, f"agent.base_url={srv.url}", "dry_run=true"), tmp_path / "dry"
        )
        assert srv.n_requests == 0
        assert not (tmp_path / "dry" / "responses.sqlite").exists()
        # the same run for real: the plan's request and answer counts are exact
        res = run_compute_utilities(_compose(*OVER, f"agent.base_url={srv.url}"), tmp_path / "real")
        c = res.metrics["cost"]
        assert pl["requests"] == c["model_calls"] == srv.n_requests
        assert pl["answers"] == c["answers"] + c["errors"]
        assert pl["usd_expected"] > 0 and pl["usd_max"] >= pl["usd_expected"]
        assert pl["usd_expected_batch"] == pytest.approx(pl["usd_expected"] * 0.5)
        saved = json.loads((tmp_path / "dry" / "plan.json").read_text())
        assert saved["requests"] == pl["requests"]
        # the reported tokens reconcile with the server's bill: it counts 50 prompt tokens per
        # request however many answers the request asks for, and one token per answer
        store = ResponseStore(tmp_path / "real" / "responses.sqlite")
        spend = store.spend(None)
        store.close()
        assert spend["requests"] == srv.n_requests
        assert spend["tokens_in"] == 50 * srv.n_requests
        assert spend["tokens_out"] == srv.n_choices
        assert c["tokens"] == 50 * srv.n_requests + srv.n_choices
        # the plan's prompt tokens are counted the same way (one prompt per request)
        assert pl["prompt_tokens"] > 0 and pl["requests"] == srv.n_requests
    finally:
        srv.close()


@pytest.mark.slow  # CI budget: the fast tier must stay under 20 minutes cold
def test_dry_run_from_the_command_line_prints_the_plan(tmp_path):
    srv = FakeOpenAI()
    try:
        cmd = compute_cmd(srv.url, tmp_path / "cli") + ["dry_run=true"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True).stdout
        assert "dry run: nothing was sent" in out and "requests" in out and "tokens" in out
        assert srv.n_requests == 0
    finally:
        srv.close()


def test_budget_stop_then_resume_gives_the_votes_of_an_unlimited_run(tmp_path):
    """On a server that honours seeds (as vLLM does): stopped at 25 requests, then resumed,
    the run ends with a votes.csv byte-identical to an undisturbed run's."""
    srv = FakeOpenAI(honour_seeds=True)
    try:
        base = [*OVER, f"agent.base_url={srv.url}"]
        full = run_compute_utilities(_compose(*base), tmp_path / "full")
        n_full = srv.n_requests
        with pytest.raises(BudgetExceeded, match="budget.max_requests=25 reached"):
            run_compute_utilities(_compose(*base, "budget.max_requests=25"), tmp_path / "b")
        assert srv.n_requests - n_full == 25  # stopped exactly at the limit
        res = run_compute_utilities(_compose(*base), tmp_path / "b")  # resume, no limit
        assert srv.n_requests - n_full == n_full  # every prompt paid once overall
        np.testing.assert_array_equal(res.train_pairs, full.train_pairs)
        votes = (tmp_path / "b" / "votes.csv").read_bytes()
        assert votes == (tmp_path / "full" / "votes.csv").read_bytes()
    finally:
        srv.close()


def test_a_request_limit_holds_across_reruns_and_each_stop_exits_non_zero(tmp_path):
    """budget.max_requests=30 run five times sends 30 requests in all (the limit counts what
    earlier invocations spent, from the store's ledger); the command line exits 3 with one
    line to say so, until the limit is raised."""
    srv = FakeOpenAI()
    out = tmp_path / "run"
    try:
        base = [*OVER, f"agent.base_url={srv.url}", "budget.max_requests=30"]
        for _ in range(4):
            with pytest.raises(BudgetExceeded, match="30 requests in all"):
                run_compute_utilities(_compose(*base), out)
        assert srv.n_requests == 30
        cmd = compute_cmd(srv.url, out) + ["agent.model=gpt-4o", "budget.max_requests=30"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert p.returncode == 3, p.stderr[-2000:]
        assert "stopped at the limit" in p.stderr and "raise it to go on" in p.stderr
        assert "Traceback" not in p.stderr
        assert srv.n_requests == 30
        p = subprocess.run(
            compute_cmd(srv.url, out) + ["agent.model=gpt-4o", "budget.max_requests=1000"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert p.returncode == 0, p.stderr[-2000:]
        assert srv.n_requests == len(set(srv.answered))  # the rest, each prompt paid once
    finally:
        srv.close()


def test_a_dollar_limit_on_an_unpriced_model_is_refused_before_any_request(tmp_path):
    srv = FakeOpenAI()
    try:
        over = [*OVER, f"agent.base_url={srv.url}", "budget.max_usd=0.0001"]
        with pytest.raises(ValueError, match="no price is known for model 'gpt-4o-2024-08-06'"):
            run_compute_utilities(_compose(*over, "agent.model=gpt-4o-2024-08-06"), tmp_path / "a")
        assert srv.n_requests == 0
        assert not (tmp_path / "a" / "responses.sqlite").exists()
        # with prices given, the same limit is enforced
        priced = [*over, "agent.model=gpt-4o-2024-08-06", "budget.price_input_per_mtok=2.5"]
        priced.append("budget.price_output_per_mtok=10")
        with pytest.raises(BudgetExceeded, match="max_usd"):
            run_compute_utilities(_compose(*priced), tmp_path / "b")
        assert 0 < srv.n_requests < 10
    finally:
        srv.close()


def test_a_shared_store_keeps_one_ledger_per_run(tmp_path):
    from utility_jax.elicit.store import ResponseStore

    srv = FakeOpenAI()
    store = tmp_path / "shared.sqlite"
    try:
        base = [*OVER, f"agent.base_url={srv.url}", f"elicitation.store={store}"]
        run_compute_utilities(_compose(*base), tmp_path / "a")
        n_a = srv.n_requests
        # a second run on the same store: its own limit starts from its own spending
        with pytest.raises(BudgetExceeded):
            run_compute_utilities(
                _compose(*base, "elicitation.k=5", "budget.max_requests=5"), tmp_path / "b"
            )
        s = ResponseStore(store, shared=True)
        try:
            assert s.spend(str((tmp_path / "a").resolve()))["requests"] == n_a
            assert s.spend(str((tmp_path / "b").resolve()))["requests"] == 5
            assert s.spend()["requests"] == n_a + 5 == srv.n_requests
            assert s.spend()["usd"] > 0  # gpt-4o is priced
        finally:
            s.close()
    finally:
        srv.close()


def test_budget_guard_dollar_limit():
    g = BudgetGuard(max_usd=0.01, usd_per_input_token=1e-6, usd_per_output_token=1e-5)
    assert g.allow(5) == 5
    g.spent(5000, 600)  # $0.005 + $0.006
    with pytest.raises(BudgetExceeded, match=r"max_usd=0.01 reached \(spent \$0.0110"):
        g.allow(1)
    assert BudgetGuard(max_requests=3, requests=1).allow(5) == 2


def test_analysis_dry_run_sends_nothing_and_keeps_only_the_plan(tmp_path):
    from utility_jax.analysis.registry import run_analysis

    srv = FakeOpenAI()
    try:
        cfg = _compose(
            "experiment=maximization",
            *OVER,
            f"agent.base_url={srv.url}",
            "dry_run=true",
            "analysis.max_questions=2",
        )
        pl = run_analysis(cfg, tmp_path)
        assert srv.n_requests == 0 and pl["requests"] > 0
        assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]
    finally:
        srv.close()


def test_the_plan_asks_as_many_pairs_as_the_run_without_fitting(tmp_path):
    """A dry run fits nothing (N=3,000 used to print no plan after 10 minutes): random pairs
    stand in for the rounds' choices, and their count is the run's own."""
    from utility_jax.run.config import validate
    from utility_jax.run.pipeline import planned_pairs

    over = [
        "outcomes.limit=24",
        "graph.edges_per_round=7",  # the default graph: active learning
        "uncertainty=none",
        "plots=false",
        "progress=false",
    ]
    res = run_compute_utilities(_compose(*over), tmp_path)
    heldout, train = planned_pairs(24, validate(_compose(*over)))
    np.testing.assert_array_equal(heldout, res.heldout_pairs)
    assert len(train) == len(res.train_pairs) and len(np.unique(train, axis=0)) == len(train)
    np.testing.assert_array_equal(
        train[: res.metrics["rounds"][0]["n_train_pairs"]],
        res.train_pairs[: res.metrics["rounds"][0]["n_train_pairs"]],
    )
