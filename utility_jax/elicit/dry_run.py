"""Dry runs: every prompt a run would send is rendered and counted, nothing is sent.

:class:`DryRunBackend` stands in for a real backend: it answers 50/50 at random (so adaptive
designs run their full course; the number of requests does not depend on the answers), counts
requests, answers and tokens in a shared :class:`Ledger`, and never opens a connection. Prompt
tokens are counted with the model's tokenizer when it can be loaded locally (``hf`` and ``jax``
checkpoints), else approximated as characters / 4 (said in the plan).
"""

import dataclasses
from typing import Any

import numpy as np

from utility_jax.elicit.backend import AnswerDistribution, Completion

__all__ = ["Ledger", "DryRunBackend", "token_counter"]

CHARS_PER_TOKEN = 4.0


@dataclasses.dataclass
class Ledger:
    """What a run would spend (shared by every backend of a dry run)."""

    requests: int = 0
    prompts: int = 0
    answers: int = 0
    prompt_tokens: int = 0
    completion_tokens_expected: int = 0
    completion_tokens_max: int = 0
    token_count: str = "approximate (characters / 4)"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def token_counter(agent_conf):
    """``(count(messages) -> int, how)``: the model's tokenizer and chat template when the
    checkpoint is local (hf, jax), else characters / 4."""
    if agent_conf.kind in ("hf", "jax") and agent_conf.model:
        try:
            from transformers import AutoTokenizer

            from utility_jax.io.prompts import render_text

            tok = AutoTokenizer.from_pretrained(agent_conf.model)
            chat = agent_conf.chat

            def exact(msgs):
                return len(tok(render_text(tok, msgs, chat), add_special_tokens=False).input_ids)

            return exact, f"exact ({agent_conf.model} tokenizer)"
        except Exception:  # an unreachable hub id: fall back, and say so
            pass

    def approx(msgs):
        return int(np.ceil(sum(len(m["content"]) for m in msgs) / CHARS_PER_TOKEN)) + 4 * len(msgs)

    return approx, "approximate (characters / 4, plus 4 per message)"


class DryRunBackend:
    """Counts what ``inner_name:model`` would be asked; answers at random; sends nothing."""

    def __init__(self, agent_conf, el, ledger: Ledger, *, seed: int = 0):
        self.name, self.model = agent_conf.kind, agent_conf.model or "simulated"
        self.el, self.ledger = el, ledger
        self.count, ledger.token_count = token_counter(agent_conf)
        self.rng = np.random.default_rng(seed)

    def settings(self, mode: str) -> dict[str, Any]:
        return {"mode": mode, "dry_run": True}

    def _reply_tokens(self) -> tuple[int, int]:
        # a forced-choice answer is one token ("A"); the bound is max_new_tokens
        reasoning = self.el.template == "reasoning"
        return (self.el.max_new_tokens if reasoning else 1), self.el.max_new_tokens

    def sample(self, prompts, n, *, seed, on_result=None):
        exp, bound = self._reply_tokens()
        out = []
        for i, msgs in enumerate(prompts):
            t = self.count(msgs)
            lg = self.ledger
            lg.requests += 1
            lg.prompts += 1
            lg.answers += n
            lg.prompt_tokens += t
            lg.completion_tokens_expected += n * exp
            lg.completion_tokens_max += n * bound
            comps = [  # the prompt is read once per request: its tokens on the first answer
                Completion("A" if x < 0.5 else "B", tokens_in=t if j == 0 else 0, tokens_out=1)
                for j, x in enumerate(self.rng.random(n))
            ]
            if on_result is not None:
                on_result(i, comps)
            out.append(comps)
        return out

    def answer_probs(self, prompts, on_result=None):
        out = []
        for i, msgs in enumerate(prompts):
            t = self.count(msgs)
            lg = self.ledger
            lg.requests += 1
            lg.prompts += 1
            lg.prompt_tokens += t
            lg.completion_tokens_expected += 1
            lg.completion_tokens_max += 1
            d = AnswerDistribution(0.5, 0.5, 0.0, tokens_in=t)
            if on_result is not None:
                on_result(i, d)
            out.append(d)
        return out
