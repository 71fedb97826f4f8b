"""The analyses' prompt templates are the paper's, and the LLM agent fills their fields."""

import pytest
from analysis_helpers import TEMPLATES

from utility_jax.elicit.llm import LLMAgent
from utility_jax.outcomes import Outcome, OutcomeSet
from utility_jax.prompts import load_template


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
