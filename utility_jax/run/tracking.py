"""Experiment tracking through Hydra callbacks: each finished run (and every job of a sweep) is
logged to MLflow (a local file store by default, no server) or to Weights & Biases (offline
mode by default).

    utility-jax compute +tracking=mlflow                 # ./mlruns, then `mlflow ui`
    utility-jax compute -m seed=0,1,2 +tracking=mlflow \
        hydra.callbacks.mlflow.tracking_uri=file:/data/mlruns
    utility-jax compute +tracking=wandb                  # offline; `wandb sync` later

Logged per job: the run's settings as parameters (``config.*`` of :func:`collect.run_row`), every
numeric metric (``metrics.*``), and the run folder's summary, tables and figures as artifacts.
Needs the ``tracking`` extra (``mlflow-skinny``) or ``wandb``.
"""

import logging
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from utility_jax.run.collect import run_row

__all__ = ["MLflowCallback", "WandbCallback", "run_record"]

log = logging.getLogger("utility_jax")

_ARTIFACTS = ("summary.txt", "metrics.json", "utilities.csv", "config_resolved.yaml", "plan.json")


def run_record(folder: Path) -> tuple[dict[str, Any], dict[str, float]] | None:
    """``(params, metrics)`` of a finished run folder, or None when it holds no run."""
    if not (folder / "metrics.json").exists():
        return None
    row = run_row(folder, folder)
    params = {k[len("config.") :]: v for k, v in row.items() if k.startswith("config.")}
    metrics = {
        k[len("metrics.") :]: float(v)
        for k, v in row.items()
        if k.startswith("metrics.") and isinstance(v, int | float) and not isinstance(v, bool)
    }
    return params, metrics


def _job_folder(config) -> Path:
    return Path(config.hydra.runtime.output_dir)


class MLflowCallback(Callback):
    """Log each finished job to MLflow (``tracking_uri``: null -> ``file:./mlruns``)."""

    def __init__(self, tracking_uri: str | None = None, experiment: str = "utility_jax"):
        self.tracking_uri = tracking_uri or f"file:{Path.cwd() / 'mlruns'}"
        self.experiment = experiment

    def on_job_end(self, config, job_return, **kwargs) -> None:
        import mlflow

        folder = _job_folder(config)
        rec = run_record(folder)
        if rec is None:
            log.warning("tracking: %s holds no finished run; nothing logged", folder)
            return
        params, metrics = rec
        if self.tracking_uri.startswith("file:"):
            # MLflow 3 keeps the file store behind an opt-in; a local store needs no server
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_experiment(self.experiment)
        with mlflow.start_run(run_name=folder.name):
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
            mlflow.log_metrics(metrics)
            mlflow.set_tag("run_folder", str(folder))
            for name in _ARTIFACTS:
                if (folder / name).exists():
                    mlflow.log_artifact(str(folder / name))
            for png in sorted(folder.glob("*.png")):
                mlflow.log_artifact(str(png), artifact_path="figures")
        log.info("tracking: logged %s to MLflow at %s", folder, self.tracking_uri)


class WandbCallback(Callback):
    """Log each finished job to Weights & Biases (``mode``: offline by default)."""

    def __init__(self, project: str = "utility_jax", mode: str = "offline", dir: str | None = None):
        self.project, self.mode, self.dir = project, mode, dir

    def on_job_end(self, config, job_return, **kwargs) -> None:
        try:
            import wandb
        except ImportError as e:
            raise ImportError("+tracking=wandb needs the wandb package (pip install wandb)") from e
        folder = _job_folder(config)
        rec = run_record(folder)
        if rec is None:
            return
        params, metrics = rec
        run = wandb.init(
            project=self.project,
            name=folder.name,
            config=params,
            mode=self.mode,
            dir=self.dir or str(folder),
            reinit=True,
        )
        run.log(metrics)
        for png in sorted(folder.glob("*.png")):
            run.log({png.stem: wandb.Image(str(png))})
        run.finish()
