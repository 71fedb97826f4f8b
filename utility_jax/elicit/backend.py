"""What an LLM backend returns, and the interface every backend implements."""

import dataclasses
from typing import Any, Protocol


@dataclasses.dataclass
class Completion:
    """One sampled answer, or a transport error (``error`` set, ``text`` None)."""

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
        self, prompts: list[list[dict]], n: int, *, seed: int, on_result=None
    ) -> list[list[Completion]]:
        """``n`` sampled answers per prompt; ``on_result(i, completions)`` as each prompt is done."""
        ...

    def answer_probs(self, prompts: list[list[dict]], on_result=None) -> list[AnswerDistribution]:
        """P("A"), P("B") and the rest from the next-token distribution, one per prompt;
        ``on_result(i, distribution)`` as each prompt is done."""
        ...
