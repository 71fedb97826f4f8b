"""Any OpenAI-compatible chat endpoint (vLLM, SGLang, OpenAI) as an elicitation backend.

* ``n=K`` sampling in one request per prompt (a server that returns fewer choices is asked again
  for the rest);
* a ``top_logprobs`` mode: one token, the probabilities of "A"/"B" summed over their spellings;
* an async concurrency limit; retries with exponential backoff and full jitter on 429, 5xx,
  timeouts and connection errors, sleeping *outside* the concurrency slot; other 4xx fail at once;
* ``None`` or empty content is an answer to classify (a refusal), never a crash;
* the API key comes from the environment variable named by ``api_key_env`` and is never logged
  (error messages carry the status and a snippet of the body, never the headers).
"""

import asyncio
import math
import os
import random
import time
from typing import Any

import httpx

from utility_jax.elicit.backend import AnswerDistribution, Completion

__all__ = ["OpenAIBackend", "RequestError"]

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


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

    def settings(self, mode: str) -> dict[str, Any]:
        if mode == "sample":
            return {"mode": mode, "temperature": self.temperature, "max_tokens": self.max_tokens}
        return {"mode": mode, "top_logprobs": self.top_logprobs}

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.api_key_env, "")
        h = {"Content-Type": "application/json"}
        if key:
            h["Authorization"] = f"Bearer {key}"
        return h

    async def _post(self, client: httpx.AsyncClient, sem: asyncio.Semaphore, payload: dict) -> dict:
        """POST with retries; the backoff sleep happens after the slot is released."""
        last = ""
        for attempt in range(self.max_retries + 1):
            retry = False
            async with sem:
                self.requests_sent += 1
                try:
                    r = await client.post(
                        f"{self.base_url}/chat/completions", json=payload, headers=self._headers()
                    )
                    if r.status_code == 200:
                        try:
                            return r.json()
                        except ValueError:
                            last = f"HTTP 200 with a body that is not JSON: {r.text[:200]!r}"
                            retry = True
                    elif r.status_code in RETRY_STATUS:
                        last = f"HTTP {r.status_code}: {r.text[:200]!r}"
                        retry = True
                    else:
                        raise RequestError(
                            f"HTTP {r.status_code} from {self.base_url}/chat/completions "
                            f"(model {self.model!r}): {r.text[:300]!r}"
                        )
                except (httpx.TimeoutException, httpx.TransportError) as e:
                    last = f"{type(e).__name__}: {e}"
                    retry = True
            if not retry or attempt == self.max_retries:
                break
            self.retries += 1
            delay = min(self.backoff_max_s, self.backoff_base_s * 2**attempt)
            await asyncio.sleep(random.uniform(0, delay))  # full jitter, outside the slot
        raise RequestError(
            f"{self.base_url}/chat/completions (model {self.model!r}) failed after "
            f"{self.max_retries + 1} attempts: {last}"
        )

    def _run(self, coro_fn):
        async def main():
            sem = asyncio.Semaphore(self.concurrency)
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                return await coro_fn(client, sem)

        return asyncio.run(main())

    # ------------------------------------------------------------------ sampling
    def sample(self, prompts: list[list[dict]], n: int, *, seed: int) -> list[list[Completion]]:
        async def one(client, sem, msgs, i):
            got: list[Completion] = []
            while len(got) < n:
                want = n - len(got) if self.use_n else 1
                payload = {
                    "model": self.model,
                    "messages": msgs,
                    "temperature": self.temperature,
                    "max_tokens": self.max_tokens,
                    "n": want,
                    "seed": seed + i + len(got),
                }
                t0 = time.perf_counter()
                try:
                    body = await self._post(client, sem, payload)
                except RequestError as e:
                    return got + [Completion(None, error=str(e))] * (n - len(got))
                dt = time.perf_counter() - t0
                choices = body.get("choices") or []
                usage = body.get("usage") or {}
                if not choices:
                    return got + [
                        Completion(None, error=f"response without choices: {str(body)[:200]}")
                    ] * (n - len(got))
                per_out = int(usage.get("completion_tokens", 0)) // max(len(choices), 1)
                for c in choices[: n - len(got)]:
                    content = (c.get("message") or {}).get("content")
                    got.append(
                        Completion(
                            content if content is not None else "",
                            int(usage.get("prompt_tokens", 0)),
                            per_out,
                            dt / len(choices),
                        )
                    )
            return got

        async def all_(client, sem):
            return await asyncio.gather(*(one(client, sem, m, i) for i, m in enumerate(prompts)))

        return list(self._run(all_))

    # ------------------------------------------------------------------ log-probs
    def answer_probs(self, prompts: list[list[dict]]) -> list[AnswerDistribution]:
        async def one(client, sem, msgs):
            payload = {
                "model": self.model,
                "messages": msgs,
                "max_tokens": 1,
                "temperature": 0.0,
                "logprobs": True,
                "top_logprobs": self.top_logprobs,
            }
            t0 = time.perf_counter()
            try:
                body = await self._post(client, sem, payload)
                content = body["choices"][0]["logprobs"]["content"]
                top = content[0]["top_logprobs"] if content else []
            except RequestError as e:
                return AnswerDistribution(0, 0, 0, error=str(e))
            except (KeyError, IndexError, TypeError):
                return AnswerDistribution(
                    0,
                    0,
                    0,
                    error=f"server returned no top_logprobs (does it support them?): {str(body)[:200]}",
                )
            pa = sum(math.exp(t["logprob"]) for t in top if t.get("token", "").strip() == "A")
            pb = sum(math.exp(t["logprob"]) for t in top if t.get("token", "").strip() == "B")
            usage = body.get("usage") or {}
            return AnswerDistribution(
                pa,
                pb,
                max(0.0, 1 - pa - pb),
                int(usage.get("prompt_tokens", 0)),
                time.perf_counter() - t0,
            )

        async def all_(client, sem):
            return await asyncio.gather(*(one(client, sem, m) for m in prompts))

        return list(self._run(all_))
