"""The interface every elicitation backend implements."""

import dataclasses
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

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@runtime_checkable
class Agent(Protocol):
    """Answers forced-choice questions about outcome pairs."""

    name: str
    stats: AgentStats

    def query(self, pairs: np.ndarray, k: int, *, key: jax.Array) -> np.ndarray:
        """Ask every pair ``(i, j)`` in ``pairs`` (``[n, 2]``) in both orders, ``k`` times each.

        Returns:
          ``[n, 2, 3]`` counts: order 0 shows ``i`` as "A", order 1 shows ``j`` as "A"; the last
          axis counts answers "A", "B" and refusals. Transport errors are never counted as votes.
        """
        ...
