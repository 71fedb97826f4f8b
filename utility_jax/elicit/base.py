"""The interface every agent implements (the simulated agent and ``LLMAgent``).

An agent answers pairs; a *backend* (:mod:`utility_jax.elicit.backend`) is what an ``LLMAgent``
asks a language model through.
"""

import dataclasses
from pathlib import Path
from typing import Protocol, runtime_checkable

import jax
import numpy as np


@dataclasses.dataclass
class AgentStats:
    """What an agent has spent so far (reported in the run's metrics)."""

    model_calls: int = 0
    forward_passes: int = 0
    tokens: int = 0
    answers: int = 0
    refusals: int = 0
    errors: int = 0
    permanent_errors: int = 0  # of ``errors``: refused for good by the server (a 4xx), not retried
    parser_disagreements: int = 0  # answers the reference and strict rules classify differently

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@runtime_checkable
class Agent(Protocol):
    """Answers forced-choice questions about outcome pairs.

    Besides :attr:`stats`, every agent reports ``cache_hits`` (answers reused from a response
    store; 0 without one), ``other_mass`` (log-prob mode: the next-token mass outside {A, B}
    per prompt; empty otherwise) and ``last_error`` (the latest transport error, or None), and
    has :meth:`close`.
    """

    name: str
    stats: AgentStats
    cache_hits: int
    other_mass: list[float]
    last_error: str | None

    def close(self, export_dir: Path | str | None = None) -> None:
        """Release the agent's resources; with a store, first export its answers to
        ``export_dir/responses.jsonl`` when ``export_dir`` is given."""
        ...

    def query(self, pairs: np.ndarray, k: int, *, key: jax.Array) -> np.ndarray:
        """Ask every pair ``(i, j)`` in ``pairs`` (``[n, 2]``) in both orders, ``k`` times each.

        Returns:
          ``[n, 2, 3]`` counts: order 0 shows ``i`` as "A", order 1 shows ``j`` as "A"; the last
          axis counts answers "A", "B" and refusals. Transport errors are never counted as votes.
        """
        ...
