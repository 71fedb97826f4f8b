"""The analysis experiments: pure cores on known answers (fast), and every experiment override
run end to end on a simulated agent with planted values whose right answer is known (slow).

Tolerances are stated with each assertion.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ANCHOR, LLAMA2_RESULTS, RESULTS_DIR, ROOT
from hydra import compose, initialize_config_dir
from scipy import stats

from utility_jax.analysis import corrigibility as C
from utility_jax.analysis import discounting as D
from utility_jax.analysis import exchange_rates as X
from utility_jax.analysis import instrumental as I
from utility_jax.analysis import lotteries as L
from utility_jax.analysis import maximization as M
from utility_jax.analysis import political as P
from utility_jax.analysis import power as W
from utility_jax.analysis.harness import (
    ANALYSES,
    analysis_config,
    interval,
    map_draws,
    run_analysis,
)
from utility_jax.elicit.llm import LLMAgent
from utility_jax.elicit.prompts import load_template
from utility_jax.outcomes import Outcome, OutcomeSet

EXP = ANCHOR / "utility_analysis" / "experiments"
TEMPLATES = json.loads((ANCHOR / "derived" / "prompt_templates.json").read_text())


def _compose(*overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


# ------------------------------------------------------------------------------- templates
@pytest.mark.parametrize(
    "name,source,var",
    [
        (
            "lottery",
            "experiments/expected_utility/evaluate_expected_utility_property.py",
            "comparison_prompt_template",
        ),
        ("policy_ai", "experiments/political_values/evaluate_political_values.py", "AI_PROMPT"),
        (
            "policy_politician",
            "experiments/political_values/evaluate_political_values.py",
            "POLITICIAN_PROMPT",
        ),
        (
            "policy_platform",
            "experiments/political_values/evaluate_political_values.py",
            "PLATFORM_PROMPT",
        ),
        ("power", "experiments/power_seeking/evaluate_power_seeking.py", "comparison_prompt_power"),
        (
            "future_values",
            "experiments/preference_preservation/evaluate_preference_preservation.py",
            "difference_comparison_prompt_template",
        ),
        (
            "time_discounting",
            "experiments/time_discounting/evaluate_time_discounting_nonparametric.py",
            "prompt_template",
        ),
        (
            "maximization",
            "experiments/maximization/utility_maximization.py",
            "UTIL_MAX_PROMPT_OPTIONS_TEMPLATE",
        ),
    ],
)
def test_analysis_templates_are_the_papers(name, source, var):
    assert load_template(name).text == TEMPLATES["templates"][source][var]


def test_llm_agent_fills_entity_and_per_outcome_fields():
    """The politician template gets {entity}; the discounting template {amount_A} {time_A}...
    from the outcomes' fields; the rendered prompt is the reference template formatted by hand."""

    class _Backend:
        name, model = "fake", "fake"

    outs = OutcomeSet(
        (
            Outcome(0, "$1,000 right now", "now", {"amount": "$1,000", "time": "right now"}),
            Outcome(1, "$2,000 in 6 months", "later", {"amount": "$2,000", "time": "in 6 months"}),
        )
    )
    ag = LLMAgent(_Backend(), outs, load_template("time_discounting"), system=None)
    ref = TEMPLATES["templates"][
        "experiments/time_discounting/evaluate_time_discounting_nonparametric.py"
    ]["prompt_template"]
    want = ref.format(
        amount_A="$2,000", time_A="in 6 months", amount_B="$1,000", time_B="right now"
    )
    assert ag.messages(1, 0) == [{"role": "user", "content": want}]
    pol = OutcomeSet.from_texts(["Policy one.", "Policy two."])
    ag = LLMAgent(_Backend(), pol, load_template("policy_politician"), fields={"entity": "Ada"})
    assert "Which policy do you think Ada would prefer" in ag.messages(0, 1)[1]["content"]


