"""A lost answer store is rebuilt from the run's responses.jsonl before anything is asked; a
finished run with nothing to rebuild from is never re-asked silently."""

import numpy as np
import pytest
from fake_openai import SMALL_RUN, FakeOpenAI
from test_configs import _compose

from utility_jax.elicit.store import StoreConfigError
from utility_jax.run.runner import run_compute_utilities

OVER = SMALL_RUN


def test_an_emptied_or_garbled_store_is_rebuilt_from_responses_jsonl(tmp_path):
    srv = FakeOpenAI()
    out = tmp_path / "run"
    try:
        conf = _compose(*OVER, f"agent.base_url={srv.url}")
        first = run_compute_utilities(conf, out)
        paid = srv.n_requests
        votes = (out / "votes.csv").read_bytes()
        for damage in (b"", b"this is not a database" * 100):
            (out / "responses.sqlite").write_bytes(damage)  # truncated, then overwritten
            again = run_compute_utilities(conf, out)
            assert srv.n_requests == paid  # nothing bought again
            np.testing.assert_array_equal(again.train_counts, first.train_counts)
            assert (out / "votes.csv").read_bytes() == votes
        assert len(list(out.glob("responses.sqlite.unreadable-*"))) == 1  # kept, not deleted
    finally:
        srv.close()


@pytest.mark.slow  # CI budget: the fast tier must stay under 20 minutes cold
def test_a_finished_run_without_its_answers_stops_unless_asked_to_reask(tmp_path):
    srv = FakeOpenAI()
    out = tmp_path / "run"
    try:
        conf = _compose(*OVER, f"agent.base_url={srv.url}")
        run_compute_utilities(conf, out)
        paid = srv.n_requests
        (out / "responses.sqlite").write_bytes(b"")
        (out / "responses.jsonl").unlink()
        with pytest.raises(StoreConfigError, match="elicitation.reask=true"):
            run_compute_utilities(conf, out)
        assert srv.n_requests == paid
        run_compute_utilities(
            _compose(*OVER, f"agent.base_url={srv.url}", "elicitation.reask=true"), out
        )
        assert srv.n_requests == 2 * paid
    finally:
        srv.close()


def test_a_malformed_responses_jsonl_is_named_with_its_line(tmp_path):
    from utility_jax.elicit.store import ResponseStore

    p = tmp_path / "responses.jsonl"
    p.write_text('{"request_key": "k"}\n')
    s = ResponseStore(tmp_path / "s.sqlite")
    try:
        with pytest.raises(ValueError, match=r"responses.jsonl, line 1"):
            s.import_jsonl(p)
        assert s.count() == 0
    finally:
        s.close()
