"""Every Hydra config group composes and validates; the default experiment runs end to end."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ANCHOR, ROOT, in_model_gauge
from hydra import compose, initialize_config_dir

import utility_jax as uj
from utility_jax.run.config import ComputeUtilitiesConf, validate

CONF = ROOT / "conf"
GROUPS = [
    "outcomes",
    "agent",
    "fitter",
    "graph",
    "elicitation",
    "uncertainty",
    "bayes",
    "experiment",
    "preset",
]


def _compose(*overrides):
    os.environ.setdefault("UTILITY_JAX_ANCHOR_DATA", str(ANCHOR))
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def _options():
    for g in GROUPS:
        for f in sorted((CONF / g).glob("*.yaml")):
            yield g, f.stem


# values a user must give (``???`` in the YAML) for some options
REQUIRED = {
    ("agent", "hf"): ["agent.model=/path/to/checkpoint"],
    ("agent", "openai"): ["agent.base_url=http://127.0.0.1:8000/v1", "agent.model=served-model"],
}


@pytest.mark.parametrize("group,option", list(_options()))
def test_every_group_option_composes_and_validates(group, option):
    cfg = _compose(f"{group}={option}", *REQUIRED.get((group, option), []))
    conf = validate(cfg)
    assert isinstance(conf, ComputeUtilitiesConf)
    if group == "outcomes" and option != "default":
        assert Path(conf.outcomes.path).exists(), conf.outcomes.path
    if group == "agent" and conf.agent.kind == "simulated" and conf.agent.utilities != "planted":
        assert Path(conf.agent.utilities).exists(), conf.agent.utilities


def test_missing_required_agent_values_fail_with_the_key():
    with pytest.raises(Exception, match="agent.model"):
        validate(_compose("agent=hf"))


def test_experiment_paper_sets_the_papers_graph():
    conf = validate(_compose("experiment=paper"))
    assert conf.outcomes.path.endswith("options_hierarchical.json")
    g = conf.graph
    assert (g.holdout_fraction, g.holdout_max, g.holdout_seed) == (0.05, 1000, 42)
    assert (g.initial_degree, g.edge_multiplier, g.edges_per_round) == (2, 2.0, 500)
    assert conf.elicitation.k == 10


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_a_rounds_random_share_is_drawn_uniformly_beside_the_strategys_pairs(share):
    from utility_jax.run.pipeline import _next_pairs

    conf = validate(_compose(f"graph.random_share={share}", "graph.edges_per_round=40"))
    n = 30
    mu = np.linspace(-3, 3, n)  # the reference's rule picks pairs of neighbours in mu
    fit = uj.ThurstonianFit(mu, np.zeros(n), True, 0, 0.0, 0.0)
    asked = uj.random_regular_pairs(n, 2, 0)
    held = np.array([[0, 15], [3, 27]])
    new = _next_pairs(conf, fit, asked, held, 1, n)
    assert len(new) == 40
    keys = set(map(tuple, np.sort(new, 1)))
    assert len(keys) == 40  # no pair twice
    assert not keys & set(map(tuple, np.sort(np.r_[asked, held], 1)))
    gap = np.abs(new[:, 0] - new[:, 1])  # index distance = distance in mu
    n_far = int((gap > 6).sum())  # the reference's rule never takes these here
    assert (n_far == 0) if share == 0 else (n_far >= 0.5 * share * 40), n_far


@pytest.mark.parametrize(
    "override,match",
    [
        ("fitter.model=case4", "fitter.model='case4'"),
        ("+fitter.lr=0.1", "lr"),
        ("elicitation.k=zero", "k"),
        ("graph.strategy=greedy", "graph.strategy"),
        ("graph.random_share=1.5", "graph.random_share"),
        ("uncertainty.bootstrap_refit=two_step", "uncertainty.bootstrap_refit"),
    ],
)
def test_bad_values_fail_fast_with_the_key(override, match):
    with pytest.raises(Exception, match=match):
        validate(_compose(override))


def test_submitit_launcher_composes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=["hydra/launcher=submitit_slurm"],
            return_hydra_config=True,
        )
    assert "submitit" in cfg.hydra.launcher._target_.lower()


@pytest.mark.slow  # CI budget: the fast tier must stay under 20 minutes cold
def test_default_experiment_runs_end_to_end(tmp_path):
    from utility_jax.run.runner import run_compute_utilities

    res = run_compute_utilities(_compose("progress=false"), tmp_path)
    for name in [
        "config_resolved.yaml",
        "outcomes.json",
        "votes.csv",
        "utilities.json",
        "utilities.csv",
        "metrics.json",
        "summary.txt",
        "utilities_by_category.png",
        "calibration.png",
        "heldout_by_round.png",
    ]:
        assert (tmp_path / name).stat().st_size > 0, name
    m = json.loads((tmp_path / "metrics.json").read_text())
    n = m["n_outcomes"]
    budget = int(2 * n * math.log2(n))
    assert (
        m["n_train_pairs"] == n + math.ceil((budget - n) / 500) * 500
    )  # 2-regular start + full rounds
    assert m["heldout"]["accuracy"] > m["random_responder"]["heldout"]["accuracy"] + 0.2
    assert m["recovery"]["spearman_mu"] > 0.95
    assert m["fit"]["converged"]
    assert (
        m["training_graph_transitivity"]["log10_p_cycle"]
        < m["random_responder"]["training_graph_transitivity"]["log10_p_cycle"]
    )
    assert (
        len(m["rounds"]) >= 2
        and m["rounds"][-1]["heldout_log_loss"] < m["rounds"][0]["heldout_log_loss"]
    )
    assert res.metrics["cost"]["answers"] == 20 * (m["n_train_pairs"] + m["n_heldout_pairs"])
    rows = (tmp_path / "votes.csv").read_text().splitlines()
    assert len(rows) == 1 + m["n_train_pairs"] + m["n_heldout_pairs"]
    summary = (tmp_path / "summary.txt").read_text()
    assert "random 50/50" in summary and "outcomes by utility" in summary


@pytest.mark.slow  # CI budget: the fast tier must stay under 20 minutes cold
def test_bayes_svi_run_writes_posterior(tmp_path):
    from utility_jax.run.runner import run_compute_utilities

    res = run_compute_utilities(
        _compose("experiment=smoke", "bayes=svi", "bayes.svi_steps=1000", "progress=false"),
        tmp_path,
    )
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["bayes"]["method"] == "svi" and m["bayes"]["heldout_log_loss_posterior_predictive"] > 0
    assert "bootstrap_vs_posterior" in m["interval_agreement"]
    summary = (tmp_path / "posterior_summary.csv").read_text().splitlines()
    assert "sigma_hdi_lo" in summary[0] and len(summary) == 1 + m["n_outcomes"]
    draws = __import__("numpy").load(tmp_path / "posterior_draws.npz")
    assert draws["mu"].shape == (1000, m["n_outcomes"])
    import arviz as az  # the same draws as InferenceData, read back

    idata = az.from_netcdf(tmp_path / "posterior.nc", engine="h5netcdf")
    assert idata.posterior["mu"].shape == (1, 1000, m["n_outcomes"])
    __import__("numpy").testing.assert_allclose(idata.posterior["mu"].values[0], draws["mu"])
    assert str(idata.constant_data["outcome_text"].values[0]) == res.outcomes.texts[0]
    assert (
        "WARNING: SVI's mean-field (normal) guide under-covers"
        in (tmp_path / "summary.txt").read_text()
    )

    rows = json.loads((tmp_path / "utilities.json").read_text())
    assert all(r["posterior_lo"] <= r["posterior_mean"] <= r["posterior_hi"] for r in rows)
    assert res.posterior is not None
    # the learned scale of the means (bayes.hierarchical=mu) is reported with its interval, near
    # the spread of the MAP's means (the model's gauge: log sigma summing to 0)
    sc = m["bayes"]["prior_scales"]["mu_scale"]
    spread = float(np.std(in_model_gauge(res.fit.mu, res.fit.sigma)))
    assert sc["lo"] < sc["mean"] < sc["hi"] and 0.5 < sc["mean"] / spread < 2.0
    assert "log_sigma_scale" not in m["bayes"]["prior_scales"]


def test_svi_summary_lines_say_what_is_known_of_the_guides_coverage():
    from utility_jax.run.report import _posterior_lines

    b = dict(method="svi", steps=10, seconds=1.0)
    normal = _posterior_lines({**b, "guide": "normal"})
    assert any("under-covers" in x and "0.798" in x for x in normal)
    lowrank = _posterior_lines({**b, "guide": "lowrank"})
    assert any("has not been measured" in x for x in lowrank)
    nuts = _posterior_lines(
        dict(
            method="nuts",
            chains=2,
            draws=10,
            seconds=1.0,
            max_rhat=1.0,
            min_ess_bulk=100.0,
            divergences=0,
        )
    )
    assert not any("WARNING" in x for x in nuts)


@pytest.mark.slow
def test_bayes_nuts_run_reports_diagnostics(tmp_path):
    from utility_jax.run.runner import run_compute_utilities

    run_compute_utilities(_compose("experiment=smoke", "bayes=nuts", "progress=false"), tmp_path)
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert {"max_rhat", "min_ess_bulk", "divergences", "warnings"} <= set(m["bayes"])
    assert "posterior (NUTS" in (tmp_path / "summary.txt").read_text()
    diag = (tmp_path / "posterior_diagnostics.csv").read_text().splitlines()
    # mu and log_sigma per outcome, the first-slot shift (on by default with both orders) and
    # the learned scale of the means (bayes.hierarchical=mu, the default)
    assert "r_hat" in diag[0] and len(diag) == 1 + 2 * m["n_outcomes"] + 2
    assert {r.split(",")[0] for r in diag[1:] if "[" not in r.split(",")[0]} == {"bias", "mu_scale"}


def test_cli_smoke_run(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "UTILITY_JAX_ANCHOR_DATA": str(ANCHOR)}
    env.pop("JAX_PLATFORMS", None)  # as a user runs it: JAX tries its accelerator plugins
    p = subprocess.run(
        [
            sys.executable,
            str(ROOT / "experiments" / "compute_utilities.py"),
            "experiment=smoke",
            "progress=false",
            f"hydra.run.dir={out}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert "held-out accuracy" in p.stdout
    assert (out / ".hydra" / "config.yaml").exists() and (out / "metrics.json").exists()
    # JAX's INFO line about accelerator plugins it could not start is not printed or logged
    log = next(out.glob("*.log")).read_text()
    assert "Unable to initialize backend" not in p.stdout + p.stderr + log


@pytest.mark.slow
def test_sweep_over_fitters_and_experiments(tmp_path):
    env = {**os.environ, "UTILITY_JAX_ANCHOR_DATA": str(ANCHOR)}
    p = subprocess.run(
        [
            sys.executable,
            str(ROOT / "experiments" / "compute_utilities.py"),
            "-m",
            "experiment=smoke",
            "fitter=glob(*)",
            "progress=false",
            f"hydra.sweep.dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert len(list(tmp_path.glob("*/metrics.json"))) == len(list((CONF / "fitter").glob("*.yaml")))


@pytest.mark.slow
def test_paper_experiment_reproduces_llama2_heldout_accuracy(tmp_path):
    """Simulating Llama-2-7B-chat's fitted utilities under the paper's design should give a
    held-out accuracy near the reference's real 0.742 (within 0.06: the simulation is the fitted
    model, not the LLM)."""
    from utility_jax.run.runner import run_compute_utilities

    res = run_compute_utilities(
        _compose("experiment=paper", "progress=false", "plots=false"), tmp_path
    )
    assert res.metrics["n_train_pairs"] == 9510 and res.metrics["n_heldout_pairs"] == 1000
    assert abs(res.metrics["heldout"]["accuracy"] - 0.742) < 0.06


def test_preset_paper_turns_on_every_reference_behaviour_in_one_override():
    from utility_jax.run.config import validate

    for extra in ((), ("experiment=transitivity",), ("experiment=no_flip",)):
        c = validate(_compose(*extra, "preset=paper"))
        assert c.fitter.solver == "reference_adam" and c.fitter.edge_weight == "uniform"
        assert c.fitter.mu_prior_scale is None and c.fitter.logvar_prior_scale is None
        assert c.fitter.pseudolabels and c.fitter.pseudolabel_threshold == 0.95
        assert c.elicitation.parser == "reference" and c.elicitation.orders == "both"
        assert c.elicitation.refusal == "half"
        assert c.graph.random_share == 0.0  # the reference's active-learning rule alone
    d = validate(_compose())
    assert d.fitter.solver == "lbfgs" and not d.fitter.pseudolabels
    assert d.graph.random_share == 0.75
    assert (ROOT / "docs" / "fidelity.md").exists()


def test_the_python_api_runs_on_a_config_built_in_code():
    """``position_bias: auto`` is resolved by the pipeline itself, not only by the Hydra path's
    ``validate`` (a ComputeUtilitiesConf built in code crashed with KeyError 'position_bias')."""
    import jax

    from utility_jax.core.simulate import planted_utilities
    from utility_jax.elicit import SimulatedAgent
    from utility_jax.io.outcomes import load_outcomes
    from utility_jax.run.config import ComputeUtilitiesConf, GraphConf, UncertaintyConf
    from utility_jax.run.pipeline import compute_utilities

    outcomes = load_outcomes(limit=16)
    mu, sigma = planted_utilities(outcomes, jax.random.key(3))
    cfg = ComputeUtilitiesConf(
        graph=GraphConf(edges_per_round=20, holdout_fraction=0.2),
        uncertainty=UncertaintyConf(n_bootstrap=0, laplace=False),
        plots=False,
        progress=False,
    )
    assert cfg.fitter.position_bias == "auto"
    agent = SimulatedAgent(mu, sigma, position_bias=0.5)
    res = compute_utilities(outcomes, agent, cfg, key=jax.random.key(0), true_utilities=(mu, sigma))
    assert res.metrics["fit"]["position_bias"] is True  # both orders, L-BFGS: auto is on
    assert res.metrics["order"]["position_bias_lo"] > 0  # the planted shift, found
