"""Spend limits for a run (``budget.max_requests``, ``budget.max_usd``).

The agent asks the guard before each group of requests; the guard lets through what fits and
raises :class:`BudgetExceeded` when nothing more may be sent. Answers already received are in the
store, so rerunning the same command with a higher (or no) limit continues where it stopped.
Costs are counted from the tokens the server reports, at the run's prices; a group in flight
when the dollar limit is reached may overshoot it by that group's cost.

Limits hold across invocations: a guard starts from what the run already spent (the answer
store's ledger, :meth:`~utility_jax.elicit.store.ResponseStore.spend`), and ``on_spend`` writes
each request's cost to that ledger with its answers. Rerunning a stopped command therefore stops
again at once, until the limit is raised.
"""

import dataclasses
from collections.abc import Callable

__all__ = ["BudgetExceeded", "BudgetGuard"]


class BudgetExceeded(RuntimeError):
    """The run reached ``budget.max_requests`` or ``budget.max_usd``; everything asked is stored."""


@dataclasses.dataclass
class BudgetGuard:
    max_requests: int | None = None
    max_usd: float | None = None
    usd_per_input_token: float = 0.0
    usd_per_output_token: float = 0.0
    requests: int = 0  # spent so far, this invocation and earlier ones
    usd: float = 0.0
    #: ``on_spend(requests, tokens_in, tokens_out, usd)`` for every request (the store's ledger)
    on_spend: Callable[[int, int, int, float], None] | None = None

    def allow(self, n: int) -> int:
        """How many of ``n`` new requests may be sent now (raises when none may)."""
        if self.max_usd is not None and self.usd >= self.max_usd:
            raise BudgetExceeded(
                f"budget.max_usd={self.max_usd} reached (spent ${self.usd:.4f} on "
                f"{self.requests} requests in all)"
            )
        if self.max_requests is None:
            return n
        left = self.max_requests - self.requests
        if left <= 0:
            raise BudgetExceeded(
                f"budget.max_requests={self.max_requests} reached ({self.requests} requests "
                f"in all, ${self.usd:.4f} spent)"
            )
        return min(n, left)

    def spent(self, tokens_in: int, tokens_out: int) -> None:
        """Record one request that was answered (or failed) and its tokens."""
        usd = tokens_in * self.usd_per_input_token + tokens_out * self.usd_per_output_token
        self.requests += 1
        self.usd += usd
        if self.on_spend is not None:
            self.on_spend(1, int(tokens_in), int(tokens_out), usd)