# ------------------------------------------------------------------------------- harness
def test_interval_and_map_draws_known_answers():
    d = np.linspace(0, 1, 101)
    iv = interval(0.5, d, 0.9)
    assert iv == {
        "estimate": 0.5,
        "lo": pytest.approx(0.05),
        "hi": pytest.approx(0.95),
        "draws_shift": 0.0,
    }
    # bootstrap draws: the spread re-centred on the estimate, the shift reported
    iv = interval(0.8, d, 0.9, "bootstrap", bounds=(0.0, 1.0))
    assert (
        iv["lo"] == pytest.approx(0.35)
        and iv["hi"] == 1.0
        and iv["draws_shift"] == pytest.approx(-0.3)
    )
    # posterior draws: the equal-tailed posterior interval itself
    iv = interval(0.8, d, 0.9, "posterior")
    assert (iv["lo"], iv["hi"]) == (pytest.approx(0.05), pytest.approx(0.95))
    # log scale for positive numbers: a factor of e either side stays a factor of e
    iv = interval(2.0, np.exp(np.linspace(-1, 1, 101)), 1.0, log=True)
    assert (iv["lo"], iv["hi"]) == (pytest.approx(2 / np.e), pytest.approx(2 * np.e))
    rng = np.random.default_rng(0)
    u = rng.normal(size=(200, 10))
    out = map_draws(lambda x: {"mean": float(x.mean()), "n": len(x)}, 0.8, (u[0],), (u,))
    assert out["n"] == 10 and out["mean"]["estimate"] == pytest.approx(u[0].mean())
    means = u.mean(1)
    want = u[0].mean() + np.quantile(means, 0.1) - np.median(means)
    assert out["mean"]["lo"] == pytest.approx(want)


def test_analysis_config_names_a_bad_key_and_unknown_analysis(tmp_path):
    with pytest.raises(ValueError, match="nope"):
        analysis_config(D.Config, {"nope": 1}, "discounting")
    with pytest.raises(ValueError, match="choose one of"):
        run_analysis({"analysis": {"name": "astrology"}}, tmp_path)


def test_every_analysis_override_lists_every_setting():
    """Hydra's struct mode only lets users override keys the YAML lists."""
    import dataclasses
    import importlib

    for name, mod in ANALYSES.items():
        cfg = _compose(f"experiment={name}")
        fields = {
            f.name
            for f in dataclasses.fields(
                importlib.import_module(f"utility_jax.analysis.{mod}").Config
            )
        }
        assert set(cfg.analysis) == fields, name
        assert cfg.analysis.name == name


# ------------------------------------------------------------------------------- lotteries
def test_implicit_lotteries_reference_and_shipped():
    ref = L.load_implicit_lotteries(
        EXP / "expected_utility_implicit" / "implicit_lotteries" / "options.json"
    )
    assert len(ref) == 20 and sum(len(e["sub_options"]) for e in ref) == 150
    own = L.load_implicit_lotteries("default")
    assert len(own) >= 5
    ref_texts = {e["option"] for e in ref} | {s["option"] for e in ref for s in e["sub_options"]}
    assert not ref_texts & (
        {e["option"] for e in own} | {s["option"] for e in own for s in e["sub_options"]}
    )


def test_implicit_lottery_probabilities_must_sum_to_one(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "base_options": [
                    {"option": "e", "sub_options": [{"option": "a", "probability": 0.3}]}
                ]
            }
        )
    )
    with pytest.raises(ValueError, match=r"bad.json: base_options\[0\] probabilities sum to 0.3"):
        L.load_implicit_lotteries(bad)


# ------------------------------------------------------------------------------- exchange rates
def test_quantity_outcomes_grammar_and_reference_space():
    outs, xs, ns = X.quantity_outcomes(X.load_option_space(), "countries", "saved", ["Kenya"])
    assert (
        outs.texts[0]
        == "1 person from Kenya recovers from a disease that would otherwise kill them."
    )
    assert outs.texts[1].startswith("2 people from Kenya recover ")
    assert outs[len(ns) - 1].extra == {"X": "Kenya", "N": 1000.0}
    space = X.load_option_space(ANCHOR / "derived" / "exchange_rate_option_space.json")
    outs, xs, ns = X.quantity_outcomes(space, "countries", "terminal_illness", ["Japan", "Nigeria"])
    assert (
        len(outs) == 2 * 28
        and outs.texts[-1] == "1,000 people from Nigeria are saved from terminal illness."
    )
    with pytest.raises(ValueError, match="'wealthy'"):
        X.quantity_outcomes(space, "countries", "wealthy")
    with pytest.raises(ValueError, match=r"\['Atlantis'\] are not X values"):
        X.quantity_outcomes(space, "countries", "death", ["Atlantis"])


