"""The analyses' prompt templates are the paper's, and the LLM agent fills their fields."""

from analysis_helpers import templates_json
from conftest import ANCHOR

from utility_jax.elicit.llm import LLMAgent
from utility_jax.io.datasets import TEMPLATE_SOURCES, paper_templates
from utility_jax.io.outcomes import Outcome, OutcomeSet
from utility_jax.io.prompts import load_template, template_names


def test_every_shipped_paper_template_is_the_papers():
    """Each template of assets/prompt_templates.yaml named in TEMPLATE_SOURCES equals the text
    extracted from the reference's source (derived/prompt_templates.json)."""
    paper = paper_templates(ANCHOR)
    assert set(paper) == set(TEMPLATE_SOURCES) and len(paper) == 12
    for name, text in paper.items():
        assert load_template(name).text == text, name
    assert set(TEMPLATE_SOURCES) <= set(template_names())


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
    ref = templates_json()["templates"][
        "experiments/time_discounting/evaluate_time_discounting_nonparametric.py"
    ]["prompt_template"]
    want = ref.format(
        amount_A="$2,000", time_A="in 6 months", amount_B="$1,000", time_B="right now"
    )
    assert ag.messages(1, 0) == [{"role": "user", "content": want}]
    pol = OutcomeSet.from_texts(["Policy one.", "Policy two."])
    ag = LLMAgent(_Backend(), pol, load_template("policy_politician"), fields={"entity": "Ada"})
    assert "Which policy do you think Ada would prefer" in ag.messages(0, 1)[1]["content"]
