"""Gather finished runs into tidy tables: one row per run (its settings and metrics), and one row
per run and outcome (its utilities). ``utility-jax collect SWEEP_DIR`` writes both as CSV (and
Parquet with ``--parquet``), ready for pandas."""

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

import yaml

from utility_jax.run.config import ComputeUtilitiesConf
from utility_jax.run.report import flatten

__all__ = ["find_runs", "run_row", "collect_runs", "RunFolder", "load_run"]

# the run settings a table shows: every schema section but the display switches
_CONFIG_KEYS = tuple(
    f.name for f in dataclasses.fields(ComputeUtilitiesConf) if f.name not in ("plots", "progress")
)


def find_runs(root: str | Path) -> list[Path]:
    """Every run folder under ``root`` (a folder holding ``metrics.json``), sorted; refit
    sub-folders count as runs of their own."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such folder")
    return sorted(p.parent for p in root.rglob("metrics.json"))


def _scalars(d: dict, prefix: str) -> dict[str, Any]:
    return {
        f"{prefix}{k}": v
        for k, v in flatten(d).items()
        if v is None or isinstance(v, (int, float, str, bool))
    }


def read_file(path: Path, shape: type) -> Any:
    """A run file's JSON or YAML content, checked to be a ``shape`` (dict or list); a broken
    or wrong-shaped file is a ``ValueError`` naming it."""
    try:
        text = path.read_text(encoding="utf-8")
        obj = yaml.safe_load(text) if path.suffix == ".yaml" else json.loads(text)
    except (ValueError, yaml.YAMLError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid {path.suffix.lstrip('.').upper()} ({e})") from None
    if path.suffix == ".yaml" and obj is None:
        obj = shape()
    if not isinstance(obj, shape):
        raise ValueError(
            f"{path}: expected a {'mapping' if shape is dict else 'list'} as a run writes it, "
            f"found {type(obj).__name__}"
        )
    return obj


def run_row(folder: Path, root: Path) -> dict[str, Any]:
    """One run as a flat row: ``run`` (its path under ``root``), ``config.*`` and ``metrics.*``
    scalars (lists such as per-round records are left in the run folder)."""
    row: dict[str, Any] = {"run": str(folder.relative_to(root)) or "."}
    cfg_file = folder / "config_resolved.yaml"
    if cfg_file.exists():
        cfg = read_file(cfg_file, dict)
        row.update(_scalars({k: cfg[k] for k in _CONFIG_KEYS if k in cfg}, "config."))
    metrics = read_file(folder / "metrics.json", dict)
    metrics = {k: v for k, v in metrics.items() if k != "rounds"}
    row.update(_scalars(metrics, "metrics."))
    return row


def _write_csv(rows: list[dict], path: Path) -> None:
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)


def collect_runs(root: str | Path, out: str | Path | None = None, *, parquet: bool = False):
    """Write ``runs.csv`` and ``utilities.csv`` (and ``.parquet``) for every run under ``root``
    into ``out`` (default ``root``); returns the paths written."""
    root = Path(root)
    out = Path(out) if out is not None else root
    runs = find_runs(root)
    if not runs:
        raise FileNotFoundError(f"{root}: no run folder (no metrics.json) below it")
    rows = [run_row(f, root) for f in runs]
    utils = []
    for f, r in zip(runs, rows, strict=True):
        u = f / "utilities.csv"
        if u.exists():
            with open(u, newline="") as fh:
                utils += [{"run": r["run"], **x} for x in csv.DictReader(fh)]
    out.mkdir(parents=True, exist_ok=True)
    written = {"runs": out / "runs.csv", "utilities": out / "utilities.csv"}
    _write_csv(rows, written["runs"])
    if utils:
        _write_csv(utils, written["utilities"])
    else:
        del written["utilities"]
    if parquet:
        import pandas as pd

        for name in list(written):
            p = out / f"{name}.parquet"
            pd.read_csv(written[name]).to_parquet(p)
            written[f"{name}_parquet"] = p
    return written


@dataclasses.dataclass
class RunFolder:
    """A finished compute run read back: its settings, metrics, per-outcome utilities (with
    their intervals) and summary text."""

    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    utilities: list[dict[str, Any]]
    summary: str

    def to_frame(self):
        """The utilities as a pandas DataFrame (one row per outcome)."""
        import pandas as pd

        return pd.DataFrame(self.utilities)

    def interval_kind(self) -> str | None:
        """The interval the run reports first (posterior, bootstrap, Laplace), or None."""
        from utility_jax.run.uncertainty import INTERVAL_KINDS

        row = self.utilities[0] if self.utilities else {}
        return next((k for k in INTERVAL_KINDS if f"{k}_lo" in row), None)


def load_run(folder: str | Path) -> RunFolder:
    """Read the run folder ``folder`` (what ``utility-jax compute`` wrote); errors name the
    missing or broken file."""
    folder = Path(folder)
    files = {}
    for name in ("metrics.json", "utilities.json"):
        path = folder / name
        if not path.exists():
            raise FileNotFoundError(f"{path}: not found (is {folder} a finished run folder?)")
        files[name] = read_file(path, dict if name == "metrics.json" else list)
    cfg_file = folder / "config_resolved.yaml"
    cfg = read_file(cfg_file, dict) if cfg_file.exists() else {}
    summ = folder / "summary.txt"
    return RunFolder(
        folder,
        cfg or {},
        files["metrics.json"],
        files["utilities.json"],
        summ.read_text() if summ.exists() else "",
    )
