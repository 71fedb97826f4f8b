"""Spend limits for a run (``budget.max_requests``, ``budget.max_usd``).

The agent asks the guard before each group of requests; the guard lets through what fits and
raises :class:`BudgetExceeded` when nothing more may be sent. Answers already received are in the
store, so rerunning the same command with a higher (or no) limit continues where it stopped.
Costs are counted from the tokens the server reports, at the run's prices; a group in flight
when the dollar limit is reached may overshoot it by that group's cost.
"""

import dataclasses

__all__ = ["BudgetExceeded", "BudgetGuard"]


class BudgetExceeded(RuntimeError):
    """The run reached ``budget.max_requests`` or ``budget.max_usd``; everything asked is stored."""


@dataclasses.dataclass
class BudgetGuard:
    max_requests: int | None = None
    max_usd: float | None = None
    usd_per_input_token: float = 0.0
    usd_per_output_token: float = 0.0
    requests: int = 0
    usd: float = 0.0

    def allow(self, n: int) -> int:
        """How many of ``n`` new requests may be sent now (raises when none may)."""
        if self.max_usd is not None and self.usd >= self.max_usd:
            raise BudgetExceeded(
                f"budget.max_usd={self.max_usd} reached (spent ${self.usd:.4f} on "
                f"{self.requests} requests)"
            )
        if self.max_requests is None:
            return n
        left = self.max_requests - self.requests
        if left <= 0:
            raise BudgetExceeded(
                f"budget.max_requests={self.max_requests} reached (${self.usd:.4f} spent)"
            )
        return min(n, left)

    def spent(self, tokens_in: int, tokens_out: int) -> None:
        """Record one request that was answered (or failed) and its tokens."""
        self.requests += 1
        self.usd += tokens_in * self.usd_per_input_token + tokens_out * self.usd_per_output_token
