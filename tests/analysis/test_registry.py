"""The analysis registry and run: config checks, every override, the command line."""

import json
import os
import subprocess
import sys

import pytest
from analysis_helpers import _compose
from conftest import ROOT

from utility_jax.analysis import discounting as D
from utility_jax.analysis.harness import analysis_config
from utility_jax.analysis.registry import analyses, run_analysis


def test_analysis_config_names_a_bad_key_and_unknown_analysis(tmp_path):
    with pytest.raises(ValueError, match="nope"):
        analysis_config(D.Config, {"nope": 1}, "discounting")
    with pytest.raises(ValueError, match="choose one of"):
        run_analysis({"analysis": {"name": "astrology"}}, tmp_path)


def test_every_analysis_override_lists_every_setting():
    """Hydra's struct mode only lets users override keys the YAML lists."""
    import dataclasses

    for name, mod in analyses().items():
        cfg = _compose(f"experiment={name}")
        fields = {f.name for f in dataclasses.fields(mod.Config)}
        assert set(cfg.analysis) == fields, name
        assert cfg.analysis.name == name


@pytest.mark.slow
def test_analysis_cli(tmp_path):
    out = tmp_path / "run"
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "experiments" / "analysis.py"),
            "experiment=discounting",
            "progress=false",
            f"hydra.run.dir={out}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Temporal discounting" in r.stdout and (out / "discounting.png").exists()


def test_preset_paper_applies_each_analysis_reference_settings(tmp_path):
    from analysis_helpers import EXP

    from utility_jax.analysis import exchange_rates, instrumental, lotteries
    from utility_jax.analysis.harness import analysis_config

    data = str(EXP.parents[1])
    acfg = analysis_config(
        instrumental.Config,
        {"name": "instrumental", "preset": "paper", "scoring": "ours"},
        "instrumental",
        instrumental.paper_settings(data),
    )
    assert acfg.scoring == "reference" and acfg.processes.endswith("markov_processes.json")
    lcfg = analysis_config(
        lotteries.Config, {"preset": "paper"}, "lotteries", lotteries.paper_settings(data)
    )
    assert lcfg.implicit_background.endswith("options_hierarchical.json")
    xcfg = analysis_config(
        exchange_rates.Config,
        {"preset": "none"},
        "exchange_rates",
        exchange_rates.paper_settings(data),
    )
    assert xcfg.option_space == "default"  # preset none: the module's own defaults
    with pytest.raises(ValueError, match="unknown preset 'papr'"):
        analysis_config(lotteries.Config, {"preset": "papr"}, "lotteries", {})


def test_one_list_of_analyses_for_modules_configs_command_line_and_readme():
    """The analyses found in the package are the shipped experiments with an analysis section,
    the names the command's usage lists, and the rows of the README's table."""
    import re

    from utility_jax.cli import analysis_experiments, usage

    names = sorted(analyses())
    assert len(names) >= 12 and "power_seeking" in names
    assert analysis_experiments() == names
    listed = re.search(r"experiment=([a-z_|\s]+)\n  \(", usage()).group(1)
    assert sorted(re.sub(r"\s+", "", listed).split("|")) == names
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| experiment | what is computed |") :]
    table = table[: table.index("\n\n")]
    assert sorted(re.findall(r"^\| `([a-z_]+)` \|", table, re.M)) == names


_TOY = """
import dataclasses

import numpy as np

from utility_jax.analysis.harness import Task, opening
from utility_jax.io.outcomes import OutcomeSet

BOUNDS = {}


@dataclasses.dataclass
class Config:
    name: str = "toy"
    n_outcomes: int = 6


def run(cfg, ctx):
    outs = OutcomeSet.from_texts([f"outcome {i}" for i in range(cfg.n_outcomes)])
    truth = (np.linspace(-1.0, 1.0, cfg.n_outcomes), np.full(cfg.n_outcomes, 0.3))
    r = ctx.fit(Task("toy", outs, truth=truth if ctx.simulated else None))
    return {"interval_kind": r.interval_kind, "top": int(np.argmax(r.mu))}


def plot(numbers):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.bar([0], [numbers["top"]])
    return fig


def summary(numbers):
    return opening(numbers, "Toy") + f"The top outcome is {numbers['top']}."
"""

_TOY_CONFIG = """# @package _global_
analysis:
  name: toy
  module: toy_analysis_module
  n_outcomes: 6
name: toy
graph:
  edges_per_round: 6
"""


def test_an_analysis_of_ones_own_is_one_module_one_config_and_runs(tmp_path):
    """A toy analysis outside the package: its module and its experiment config in a folder of
    the user's, run by the command line with nothing of the package edited."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "toy_analysis_module.py").write_text(_TOY)
    conf = tmp_path / "conf" / "experiment"
    conf.mkdir(parents=True)
    (conf / "toy.yaml").write_text(_TOY_CONFIG)
    out = tmp_path / "run"
    r = subprocess.run(
        [sys.executable, "-m", "utility_jax", "analyze", "--config-dir", str(tmp_path / "conf")]
        + ["experiment=toy", "progress=false", "uncertainty.n_bootstrap=8", f"hydra.run.dir={out}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(code)},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    numbers = json.loads((out / "analysis.json").read_text())
    assert numbers["analysis"] == "toy" and numbers["top"] == 5  # the planted best outcome
    assert "The top outcome is 5." in (out / "summary.txt").read_text()
    assert (out / "toy.png").exists() and (out / "tasks" / "toy" / "metrics.json").exists()


def test_a_module_that_is_not_the_named_analysis_is_refused(tmp_path):
    with pytest.raises(ValueError, match="does not import"):
        run_analysis({"analysis": {"name": "toy", "module": "no_such_module_here"}}, tmp_path)
    with pytest.raises(ValueError, match="is not the analysis 'toy'"):
        run_analysis(
            {"analysis": {"name": "toy", "module": "utility_jax.analysis.power"}}, tmp_path
        )
