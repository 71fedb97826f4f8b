"""Tracking through a Hydra callback: a sweep logged to a local MLflow file store, read back."""

import os
import subprocess
import sys

import pytest


@pytest.mark.slow  # CI budget: the fast tier must stay under 20 minutes cold
def test_sweep_is_logged_to_mlflow_offline(tmp_path):
    mlflow = pytest.importorskip("mlflow", reason="the tracking extra (mlflow-skinny)")
    uri = f"file:{tmp_path / 'mlruns'}"
    cmd = [
        sys.executable,
        "-m",
        "utility_jax",
        "compute",
        "-m",
        "seed=0,1",
        "outcomes.limit=10",
        "graph.edges_per_round=10",
        "uncertainty=none",
        "plots=false",
        "progress=false",
        "+tracking=mlflow",
        f"hydra.callbacks.mlflow.tracking_uri={uri}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]
    subprocess.run(
        cmd,
        check=True,
        capture_output=True,
        timeout=300,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = mlflow.tracking.MlflowClient(uri)
    exp = client.get_experiment_by_name("compute_utilities")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 2
    assert sorted(r.data.params["seed"] for r in runs) == ["0", "1"]
    for r in runs:
        assert 0.4 < r.data.metrics["heldout.accuracy"] <= 1.0
        assert r.data.tags["run_folder"].startswith(str(tmp_path / "sweep"))
        names = {a.path for a in client.list_artifacts(r.info.run_id)}
        assert {"summary.txt", "metrics.json", "utilities.csv"} <= names
