"""``utility-jax collect``: every run under a folder in one tidy table, read back by pandas."""

import pandas as pd
import pytest

from utility_jax.cli import main
from utility_jax.run.runner import run_compute_utilities


def _cfg(seed, model):
    return {
        "outcomes": {"limit": 10},
        "graph": {"edges_per_round": 10},
        "fitter": {"model": model},
        "uncertainty": {"n_bootstrap": 0, "laplace": False},
        "seed": seed,
        "plots": False,
        "progress": False,
    }


def test_collect_a_sweep_into_tables_pandas_reads(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    for job, (seed, model) in enumerate([(0, "case3"), (1, "logit")]):
        run_compute_utilities(_cfg(seed, model), sweep / str(job))
    assert main(["collect", str(sweep), "--parquet"]) == 0
    assert "runs: " in capsys.readouterr().out
    runs = pd.read_csv(sweep / "runs.csv", dtype={"run": str})
    assert list(runs["run"]) == ["0", "1"]
    assert list(runs["config.fitter.model"]) == ["case3", "logit"]
    assert list(runs["config.seed"]) == [0, 1]
    assert runs["metrics.heldout.accuracy"].between(0, 1).all()
    assert (runs["metrics.n_outcomes"] == 10).all()
    utils = pd.read_csv(sweep / "utilities.csv", dtype={"run": str})
    assert len(utils) == 20 and set(utils["run"]) == {"0", "1"}
    assert utils.groupby("run")["mu_normalized"].mean().abs().max() < 1e-5
    assert pd.read_parquet(sweep / "runs.parquet").shape == runs.shape


def test_collect_errors_name_the_folder(tmp_path, capsys):
    assert main(["collect", str(tmp_path / "nope")]) == 1
    assert "nope: no such folder" in capsys.readouterr().err
    assert main(["collect", str(tmp_path)]) == 1
    assert "no run folder" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metrics.json").write_text("{")
    with pytest.raises(ValueError, match=r"bad/metrics.json: not valid JSON"):
        from utility_jax.run.collect import collect_runs

        collect_runs(tmp_path)


def test_compare_two_runs_and_a_sweep(tmp_path, capsys):
    import numpy as np

    sweep = tmp_path / "sweep"
    for job, (seed, model) in enumerate([(0, "case3"), (0, "logit")]):
        run_compute_utilities(
            {**_cfg(seed, model), "uncertainty": {"n_bootstrap": 20}}, sweep / str(job)
        )
    single = tmp_path / "single"
    run_compute_utilities({**_cfg(0, "case3"), "uncertainty": {"n_bootstrap": 20}}, single)
    out = tmp_path / "cmp"
    assert main(["compare", str(single), str(sweep), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "vs the first run" in text and "ho_acc" in text
    table = pd.read_csv(out / "compare.csv")
    assert len(table) == 3 and list(table["fitter"]) == ["case3", "case3", "logit"]
    assert (table["ho_acc_lo"] <= table["ho_acc"]).all() and (
        table["ho_acc"] <= table["ho_acc_hi"]
    ).all()
    # the same seed and settings: the sweep's case3 run equals the single run exactly
    from utility_jax.run.compare import compare_runs

    res = compare_runs([single, sweep], out)
    same = res["pairs"][0]
    assert same["n_shared"] == 10 and same["pearson_r"] == pytest.approx(1.0)
    assert np.isnan(same["lo"])  # |r| = 1: no Fisher interval, said as NaN
    assert res["pairs"][1]["pearson_r"] > 0.9  # case III vs Bradley-Terry on the same answers
    for f in ("compare_metrics.png", "compare_utilities.png"):
        assert (out / f).stat().st_size > 5000
    assert main(["compare", str(tmp_path / "nothing")]) == 1


def test_wrong_shaped_run_files_are_named_not_a_traceback(tmp_path, capsys):
    """Before: a metrics.json holding a list gave collect and compare a raw AttributeError, and
    a corrupt utilities.json error did not name the file."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text("[1, 2]")
    assert main(["collect", str(tmp_path)]) == 1
    assert "run/metrics.json: expected a mapping" in capsys.readouterr().err
    assert main(["compare", str(run), "--out", str(tmp_path / "c")]) == 1
    assert "run/metrics.json: expected a mapping" in capsys.readouterr().err
    (run / "metrics.json").write_text("{}")
    (run / "utilities.json").write_text("[{")
    assert main(["compare", str(run), "--out", str(tmp_path / "c")]) == 1
    assert "run/utilities.json: not" in capsys.readouterr().err
