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
* the API key comes from the environment variable named by ``api_key_env`` and is never logged.
"""

import asyncio
import logging
import math
import os
import random
import re
import time
from collections.abc import Callable
from typing import Any

from utility_jax.elicit.backend import AnswerDistribution, Completion

__all__ = ["OpenAIBackend", "RequestError"]


def _quiet_http_logs() -> None:
    """One INFO line per HTTP request (httpx, the openai client) buries the progress of a run
    (702 lines for one smoke run): those loggers go to DEBUG-only (WARNING and up still show)."""
    for name in ("httpx", "httpx2", "httpcore", "httpcore2", "openai"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET or logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)


class RequestError(RuntimeError):
    pass


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
    ):
        if not base_url:
            raise ValueError(
                "agent.base_url is required for the openai agent (e.g. http://localhost:8000/v1)"
            )
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
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

        # the key is read here and handed to the client only; "EMPTY" is what vLLM expects unset
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
        async def main():
            sem = asyncio.Semaphore(self.concurrency)
            client = self._client()
            try:
                results = [None] * len(prompts)

                async def task(i, m):
                    results[i] = await fn(client, sem, m, i)
                    if on_result is not None:
                        on_result(i, results[i])

                await asyncio.gather(*(task(i, m) for i, m in enumerate(prompts)))
                return results
            finally:
                await client.close()

        return asyncio.run(main())

    # ------------------------------------------------------------------ sampling
    def sample(
        self,
        prompts: list[list[dict]],
        n: int,
        *,
        seed: int,
        on_result: Callable[[int, list[Completion]], None] | None = None,
    ) -> list[list[Completion]]:
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
                        seed=seed + i + len(got),
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
                t_in = int(getattr(usage, "prompt_tokens", 0) or 0)
                t_out = int(getattr(usage, "completion_tokens", 0) or 0) // len(choices)
                for c in choices[: n - len(got)]:
                    content = c.message.content if c.message is not None else None
                    got.append(
                        Completion(
                            content if content is not None else "", t_in, t_out, dt / len(choices)
                        )
                    )
            return got

        return self._run(one, prompts, on_result)

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
