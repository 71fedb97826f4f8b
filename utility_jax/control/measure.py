"""Measuring a model against the assembly's target: elicit in log-prob mode, refit with the run's
fitter, score on held-out pairs."""

from collections.abc import Callable

import jax
import numpy as np

from utility_jax.core.data import PairwiseData, pool_orders
from utility_jax.core.likelihood import predict_proba
from utility_jax.core.model import ThurstonianFit
from utility_jax.elicit.llm import LLMAgent
from utility_jax.io.prompts import render_pair

__all__ = ["measure", "direct_agreement", "sft_examples", "same_side"]


def same_side(p, target) -> float:
    """Share of pairs on which ``p`` and ``target`` prefer the same outcome (ties count as the
    first outcome, the reference's rule)."""
    return float(np.mean((np.asarray(p) >= 0.5) == (np.asarray(target) >= 0.5)))


def _pooled(agent, pairs, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(P(first), [n, 2, 3] counts)`` of ``pairs`` asked through ``agent``."""
    c = agent.query(pairs, k, key=jax.random.key(seed))
    return np.divide(*pool_orders(c, refusal="drop")), c


def measure(
    backend,
    outcomes,
    tpl,
    system,
    train,
    heldout,
    k: int,
    target_heldout,
    fit_fn: Callable[[PairwiseData], ThurstonianFit],
):
    """Elicit on the training pairs, refit with ``fit_fn``, and score the refit utilities on the
    held-out pairs; also the model's own answers on the held-out pairs against the target."""
    n = len(outcomes)
    agent = LLMAgent(backend, outcomes, tpl, mode="logprob", system=system)
    _, c = _pooled(agent, train, k, 0)
    data = PairwiseData.from_counts(n, train[:, 0], train[:, 1], *pool_orders(c, refusal="drop"))
    fit = fit_fn(data)
    p = np.asarray(predict_proba(fit, heldout[:, 0], heldout[:, 1]))
    direct, _ = _pooled(agent, heldout, k, 1)
    return fit, {
        "heldout_accuracy_refit": same_side(p, target_heldout),
        "heldout_agreement_direct": same_side(direct, target_heldout),
        "mean_probability_outside_AB": float(np.mean(agent.other_mass)),
    }


def direct_agreement(backend, outcomes, tpl, system, pairs, k, target) -> float:
    """Share of pairs whose model answer (both orders pooled) agrees with the target's side."""
    agent = LLMAgent(backend, outcomes, tpl, mode="logprob", system=system)
    return same_side(_pooled(agent, pairs, k, 2)[0], target)


def sft_examples(outcomes, tpl, system, pairs, p_first):
    """SFT prompts for both orders of every pair and their target P("A")."""
    prompts, t = [], []
    for (i, j), p in zip(pairs.tolist(), p_first.tolist(), strict=True):
        prompts.append(render_pair(tpl, outcomes[i].text, outcomes[j].text, system))
        t.append(p)
        prompts.append(render_pair(tpl, outcomes[j].text, outcomes[i].text, system))
        t.append(1 - p)
    return prompts, np.asarray(t)