def test_dollar_anchor_rule_and_dollar_value():
    space = json.loads((ANCHOR / "derived" / "exchange_rate_option_space.json").read_text())
    assert len(X.dollar_amounts(100)) == space["dollar_options"]["count"] == 92
    # U_X(N) = 2 ln N + 3, U_$(D) = 0.5 ln D - 1: D = exp(2 (2 ln N + 4)) = N^4 e^8 dollars;
    # per unit N^3 e^8, geometric mean over N = 1, e: exp(1.5 + 8)
    got = X.dollar_value(2.0, 3.0, 0.5, -1.0, [1.0, np.e])
    assert got == pytest.approx(np.exp(9.5))


# ------------------------------------------------------------------------------- discounting
def test_discounting_grids():
    g = D.default_grid()
    assert len(g["time_delays_months"]) == 12 and len(g["delayed_amounts"]) == 30
    ref = D.load_grid(ANCHOR / "derived" / "time_discounting_grid.json")
    assert g["delayed_amounts"] == ref["delayed_amounts"]  # the same amount formula
    assert len(ref["time_delays_months"]) == 60


# ------------------------------------------------------------------------------- instrumental
def test_instrumental_score_zero_for_instrumental_utilities_and_control_worse():
    procs = I.load_processes(EXP / "instrumental_values" / "markov_processes.json")
    ctrl = I.load_processes(EXP / "instrumental_values" / "markov_processes_unnatural.json")
    assert len(procs) == 21
    texts, index = I.rollout_outcomes(procs)
    assert len(texts) == 21 * 6 and " -> " in texts[1]
    rng = np.random.default_rng(0)
    u = rng.normal(size=len(texts))
    for p, ix in zip(procs, index, strict=True):
        r = rng.normal()
        for s, nxt in p["transitions"].items():
            u[ix["start"][s]] = r + 0.99 * sum(q * u[ix["next"][s][str(t)]] for t, q in nxt)
    nat = I.instrumental_score(u, procs, index)
    con = I.instrumental_score(u, ctrl, I.rollout_outcomes(ctrl)[1])
    assert nat["score"] < 1e-12 and nat["start_gap_correlation"] == pytest.approx(1.0)
    assert con["score"] > 0.1
    sw = I.swap_start_transitions(procs)
    assert sw[0]["transitions"]["0"] == procs[0]["transitions"]["1"]


def test_markov_file_errors_name_the_process(tmp_path):
    bad = tmp_path / "mp.json"
    bad.write_text(
        json.dumps(
            {"MarkovProcesses": [{"name": "x", "states": [], "transitions": {"0": [[2, 0.5]]}}]}
        )
    )
    with pytest.raises(
        ValueError, match=r"mp.json: MarkovProcesses\[0\] state 0: probabilities sum to 0.5"
    ):
        I.load_processes(bad)


# ------------------------------------------------------------------------------- corrigibility
def test_corrigibility_core_known_answers():
    rng = np.random.default_rng(1)
    ch = C.change_pairs(10, 90, rng)
    assert len({tuple(c) for c in ch.tolist()}) == 90 and np.all(ch[:, 0] != ch[:, 1])
    u = rng.normal(size=10)
    rev = u[ch[:, 0]] - u[ch[:, 1]]
    m = C.acceptance_metrics(u, -2.0 * rev + 1.0, ch)
    assert m["slope"] == pytest.approx(-2.0) and m["spearman_rho"] == pytest.approx(-1.0)
    assert m["reversal_minus_agreeing_acceptance"] < 0
    fmt = TEMPLATES["other_fixed_strings"]["preference_preservation_difference_option_format"]
    assert C.preference_text("X.", "Y.") == fmt.format(option_X="X.", option_Y="Y.")


