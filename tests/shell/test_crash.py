"""kill -9 at random moments, and two processes at once: nothing paid for is lost, nothing
stored is asked again, and the votes are those of an uninterrupted run."""

import collections
import os
import signal
import subprocess
import time

import numpy as np
import pytest
from fake_openai import FakeOpenAI, compute_cmd

CONCURRENCY = 4


def _cmd(url, out):
    return compute_cmd(url, out, concurrency=CONCURRENCY)


def _env():
    return {**os.environ, "UTILITY_JAX_LOG_DIR": "unused"}


def _kill_after(srv, answered: int, out) -> None:
    """Run until the server has answered ``answered`` requests, then kill -9."""
    srv.hang_after = answered
    srv.blocked.clear()
    srv._release.clear()
    proc = subprocess.Popen(
        _cmd(srv.url, out), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        assert srv.blocked.wait(180), f"the run never reached request {answered + 1}"
        time.sleep(0.5)  # requests in flight at the kill may be answered and not yet stored
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    srv.release()


@pytest.mark.slow
def test_kill_minus_nine_at_five_random_moments(tmp_path):
    clean = FakeOpenAI(honour_seeds=True)
    try:
        subprocess.run(_cmd(clean.url, tmp_path / "clean"), env=_env(), check=True, timeout=300)
    finally:
        clean.close()
    total = len(clean.answered)
    rng = np.random.default_rng(2026)
    moments = np.sort(rng.choice(np.arange(10, total - 10), size=5, replace=False))
    srv = FakeOpenAI(honour_seeds=True)  # as vLLM: a replay with the wrong seed would show
    try:
        for m in moments:
            _kill_after(srv, int(m), tmp_path / "run")
        subprocess.run(_cmd(srv.url, tmp_path / "run"), env=_env(), check=True, timeout=300)
    finally:
        srv.close()
    repeats = sum(c - 1 for c in collections.Counter(srv.answered).values() if c > 1)
    print(f"kill -9 at answered requests {moments.tolist()} of {total}: {repeats} repeated")
    assert repeats <= CONCURRENCY * len(moments)  # only requests in flight at a kill
    assert sorted(set(srv.answered)) == sorted(set(clean.answered))
    a = (tmp_path / "run" / "votes.csv").read_text()
    assert a == (tmp_path / "clean" / "votes.csv").read_text()


def test_two_processes_on_one_run_folder(tmp_path):
    """Started together: one runs, the other is refused naming the holder; nothing is paid
    twice, and the votes are those of a single run."""
    srv = FakeOpenAI()
    try:
        procs = [
            subprocess.Popen(
                _cmd(srv.url, tmp_path / "run"),
                env=_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        srv.close()
    codes = sorted(p.returncode for p in procs)
    assert codes[0] == 0 and codes[1] != 0, [o[1][-500:] for o in outs]
    refused = next(o[1] for p, o in zip(procs, outs, strict=True) if p.returncode != 0)
    assert "is in use by pid" in refused
    assert len(srv.answered) == len(set(srv.answered))  # every prompt paid once
