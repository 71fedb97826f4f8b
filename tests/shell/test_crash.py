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


@pytest.mark.slow  # CI budget: the fast tier must stay under 20 minutes cold
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


def _snapshot(folder):
    import hashlib

    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_a_refused_process_writes_nothing_into_the_run_folder(tmp_path):
    """A second process on a busy folder (k=7, seed=5 against a running k=3 run), and a resume
    refused for changing the questions, leave every file of the folder as it was: .hydra/
    still records the run that is there."""
    out = tmp_path / "run"
    srv = FakeOpenAI(hang_after=20)
    first = subprocess.Popen(_cmd(srv.url, out), env=_env(), stdout=subprocess.DEVNULL)
    try:
        assert srv.blocked.wait(180)
        before = _snapshot(out)
        while True:  # the answers in flight at the hang are stored: wait until the folder rests
            time.sleep(0.5)
            before, last = _snapshot(out), before
            if before == last:
                break
        assert ".hydra/config.yaml" in before
        other = _cmd(srv.url, out) + ["elicitation.k=7", "seed=5"]
        p = subprocess.run(other, env=_env(), capture_output=True, text=True, timeout=300)
        assert p.returncode != 0 and "is in use by pid" in p.stderr, p.stderr[-1000:]
        assert _snapshot(out) == before
        srv.release()
        assert first.wait(300) == 0
        done = _snapshot(out)
        p = subprocess.run(other, env=_env(), capture_output=True, text=True, timeout=300)
        assert p.returncode != 0 and "asked other questions" in p.stderr, p.stderr[-1000:]
        assert _snapshot(out) == done
        assert "k: 3" in (out / ".hydra" / "config.yaml").read_text()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(30)
        srv.close()


def test_ctrl_c_stores_the_answers_in_flight_and_exits_130_with_the_resume_command(tmp_path):
    """SIGINT mid-run: nothing more is sent, the requests in flight are answered and stored,
    the process exits 130 with the command that resumes (no traceback); that command ends
    with the votes of an undisturbed run, and no prompt is paid twice."""
    clean = FakeOpenAI(honour_seeds=True)
    try:
        subprocess.run(_cmd(clean.url, tmp_path / "clean"), env=_env(), check=True, timeout=300)
    finally:
        clean.close()
    srv = FakeOpenAI(honour_seeds=True)
    srv.latency_s = 0.3  # four requests always in flight
    out = tmp_path / "run"
    try:
        proc = subprocess.Popen(
            _cmd(srv.url, out),
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 180
        while srv.n_requests < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err[-2000:]
        assert "Traceback" not in err and "resume with:" in err, err[-2000:]
        resume = err.split("resume with:")[1].strip().splitlines()[0].split()
        assert resume[:2] == ["utility-jax", "compute"] and f"hydra.run.dir={out}" in resume
        asked = srv.n_requests
        assert asked < len(clean.answered)  # it did stop early
        srv.latency_s = 0.0
        subprocess.run(_cmd(srv.url, out), env=_env(), check=True, timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
        srv.close()
    assert len(srv.answered) == len(set(srv.answered))  # the requests in flight were kept
    assert (out / "votes.csv").read_bytes() == (tmp_path / "clean" / "votes.csv").read_bytes()
