"""Elicitation: agents that answer forced-choice questions (the I/O shell).

An *agent* answers pairs of outcomes in both presentation orders, ``k`` samples per order, and
returns counts ``[n_pairs, 2, 3]`` (order x answer A/B/refusal) — see :class:`Agent`. Two agents
implement it: :class:`SimulatedAgent` (known utilities) and :class:`~utility_jax.elicit.llm.LLMAgent`
(any language model behind a *backend*: ``hf.py`` for transformers, ``jax_backend.py`` for our NNX
model, ``openai_compat.py`` for OpenAI-compatible servers, ``dry_run.py`` for counting requests;
the backend protocol is :class:`~utility_jax.elicit.backend.Backend`). ``store.py`` keeps every
answer, ``parse.py`` reads them.
"""

from utility_jax.elicit.base import Agent, AgentStats
from utility_jax.elicit.simulated import SimulatedAgent, reference_utilities

__all__ = ["Agent", "AgentStats", "SimulatedAgent", "reference_utilities"]
