"""Elicitation: agents that answer forced-choice questions (the I/O shell).

An *agent* answers pairs of outcomes in both presentation orders, ``k`` samples per order, and
returns counts ``[n_pairs, 2, 3]`` (order x answer A/B/refusal) — see :class:`Agent`. Only the
simulated agent lives here for now; LLM backends plug into the same interface.
"""

from utility_jax.elicit.base import Agent, AgentStats
from utility_jax.elicit.simulated import SimulatedAgent, reference_utilities

__all__ = ["Agent", "AgentStats", "SimulatedAgent", "reference_utilities"]
