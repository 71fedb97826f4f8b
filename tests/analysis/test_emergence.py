"""Emergence: metrics against capability, from a simulated family and from saved run folders."""

import math

import numpy as np
import pytest
from analysis_helpers import _run
from scipy import stats

from utility_jax.analysis.emergence import run_metrics, trend


def test_trend_intervals_are_fisher_z_and_t():
    x = np.array([40.0, 55, 70, 80, 88, 60])
    y = np.array([0.70, 0.74, 0.85, 0.86, 0.93, 0.76])
    t = trend(x, y, level=0.9)
    r = stats.pearsonr(x, y).statistic
    z, se = math.atanh(r), 1 / math.sqrt(len(x) - 3)
    assert t["pearson_r"]["estimate"] == pytest.approx(r)
    assert t["pearson_r"]["lo"] == pytest.approx(math.tanh(z - 1.6448536 * se))
    assert t["pearson_r"]["hi"] == pytest.approx(math.tanh(z + 1.6448536 * se))
    lr = stats.linregress(x, y)
    q = stats.t.ppf(0.95, len(x) - 2)
    assert t["slope"]["lo"] == pytest.approx(lr.slope - q * lr.stderr)
    assert trend([1, 2], [3, 4])["why"]  # too few runs: said, not a fake interval


@pytest.mark.slow  # CI time: the fast tier keeps the main case
def test_simulated_family_and_the_same_runs_read_back_from_their_folders(tmp_path):
    n = _run(tmp_path / "sim", "emergence", "outcomes.limit=24")
    acc = n["trends"]["heldout.accuracy"]["pearson_r"]
    assert acc["estimate"] > 0.8 and acc["lo"] < acc["estimate"] <= acc["hi"]
    assert n["trends"]["heldout.log_loss"]["pearson_r"]["estimate"] < -0.8
    assert len(list((tmp_path / "sim" / "emergence").glob("*.png"))) == len(n["trends"]) - sum(
        "why" in t for t in n["trends"].values()
    )
    # the same five fits as saved runs, through a capability table
    cap = tmp_path / "capability.csv"
    cap.write_text("Model Name,MMLU\n" + "".join(f"{m},{v}\n" for m, v in n["capability"].items()))
    runs = {m: str(tmp_path / "sim" / "tasks" / f"model_{m}") for m in n["models"]}
    runs_arg = "analysis.runs={" + ", ".join(f"{k}: '{v}'" for k, v in runs.items()) + "}"
    n2 = _run(tmp_path / "saved", "emergence", runs_arg, f"analysis.capability={cap}")
    assert n2["source"] == "5 saved runs"
    assert n2["trends"]["heldout.accuracy"]["pearson_r"]["estimate"] == pytest.approx(
        acc["estimate"]
    )
    bad = "analysis.runs={nobody: '" + runs[n["models"][0]] + "'}"
    with pytest.raises(ValueError, match=r"no MMLU score for \['nobody'\]"):
        _run(tmp_path / "bad", "emergence", bad, f"analysis.capability={cap}")


def test_run_metrics_names_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        run_metrics(tmp_path)
    (tmp_path / "analysis.json").write_text('{"analysis": "x", "a": {"estimate": 0.5}}')
    assert run_metrics(tmp_path) == {"x.a": 0.5}
