"""A simulated agent with known utilities, behind the :class:`Agent` interface."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from utility_jax.core.data import bucket_length
from utility_jax.core.model import PROBIT
from utility_jax.core.simulate import simulate_votes
from utility_jax.elicit.base import AgentStats
from utility_jax.io.outcomes import OutcomeSet, OutcomeSetError

__all__ = ["SimulatedAgent", "reference_utilities"]


def reference_utilities(path: str | Path, outcomes: OutcomeSet) -> tuple[np.ndarray, np.ndarray]:
    """Means and standard deviations from a reference ``results_utilities_*.json`` file.

    Outcomes are matched by text to the file's ``options[].description``; an outcome the file
    lacks is an error naming it.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: reference results file not found")
    try:
        obj = json.loads(path.read_text())
        by_text = {o["description"]: str(o["id"]) for o in obj["options"]}
        utils = obj["utilities"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise OutcomeSetError(f"{path}: not a reference results file ({e!r})") from e
    mu, sigma = [], []
    for k, text in enumerate(outcomes.texts):
        if text not in by_text:
            raise OutcomeSetError(
                f"{path}: has no utility for outcome {k} of {outcomes.source}: {text!r}"
            )
        u = utils[by_text[text]]
        mu.append(float(u["mean"]))
        sigma.append(float(np.sqrt(u["variance"])))
    return np.array(mu), np.array(sigma)


class SimulatedAgent:
    """Answers from known utilities (see :func:`utility_jax.core.simulate.simulate_votes`)."""

    def __init__(
        self,
        mu,
        sigma,
        *,
        link: str = PROBIT,
        position_bias: float = 0.0,
        refusal_rate: float = 0.0,
        name: str = "simulated",
        orders: str = "both",
    ):
        self.mu = np.asarray(mu, dtype=np.float64)
        self.sigma = np.asarray(sigma, dtype=np.float64)
        if self.mu.shape != self.sigma.shape or self.mu.ndim != 1:
            raise ValueError(f"mu {self.mu.shape} and sigma {self.sigma.shape} must be equal 1-D")
        if not np.all(self.sigma > 0):
            raise ValueError("sigma must be positive")
        self.link, self.position_bias, self.refusal_rate = link, position_bias, refusal_rate
        if orders not in ("both", "first"):
            raise ValueError(f"orders must be 'both' or 'first', got {orders!r}")
        self.name, self.orders = name, orders
        self.stats = AgentStats()
        self.cache_hits = 0  # no store: nothing is reused
        self.other_mass: list[float] = []
        self.last_error: str | None = None  # a simulated agent never fails

    def close(self, export_dir=None) -> None:
        """Nothing to release (the :class:`~utility_jax.elicit.Agent` interface)."""

    def query(self, pairs: np.ndarray, k: int, *, key: jax.Array) -> np.ndarray:
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        if len(pairs) == 0:
            return np.zeros((0, 2, 3))
        n = len(pairs)
        # few, large buckets: one compilation serves the held-out set and every round
        padded = np.zeros((bucket_length(n, min_bucket=1024), 2), dtype=np.int64)
        padded[:n] = pairs
        padded[n:, 1] = 1  # padding rows ask (0, 1); their answers are dropped below
        counts = simulate_votes(
            key,
            jnp.asarray(self.mu),
            jnp.asarray(self.sigma),
            jnp.asarray(padded[:, 0]),
            jnp.asarray(padded[:, 1]),
            int(k),
            link=self.link,
            position_bias=self.position_bias,
            refusal_rate=self.refusal_rate,
        )
        counts = np.asarray(counts, dtype=np.float64)[:n]
        if self.orders == "first":  # the no-flip ablation: the second order is never asked
            counts[:, 1] = 0.0
        self.stats.answers += int(counts.sum())
        self.stats.refusals += int(counts[..., 2].sum())
        return counts
