"""What went wrong in a run, said plainly: pairs left without votes (and why), outcomes never
compared, transport-error and refusal rates, and the true cause when nothing worked at all.

A run always finishes with what it has: pairs without votes are left out of the fits and metrics
and reported here (``metrics.json``: ``incidents``; ``summary.txt``). Only when no usable vote
exists at all does :class:`NoVotesError` stop it, with the reason in one line.
"""

from typing import Any

import numpy as np

from utility_jax.core.data import pool_orders
from utility_jax.elicit.base import Agent

__all__ = [
    "NoVotesError",
    "RunIncidentError",
    "no_votes_reason",
    "vote_incidents",
    "graph_components",
    "run_incidents",
    "failures",
    "refusal_examples_text",
]


class NoVotesError(RuntimeError):
    """No usable vote at all: nothing can be fitted (the message says why)."""


class RunIncidentError(RuntimeError):
    """The run finished and wrote its folder, but an incident passed its threshold; the run's
    result is ``result`` (None where nothing could be reported)."""

    def __init__(self, message: str, result: Any = None):
        super().__init__(message)
        self.result = result


def _hint(agent: Agent, error: str) -> str:
    backend = getattr(agent, "backend", None)
    if "HTTP 401" in error or "HTTP 403" in error:
        var = getattr(backend, "api_key_env", None)
        return f": check the key in ${var}" if var else ": check the API key"
    if "Connection" in error or "connect" in error:
        url = getattr(backend, "base_url", None)
        return f": is a server running at {url}?" if url else ""
    if "HTTP 404" in error:
        return ": check agent.base_url and agent.model"
    return ""


def no_votes_reason(agent: Agent, refusal: str, what: str) -> str:
    """One line saying why ``what`` (e.g. "the held-out pairs") has no usable vote."""
    s = agent.stats
    if s.answers == 0 and s.errors > 0:
        err = agent.last_error or "unknown error"
        return (
            f"no request to {agent.name} succeeded ({s.errors} failed); the last error: "
            f"{err}{_hint(agent, err)}"
        )
    if s.answers > 0 and s.refusals == s.answers and refusal == "drop":
        return (
            f"every one of the {s.answers} answers of {agent.name} was a refusal and "
            "elicitation.refusal=drop: nothing to fit (refusal=half counts them as ties)"
        )
    return f"{what} got no usable vote from {agent.name} ({s.answers} answers, {s.errors} errors)"


def vote_incidents(n_items: int, pairs: np.ndarray, counts: np.ndarray, refusal: str) -> dict:
    """Pairs left without votes and why, and outcomes that no voted pair compares.

    ``counts`` is ``[n_pairs, 2, 3]`` (order x A/B/refusal); a pair with no answer at all lost
    every request (transport errors, a content filter's permanent 4xx); one with refusals only
    has no votes when refusals are dropped.
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    c = np.asarray(counts, dtype=np.float64).reshape(-1, 2, 3)
    _, total = pool_orders(c, refusal=refusal)
    answered = c.sum((1, 2)) > 0
    none = total <= 0
    voted = pairs[~none]
    compared = np.zeros(n_items, bool)
    compared[voted.ravel()] = True
    return {
        "n_pairs": int(len(pairs)),
        "pairs_without_votes": int(none.sum()),
        "without_votes_no_answer": int((none & ~answered).sum()),
        "without_votes_only_refusals": int((none & answered).sum()),
        "pairs_without_votes_examples": pairs[none][:10].tolist(),
        "outcomes_never_compared": np.flatnonzero(~compared).tolist(),
    }


def graph_components(labels: np.ndarray) -> dict:
    """Components of the comparison graph from per-outcome labels: how many, and their sizes
    (largest first; an outcome never compared is a component of one)."""
    _, sizes = np.unique(np.asarray(labels), return_counts=True)
    sizes = np.sort(sizes)[::-1]
    return {"n": int(len(sizes)), "sizes": sizes[:20].tolist()}


def run_incidents(
    agent: Agent, parts: dict[str, dict], max_error_rate: float, max_refusal_rate: float = 1.0
) -> dict[str, Any]:
    """The run's ``incidents`` section: per-part vote incidents, error and refusal rates (with
    up to three refused replies), and whether either rate passed its maximum (the run then
    exits non-zero, :func:`failures`)."""
    s = agent.stats
    error_rate = s.errors / max(s.answers + s.errors, 1)
    refusal_rate = s.refusals / max(s.answers, 1)
    out: dict[str, Any] = {
        **parts,
        "error_rate": error_rate,
        "refusal_rate": refusal_rate,
        "refusal_examples": list(getattr(agent, "refusal_examples", []))[:3],
        "last_error": agent.last_error,
        "max_error_rate": max_error_rate,
        "error_rate_exceeded": bool(error_rate > max_error_rate),
        "max_refusal_rate": max_refusal_rate,
        "refusal_rate_exceeded": bool(refusal_rate > max_refusal_rate),
    }
    return out


def refusal_examples_text(inc: dict[str, Any]) -> str:
    """The kept refused replies, quoted and shortened, for a message ("" when none were kept)."""
    return "; ".join(repr(t[:80]) for t in inc.get("refusal_examples") or [])


def failures(inc: dict[str, Any]) -> list[str]:
    """Why a finished run is a failed one, one line per reason (empty: it is not): a transport
    error rate or a refusal rate past its maximum, outcomes no voted pair compares."""
    out = []
    if inc.get("error_rate_exceeded"):
        out.append(
            f"{inc['error_rate']:.1%} of requests failed (agent.max_error_rate="
            f"{inc['max_error_rate']}); the last error: {inc['last_error']}"
        )
    if inc.get("refusal_rate_exceeded"):
        ex = refusal_examples_text(inc) or "none kept"
        out.append(
            f"{inc['refusal_rate']:.1%} of answers were refusals (no A or B read; "
            f"agent.max_refusal_rate={inc['max_refusal_rate']}); e.g. {ex}"
        )
    never = (inc.get("train") or {}).get("outcomes_never_compared") or []
    if never:
        out.append(
            f"{len(never)} outcomes are compared by no voted pair (NaN in utilities.csv): "
            f"{never[:10]}"
        )
    return out
