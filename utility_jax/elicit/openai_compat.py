"""Any OpenAI-compatible chat endpoint (vLLM, SGLang, OpenAI) through the official ``openai`` client.

* ``n=K`` sampling in one request per prompt (a server that returns fewer choices is asked again
  for the rest);
* a ``top_logprobs`` mode: one token, the probabilities of "A"/"B" summed over their spellings;
* an async concurrency limit; retries with exponential backoff and full jitter on 429, 5xx,
  timeouts, connection errors and malformed responses, sleeping *outside* the concurrency slot
  (the client's own retries are off, so every attempt is counted and bounded here); other 4xx fail
  at once;
* ``None`` or empty content is an answer to classify (a refusal), never a crash;
* each prompt's answers are handed to ``on_result`` as soon as they arrive, so the caller can
  commit them before the next one lands (nothing paid for is lost on a crash);
* the API key comes from the environment variable named by ``api_key_env`` and is never logged;
* ``batch=True``: sampling goes through the provider's Batch API (:meth:`OpenAIBackend.sample_batch`,
  about half the price on OpenAI): a JSONL file of requests is uploaded, a batch created (its id
  committed to the store first), polled, and its output parsed into the same answers; a restart
  finds the submitted batch in the store and resumes polling it, so no prompt is paid twice;
  requests the batch failed are retried through the live endpoint.
"""

import asyncio
import json
import logging
import math
import os
import random
import re
import signal
import time
from collections.abc import Callable
from typing import Any

from utility_jax.elicit.backend import AnswerDistribution, Completion, prompt_seeds

__all__ = ["OpenAIBackend", "RequestError", "from_config"]


def _quiet_http_logs() -> None:
    """One INFO line per HTTP request (httpx, the openai client) buries the progress of a run
    (702 lines for one smoke run): those loggers go to DEBUG-only (WARNING and up still show)."""
    for name in ("httpx", "httpx2", "httpcore", "httpcore2", "openai"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET or logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)


class RequestError(RuntimeError):
    pass


class _NotSent(Exception):
    """A request left unsent after Ctrl-C (asked again on resume, never counted)."""


def _on_sigint(stop: asyncio.Event, tasks: list) -> Callable[[], None]:
    """Route Ctrl-C to ``stop`` (first) and to cancelling ``tasks`` (second) while they run;
    returns the function that restores Python's own handler. Off the main thread (where
    signals cannot be caught) it does nothing."""
    loop = asyncio.get_running_loop()

    def handler():
        if stop.is_set():
            for t in tasks:
                t.cancel()
            return
        stop.set()
        busy = sum(not t.done() for t in tasks)
        logging.getLogger("utility_jax").warning(
            "Ctrl-C: sending nothing more; waiting for the requests in flight (up to %d) so "
            "they are stored; Ctrl-C again to drop them",
            busy,
        )

    try:
        loop.add_signal_handler(signal.SIGINT, handler)
    except (NotImplementedError, RuntimeError, ValueError):
        return lambda: None
    return lambda: loop.remove_signal_handler(signal.SIGINT)


