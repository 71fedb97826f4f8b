"""What an LLM backend returns, and the interface every backend implements."""

import dataclasses
from collections.abc import Sequence
from typing import Any, Protocol


@dataclasses.dataclass
class Completion:
    """One sampled answer, or a transport error (``error`` set, ``text`` None).

    ``tokens_in`` and ``tokens_out`` are this answer's share of its request's bill: the prompt's
    tokens on a request's first answer and 0 on the others (a prompt is read once, however many
    answers the request asks for), so sums over answers equal what the server counted."""

    text: str | None
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    error: str | None = None


@dataclasses.dataclass
class AnswerDistribution:
    """Next-token probabilities of the answer letters (log-prob mode), or an error."""

    p_a: float
    p_b: float
    p_other: float  # mass outside {A, B}: the refusal signal
    tokens_in: int = 0
    latency_s: float = 0.0
    error: str | None = None


class Backend(Protocol):
    """A model that answers chat prompts (lists of ``{"role", "content"}`` messages)."""

    name: str  # "hf", "openai", ...
    model: str  # a model id or path, part of every stored answer's key

    def settings(self, mode: str) -> dict[str, Any]:
        """The generation settings that change an answer (part of the store key)."""
        ...

    def sample(
        self, prompts: list[list[dict]], n: int, *, seed: int | Sequence[int], on_result=None
    ) -> list[list[Completion]]:
        """``n`` sampled answers per prompt; ``on_result(i, completions)`` as each prompt is done.

        ``seed``: one seed per prompt (what :class:`~utility_jax.elicit.LLMAgent` passes: a hash
        of the run's seed, the prompt and the first sample's index, so an answer does not depend
        on the order of asking), or one int for the call (:func:`prompt_seeds`).
        """
        ...

    def answer_probs(self, prompts: list[list[dict]], on_result=None) -> list[AnswerDistribution]:
        """P("A"), P("B") and the rest from the next-token distribution, one per prompt;
        ``on_result(i, distribution)`` as each prompt is done."""
        ...


def prompt_seeds(seed: int | Sequence[int], n: int) -> list[int]:
    """One seed per prompt: ``seed`` itself when it is a sequence (of length ``n``), else
    ``seed + i`` for prompt ``i``."""
    if isinstance(seed, int):
        return [seed + i for i in range(n)]
    seeds = [int(s) for s in seed]
    if len(seeds) != n:
        raise ValueError(f"{len(seeds)} seeds for {n} prompts")
    return seeds
