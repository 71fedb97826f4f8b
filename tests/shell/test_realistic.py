"""A realistic LLM behind a real (fake) server: chatty answers, refusals, a position bias, a
content filter that refuses one outcome for good, latency and 429 bursts. The run finishes, says
what happened, and recovers the planted utilities."""

import numpy as np
import pytest
from fake_openai import FakeOpenAI, RealisticLLM
from scipy import stats

from utility_jax.run.incidents import RunIncidentError
from utility_jax.run.runner import run_compute_utilities


def _failed_run(cfg, out):
    """The run writes its folder, then fails: one outcome is compared by no voted pair (the
    content filter refused every prompt showing it)."""
    with pytest.raises(RunIncidentError, match=r"1 outcomes are compared by no voted pair") as e:
        run_compute_utilities(cfg, out)
    assert "refused for good" in str(e.value)
    return e.value.result


N = 12
TEXTS = [f"You receive a gift card worth {10 * (k + 1)} dollars." for k in range(N)]
PLANTED = np.linspace(-2.0, 2.0, N)
FILTERED = 3


def _cfg(url, outcomes):
    return {
        "outcomes": {"path": str(outcomes)},
        "agent": {
            "kind": "openai",
            "base_url": url,
            "model": "realistic-llm",
            "concurrency": 4,
            "max_retries": 3,
            "max_error_rate": 0.3,
        },
        "elicitation": {"k": 6},
        "graph": {"edges_per_round": 20},
        "uncertainty": {"n_bootstrap": 0, "laplace": False},
        "plots": False,
        "progress": False,
    }


@pytest.fixture
def llm():
    return RealisticLLM(
        dict(zip(TEXTS, PLANTED, strict=True)),
        position_bias=0.6,
        refusal_rate=0.1,
        filtered={TEXTS[FILTERED]},
        burst_every=9,
        latency_s=0.002,
    )


def test_realistic_llm_run_reports_incidents_and_recovers_utilities(tmp_path, llm):
    outcomes = tmp_path / "outcomes.txt"
    outcomes.write_text("\n".join(TEXTS) + "\n")
    srv = FakeOpenAI(llm=llm)
    try:
        res = _failed_run(_cfg(srv.url, outcomes), tmp_path / "run")
        m = res.metrics
        inc = m["incidents"]
        # the content filter: every pair showing the filtered outcome lost its requests for good
        assert inc["train"]["outcomes_never_compared"] == [FILTERED]
        assert inc["train"]["without_votes_no_answer"] == inc["train"]["pairs_without_votes"] > 0
        assert "HTTP 400" in inc["last_error"] and "content management policy" in inc["last_error"]
        # the reference answer rule reads "I prefer A." as a vote: refusals stay near the planted
        # 10% (plus the "Both A and B..." replies), not the strict rule's 40%
        assert 0 < inc["error_rate"] < 0.3 and 0.05 < m["cost"]["refusal_rate"] < 0.2
        assert m["cost"]["parser"] == "reference" and m["cost"]["parser_disagreements"] > 0
        keep = np.arange(N) != FILTERED
        rho = stats.spearmanr(np.asarray(res.fit.mu)[keep], PLANTED[keep]).statistic
        assert rho > 0.9, rho
        summary = (tmp_path / "run" / "summary.txt").read_text()
        assert "INCIDENT:" in summary and "compared by no voted training pair" in summary
        # never 0.0 and a mid-table rank: no utility, and a flag, in every table
        rows = (tmp_path / "run" / "utilities.csv").read_text().splitlines()
        head = rows[0].split(",")
        bad = dict(zip(head, rows[1 + FILTERED].split(","), strict=True))
        assert bad["compared"] == "False" and bad["mu"] == "nan" and bad["mu_normalized"] == "nan"
        assert "not compared" in summary
        # a rerun in the same folder asks nothing: answers come from the store, and the filtered
        # prompts are not asked again (their refusal was permanent)
        before = srv.n_requests
        res2 = _failed_run(_cfg(srv.url, outcomes), tmp_path / "run")
        assert srv.n_requests == before
        assert res2.metrics["cost"]["permanent_errors"] > 0
        np.testing.assert_allclose(np.asarray(res2.fit.mu), np.asarray(res.fit.mu))
        # the strict rule on the same folder: stored replies are re-parsed (nothing asked), the
        # result goes to a refits/ folder, and the two rules disagree on the same answers
        strict = _cfg(srv.url, outcomes)
        strict["elicitation"]["parser"] = "strict"
        res3 = _failed_run(strict, tmp_path / "run")
        assert srv.n_requests == before
        c3 = res3.metrics["cost"]
        assert c3["refusal_rate"] > 0.3, c3["refusal_rate"]
        assert c3["parser_disagreements"] == res2.metrics["cost"]["parser_disagreements"]
        assert list((tmp_path / "run" / "refits").glob("*/summary.txt"))
    finally:
        srv.close()
    print(
        f"realistic LLM: Spearman {rho:.3f}, error rate {inc['error_rate']:.3f}, "
        f"refusal rate {m['cost']['refusal_rate']:.3f}"
    )