class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 16,
        timeout_s: float = 60.0,
        max_retries: int = 6,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
        temperature: float = 1.0,
        max_tokens: int = 10,
        top_logprobs: int = 20,
        use_n: bool = True,
        batch: bool = False,
        batch_poll_s: float = 30.0,
    ):
        if not base_url:
            raise ValueError(
                "agent.base_url is required for the openai agent (e.g. http://localhost:8000/v1)"
            )
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = _check_key_env(api_key_env, self.base_url)
        self.concurrency, self.timeout_s, self.max_retries = concurrency, timeout_s, max_retries
        self.backoff_base_s, self.backoff_max_s = backoff_base_s, backoff_max_s
        self.temperature, self.max_tokens, self.top_logprobs, self.use_n = (
            temperature,
            max_tokens,
            top_logprobs,
            use_n,
        )
        self.requests_sent = 0
        self.retries = 0
        self.batch, self.batch_poll_s = batch, batch_poll_s
        self._stopping: asyncio.Event | None = None  # set by Ctrl-C while prompts are asked
        _quiet_http_logs()

    def settings(self, mode: str) -> dict[str, Any]:
        if mode == "sample":
            return {"mode": mode, "temperature": self.temperature, "max_tokens": self.max_tokens}
        return {"mode": mode, "top_logprobs": self.top_logprobs}

    def _safe(self, e: Exception) -> str:
        """An error's message fit to store and print (the key redacted)."""
        return redact(_brief(e), [os.environ.get(self.api_key_env, "")])

    def _client(self):
        import openai

        # the key is read here and handed to the client only; "EMPTY" is what a local vLLM
        # expects (an unset variable is refused for any other server, _check_key_env)
        key = os.environ.get(self.api_key_env) or "EMPTY"
        return openai.AsyncOpenAI(
            base_url=self.base_url, api_key=key, max_retries=0, timeout=self.timeout_s
        )

    async def _create(self, client, sem: asyncio.Semaphore, **kw):
        """One chat completion with retries; the backoff sleep happens outside the slot."""
        import openai

        last = ""
        for attempt in range(self.max_retries + 1):
            async with sem:
                if self._stopping is not None and self._stopping.is_set():
                    raise _NotSent  # Ctrl-C: nothing new is sent
                self.requests_sent += 1
                try:
                    resp = await client.chat.completions.create(model=self.model, **kw)
                    if not hasattr(resp, "choices"):  # a body that is not a completion object
                        raise ValueError(f"malformed response: {str(resp)[:200]!r}")
                    return resp
                except (  # every message goes through redact() (servers echo keys)
                    openai.RateLimitError,
                    openai.InternalServerError,
                    openai.APITimeoutError,
                    openai.APIConnectionError,
                    openai.APIResponseValidationError,
                    ValueError,
                ) as e:
                    last = f"{type(e).__name__}: {self._safe(e)}"
                except openai.APIStatusError as e:
                    if e.status_code in (408, 409, 425):
                        last = f"HTTP {e.status_code}: {self._safe(e)}"
                    else:
                        raise RequestError(
                            f"HTTP {e.status_code} from {self.base_url} (model {self.model!r}): "
                            f"{self._safe(e)}"
                        ) from None
            if attempt == self.max_retries:
                break
            self.retries += 1
            delay = min(self.backoff_max_s, self.backoff_base_s * 2**attempt)
            await asyncio.sleep(random.uniform(0, delay))  # full jitter, outside the slot
        raise RequestError(
            f"{self.base_url} (model {self.model!r}) failed after {self.max_retries + 1} attempts: {last}"
        )

    def _run(self, fn, prompts, on_result):
        """Ask every prompt concurrently; ``on_result`` as each is answered.

        Ctrl-C (SIGINT, main thread) sends nothing more but lets the requests in flight finish
        and be handed to ``on_result`` (stored: not paid again on resume), then raises
        ``KeyboardInterrupt``; a second Ctrl-C drops them at once.
        """

        async def main():
            sem = asyncio.Semaphore(self.concurrency)
            client = self._client()
            self._stopping = stop = asyncio.Event()
            results = [None] * len(prompts)

            async def task(i, m):
                try:
                    results[i] = await fn(client, sem, m, i)
                except _NotSent:
                    return
                if on_result is not None:
                    on_result(i, results[i])

            tasks = [asyncio.ensure_future(task(i, m)) for i, m in enumerate(prompts)]
            undo = _on_sigint(stop, tasks)
            try:
                await asyncio.gather(*tasks)
            except asyncio.CancelledError:
                raise KeyboardInterrupt from None
            finally:
                undo()
                self._stopping = None
                await client.close()
            if stop.is_set():
                raise KeyboardInterrupt
            return results

        return asyncio.run(main())

    # ------------------------------------------------------------------ sampling
    def sample(
        self,
        prompts: list[list[dict]],
        n: int,
        *,
        seed: int | list[int],
        on_result: Callable[[int, list[Completion]], None] | None = None,
    ) -> list[list[Completion]]:
        seeds = prompt_seeds(seed, len(prompts))

        async def one(client, sem, msgs, i):
            got: list[Completion] = []
            while len(got) < n:
                want = n - len(got) if self.use_n else 1
                t0 = time.perf_counter()
                try:
                    resp = await self._create(
                        client,
                        sem,
                        messages=msgs,
                        temperature=self.temperature,
                        max_tokens=self.max_tokens,
                        n=want,
                        # a server that returned fewer choices is asked for the rest with a
                        # seed of their own (the same one on every rerun)
                        seed=(seeds[i] + len(got)) % 2**31,
                    )
                except RequestError as e:
                    return got + [Completion(None, error=str(e))] * (n - len(got))
                dt = time.perf_counter() - t0
                choices = list(resp.choices or [])
                if not choices:
                    return got + [Completion(None, error="response without choices")] * (
                        n - len(got)
                    )
                usage = resp.usage
                shares = _token_shares(
                    getattr(usage, "prompt_tokens", 0),
                    getattr(usage, "completion_tokens", 0),
                    len(choices),
                )
                for c, (t_in, t_out) in zip(choices[: n - len(got)], shares, strict=False):
                    content = c.message.content if c.message is not None else None
                    got.append(
                        Completion(
                            content if content is not None else "", t_in, t_out, dt / len(choices)
                        )
                    )
            return got

        return self._run(one, prompts, on_result)

    # ------------------------------------------------------------------ Batch API
    def _batch_body(self, msgs, n: int, seed: int) -> dict:
        return {
            "model": self.model,
            "messages": msgs,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "n": n,
            "seed": seed,
        }

    def _sync_client(self):
        import openai

        key = os.environ.get(self.api_key_env) or "EMPTY"
        return openai.OpenAI(
            base_url=self.base_url,
            api_key=key,
            max_retries=self.max_retries,
            timeout=self.timeout_s,
        )

    def _submit(self, client, prompts, keys, n, seeds) -> str:
        lines = [
            json.dumps(
                {
                    "custom_id": k,
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": self._batch_body(m, n, s),
                }
            )
            for m, k, s in zip(prompts, keys, seeds, strict=True)
        ]
        f = client.files.create(file=("requests.jsonl", "\n".join(lines).encode()), purpose="batch")
        b = client.batches.create(
            input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        return b.id

    def _wait(self, client, batch_id: str):
        """Poll until the batch ends; its final object."""
        while True:
            b = client.batches.retrieve(batch_id)
            if b.status in ("completed", "failed", "expired", "cancelled"):
                return b
            logging.getLogger("utility_jax").info("batch %s: %s", batch_id, b.status)
            time.sleep(self.batch_poll_s)

    def _results(self, client, b) -> tuple[dict[str, list[Completion] | str], list[str]]:
        """What a finished batch returned, in any terminal state (a provider bills, and returns,
        the lines an expired, cancelled or failed batch finished): ``{custom_id: completions}``
        for answered requests and ``{custom_id: error}`` for failed ones, with the malformed
        lines as ``"<file id> line <n>: <why>"``."""
        out: dict[str, list[Completion] | str] = {}
        bad: list[str] = []
        for fid in (getattr(b, "output_file_id", None), getattr(b, "error_file_id", None)):
            if not fid:
                continue
            for no, line in enumerate(client.files.content(fid).text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    cid, got = _batch_line(line)
                except (ValueError, TypeError, KeyError, AttributeError) as e:
                    bad.append(f"{fid} line {no}: {type(e).__name__}: {str(e)[:120]}")
                    continue
                if not isinstance(out.get(cid), list):  # an answer beats an error line
                    out[cid] = got
        return out, bad

    def sample_batch(self, prompts, keys, n: int, *, seed, store, on_result=None) -> None:
        """``n`` answers per prompt through the Batch API (see the module docstring);
        ``keys`` are the prompts' store keys (the batch's custom ids), ``seed`` one seed per
        prompt (or an int, :func:`~utility_jax.elicit.backend.prompt_seeds`)."""
        client = self._sync_client()
        seeds = prompt_seeds(seed, len(prompts))
        index = {k: i for i, k in enumerate(keys)}
        done: set[str] = set()
        try:
            for pend in store.pending_batches():  # submitted before a crash: resume, never resubmit
                mine = [k for k in pend["keys"] if k in index]
                if mine:
                    done |= self._collect(
                        client, pend["batch_id"], prompts, index, n, seeds, store, on_result
                    )
            todo = [k for k in keys if k not in done]
            if todo:
                sub = [index[k] for k in todo]
                bid = self._submit(
                    client, [prompts[i] for i in sub], todo, n, [seeds[i] for i in sub]
                )
                store.put_batch(bid, todo, n)
                self._collect(client, bid, prompts, index, n, seeds, store, on_result)
        finally:
            client.close()

    def _collect(self, client, bid, prompts, index, n, seeds, store, on_result) -> set[str]:
        """Store what batch ``bid`` answered (whatever state it ended in), mark it finished, and
        ask the rest of its requests once through the live endpoint."""
        b = self._wait(client, bid)
        res, bad = self._results(client, b)
        got = set()
        for k, comps in res.items():
            if k in index and not isinstance(comps, str):
                if on_result is not None:
                    on_result(index[k], comps[:n])
                got.add(k)
        keys_in_batch = {
            k for p in store.pending_batches() if p["batch_id"] == bid for k in p["keys"]
        }
        log = logging.getLogger("utility_jax")
        for why in bad:  # counted as errors, never as answers; their requests are asked again
            store.put_error(f"batch:{bid}", self.name, self.model, None, f"malformed {why}")
        if bad:
            log.warning(
                "batch %s: %d malformed output lines (%s)", bid, len(bad), "; ".join(bad[:3])
            )
        store.set_batch_status(bid, b.status)  # finished either way: never collected twice
        retry = sorted((k for k in index if k in keys_in_batch and k not in got), key=index.get)
        if retry:
            log.warning(
                "batch %s (%s): %d of %d requests answered; %d asked through the live endpoint",
                bid,
                b.status,
                len(got),
                len(keys_in_batch),
                len(retry),
            )

            def live(i, comps, order=retry):
                if on_result is not None:
                    on_result(index[order[i]], comps)

            self.sample(
                [prompts[index[k]] for k in retry],
                n,
                seed=[seeds[index[k]] for k in retry],
                on_result=live,
            )
            got |= set(retry)
        return got

    # ------------------------------------------------------------------ log-probs
    def answer_probs(
        self,
        prompts: list[list[dict]],
        on_result: Callable[[int, AnswerDistribution], None] | None = None,
    ) -> list[AnswerDistribution]:
        async def one(client, sem, msgs, i):
            t0 = time.perf_counter()
            try:
                resp = await self._create(
                    client,
                    sem,
                    messages=msgs,
                    max_tokens=1,
                    temperature=0.0,
                    logprobs=True,
                    top_logprobs=self.top_logprobs,
                )
                top = resp.choices[0].logprobs.content[0].top_logprobs
            except RequestError as e:
                return AnswerDistribution(0, 0, 0, error=str(e))
            except (AttributeError, IndexError, TypeError):
                return AnswerDistribution(
                    0, 0, 0, error="the server returned no top_logprobs (does it support them?)"
                )
            pa = sum(math.exp(t.logprob) for t in top if (t.token or "").strip() == "A")
            pb = sum(math.exp(t.logprob) for t in top if (t.token or "").strip() == "B")
            t_in = int(getattr(resp.usage, "prompt_tokens", 0) or 0) if resp.usage else 0
            return AnswerDistribution(pa, pb, max(0.0, 1 - pa - pb), t_in, time.perf_counter() - t0)

        return self._run(one, prompts, on_result)


def _batch_line(line: str) -> tuple[str, list[Completion] | str]:
    """One line of a batch's output or error file: its custom id and its answers, or the
    error it reports (raises on a line that is not a batch record)."""
    rec = json.loads(line)
    cid = rec["custom_id"]
    if not isinstance(cid, str):
        raise TypeError(f"custom_id is {type(cid).__name__}")
    resp = rec.get("response") or {}
    body = resp.get("body") or {}
    choices = body.get("choices")
    if resp.get("status_code") != 200 or not choices:
        err = rec.get("error") or body.get("error") or resp
        return cid, f"batch request failed: {str(err)[:300]}"
    usage = body.get("usage") or {}
    shares = _token_shares(usage.get("prompt_tokens"), usage.get("completion_tokens"), len(choices))
    return cid, [
        Completion((c.get("message") or {}).get("content") or "", t_in, t_out)
        for c, (t_in, t_out) in zip(choices, shares, strict=True)
    ]


def _token_shares(prompt_tokens, completion_tokens, n: int) -> list[tuple[int, int]]:
    """A response's usage split over its ``n`` choices so that the choices' tokens add up to
    the server's bill: the prompt, read once per request, on the first choice; the completion
    tokens shared out, the remainder on the first choices."""
    t_in, t_out = int(prompt_tokens or 0), int(completion_tokens or 0)
    q, r = divmod(t_out, max(n, 1))
    return [(t_in if i == 0 else 0, q + (1 if i < r else 0)) for i in range(n)]


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_LOOPBACK = ("localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0")


def _check_key_env(name: str, base_url: str) -> str:
    """``agent.api_key_env`` must name an environment variable, never hold the key (it would
    be written into the run's config and printed); the variable must be set, except for a
    server on this machine (a local vLLM needs no key)."""
    from urllib.parse import urlsplit

    looks_like_key = len(name) >= 24 and any(c.isdigit() for c in name) and name != name.upper()
    if not _ENV_NAME.fullmatch(name or "") or looks_like_key:
        raise ValueError(
            "agent.api_key_env must be the NAME of an environment variable holding the key "
            "(e.g. OPENAI_API_KEY), not the key itself (the value given is not shown); set "
            "the variable and pass its name"
        )
    host = urlsplit(base_url).hostname or ""
    if not os.environ.get(name) and host not in _LOOPBACK:
        raise ValueError(
            f"${name} (agent.api_key_env) is not set: the server at {base_url} would get no "
            "key. Export it, or name another variable with agent.api_key_env=..."
        )
    return name


def _brief(e: Exception) -> str:
    """The error's message, without request headers (which would carry the key)."""
    return str(getattr(e, "message", None) or e)[:300]


_HEADER_ECHO = re.compile(
    r"(?i)\b(authorization|api[-_]key|x-api-key)([\"']?\s*[:=]\s*[\"']?)(bearer\s+)?[^\s,;'\"}]+"
)


def redact(text: str, secrets: list[str]) -> str:
    """``text`` with every secret's value and any echoed ``Authorization`` / ``api-key`` header
    value replaced by ``[REDACTED]``: what a server echoes into an error body is stored and
    printed, the key never is."""
    for sec in secrets:
        if sec and len(sec) >= 4:
            text = text.replace(sec, "[REDACTED]")
    return _HEADER_ECHO.sub(lambda m: f"{m.group(1)}{m.group(2)}[REDACTED]", text)


def from_config(agent, elicitation) -> OpenAIBackend:
    """The backend of an ``agent=openai`` config (any OpenAI-compatible server)."""
    return OpenAIBackend(
        agent.base_url,
        agent.model,
        api_key_env=agent.api_key_env,
        concurrency=agent.concurrency,
        timeout_s=agent.timeout_s,
        max_retries=agent.max_retries,
        temperature=elicitation.temperature,
        max_tokens=elicitation.max_new_tokens,
        batch=agent.batch,
        batch_poll_s=agent.batch_poll_s,
    )