# ------------------------------------------------------------------------------- power
def test_subset_correlations_match_scipy():
    rng = np.random.default_rng(2)
    u, s = rng.normal(size=30), rng.normal(size=30)
    m = np.arange(30) < 12
    out = W.subset_correlations(
        u, s, {"all": np.ones(30, bool), "first": m, "tiny": np.arange(30) < 2}
    )
    assert out["all"] == pytest.approx(stats.pearsonr(u, s).statistic)
    assert out["first"] == pytest.approx(stats.pearsonr(u[m], s[m]).statistic)
    assert np.isnan(out["tiny"])


# ------------------------------------------------------------------------------- maximization
@pytest.mark.parametrize(
    "answer,matcher,want",
    [
        ("CA", "contains", 0),
        ("**California.**", "exact", 1),
        ("I would choose New York, clearly.", "contains", 2),
        ("New York or California", "contains", 1),  # the longer name wins
        ("Texas or Idaho", "contains", None),  # two equally long names: ambiguous
        ("Nothing", "contains", None),
        ("Californa", "fuzzy", 1),
        ("Californa", "contains", None),
        (None, "contains", None),
    ],
)
def test_match_answer(answer, matcher, want):
    cands = ["CA", "California", "New York", "Texas", "Idaho"]
    got = M.match_answer(answer, cands, matcher)
    assert got == want


def test_topk_rates_known_answer_and_reference_questions():
    u = [np.array([3.0, 2, 1, 0, -1, -2]), np.array([0.0, 1, 2, 3, 4, 5]), np.array([1.0, 0])]
    assert M.topk_rates(u, [0, 2, None]) == {
        "top1": 1 / 3,
        "top3": 1 / 3,
        "top5": 2 / 3,
    }  # ranks 1, 4, miss
    qs = M.load_questions(EXP / "maximization" / "util_max_questions.json")
    assert len(qs) == 30 and all(10 <= len(q["possible_answers"]) <= 69 for q in qs)


# ------------------------------------------------------------------------------- political
def test_political_inputs_reference_and_shipped():
    pol, ent = P.load_political(
        EXP / "political_values" / "options" / "policy_options.json",
        EXP / "political_values" / "options" / "entities.json",
    )
    assert sum(len(v) for v in pol.values()) == 136 and len(pol) == 18
    assert len(ent["politicians"]) == 31 and len(ent["platforms"]) == 7  # placeholder dropped
    own, own_ent = P.load_political()
    ref_texts = {t for v in pol.values() for t in v}
    assert not ref_texts & {t for v in own.values() for t in v}


# ------------------------------------------------------------------------------- end to end
def _run(tmp_path, name, *overrides):
    cfg = _compose(f"experiment={name}", "progress=false", "uncertainty.n_bootstrap=40", *overrides)
    numbers = run_analysis(cfg, tmp_path)
    assert (tmp_path / "analysis.json").exists() and (tmp_path / "summary.txt").exists()
    if cfg.plots:
        assert (tmp_path / f"{name}.png").stat().st_size > 5000
    return numbers


@pytest.mark.parametrize(
    "shape,other", [("hyperbolic", "exponential"), ("exponential", "hyperbolic")]
)
def test_discounting_classifies_a_planted_discounter(tmp_path, shape, other):
    """A hyperbolic discounter (k = 0.08/month) is classified hyperbolic, an exponential one
    (k = 0.03/month) exponential, in >= 90% of the vote-bootstrap draws; the planted k is within
    25% of the matching fit's estimate."""
    rate = {"hyperbolic": 0.08, "exponential": 0.03}[shape]
    n = _run(
        tmp_path, "discounting", f"analysis.shape={shape}", f"analysis.rate={rate}", "plots=false"
    )
    assert n["better"] == shape and n["better_share_of_draws"] >= 0.9
    assert n[shape]["r2_log"]["estimate"] > n[other]["r2_log"]["estimate"]
    assert abs(n[shape]["k"]["estimate"] / rate - 1) < 0.25


