"""The provider Batch API: the same votes as the live endpoint, each prompt paid once, resumable
after a kill during polling, failed lines retried live."""

import os
import signal
import subprocess
import time

import numpy as np
from fake_openai import SMALL_RUN, FakeOpenAI, compute_cmd
from test_configs import _compose

from utility_jax.run.runner import run_compute_utilities

OVER = SMALL_RUN
BATCH = ["agent.batch=true", "agent.batch_poll_s=0.05"]


_LIVE = {}


def _live(tmp_path):
    """The live-endpoint run every batch run is compared with (made once per session)."""
    if not _LIVE:
        srv = FakeOpenAI()
        try:
            res = run_compute_utilities(
                _compose(*OVER, f"agent.base_url={srv.url}"), tmp_path / "live"
            )
            _LIVE["run"] = (res, srv.n_requests)
        finally:
            srv.close()
    return _LIVE["run"]


def test_batch_run_gives_the_live_votes_and_pays_each_prompt_once(tmp_path):
    live, n_prompts = _live(tmp_path)
    srv = FakeOpenAI(batch_polls=2)
    try:
        res = run_compute_utilities(
            _compose(*OVER, *BATCH, f"agent.base_url={srv.url}"), tmp_path / "batch"
        )
        assert srv.n_requests == 0  # no live request at all
        assert srv.batch_lines == n_prompts  # every prompt billed once, in a batch
        assert len(srv.batches) == len(res.metrics["rounds"]) + 1  # held-out set + each round
        np.testing.assert_array_equal(res.train_pairs, live.train_pairs)
        np.testing.assert_array_equal(res.train_counts, live.train_counts)
        np.testing.assert_array_equal(res.heldout_counts, live.heldout_counts)
    finally:
        srv.close()


def test_batch_killed_while_polling_resumes_without_paying_twice(tmp_path):
    live, n_prompts = _live(tmp_path)
    srv = FakeOpenAI()
    srv.hold_batches.set()
    out = tmp_path / "killed"
    cmd = compute_cmd(srv.url, out) + BATCH
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    try:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert srv.batch_polled.wait(120), "the run never polled a batch"
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        assert len(srv.batches) == 1 and srv.batch_lines == 0  # submitted, not yet answered
        srv.hold_batches.clear()
        res = run_compute_utilities(
            _compose(*OVER, *BATCH, f"agent.base_url={srv.url}", "agent.concurrency=4"), out
        )
        assert srv.batch_lines == n_prompts  # the first batch was resumed, not resubmitted
        assert srv.n_requests == 0
        np.testing.assert_array_equal(res.train_counts, live.train_counts)
        np.testing.assert_array_equal(res.heldout_counts, live.heldout_counts)
    finally:
        srv.close()


def test_failed_batch_lines_are_retried_through_the_live_endpoint(tmp_path):
    live, n_prompts = _live(tmp_path)
    srv = FakeOpenAI()
    srv.batch_fail_every = 7
    try:
        res = run_compute_utilities(
            _compose(*OVER, *BATCH, f"agent.base_url={srv.url}"), tmp_path / "partial"
        )
        assert srv.batch_lines == n_prompts
        assert srv.n_requests == n_prompts // 7  # exactly the failed lines, live
        np.testing.assert_array_equal(res.train_counts, live.train_counts)
    finally:
        srv.close()


def test_an_expired_batch_pays_its_finished_lines_once(tmp_path):
    """A batch that expires with half its lines done: those lines are stored (a provider bills
    them), only the other half is asked live, and the votes are the live run's."""
    live, n_prompts = _live(tmp_path)
    for end in ("expired", "cancelled"):
        srv = FakeOpenAI()
        srv.batch_end, srv.batch_done_fraction = end, 0.5
        try:
            res = run_compute_utilities(
                _compose(*OVER, *BATCH, f"agent.base_url={srv.url}"), tmp_path / end
            )
            assert srv.batch_lines == n_prompts // 2, end  # billed once each, every one kept
            assert srv.n_requests == n_prompts - n_prompts // 2, end  # only the rest, live
            np.testing.assert_array_equal(res.train_counts, live.train_counts)
        finally:
            srv.close()


def test_malformed_batch_lines_are_errors_then_asked_live_and_the_rerun_is_clean(tmp_path):
    """Two lines of the output file cut in half: no crash; they are recorded as errors with
    their line numbers, their requests asked once live, the batch marked finished, and a rerun
    of the same command asks nothing."""
    import sqlite3

    live, n_prompts = _live(tmp_path)
    srv = FakeOpenAI()
    srv.batch_malformed = (2, 5)
    out = tmp_path / "malformed"
    try:
        res = run_compute_utilities(_compose(*OVER, *BATCH, f"agent.base_url={srv.url}"), out)
        np.testing.assert_array_equal(res.train_counts, live.train_counts)
        db = sqlite3.connect(out / "responses.sqlite")
        q = "SELECT error FROM errors WHERE request_key LIKE 'batch:%'"
        errs = [e for (e,) in db.execute(q)]
        # every round's batch had lines 2 and 5 cut: each asked once live, none lost
        assert len(errs) >= 2 and srv.n_requests == len(errs), errs
        assert all(" line 2: " in e or " line 5: " in e for e in errs), errs
        assert {s for (s,) in db.execute("SELECT status FROM batches")} == {"completed"}
        db.close()
        before = (srv.n_requests, srv.batch_lines)
        run_compute_utilities(_compose(*OVER, *BATCH, f"agent.base_url={srv.url}"), out)
        assert (srv.n_requests, srv.batch_lines) == before
    finally:
        srv.close()
