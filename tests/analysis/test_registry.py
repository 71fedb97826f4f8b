"""The analysis registry and run: config checks, every override, the command line."""

import os
import subprocess
import sys

import pytest
from analysis_helpers import _compose
from conftest import ROOT

from utility_jax.analysis import discounting as D
from utility_jax.analysis.harness import analysis_config
from utility_jax.analysis.registry import ANALYSES, run_analysis


def test_analysis_config_names_a_bad_key_and_unknown_analysis(tmp_path):
    with pytest.raises(ValueError, match="nope"):
        analysis_config(D.Config, {"nope": 1}, "discounting")
    with pytest.raises(ValueError, match="choose one of"):
        run_analysis({"analysis": {"name": "astrology"}}, tmp_path)


def test_every_analysis_override_lists_every_setting():
    """Hydra's struct mode only lets users override keys the YAML lists."""
    import dataclasses

    for name, mod in ANALYSES.items():
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
