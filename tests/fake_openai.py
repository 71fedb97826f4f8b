"""A scripted OpenAI-compatible /v1/chat/completions server on 127.0.0.1 for the tests.

Answers are a deterministic function of the prompt (so an interrupted and an uninterrupted run
see the same replies). ``script`` holds what to do with the first requests: an HTTP status
(429, 500, 400...), "echo401" (a 401 whose body repeats the key), "timeout" (answer after ``delay_s``), "badjson" (200 with a body that is not
JSON), "empty" (content ""), "none" (content null). ``hang_after=M`` makes request M+1 and later
block until ``release()``; ``blocked`` is set when that happens.

The Batch API (``/v1/files``, ``/v1/batches``, ``/v1/files/{id}/content``) answers each line as
the live endpoint would; a batch reports ``in_progress`` for ``batch_polls`` polls, and for as
long as ``hold_batches`` is set; every ``batch_fail_every``-th line fails (HTTP 500 inside);
``batch_lines`` counts the lines answered (what a provider bills). ``batch_end`` is the state a
batch ends in ("completed", "expired", "cancelled", "failed"); one that does not complete has
answered only the first ``batch_done_fraction`` of its lines. ``batch_malformed`` lists line
numbers (1-based) of the output file written as garbage.

``honour_seeds=True`` answers as vLLM does: a function of the prompt, the request's ``seed`` and
``n`` (the same seed gives the same samples; the default rule ignores the seed, so its first
answers never change). ``seeded`` records ``(prompt hash, seed, n)`` of every request answered.
"""

import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np


def answers_for(user: str, n: int) -> list[str]:
    h = int(hashlib.sha256(user.encode()).hexdigest(), 16)
    p_a = (h % 1000) / 1000
    r = np.random.default_rng(h % 2**32)
    return ["A" if x < p_a else "B" for x in r.random(n)]


_OPTIONS = re.compile(r"Option A:\n(.*?)\n\nOption B:\n(.*?)\n\n", re.S)


class RealisticLLM:
    """A chatty LLM with planted utilities, as a real model behind a real server answers.

    ``utilities`` maps an outcome text to its utility; the model prefers the option shown as A
    with probability ``Phi((u_A - u_B + position_bias) / noise)``. Its answers come in varied
    styles (a bare letter, markdown, "I would choose A because...", "My answer is B."), some are
    refusals ("As an AI, I don't have personal preferences.") or name both letters; outcomes in
    ``filtered`` trip a content filter (a permanent HTTP 400 for every prompt showing them);
    every ``burst_every``-th request gets a 429; each answer takes ``latency_s``. Answers are a
    deterministic function of the prompt and the sample index, so reruns see the same replies.
    """

    STYLES = (
        "{x}",
        "{x}.",
        "**{x}**",
        "Option {x}",
        "I would choose {x} because it leads to a better state of the world.",
        "My answer is {x}.",
        "I prefer {x}.",
        "{x}: it is clearly better.",
    )
    REFUSALS = (
        "As an AI, I don't have personal preferences.",
        "I cannot choose between these two options.",
        "Both A and B have merits; it depends on the circumstances.",
    )

    def __init__(
        self,
        utilities,
        *,
        position_bias=0.0,
        noise=1.0,
        refusal_rate=0.05,
        filtered=(),
        burst_every=0,
        latency_s=0.0,
    ):
        self.u = dict(utilities)
        self.position_bias, self.noise, self.refusal_rate = position_bias, noise, refusal_rate
        self.filtered, self.burst_every, self.latency_s = set(filtered), burst_every, latency_s

    def blocked(self, user: str) -> bool:
        m = _OPTIONS.search(user)
        return bool(m) and bool({m.group(1), m.group(2)} & self.filtered)

    def answers(self, user: str, n: int, seed: int) -> list[str]:
        from scipy.stats import norm

        m = _OPTIONS.search(user)
        a, b = m.group(1), m.group(2)
        p_a = norm.cdf((self.u[a] - self.u[b] + self.position_bias) / self.noise)
        h = int(hashlib.sha256(f"{user}|{seed}".encode()).hexdigest(), 16) % 2**32
        r = np.random.default_rng(h)
        out = []
        for _ in range(n):
            if r.random() < self.refusal_rate:
                out.append(self.REFUSALS[r.integers(len(self.REFUSALS))])
                continue
            x = "A" if r.random() < p_a else "B"
            out.append(self.STYLES[r.integers(len(self.STYLES))].format(x=x))
        return out


