"""The ``utility-jax`` command: its help, its errors, and a run from a folder that is not the
repository (configs come from the package; the run folder from the folder the user is in)."""

import os
import subprocess
import sys

import pytest

from utility_jax.cli import COMMANDS, main


def _run(args, cwd, timeout=300):
    env = {k: v for k, v in os.environ.items() if k != "UTILITY_JAX_LOG_DIR"}
    return subprocess.run(
        [sys.executable, "-m", "utility_jax", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in (*COMMANDS, "data"):
        assert f"  {cmd} " in out
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_compute_help_shows_the_packaged_config_groups(tmp_path):
    p = _run(["compute", "--help"], tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "utility-jax is powered by Hydra" in p.stdout
    assert "experiment: convergence" in p.stdout and "fitter: case3" in p.stdout
    p = _run(["control", "--cfg", "job"], tmp_path)
    assert p.returncode == 0 and "assembly:" in p.stdout and "sft:" in p.stdout


@pytest.mark.slow  # CI budget: the fast tier must stay under 20 minutes cold
def test_compute_runs_from_another_folder_into_its_logs(tmp_path):
    p = _run(
        [
            "compute",
            "experiment=smoke",
            "outcomes.limit=12",
            "uncertainty.n_bootstrap=5",
            "progress=false",
        ],
        tmp_path,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    runs = list((tmp_path / "logs" / "smoke" / "runs").glob("*/metrics.json"))
    assert len(runs) == 1 and "held-out accuracy" in p.stdout
    assert str(runs[0].parent) in p.stdout


def test_a_users_config_folder_is_searched_first(tmp_path):
    """--config-dir adds a folder of the user's own: here a new experiment override."""
    exp = tmp_path / "mine" / "experiment"
    exp.mkdir(parents=True)
    (exp / "tiny.yaml").write_text("# @package _global_\nname: tiny_mine\nseed: 3\n")
    p = _run(
        ["compute", "--config-dir", str(tmp_path / "mine"), "experiment=tiny", "--cfg", "job"],
        tmp_path,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert "name: tiny_mine" in p.stdout and "seed: 3" in p.stdout


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_repository(tmp_path):
    """Build the wheel, install it (with its dependencies, CPU pins) into a fresh venv, and run an
    analysis from a folder outside the repository: every asset and config is in the wheel."""
    from conftest import ROOT

    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
        check=True,
        timeout=600,
    )
    (whl,) = wheels.glob("utility_jax-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run(
        [*pip, "-c", str(ROOT / "constraints" / "cpu.txt"), str(whl)], check=True, timeout=1200
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    p = subprocess.run(
        [
            str(venv / "bin" / "utility-jax"),
            "analyze",
            "experiment=lotteries",
            "analysis.n_base=12",
            "analysis.n_lotteries=12",
            "uncertainty.n_bootstrap=10",
            "progress=false",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert list((work / "logs" / "lotteries" / "runs").glob("*/analysis.json"))


def test_data_help_says_usage_once_and_lists_the_actions(capsys):
    with pytest.raises(SystemExit) as e:
        main(["data", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: utility-jax data {fetch,where,check}")
    assert "usage: usage:" not in out and "fetch   download" in out
