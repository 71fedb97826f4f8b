"""The utility_control experiment end to end on a tiny model and a simulated assembly."""

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from utility_jax.control.assembly import (
    SimulatedAssembly,
    load_demographics,
    persona_prompt,
    pool_preferences,
    sample_citizens,
)  # noqa: E402


def test_citizens_follow_the_shipped_marginals():
    demo = load_demographics()
    cs = sample_citizens(20000, 0)  # from the joint table: its marginals are the shipped ones
    for name, dist in demo["attributes"].items():
        for level, share in dist.items():
            got = np.mean([c.attributes[name] == level for c in cs])
            assert got == pytest.approx(share, abs=0.015), (name, level)
    text = persona_prompt(cs[0])
    assert all(v in text for v in cs[0].attributes.values())


def test_pooling_and_planted_party_effect():
    cs = sample_citizens(400, 1)
    asm = SimulatedAssembly(6, cs, 2, effect=0.0, party_effect=2.0, noise=0.3)
    axis = asm.offsets["party"]["Democrat"] - asm.offsets["party"]["Republican"]
    dem = np.mean([asm.u[i] for i, c in enumerate(cs) if c.attributes["party"] == "Democrat"], 0)
    rep = np.mean([asm.u[i] for i, c in enumerate(cs) if c.attributes["party"] == "Republican"], 0)
    np.testing.assert_allclose(dem - rep, axis, atol=1e-9)  # only the party offsets differ
    p = np.array([[0.9, 0.2], [0.6, 0.4], [0.2, 0.5]])
    np.testing.assert_allclose(pool_preferences(p, "mean"), [0.5666666, 0.3666666], atol=1e-6)
    np.testing.assert_allclose(pool_preferences(p, "majority"), [2 / 3, 1 / 6], atol=1e-9)


def test_utility_control_run(tmp_path):
    """20 shipped outcomes (5 never trained on), 50 simulated citizens, 79 training / 26 held-out
    pairs, 250 SFT steps, seed 0: the refit utilities' held-out accuracy against the assembly is
    >= 0.9 after tuning and at most 0.6 before (the random base model only has a position bias)."""
    from hydra import compose, initialize_config_dir
    from test_configs import CONF

    from utility_jax.control import run_utility_control

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="utility_control", overrides=["progress=false"])
    m = run_utility_control(cfg, tmp_path)
    assert m["before"]["heldout_accuracy_refit"] <= 0.6
    assert m["after"]["heldout_accuracy_refit"] >= 0.9
    assert m["after"]["heldout_agreement_direct"] >= 0.9
    for f in (
        "metrics.json",
        "utilities.csv",
        "summary.txt",
        "control.png",
        "sft_loss.png",
        "sft_log.json",
        "tuned_model/model.safetensors",
        "tuned_model/config.json",
    ):
        assert (tmp_path / f).exists(), f
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["n_heldout_pairs"] == 26 and saved["unseen_outcomes"]["n_outcomes"] == 5
    assert (
        "never-trained outcomes agreeing with the assembly"
        in (tmp_path / "summary.txt").read_text()
    )
    tp = saved["jax_backend"]
    assert tp["prompts"] > 0 and tp["prompts_per_s"] > 0
    assert "prompts/s" in (tmp_path / "summary.txt").read_text()


@pytest.mark.slow  # CI time: the fast tier keeps the main case
def test_utility_control_with_unseen_outcomes_lora_and_checkpoints(tmp_path):
    from hydra import compose, initialize_config_dir
    from test_configs import CONF

    from utility_jax.control import run_utility_control

    over = [
        "progress=false",
        "plots=false",
        "outcomes.limit=12",
        "heldout_outcomes=3",
        "sft.steps=20",
        "sft.lora_rank=4",
        "sft.checkpoint_every=10",
    ]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="utility_control", overrides=over)
    m = run_utility_control(cfg, tmp_path)
    u = m["unseen_outcomes"]
    assert (
        u["n_outcomes"] == 3 and u["n_pairs"] == 3 * 9 + 3
    )  # every pair touching an unseen outcome
    assert 0 <= u["agreement_direct_before"] <= 1 and 0 <= u["agreement_direct_after"] <= 1
    assert m["n_train_pairs"] + m["n_heldout_pairs"] == 36  # pairs among the 9 seen outcomes
    for step in (10, 20):
        assert (tmp_path / "checkpoints" / f"step_{step}" / "model.safetensors").exists()


