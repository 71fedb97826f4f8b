"""The instrumental analysis: its core on known answers (fast) and end to end on a planted agent (slow)."""

import json

import numpy as np
import pytest
from analysis_helpers import EXP, _run

from utility_jax.analysis import instrumental as I


def test_instrumental_score_zero_for_instrumental_utilities_and_control_worse():
    procs = I.load_processes(EXP / "instrumental_values" / "markov_processes.json")
    ctrl = I.load_processes(EXP / "instrumental_values" / "markov_processes_unnatural.json")
    assert len(procs) == 21
    texts, index = I.rollout_outcomes(procs)
    assert len(texts) == 21 * 6 and " -> " in texts[1]
    rng = np.random.default_rng(0)
    u = rng.normal(size=len(texts))
    for p, ix in zip(procs, index, strict=True):
        r = rng.normal()
        for s, nxt in p["transitions"].items():
            u[ix["start"][s]] = r + 0.99 * sum(q * u[ix["next"][s][str(t)]] for t, q in nxt)
    nat = I.instrumental_score(u, procs, index)
    con = I.instrumental_score(u, ctrl, I.rollout_outcomes(ctrl)[1])
    assert nat["score"] < 1e-12 and nat["start_gap_correlation"] == pytest.approx(1.0)
    assert con["score"] > 0.1
    sw = I.swap_start_transitions(procs)
    assert sw[0]["transitions"]["0"] == procs[0]["transitions"]["1"]


def test_markov_file_errors_name_the_process(tmp_path):
    bad = tmp_path / "mp.json"
    bad.write_text(
        json.dumps(
            {"MarkovProcesses": [{"name": "x", "states": [], "transitions": {"0": [[2, 0.5]]}}]}
        )
    )
    with pytest.raises(
        ValueError, match=r"mp.json: MarkovProcesses\[0\] state 0: probabilities sum to 0.5"
    ):
        I.load_processes(bad)


@pytest.mark.slow
def test_instrumental_natural_beats_control(tmp_path):
    """Instrumental planted utilities (noise sd 0.1): the natural transitions fit better than the
    control ones in >= 95% of draws, with the difference's interval above 0."""
    n = _run(tmp_path, "instrumental")
    assert n["share_of_draws_natural_better"] >= 0.95 and n["control_minus_natural_score"]["lo"] > 0


def _torch_reference_score(u, procs, index, gamma=0.99, steps=1000):
    """The reference's optimize_reward_function, transcribed (torch, Adam, R clamped to 0 on
    start states after every step), with exact transition probabilities as successor weights."""
    torch = pytest.importorskip("torch")
    losses = []
    for p, ix in zip(procs, index, strict=True):
        nodes, start, succ = [], [], {}
        for sid in sorted(p["transitions"], key=int):
            s_local = len(nodes)
            nodes.append(ix["start"][sid])
            start.append(s_local)
            succ[s_local] = []
            for t, q in p["transitions"][sid]:
                succ[s_local].append((len(nodes), float(q)))
                nodes.append(ix["next"][sid][str(t)])
        n = len(nodes)
        R = torch.nn.Parameter(torch.zeros(n))
        V = torch.nn.Parameter(torch.zeros(n))
        opt = torch.optim.Adam([R, V], lr=0.01)
        U = torch.tensor(np.asarray(u)[nodes], dtype=torch.float32)

        def v_new(n=n, R=R, V=V, succ=succ):
            out = torch.zeros(n)
            for s in range(n):
                ev = sum((q * V[t] for t, q in succ.get(s, [])), torch.tensor(0.0))
                out[s] = R[s] + gamma * ev
            return out

        for _ in range(steps):
            opt.zero_grad()
            vn = v_new()
            loss = torch.mean((vn - V) ** 2) + 0.1 * torch.mean((vn - U) ** 2)
            loss.backward()
            opt.step()
            with torch.no_grad():
                R[start] = 0.0
        with torch.no_grad():
            losses.append(float(torch.mean(torch.abs(U - v_new()))))
    return float(np.mean(losses))


def test_reference_scoring_matches_a_transcription_of_the_reference():
    procs = I.load_processes()[:3]
    texts, index = I.rollout_outcomes(procs)
    u = np.random.default_rng(0).normal(0, 1, len(texts))
    want = _torch_reference_score(u, procs, index, steps=300)
    got = I.reference_instrumental_score(u, procs, index, steps=300)
    assert got["score"] == pytest.approx(want, abs=2e-4)
    # draws: one vectorised call gives the same score per draw
    d = np.stack([u, -u])
    both = I.reference_instrumental_score(d, procs, index, steps=300)["score"]
    assert both[0] == pytest.approx(got["score"], abs=1e-5)


@pytest.mark.slow  # CI time: the fast tier keeps the main case
def test_both_scorings_separate_natural_from_control_on_a_planted_agent(tmp_path):
    n = _run(tmp_path, "instrumental", "analysis.scoring=reference", "plots=false")
    assert n["scoring"] == "reference"
    assert n["control_minus_natural_score"]["lo"] > 0
    assert "reference's score" in (tmp_path / "summary.txt").read_text()
