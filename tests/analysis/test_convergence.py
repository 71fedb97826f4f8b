"""The convergence analysis: its core on known answers (fast) and end to end on a planted agent (slow)."""

import json

import numpy as np
import pytest
from analysis_helpers import _run
from conftest import ANCHOR, LLAMA2_RESULTS, RESULTS_DIR


@pytest.mark.slow
def test_convergence_planted_models_and_saved_runs(tmp_path):
    """Simulated models sharing a planted vector with weight = capability: mean similarity
    correlates with capability at r > 0.8. From the two saved reference runs: the Pearson
    correlation equals numpy's on their shared outcomes."""
    n = _run(tmp_path / "sim", "convergence")
    t = n["pearson_similarity_vs_capability"]
    assert t["estimate"] > 0.8
    # over a handful of models the correlation's own sampling error (Fisher z) is the wider one
    assert t["models_lo"] < t["estimate"] < t["models_hi"]
    assert t["models_hi"] - t["models_lo"] > t["hi"] - t["lo"]
    qwen = RESULTS_DIR / "qwen25-vl-7b-instruct" / "results_utilities_qwen25-vl-7b-instruct.json"
    n = _run(
        tmp_path / "saved",
        "convergence",
        f"analysis.runs={{llama: {LLAMA2_RESULTS}, qwen: {qwen}}}",
        "plots=false",
    )
    a, b = (json.loads(p.read_text()) for p in (LLAMA2_RESULTS, qwen))
    ua = {o["description"]: a["utilities"][str(o["id"])]["mean"] for o in a["options"]}
    ub = {o["description"]: b["utilities"][str(o["id"])]["mean"] for o in b["options"]}
    keys = sorted(set(ua) & set(ub))
    want = np.corrcoef([ua[k] for k in keys], [ub[k] for k in keys])[0, 1]
    assert n["pearson"][0][1] == pytest.approx(want, abs=1e-9) and n["n_shared_outcomes"] == 510
    # reference files carry no per-outcome uncertainty: no interval, said so (not lo = hi)
    assert sorted(n["models_without_uncertainty"]) == ["llama", "qwen"]
    assert np.isnan(n["pearson_lo"][0][1]) and n["interval_kind"].startswith("not computable")
    assert "can be computed" in (tmp_path / "saved" / "summary.txt").read_text()


def test_convergence_grows_with_capability_on_planted_models():
    """Ten models whose utilities are a shared value system plus noise that shrinks with
    capability: mean similarity to the others correlates with capability (Pearson > 0.8)."""
    from utility_jax.analysis import convergence as C

    rng = np.random.default_rng(0)
    shared = rng.normal(size=200)
    cap = {f"m{i}": 50 + 5 * i for i in range(10)}
    utils = {m: shared + (3.0 - 0.3 * i) * rng.normal(size=200) for i, m in enumerate(cap)}
    res = C.convergence_vs_capability(utils, cap)
    assert res["pearson_similarity_vs_capability"] > 0.8
    sim = C.similarity_matrices(
        {"a": np.arange(5.0), "b": 2 * np.arange(5.0) + 3, "c": -np.arange(5.0)}
    )
    np.testing.assert_allclose(sim["pearson"][0], [1, 1, -1])
    np.testing.assert_allclose(sim["cosine"][0], [1, 1, -1])


def test_capability_table_from_anchor_data():

    from utility_jax.analysis import convergence as C

    path = ANCHOR / "utility_analysis" / "capability_scores.csv"
    cap = C.load_capability(path)
    rows = [x for x in path.read_text().splitlines()[1:] if x.strip()]
    assert len(cap) == len({r.split(",")[0] for r in rows}) >= 69 and cap[
        "gpt-4o"
    ] == pytest.approx(88.7)
