"""Studies composed of the experiments (the top room: it may use both ``control`` and
``analysis``): the political position of a model before and after utility control, measured by
the political-values analysis."""

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from utility_jax.analysis.draws import fmt
from utility_jax.analysis.registry import run_analysis

__all__ = ["political_position", "control_political_shift"]

log = logging.getLogger("utility_jax")


def political_position(
    model_path: str | Path,
    out_dir: Path,
    *,
    label: str,
    k: int,
    seed: int,
    fitter: dict,
    max_policies: int,
    max_entities: int,
    progress: bool = False,
) -> dict[str, Any]:
    """The political-values analysis on a local checkpoint (jax backend, log-prob mode): the
    model's correlation with each entity (with intervals) and its nearest entities."""
    cfg = {
        "name": f"political_{label}",
        "seed": seed,
        "plots": True,
        "progress": progress,
        "agent": {"kind": "jax", "model": str(model_path)},
        "elicitation": {"mode": "logprob", "k": k},
        "fitter": fitter,
        "graph": {"edges_per_round": 200},
        "uncertainty": {"n_bootstrap": 50, "laplace": False},
        "analysis": {
            "name": "political",
            "max_policies": max_policies,
            "max_entities": max_entities,
            "model_name": label,
            "planted_lean": None,
        },
    }
    return run_analysis(cfg, out_dir)


def control_political_shift(out: Path, conf, base_model: str, tuned_model: str) -> dict:
    """Political position before and after tuning (``political/before``, ``political/after``),
    added to the control run's ``metrics.json`` and ``summary.txt``."""
    common = dict(
        k=conf.k,
        seed=conf.seed,
        fitter=dataclasses.asdict(conf.fitter),
        max_policies=conf.political_policies,
        max_entities=conf.political_entities,
        progress=conf.progress,
    )
    res = {
        lab: political_position(path, out / "political" / lab, label=lab, **common)
        for lab, path in (("before", base_model), ("after", tuned_model))
    }
    corr = {lab: r["correlation_with_model_intervals"] for lab, r in res.items()}
    entities = [e for e in res["before"]["entities"] if e != "before"]
    shift = {e: corr["after"][e]["estimate"] - corr["before"][e]["estimate"] for e in entities}
    pos = {
        "entities": entities,
        "correlation_before": corr["before"],
        "correlation_after": corr["after"],
        "correlation_shift": shift,
        "nearest_before": res["before"]["nearest_to_model"][0]["entity"],
        "nearest_after": res["after"]["nearest_to_model"][0]["entity"],
        "nearest_share_of_draws": {lab: r["nearest_share_of_draws"] for lab, r in res.items()},
        "n_policies": res["before"]["n_policies"],
        "interval_kind": res["before"]["interval_kind"],
    }
    mpath = out / "metrics.json"
    metrics = json.loads(mpath.read_text())
    metrics["political_position"] = pos
    mpath.write_text(json.dumps(metrics, indent=1))
    lines = [
        f"political position (the political-values analysis on {pos['n_policies']} policies, "
        f"{pos['interval_kind']} intervals): nearest entity before {pos['nearest_before']}, "
        f"after {pos['nearest_after']}; correlation with each entity before -> after:"
    ]
    for e in entities:
        lines.append(f"  {e:28s} {fmt(corr['before'][e])} -> {fmt(corr['after'][e])}")
    with open(out / "summary.txt", "a") as fh:
        fh.write("\n".join(lines) + "\n")
    log.info("political position before/after written to %s", out / "political")
    return pos