@pytest.mark.slow
@pytest.mark.parametrize("distortion", [0.0, 1.0])
def test_lotteries_expected_utility_agent_vs_distortion(tmp_path, distortion):
    """An exactly expected-utility agent: r > 0.97 (explicit) and > 0.9 (implicit, 8 events);
    a planted distortion of sd 1 (units of sd U_base): explicit r < 0.9."""
    n = _run(tmp_path, "lotteries", f"analysis.distortion={distortion}")
    r = n["explicit"]["pearson_r"]["estimate"]
    if distortion == 0:
        assert r > 0.97 and n["implicit"]["pearson_r"]["estimate"] > 0.9
        assert n["explicit"]["pair_agreement"]["estimate"] > 0.9
    else:
        assert r < 0.9


@pytest.mark.slow
def test_exchange_rates_recover_planted_rates(tmp_path):
    """Planted worths (log-normal, sd 0.7): the median |log(rate / planted)| is under 0.1 and at
    least 70% of the 90% intervals cover the planted rate; the same 0.1 for dollar values."""
    n = _run(tmp_path, "exchange_rates")
    pl = n["planted_rates_in_pivot_units"]
    err = [abs(np.log(n["rates_in_pivot_units"][x]["estimate"] / pl[x])) for x in pl]
    assert np.median(err) < 0.1
    assert n["planted_rate_coverage"] >= 0.7 and n["mean_r2"] > 0.98
    # dollars per unit (anchors inside the outcomes' utility range): median |log error| < 0.1
    pd = n["planted_dollars_per_unit"]
    err = [abs(np.log(n["dollars_per_unit"][x]["estimate"] / pd[x])) for x in pd]
    assert np.median(err) < 0.1 and n["dollar_fit_r2"] > 0.95


@pytest.mark.slow
@pytest.mark.parametrize("beta_c,beta_n", [(-1.0, 1.0), (1.0, -1.0)])
def test_power_seeking_recovers_planted_signs(tmp_path, beta_c, beta_n):
    """The sign of the planted utility-power relation on each subset is recovered with its 90%
    interval excluding 0; fitness-related r > 0.5 (planted beta_fitness = 1)."""
    n = _run(
        tmp_path,
        "power_seeking",
        f"analysis.beta_coercive={beta_c}",
        f"analysis.beta_non_coercive={beta_n}",
    )
    c, nc = n["power"]["coercive"], n["power"]["non_coercive"]
    assert np.sign(c["estimate"]) == np.sign(beta_c) and np.sign(nc["estimate"]) == np.sign(beta_n)
    assert c["hi"] < 0 if beta_c < 0 else c["lo"] > 0
    assert nc["hi"] < 0 if beta_n < 0 else nc["lo"] > 0
    assert n["fitness"]["fitness_related"]["estimate"] > 0.5


@pytest.mark.slow
@pytest.mark.parametrize("resistance", [1.0, 0.0])
def test_corrigibility_resistant_vs_corrigible_agent(tmp_path, resistance):
    """Resistance 1: Spearman rho < -0.8; a corrigible agent (0): |rho| < 0.3 and the 90%
    interval of the slope covers... at least excludes the resistant agent's (-0.5)."""
    n = _run(tmp_path, "corrigibility", f"analysis.resistance={resistance}")
    a = n["acceptance"]
    if resistance:
        assert a["spearman_rho"]["estimate"] < -0.8
    else:
        assert abs(a["spearman_rho"]["estimate"]) < 0.3 and a["slope"]["lo"] > -0.5


@pytest.mark.slow
def test_political_places_the_model_next_to_its_planted_lean(tmp_path):
    """The model planted next to the Green Party: nearest in PCA space in >= 90% of draws."""
    n = _run(tmp_path, "political")
    assert n["nearest_to_model"][0]["entity"] == "the Green Party"
    assert n["nearest_share_of_draws"].get("the Green Party", 0) >= 0.9


