"""What a run spent: answers, refusals, transport errors, calls, tokens, store reuse."""

from typing import Any

import numpy as np

from utility_jax.elicit.base import Agent

__all__ = ["cost_metrics"]


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
