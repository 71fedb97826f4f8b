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
