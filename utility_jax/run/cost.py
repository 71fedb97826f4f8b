"""What a run spent (answers, refusals, transport errors, calls, tokens, store reuse), what it
would spend (a dry run's plan), and its prices."""

from typing import Any

import numpy as np
import yaml

from utility_jax.elicit.base import Agent
from utility_jax.elicit.budget import BudgetGuard
from utility_jax.io.assets import asset_path

__all__ = ["cost_metrics", "prices", "budget_guard", "plan", "plan_text"]


def prices(model: str | None, budget) -> dict[str, Any]:
    """US$ per million tokens for ``model``: ``budget.price_*`` when set, else the shipped table
    (``assets/prices.yaml``); None when unknown (a self-hosted model)."""
    table = yaml.safe_load(asset_path("prices.yaml").read_text())
    row = table["models"].get(model or "", {})
    pin = (
        budget.price_input_per_mtok if budget.price_input_per_mtok is not None else row.get("input")
    )
    pout = (
        budget.price_output_per_mtok
        if budget.price_output_per_mtok is not None
        else row.get("output")
    )
    src = "budget.price_*" if budget.price_input_per_mtok is not None else "assets/prices.yaml"
    return {
        "input_per_mtok": pin,
        "output_per_mtok": pout,
        "batch_discount": float(table.get("batch_discount", 0.5)),
        "source": src if pin is not None else "no price known",
    }


def budget_guard(conf) -> BudgetGuard:
    """The spend guard of a run config (``budget.*`` and the model's prices). A dollar limit
    on a model with no known price is refused: it would count every request as free."""
    p = prices(conf.agent.model, conf.budget)
    b = conf.budget
    if b.max_usd is not None and (p["input_per_mtok"] is None or p["output_per_mtok"] is None):
        raise ValueError(
            f"budget.max_usd={b.max_usd} is set, but no price is known for model "
            f"{conf.agent.model!r} (it is not in utility_jax/assets/prices.yaml; dated snapshots "
            "and router names are priced separately): give budget.price_input_per_mtok and "
            "budget.price_output_per_mtok (US$ per million tokens), or drop budget.max_usd"
        )
    return BudgetGuard(
        max_requests=conf.budget.max_requests,
        max_usd=conf.budget.max_usd,
        usd_per_input_token=(p["input_per_mtok"] or 0.0) / 1e6,
        usd_per_output_token=(p["output_per_mtok"] or 0.0) / 1e6,
    )


def plan(ledger, agent, budget) -> dict[str, Any]:
    """A dry run's plan: requests, answers, tokens and cost (expected and at most), for the
    agent settings that asked and the budget settings that price them."""
    p = prices(agent.model, budget)
    out: dict[str, Any] = {"agent": f"{agent.kind}:{agent.model}", **ledger.as_dict()}
    out["prices"] = p
    if p["input_per_mtok"] is not None and p["output_per_mtok"] is not None:
        cin = ledger.prompt_tokens * p["input_per_mtok"] / 1e6
        out["usd_expected"] = cin + ledger.completion_tokens_expected * p["output_per_mtok"] / 1e6
        out["usd_max"] = cin + ledger.completion_tokens_max * p["output_per_mtok"] / 1e6
        out["usd_expected_batch"] = out["usd_expected"] * (1 - p["batch_discount"])
    return out


def plan_text(pl: dict[str, Any]) -> str:
    """The plan in a few lines (printed by ``dry_run=true``)."""
    lines = [
        f"dry run: nothing was sent ({pl['agent']})",
        f"  requests {pl['requests']:,} ({pl['prompts']:,} prompts), answers {pl['answers']:,}",
        f"  prompt tokens {pl['prompt_tokens']:,} ({pl['token_count']}); completion tokens "
        f"{pl['completion_tokens_expected']:,} expected, at most {pl['completion_tokens_max']:,}",
    ]
    if "usd_expected" in pl:
        pr = pl["prices"]
        lines.append(
            f"  cost ${pl['usd_expected']:,.2f} expected, at most ${pl['usd_max']:,.2f} "
            f"(${pr['input_per_mtok']}/${pr['output_per_mtok']} per Mtok from {pr['source']}); "
            f"${pl['usd_expected_batch']:,.2f} at the batch discount"
        )
    else:
        lines.append("  cost: no price known for this model (budget.price_input_per_mtok=...)")
    if "pairs" in pl:
        lines.append(f"  pairs: {pl['pairs']}")
    return "\n".join(lines)


def cost_metrics(agent: Agent) -> dict[str, Any]:
    """The agent's spending with its refusal and error rates (``metrics.json``: ``cost``)."""
    s = agent.stats.as_dict()
    out: dict[str, Any] = {
        **s,
        "refusal_rate": s["refusals"] / max(s["answers"], 1),
        "error_rate": s["errors"] / max(s["answers"] + s["errors"], 1),
        "cache_hits": int(agent.cache_hits),
    }
    parser = getattr(agent, "parser", None)  # free-text agents only
    if parser is not None and getattr(agent, "mode", "sample") == "sample":
        out["parser"] = parser
    if agent.other_mass:
        out["mean_probability_outside_AB"] = float(np.mean(agent.other_mass))
    return out