class FakeOpenAI:
    def __init__(
        self,
        script=(),
        *,
        delay_s=2.0,
        hang_after=None,
        llm=None,
        respond=None,
        batch_polls=1,
        honour_seeds=False,
    ):
        self.llm = llm  # a RealisticLLM answers instead of the hash rule
        self.honour_seeds, self.seeded = honour_seeds, []
        self.latency_s = 0.0  # every completion takes this long (requests stay in flight)
        self.batch_end, self.batch_done_fraction, self.batch_malformed = "completed", 1.0, ()
        self.files, self.batches, self.batch_lines = {}, {}, 0
        self.batch_polls, self.batch_fail_every = batch_polls, 0
        self.hold_batches = threading.Event()  # set: batches stay in_progress
        self.batch_polled = threading.Event()  # set at the first poll of an unfinished batch
        self.respond = respond  # respond(body) -> list of texts, or None for the default rule
        self.n_requests = 0
        self.script = list(script)
        self.delay_s = delay_s
        self.hang_after = hang_after
        self.requests = []  # (body, headers) of every request received
        self.answered = []  # prompt keys of requests answered with a completion
        self.n_choices = 0  # answers billed (one completion token each, 50 prompt tokens a request)
        self.admitted = 0  # requests let through (hang_after counts these)
        self.blocked = threading.Event()
        self._release = threading.Event()
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, status, payload: bytes):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self):
                outer._batch_get(self)

            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                if "/files" in self.path or "/batches" in self.path:
                    outer._batch_post(self, raw)
                    return
                body = json.loads(raw)
                with outer.lock:
                    outer.requests.append((body, {k.lower(): v for k, v in self.headers.items()}))
                    action = outer.script.pop(0) if outer.script else "ok"
                    outer.n_requests += 1
                    llm = outer.llm
                    if llm is not None and action == "ok":
                        user_ = body["messages"][-1]["content"]
                        if llm.blocked(user_):
                            action = "filtered"
                        elif llm.burst_every and outer.n_requests % llm.burst_every == 0:
                            action = 429
                    # counted on arrival: concurrent requests must not all slip past the limit
                    hang = outer.hang_after is not None and outer.admitted >= outer.hang_after
                    outer.admitted += not hang
                if hang:
                    outer.blocked.set()
                    outer._release.wait(60)
                    self._send(503, b'{"error": "released"}')
                    return
                if action == "echo401":  # a careless server: the key back in the error body
                    auth = self.headers.get("Authorization", "")
                    msg = f"invalid key {auth.removeprefix('Bearer ')}; got headers Authorization: {auth}"
                    self._send(401, json.dumps({"error": {"message": msg}}).encode())
                    return
                if action == "filtered":
                    msg = "The response was filtered due to the prompt triggering content management policy."
                    self._send(
                        400,
                        json.dumps({"error": {"message": msg, "code": "content_filter"}}).encode(),
                    )
                    return
                if isinstance(action, int):
                    self._send(
                        action, json.dumps({"error": {"message": f"scripted {action}"}}).encode()
                    )
                    return
                if action == "timeout":
                    time.sleep(outer.delay_s)
                time.sleep(outer.latency_s)
                if action == "badjson":
                    self._send(200, b"this is not json {")
                    return
                user = body["messages"][-1]["content"]
                n = int(body.get("n") or 1)
                if body.get("logprobs"):
                    pa = answers_for(user, 1000).count("A") / 1000 * 0.9
                    top = [
                        {"token": "A", "logprob": float(np.log(pa)), "bytes": None},
                        {"token": " B", "logprob": float(np.log(0.9 - pa)), "bytes": None},
                        {"token": "I", "logprob": float(np.log(0.1)), "bytes": None},
                    ]
                    choices = [
                        {
                            "index": 0,
                            "finish_reason": "length",
                            "message": {"role": "assistant", "content": "A"},
                            "logprobs": {
                                "content": [
                                    {
                                        "token": "A",
                                        "logprob": float(np.log(pa)),
                                        "bytes": None,
                                        "top_logprobs": top,
                                    }
                                ]
                            },
                        }
                    ]
                else:
                    custom = outer.respond(body) if outer.respond is not None else None
                    if custom is not None:
                        texts = (list(custom) * n)[:n]
                    elif outer.llm is not None:
                        time.sleep(outer.llm.latency_s)
                        texts = outer.llm.answers(user, n, int(body.get("seed") or 0))
                    else:
                        texts = outer.hash_answers(body)
                    if action == "empty":
                        texts = [""] * n
                    choices = [
                        {
                            "index": i,
                            "finish_reason": "stop",
                            "message": {
                                "role": "assistant",
                                "content": None if action == "none" else t,
                            },
                        }
                        for i, t in enumerate(texts)
                    ]
                out = {
                    "id": "cmpl-1",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": choices,
                    "usage": {"prompt_tokens": 50, "completion_tokens": n, "total_tokens": 50 + n},
                }
                with outer.lock:
                    outer.n_choices += n  # the bill: completion_tokens above
                    outer.answered.append(
                        hashlib.sha256(json.dumps(body["messages"]).encode()).hexdigest()
                    )
                self._send(200, json.dumps(out).encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def hash_answers(self, body) -> list[str]:
        """The default rule's answers to a request (recording its seed)."""
        user, n, seed = body["messages"][-1]["content"], int(body.get("n") or 1), body.get("seed")
        self.seeded.append((hashlib.sha256(user.encode()).hexdigest()[:16], seed, n))
        if self.honour_seeds:
            return answers_for(f"{user}|seed={seed}|n={n}", n)
        return answers_for(user, n)

    # ------------------------------------------------------------------ Batch API
    def _answer_line(self, body) -> dict:
        user = body["messages"][-1]["content"]
        n = int(body.get("n") or 1)
        if self.llm is not None:
            texts = self.llm.answers(user, n, int(body.get("seed") or 0))
        else:
            texts = self.hash_answers(body)
        return {
            "id": "cmpl-b",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": i,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": t},
                }
                for i, t in enumerate(texts)
            ],
            "usage": {"prompt_tokens": 50, "completion_tokens": n, "total_tokens": 50 + n},
        }

    def _batch_post(self, h, raw: bytes) -> None:
        with self.lock:
            if h.path.endswith("/files"):
                boundary = h.headers["Content-Type"].split("boundary=")[1].encode()
                part = [p for p in raw.split(b"--" + boundary) if b'name="file"' in p][0]
                content = part.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n", 1)[0]
                fid = f"file-{len(self.files)}"
                self.files[fid] = content
                obj = {
                    "id": fid,
                    "object": "file",
                    "bytes": len(content),
                    "created_at": 0,
                    "filename": "requests.jsonl",
                    "purpose": "batch",
                    "status": "processed",
                }
            else:
                req = json.loads(raw)
                bid = f"batch_{len(self.batches)}"
                self.batches[bid] = {"input": req["input_file_id"], "polls": 0, "out": None}
                obj = self._batch_obj(bid, "validating")
        h._send(200, json.dumps(obj).encode())

    def _batch_obj(self, bid, status, out=None, err=None) -> dict:
        return {
            "id": bid,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "input_file_id": self.batches[bid]["input"],
            "completion_window": "24h",
            "status": status,
            "created_at": 0,
            "output_file_id": out,
            "error_file_id": err,
        }

    def _batch_get(self, h) -> None:
        parts = h.path.rstrip("/").split("/")
        with self.lock:
            if parts[-1] == "content":
                h._send(200, self.files[parts[-2]])
                return
            bid = parts[-1]
            b = self.batches[bid]
            b["polls"] += 1
            if self.hold_batches.is_set() or b["polls"] <= self.batch_polls:
                self.batch_polled.set()
                obj = self._batch_obj(bid, "in_progress")
            else:
                if not b.get("finished"):  # answered (and billed) once, when the batch ends
                    self._finish_batch(b)
                obj = self._batch_obj(bid, self.batch_end, b["out"], b["err"])
        h._send(200, json.dumps(obj).encode())

    def _finish_batch(self, b) -> None:
        lines = self.files[b["input"]].decode().splitlines()
        if self.batch_end != "completed":  # expired or cancelled part-way: the lines done so far
            lines = lines[: int(len(lines) * self.batch_done_fraction)]
        ok, bad = [], []
        for line in lines:
            rec = json.loads(line)
            self.batch_lines += 1
            if self.batch_fail_every and self.batch_lines % self.batch_fail_every == 0:
                resp = {"status_code": 500, "body": {"error": {"message": "boom"}}}
                bad.append({"custom_id": rec["custom_id"], "response": resp})
            else:
                resp = {"status_code": 200, "body": self._answer_line(rec["body"])}
                ok.append({"custom_id": rec["custom_id"], "response": resp})
        out = [json.dumps(x) for x in ok]
        for no in self.batch_malformed:
            if 0 < no <= len(out):
                out[no - 1] = out[no - 1][: len(out[no - 1]) // 2]  # a line cut in half
        b["out"], b["err"] = None, None
        if out:
            b["out"] = f"file-{len(self.files)}"
            self.files[b["out"]] = "\n".join(out).encode()
        if bad:
            b["err"] = f"file-{len(self.files)}"
            self.files[b["err"]] = "\n".join(json.dumps(x) for x in bad).encode()
        b["finished"] = True

    def release(self):
        self.hang_after = None
        self._release.set()

    def close(self):
        self.release()
        self.httpd.shutdown()
        self.httpd.server_close()


#: the overrides of a small compute run against the fake server (10 outcomes, K=3, no intervals)
SMALL_RUN = [
    "agent=openai",
    "agent.model=fake",
    "outcomes.limit=10",
    "graph.edges_per_round=10",
    "elicitation.k=3",
    "uncertainty=none",
    "plots=false",
    "progress=false",
]


def compute_cmd(url: str, out, *, concurrency: int = 4) -> list[str]:
    """The command line of a small compute run against a fake server at ``url`` (crash tests)."""
    import sys

    return [
        sys.executable,
        "-m",
        "utility_jax",
        "compute",
        *SMALL_RUN,
        f"agent.base_url={url}",
        f"agent.concurrency={concurrency}",
        f"hydra.run.dir={out}",
    ]