def test_llm_citizens_answer_in_persona_and_the_run_completes(tmp_path):
    """A backend that records prompts: every citizen's persona is the system message of every
    question it is asked, both orders; then a whole run with LLM citizens (the tiny model itself)."""
    from utility_jax.control import citizen_preferences_llm
    from utility_jax.control.assembly import persona_prompt
    from utility_jax.elicit.backend import AnswerDistribution
    from utility_jax.io.outcomes import OutcomeSet
    from utility_jax.io.prompts import load_template

    class Recorder:
        name, model = "rec", "rec"

        def __init__(self):
            self.prompts = []

        def settings(self, mode):
            return {"mode": mode}

        def answer_probs(self, prompts, on_result=None):
            out = []
            for i, m in enumerate(prompts):
                self.prompts.append(m)
                d = AnswerDistribution(0.7, 0.3, 0.0)
                if on_result is not None:
                    on_result(i, d)
                out.append(d)
            return out

    rec = Recorder()
    cs = sample_citizens(3, 0)
    outcomes = OutcomeSet.from_texts(["x happens.", "y happens.", "z happens."])
    pairs = np.array([[0, 1], [1, 2]])
    p = citizen_preferences_llm(rec, cs, outcomes, load_template(), pairs, 10)
    np.testing.assert_allclose(p, 0.5)  # a pure "A" bias cancels over both orders
    assert len(rec.prompts) == 3 * 2 * 2
    for k, c in enumerate(cs):
        for m in rec.prompts[4 * k : 4 * k + 4]:
            assert m[0] == {"role": "system", "content": persona_prompt(c)}

    from hydra import compose, initialize_config_dir
    from test_configs import CONF

    from utility_jax.control import run_utility_control

    over = [
        "progress=false",
        "plots=false",
        "outcomes.limit=6",
        "heldout_outcomes=1",
        "assembly.kind=agent",
        "assembly.n_citizens=4",
        "sft.steps=5",
    ]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        m = run_utility_control(compose(config_name="utility_control", overrides=over), tmp_path)
    assert m["n_citizens"] == 4 and 0 <= m["after"]["heldout_accuracy_refit"] <= 1


def test_joint_table_keeps_marginals_and_the_shipped_associations():
    from utility_jax.control.assembly import joint_table
    from utility_jax.core.demography import ipf, marginal

    demo = load_demographics()
    names, levels, t = joint_table(demo)
    for a, (name, lv) in enumerate(zip(names, levels, strict=True)):
        want = np.array([demo["attributes"][name][x] for x in lv])
        np.testing.assert_allclose(marginal(t, a), want / want.sum(), atol=1e-9)
    # the association survives: Black citizens are Democrats far more often than White ones
    r, p = names.index("race_ethnicity"), names.index("party")
    rp = t.sum(axis=tuple(i for i in range(t.ndim) if i not in (r, p)))
    cond = rp / rp.sum(1, keepdims=True)
    black, white = levels[r].index("Black"), levels[r].index("White")
    dem, rep = levels[p].index("Democrat"), levels[p].index("Republican")
    assert cond[black, dem] > 0.5 and cond[white, rep] > cond[black, rep] * 3
    # IPF on a 2 x 2 with a known answer: independence seed -> the product of the marginals
    np.testing.assert_allclose(
        ipf(np.ones((2, 2)), [[0.3, 0.7], [0.6, 0.4]]), np.outer([0.3, 0.7], [0.6, 0.4])
    )
    with pytest.raises(ValueError, match="marginal 1"):
        ipf(np.ones((2, 2)), [[0.3, 0.7], [0.6, 0.6]])
    # sampling from the joint keeps the party-by-race association
    cs = sample_citizens(4000, 3)
    b = [c for c in cs if c.attributes["race_ethnicity"] == "Black"]
    assert np.mean([c.attributes["party"] == "Democrat" for c in b]) > 0.45


def test_republican_personas_carry_the_appendix_h_instruction():
    from utility_jax.control.assembly import REPUBLICAN_INSTRUCTION, Citizen

    base = {
        "sex": "male",
        "age": "45-64",
        "race_ethnicity": "White",
        "education": "x",
        "region": "South",
        "household_income": "y",
    }
    rep = Citizen({**base, "party": "Republican"})
    dem = Citizen({**base, "party": "Democrat"})
    assert REPUBLICAN_INSTRUCTION in persona_prompt(rep)
    assert REPUBLICAN_INSTRUCTION not in persona_prompt(dem)
    assert REPUBLICAN_INSTRUCTION not in persona_prompt(rep, republican_instruction=False)


@pytest.mark.slow  # CI time: the fast tier keeps the main case
def test_political_position_before_and_after_control(tmp_path):
    from hydra import compose, initialize_config_dir
    from test_configs import CONF

    from utility_jax.control import run_utility_control
    from utility_jax.control.config import validate_control
    from utility_jax.studies import control_political_shift

    over = [
        "progress=false",
        "plots=false",
        "outcomes.limit=10",
        "heldout_outcomes=2",
        "sft.steps=20",
        "political_policies=5",
        "political_entities=2",
    ]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="utility_control", overrides=over)
    m = run_utility_control(cfg, tmp_path)
    pos = control_political_shift(
        tmp_path, validate_control(cfg), m["base_model"], m["tuned_model"]
    )
    assert len(pos["entities"]) == 2
    for lab in ("before", "after"):
        for e in pos["entities"]:
            iv = pos[f"correlation_{lab}"][e]
            assert iv["lo"] <= iv["estimate"] <= iv["hi"]
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["political_position"]["nearest_after"] in pos["entities"]
    assert (
        "political position (the political-values analysis"
        in (tmp_path / "summary.txt").read_text()
    )
    assert (tmp_path / "political" / "after" / "analysis.json").exists()


def test_control_dry_run_counts_the_llm_assembly(tmp_path):
    from hydra import compose, initialize_config_dir
    from test_configs import CONF

    from utility_jax.control import run_utility_control

    over = [
        "dry_run=true",
        "assembly=llm",
        "assembly.agent.kind=openai",
        "assembly.agent.model=gpt-4o-mini",
        "assembly.n_citizens=4",
        "outcomes.limit=6",
    ]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        pl = run_utility_control(compose(config_name="utility_control", overrides=over), tmp_path)
    assert pl["requests"] == 4 * 15 * 2  # citizens x pairs x orders, log-prob mode
    assert pl["usd_expected"] > 0 and sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]
