"""Know the cost before you spend: a dry run sends nothing; a budget stops the run cleanly, and
resuming it ends with the same votes as a run without a limit."""

import json
import subprocess

import numpy as np
import pytest
from fake_openai import FakeOpenAI, compute_cmd
from test_configs import _compose

from utility_jax.elicit.budget import BudgetExceeded, BudgetGuard
from utility_jax.run.runner import run_compute_utilities

OVER = [
    "agent=openai",
    "agent.model=gpt-4o",
    "outcomes.limit=10",
    "graph.edges_per_round=10",
    "elicitation.k=3",
    "uncertainty=none",
    "plots=false",
    "progress=false",
]


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
    finally:
        srv.close()


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
    srv = FakeOpenAI()
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
        np.testing.assert_array_equal(res.train_counts, full.train_counts)
        np.testing.assert_array_equal(res.heldout_counts, full.heldout_counts)
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