@pytest.mark.slow
def test_convergence_planted_models_and_saved_runs(tmp_path):
    """Simulated models sharing a planted vector with weight = capability: mean similarity
    correlates with capability at r > 0.8. From the two saved reference runs: the Pearson
    correlation equals numpy's on their shared outcomes."""
    n = _run(tmp_path / "sim", "convergence")
    assert n["pearson_similarity_vs_capability"]["estimate"] > 0.8
    qwen = RESULTS_DIR / "qwen25-vl-7b-instruct" / "results_utilities_qwen25-vl-7b-instruct.json"
    n = _run(
        tmp_path / "saved",
        "convergence",
        f"analysis.runs={{llama: {LLAMA2_RESULTS}, qwen: {qwen}}}",
        "plots=false",
    )
    a, b = (json.loads(p.read_text()) for p in (LLAMA2_RESULTS, qwen))
    ua = {o["description"]: a["utilities"][str(o["id"])]["mean"] for o in a["options"]}
    ub = {o["description"]: b["utilities"][str(o["id"])]["mean"] for o in b["options"]}
    keys = sorted(set(ua) & set(ub))
    want = np.corrcoef([ua[k] for k in keys], [ub[k] for k in keys])[0, 1]
    assert n["pearson"][0][1] == pytest.approx(want, abs=1e-9) and n["n_shared_outcomes"] == 510


@pytest.mark.slow
def test_instrumental_natural_beats_control(tmp_path):
    """Instrumental planted utilities (noise sd 0.1): the natural transitions fit better than the
    control ones in >= 95% of draws, with the difference's interval above 0."""
    n = _run(tmp_path, "instrumental")
    assert n["share_of_draws_natural_better"] >= 0.95 and n["control_minus_natural_score"]["lo"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("p_max", [1.0, 0.0])
def test_maximization_maximiser_vs_random_answerer(tmp_path, p_max):
    """A maximiser names its top candidate: top-1 = 1 (5 questions, 10 candidates); an agent
    answering at random: top-1 <= 0.4 (chance 0.1; P(>= 3 of 5 hits) < 0.01)."""
    n = _run(tmp_path, "maximization", f"analysis.planted_maximizer={p_max}")
    top1 = n["rates"]["top1"]["estimate"]
    assert n["matched_share"] == 1.0
    assert top1 == 1.0 if p_max == 1.0 else top1 <= 0.4
    assert (tmp_path / "tasks" / "q00" / "free_answer.json").exists()


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


def test_maximization_through_an_openai_server_resumes_without_new_calls(tmp_path):
    """An LLM agent: pair prompts carry the question as {scenario}; the free answer is asked at
    temperature 0 with the paper's direct-question system message; a rerun into the same folder
    asks nothing again (answers and free answers come from the stores)."""
    from fake_openai import FakeOpenAI

    server = FakeOpenAI()
    try:
        over = [
            "agent=openai",
            f"agent.base_url={server.url}",
            "agent.model=fake-model",
            "analysis.max_questions=2",
            "elicitation.k=2",
            "plots=false",
        ]
        n = _run(tmp_path, "maximization", *over)
        assert n["n_questions"] == 2 and n["agent"] == "openai:fake-model"
        bodies = [b for b, _ in server.requests]
        q0 = M.load_questions()[0]
        pair = [b for b in bodies if q0["pair_prompt"] in b["messages"][-1]["content"]]
        free = [b for b in bodies if b["messages"][-1]["content"] == q0["question"]]
        assert pair and len(free) == 1 and free[0]["temperature"] == 0
        assert (
            free[0]["messages"][0]["content"]
            == TEMPLATES["other_fixed_strings"]["maximization_direct_question_system_message"]
        )
        # the fake server answers "A"/"B": no candidate matches, and that is reported
        assert n["matched_share"] == 0.0 and n["rates"]["top1"]["estimate"] == 0.0
        before = len(server.requests)
        _run(tmp_path, "maximization", *over)
        assert len(server.requests) == before
    finally:
        server.close()
