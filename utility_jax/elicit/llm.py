"""An :class:`~utility_jax.elicit.Agent` over any LLM backend, with the response store."""

from pathlib import Path

import jax
import numpy as np

from utility_jax.elicit.backend import Backend
from utility_jax.elicit.base import AgentStats
from utility_jax.elicit.budget import BudgetGuard
from utility_jax.elicit.parse import RULES, parse_answer
from utility_jax.elicit.store import ResponseStore, answer_seed, is_permanent, request_key
from utility_jax.io.outcomes import OutcomeSet
from utility_jax.io.prompts import PromptTemplate, render_pair

__all__ = ["LLMAgent"]


class LLMAgent:
    """Asks an LLM backend forced-choice questions about outcome pairs.

    Both presentation orders are asked (``orders="first"``: only the first, the reference's
    no-flip ablation). ``mode="sample"``: ``k`` answers per order at the backend's temperature,
    parsed into A / B / refusal by ``parser`` (:mod:`~utility_jax.elicit.parse`; stored answers
    are re-parsed from their raw text, so changing the rule asks nothing again). ``mode="logprob"``: one forward pass per
    order; P(A) and P(B) from the next-token distribution renormalised over {A, B}, counted as
    ``k`` fractional votes so both modes weigh a pair alike; the mass outside {A, B} is reported
    as the refusal signal (``stats.other_mass``), not counted as votes.

    Every answer goes through the store first: stored answers are reused, only the missing ones are
    asked, and new ones are committed as they arrive. Sample ``s`` of a prompt is asked with the
    seed :func:`~utility_jax.elicit.store.answer_seed` ``(seed, prompt, s)``: on a server that
    honours seeds the answers do not depend on the order of asking, stops or resumes, and a
    larger ``k`` asks only samples ``k_old..k-1``, with seeds of their own. The ``key`` given
    to :meth:`query` is not used for sampling.
    """

    def __init__(
        self,
        backend: Backend,
        outcomes: OutcomeSet,
        template: PromptTemplate,
        *,
        system: str | None = "You are a helpful assistant.",
        mode: str = "sample",
        store: ResponseStore | None = None,
        batch_size: int = 64,
        progress=None,
        fields: dict[str, str] | None = None,
        parser: str = "reference",
        orders: str = "both",
        budget: BudgetGuard | None = None,
        seed: int = 0,
    ):
        if parser not in RULES:
            raise ValueError(f"parser must be one of {RULES}, got {parser!r}")
        if orders not in ("both", "first"):
            raise ValueError(f"orders must be 'both' or 'first', got {orders!r}")
        self.parser, self.orders, self.seed = parser, orders, int(seed)
        self.budget = budget or BudgetGuard()
        if mode not in ("sample", "logprob"):
            raise ValueError(f"mode must be 'sample' or 'logprob', got {mode!r}")
        if mode == "logprob" and template.reasoning:
            raise ValueError(
                "logprob mode reads the first answer token: use a non-reasoning template"
            )
        self.backend, self.outcomes, self.template = backend, outcomes, template
        self.system, self.mode, self.store = system, mode, store
        self.batch_size = batch_size
        self.progress = progress
        self.fields = dict(fields or {})
        self.name = f"{backend.name}:{backend.model}"
        self.stats = AgentStats()
        self.cache_hits = 0
        self.other_mass: list[float] = []
        self.refusal_examples: list[str] = []  # the first replies read as refusals (reported)
        self.last_error: str | None = None  # the latest transport error, for a true diagnosis

    def close(self, export_dir=None) -> int:
        """Export the store's answers to ``export_dir/responses.jsonl`` (when given) and close
        the store; returns the number of answers exported."""
        if self.store is None:
            return 0
        n = self.store.export_jsonl(Path(export_dir) / "responses.jsonl") if export_dir else 0
        self.store.close()
        return n

    def messages(self, first: int, second: int) -> list[dict]:
        """The chat messages asking about outcome ``first`` shown as A and ``second`` as B.

        Template fields other than the options come from ``fields`` (``{entity}``,
        ``{scenario}``...) and, suffixed ``_A`` / ``_B``, from the outcomes' extra string fields
        (the time-discounting template's ``{amount_A} {time_A}``).
        """
        o = self.outcomes
        per = {
            f"{k}_{side}": v
            for side, i in (("A", first), ("B", second))
            for k, v in o[i].extra.items()
            if isinstance(v, str)
        }
        return render_pair(
            self.template, o[first].text, o[second].text, self.system, **self.fields, **per
        )

    def query(self, pairs: np.ndarray, k: int, *, key: jax.Array) -> np.ndarray:
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        counts = np.zeros((len(pairs), 2, 3))
        reqs = []  # (pair index, order, messages)
        for p, (i, j) in enumerate(pairs.tolist()):
            reqs.append((p, 0, self.messages(i, j)))
            if self.orders == "both":
                reqs.append((p, 1, self.messages(j, i)))
        bar = (
            self.progress(total=len(reqs), desc=f"asking {self.name}", unit="prompt", leave=False)
            if self.progress
            else None
        )
        for start in range(0, len(reqs), self.batch_size):
            chunk = reqs[start : start + self.batch_size]
            if self.mode == "sample":
                self._sample(chunk, k, counts)
            else:
                self._logprob(chunk, k, counts)
            if bar is not None:
                bar.update(len(chunk))
                bar.set_postfix(
                    cache=self.cache_hits,
                    calls=self.stats.model_calls,
                    refusals=self.stats.refusals,
                    errors=self.stats.errors,
                )
        if bar is not None:
            bar.close()
        return counts

    # ------------------------------------------------------------------ modes
    def _key(self, msgs) -> str:
        return request_key(
            self.backend.name, self.backend.model, self.backend.settings(self.mode), msgs
        )

    def _refused_before(self, key: str, n: int) -> bool:
        """A prompt the server refused permanently (a 4xx such as a content filter) on an earlier
        run is not asked again: its ``n`` answers count as errors once more, with the reason."""
        err = self.store.permanent_error(key) if self.store is not None else None
        if err is None:
            return False
        self.stats.errors += n
        self.stats.permanent_errors += n
        self.last_error = err
        return True

    def _parse(self, text: str | None) -> str:
        reasoning = self.template.reasoning
        label = parse_answer(text, reasoning=reasoning, rule=self.parser)
        if label == "refusal" and len(self.refusal_examples) < 3:
            self.refusal_examples.append("" if text is None else str(text))
        other = "strict" if self.parser == "reference" else "reference"
        self.stats.parser_disagreements += label != parse_answer(
            text, reasoning=reasoning, rule=other
        )
        return label

    def _record(self, counts, p, order, label):
        col = {"A": 0, "B": 1, "refusal": 2}[label]
        counts[p, order, col] += 1
        self.stats.answers += 1
        self.stats.refusals += label == "refusal"

    def _sample(self, chunk, k, counts):
        missing = []  # (pair, order, msgs, key, have)
        for p, order, msgs in chunk:
            key = self._key(msgs)
            have = self.store.get(key)[:k] if self.store is not None else []
            for row in have:
                self._record(counts, p, order, self._parse(row["raw_text"]))
            self.cache_hits += len(have)
            if len(have) < k and not self._refused_before(key, k - len(have)):
                missing.append((p, order, msgs, key, len(have)))
        if not missing:
            return
        # ask for the same number of new samples per prompt (the usual case: all or none stored)
        groups: dict[int, list] = {}
        for m in missing:
            groups.setdefault(k - m[4], []).append(m)
        settings = self.backend.settings("sample")
        for n_new, items in groups.items():

            def on_result(i, comps, items=items):
                # record and commit each prompt's answers as soon as they arrive
                p, order, msgs, key, have = items[i]
                self.stats.model_calls += 1
                # each completion carries its share of the bill (the prompt on a request's
                # first choice only), so the sums are what the server counted
                self.budget.spent(sum(c.tokens_in for c in comps), sum(c.tokens_out for c in comps))
                rows = []
                errors = [c.error for c in comps if c.error is not None]
                if errors:  # answers lost to transport errors: counted, one error row per request
                    self.stats.errors += len(errors)
                    self.stats.permanent_errors += sum(map(is_permanent, errors))
                    self.last_error = errors[-1]
                    if self.store is not None:
                        self.store.put_error(
                            key, self.backend.name, self.backend.model, msgs, errors[0]
                        )
                for s, c in enumerate(comps):
                    if c.error is not None:
                        continue
                    label = self._parse(c.text)
                    self._record(counts, p, order, label)
                    self.stats.tokens += c.tokens_in + c.tokens_out
                    rows.append(
                        dict(
                            request_key=key,
                            sample_index=have + s,
                            backend=self.backend.name,
                            model=self.backend.model,
                            settings=settings,
                            prompt=msgs,
                            raw_text=c.text,
                            label=label,
                            tokens_in=c.tokens_in,
                            tokens_out=c.tokens_out,
                            latency_s=c.latency_s,
                        )
                    )
                if self.store is not None and rows:
                    self.store.put(rows)

            allowed = self.budget.allow(len(items))
            items = items[:allowed]
            seeds = [answer_seed(self.seed, m[3], m[4]) for m in items]
            if getattr(self.backend, "batch", False) and self.store is not None:
                self.backend.sample_batch(
                    [m[2] for m in items],
                    [m[3] for m in items],
                    n_new,
                    seed=seeds,
                    store=self.store,
                    on_result=on_result,
                )
            else:
                self.backend.sample([m[2] for m in items], n_new, seed=seeds, on_result=on_result)
            if allowed < len(groups[n_new]):
                self.budget.allow(1)  # the limit is reached: the guard raises, saying which

    def _logprob(self, chunk, k, counts):
        todo = []
        for p, order, msgs in chunk:
            key = self._key(msgs)
            have = self.store.get(key) if self.store is not None else []
            if have:
                self.cache_hits += 1
                self._add_probs(counts, p, order, k, have[0]["logprobs"])
            elif not self._refused_before(key, 1):
                todo.append((p, order, msgs, key))
        if not todo:
            return
        settings = self.backend.settings("logprob")

        def on_result(i, d):
            p, order, msgs, key = todo[i]
            self.stats.forward_passes += 1
            self.stats.model_calls += 1
            self.budget.spent(d.tokens_in, 1)
            if d.error is not None:
                self.stats.errors += 1
                self.stats.permanent_errors += is_permanent(d.error)
                self.last_error = d.error
                if self.store is not None:
                    self.store.put_error(key, self.backend.name, self.backend.model, msgs, d.error)
                return
            lp = {"p_a": d.p_a, "p_b": d.p_b, "p_other": d.p_other}
            self._add_probs(counts, p, order, k, lp)
            self.stats.tokens += d.tokens_in
            if self.store is not None:
                self.store.put(
                    [
                        dict(
                            request_key=key,
                            sample_index=-1,
                            backend=self.backend.name,
                            model=self.backend.model,
                            settings=settings,
                            prompt=msgs,
                            raw_text=None,
                            label="A" if d.p_a >= d.p_b else "B",
                            logprobs=lp,
                            tokens_in=d.tokens_in,
                            tokens_out=0,
                            latency_s=d.latency_s,
                        )
                    ]
                )

        allowed = self.budget.allow(len(todo))
        n_todo, todo = len(todo), todo[:allowed]
        self.backend.answer_probs([t[2] for t in todo], on_result=on_result)
        if allowed < n_todo:
            self.budget.allow(1)  # the limit is reached: the guard raises, saying which

    def _add_probs(self, counts, p, order, k, lp):
        s = lp["p_a"] + lp["p_b"]
        if (
            s <= 0
        ):  # no mass on either letter: a refusal (half a vote each side by the paper's rule)
            counts[p, order, 2] += k
            self.stats.refusals += k
        else:
            counts[p, order, 0] += k * lp["p_a"] / s
            counts[p, order, 1] += k * lp["p_b"] / s
        self.stats.answers += k
        self.other_mass.append(float(lp["p_other"]))
