"""A crash-safe SQLite store of every answer, committed as answers arrive.

One row per answer, keyed by ``request_key`` (a hash of backend, model, generation settings and
the exact prompt messages) and ``sample_index``; with the raw text, the parsed label, log-probs,
token counts and latency. Re-running a config finds every stored answer and asks only for what is
missing. Transport errors go to their own table: they are never answers and are retried on the
next run.

A run folder's store remembers the run's config; opening it with a different config raises
:class:`StoreConfigError` unless ``force=True``. A shared cache (``shared=True``) skips that check:
its keys already carry every setting that changes an answer.

One writer at a time: a store is locked (``<store>.lock``, an OS file lock released when its
process ends, even by ``kill -9``) for as long as it is open; a second process is refused with
:class:`StoreLockedError` naming the holder's pid and host (or waits ``lock_wait_s`` seconds
for it). An answer, once stored, is never overwritten: the first answer wins, so replaying a
store always gives the same votes.
"""

import fcntl
import hashlib
import json
import logging
import os
import socket
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "ResponseStore",
    "StoreConfigError",
    "StoreLockedError",
    "FolderLock",
    "request_key",
    "answer_seed",
    "is_permanent",
]

log = logging.getLogger("utility_jax")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS responses (
  request_key TEXT NOT NULL, sample_index INTEGER NOT NULL,
  backend TEXT, model TEXT, settings TEXT, prompt TEXT,
  raw_text TEXT, label TEXT, logprobs TEXT,
  tokens_in INTEGER, tokens_out INTEGER, latency_s REAL, created REAL,
  PRIMARY KEY (request_key, sample_index)
);
CREATE TABLE IF NOT EXISTS errors (
  request_key TEXT, backend TEXT, model TEXT, prompt TEXT, error TEXT, created REAL
);
CREATE INDEX IF NOT EXISTS errors_by_key ON errors (request_key);
CREATE TABLE IF NOT EXISTS spend (
  run TEXT, requests INTEGER, tokens_in INTEGER, tokens_out INTEGER, usd REAL, created REAL
);
CREATE TABLE IF NOT EXISTS batches (
  batch_id TEXT PRIMARY KEY, status TEXT, request_keys TEXT, n INTEGER, created REAL
);
"""


#: the fields every stored answer has (besides its text, log-probs, tokens and latency)
_ROW_KEYS = ("request_key", "sample_index", "backend", "model", "settings", "prompt", "label")


class StoreConfigError(RuntimeError):
    """The store was made by a run with another config."""


class StoreLockedError(RuntimeError):
    """Another process holds the store (or run folder)."""


class FolderLock:
    """An exclusive OS lock on ``path`` (created if needed) holding ``pid@host`` of its owner.

    ``acquire(wait_s)`` retries for ``wait_s`` seconds, then raises :class:`StoreLockedError`
    naming ``what`` and the holder. The lock ends with :meth:`release` or with the process.
    """

    def __init__(self, path: str | Path, what: str):
        self.path, self.what, self.fh = Path(path), what, None

    def acquire(self, wait_s: float = 0.0) -> "FolderLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    fh.seek(0)
                    holder = fh.read().strip() or "another process"
                    fh.close()
                    raise StoreLockedError(
                        f"{self.what} is in use by {holder} (lock {self.path}); wait for that "
                        "run to finish, or use another folder/store"
                    ) from None
                time.sleep(0.2)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.ctime()}\n")
        fh.flush()
        self.fh = fh
        return self

    def release(self) -> None:
        if self.fh is not None:
            fcntl.flock(self.fh.fileno(), fcntl.LOCK_UN)
            self.fh.close()
            self.fh = None


def request_key(backend: str, model: str, settings: dict, messages: Any) -> str:
    blob = json.dumps([backend, model, settings, messages], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


#: HTTP statuses by which a server refuses a prompt for good (a content filter, a prompt too
#: long): such a prompt is not asked again
PERMANENT_STATUSES = (400, 413, 422)


def is_permanent(error: str | None) -> bool:
    """Whether a stored transport error is a permanent refusal of the prompt."""
    return bool(error) and any(error.startswith(f"HTTP {c} ") for c in PERMANENT_STATUSES)


def answer_seed(run_seed: int, key: str, sample_index: int) -> int:
    """The sampling seed of answer ``sample_index`` of the prompt with store key ``key``: a hash
    of the run's seed, the prompt (its key carries the presentation order, model and settings)
    and the sample's index, in [0, 2**31). Tied to the answer, not to the order of asking: a
    resume, a stop or a kill asks a server that honours seeds (vLLM) the same questions with the
    same seeds, and raising K asks the new samples with new seeds."""
    blob = f"{int(run_seed)}:{key}:{int(sample_index)}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "big") & 0x7FFFFFFF


def _config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


class ResponseStore:
    def __init__(
        self,
        path: str | Path,
        *,
        config: dict | None = None,
        force: bool = False,
        shared: bool = False,
        lock_wait_s: float = 0.0,
        transport: Iterable[str] = (),
    ):
        self.path = Path(path)
        self.transport = frozenset(transport)  # config keys whose change keeps every answer
        self.lock = FolderLock(self.path.with_name(self.path.name + ".lock"), f"store {self.path}")
        self.lock.acquire(lock_wait_s)
        try:
            self.db = sqlite3.connect(str(self.path))
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(_SCHEMA)
            self.db.commit()
        except sqlite3.Error as e:
            self.lock.release()
            raise StoreConfigError(f"{self.path}: not a usable answer store ({e})") from e
        if config is not None and not shared:
            try:
                self._check_config(config, force)
            except StoreConfigError:
                self.close()
                raise

    def _check_config(self, config: dict, force: bool) -> None:
        h = _config_hash(config)
        row = self.db.execute("SELECT value FROM meta WHERE key='config_hash'").fetchone()
        if row is not None and row[0] != h and not force:
            old = self.db.execute("SELECT value FROM meta WHERE key='config'").fetchone()
            old_cfg = json.loads(old[0]) if old else {}
            new_cfg = json.loads(json.dumps(config, default=str))
            diff = _diff(old_cfg, new_cfg)
            if not (old and _changed(old_cfg, new_cfg) <= self.transport):
                raise StoreConfigError(
                    f"{self.path}: this response store was made by a run with another config "
                    f"(differences: {diff}). Use a new run folder, or pass force "
                    "(elicitation.force=true) to reuse its answers anyway."
                )
            log.info("%s: only %s changed; the stored answers stay valid", self.path, diff)
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('config_hash', ?)", (h,))
        self.db.execute(
            "INSERT OR REPLACE INTO meta VALUES ('config', ?)",
            (json.dumps(config, sort_keys=True, default=str),),
        )
        self.db.commit()

    # ------------------------------------------------------------------ rows
    def get(self, key: str) -> list[dict]:
        cur = self.db.execute(
            "SELECT sample_index, raw_text, label, logprobs, tokens_in, tokens_out, latency_s "
            "FROM responses WHERE request_key=? ORDER BY sample_index",
            (key,),
        )
        out = []
        for idx, raw, label, lp, ti, to, lat in cur.fetchall():
            out.append(
                dict(
                    sample_index=idx,
                    raw_text=raw,
                    label=label,
                    logprobs=json.loads(lp) if lp else None,
                    tokens_in=ti,
                    tokens_out=to,
                    latency_s=lat,
                )
            )
        return out

    def put(self, rows: Iterable[dict]) -> int:
        """Insert answers and commit at once (nothing paid for is lost on a crash)."""
        now = time.time()
        data = [
            (
                r["request_key"],
                r["sample_index"],
                r["backend"],
                r["model"],
                json.dumps(r["settings"], sort_keys=True),
                json.dumps(r["prompt"], ensure_ascii=False),
                r.get("raw_text"),
                r["label"],
                json.dumps(r["logprobs"]) if r.get("logprobs") is not None else None,
                r.get("tokens_in"),
                r.get("tokens_out"),
                r.get("latency_s"),
                now,
            )
            for r in rows
        ]
        self.db.executemany(
            # first answer wins: a stored answer is never replaced (replays stay identical)
            "INSERT OR IGNORE INTO responses VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            data,
        )
        self.db.commit()
        return len(data)

    def put_error(self, key: str, backend: str, model: str, prompt: Any, error: str) -> None:
        self.db.execute(
            "INSERT INTO errors VALUES (?,?,?,?,?,?)",
            (key, backend, model, json.dumps(prompt, ensure_ascii=False), error, time.time()),
        )
        self.db.commit()

    def permanent_error(self, key: str) -> str | None:
        """The stored error of a prompt the server refused for good (HTTP 400, 413 or 422: a
        content filter, a prompt too long), or None: such a prompt is not asked again. A wrong
        key (401/403) or model (404) is not the prompt's fault and is always retried."""
        row = self.db.execute(
            "SELECT error FROM errors WHERE request_key=? AND (error LIKE 'HTTP 400 %' OR "
            "error LIKE 'HTTP 413 %' OR error LIKE 'HTTP 422 %') ORDER BY created DESC LIMIT 1",
            (key,),
        ).fetchone()
        return None if row is None else row[0]

    # ------------------------------------------------------------------ spend ledger
    def add_spend(self, run: str, requests: int, tokens_in: int, tokens_out: int, usd: float):
        """Add one request's cost to the ledger of ``run``. Not committed here: the answers (or
        error) it bought commit it with them, so a crash loses both or neither."""
        self.db.execute(
            "INSERT INTO spend VALUES (?,?,?,?,?,?)",
            (run, int(requests), int(tokens_in), int(tokens_out), float(usd), time.time()),
        )

    def spend(self, run: str | None = None) -> dict[str, float]:
        """What ``run`` (None: every run of this store) has spent, over every invocation:
        ``{"requests", "tokens_in", "tokens_out", "usd"}``."""
        q = "SELECT COALESCE(SUM(requests),0), COALESCE(SUM(tokens_in),0), "
        q += "COALESCE(SUM(tokens_out),0), COALESCE(SUM(usd),0) FROM spend"
        row = self.db.execute(*((q,) if run is None else (q + " WHERE run=?", (run,)))).fetchone()
        return dict(
            requests=int(row[0]), tokens_in=int(row[1]), tokens_out=int(row[2]), usd=float(row[3])
        )

    # ------------------------------------------------------------------ provider batches
    def put_batch(self, batch_id: str, keys: list[str], n: int) -> None:
        """Remember a submitted provider batch (committed before any polling, so a restart
        finds it instead of paying for its prompts again)."""
        self.db.execute(
            "INSERT OR REPLACE INTO batches VALUES (?, 'submitted', ?, ?, ?)",
            (batch_id, json.dumps(keys), int(n), time.time()),
        )
        self.db.commit()

    def pending_batches(self) -> list[dict]:
        """Submitted batches whose results are not yet in the store."""
        cur = self.db.execute(
            "SELECT batch_id, request_keys, n FROM batches WHERE status='submitted' ORDER BY created"
        )
        return [{"batch_id": b, "keys": json.loads(k), "n": n} for b, k, n in cur.fetchall()]

    def set_batch_status(self, batch_id: str, status: str) -> None:
        self.db.execute("UPDATE batches SET status=? WHERE batch_id=?", (status, batch_id))
        self.db.commit()

    def count(self, table: str = "responses") -> int:
        if table not in ("responses", "errors"):
            raise ValueError(table)
        return int(self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    # ------------------------------------------------------------------ export
    def rows(self) -> list[dict]:
        cur = self.db.execute("SELECT * FROM responses ORDER BY created, request_key, sample_index")
        cols = [c[0] for c in cur.description]
        out = []
        for r in cur.fetchall():
            d = dict(zip(cols, r, strict=True))
            for k in ("settings", "prompt", "logprobs"):
                d[k] = json.loads(d[k]) if d[k] else None
            out.append(d)
        return out

    def export_jsonl(self, path: str | Path) -> int:
        rows = self.rows()
        with open(path, "w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        return len(rows)

    def import_jsonl(self, path: str | Path) -> int:
        """Put the answers of a ``responses.jsonl`` (:meth:`export_jsonl`'s file) back into the
        store; returns how many rows it held. The ledger gets one request per prompt with its
        tokens (the dollars of those requests are not in the file). A malformed line raises
        ``ValueError`` naming the file and line; nothing is stored then."""
        rows = []
        with open(path, encoding="utf-8") as fh:
            for no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    r = json.loads(line)
                    rows.append(
                        {k: r[k] for k in _ROW_KEYS}
                        | {
                            k: r.get(k)
                            for k in (
                                "raw_text",
                                "logprobs",
                                "tokens_in",
                                "tokens_out",
                                "latency_s",
                            )
                        }
                    )
                except (ValueError, KeyError, TypeError) as e:
                    raise ValueError(f"{path}, line {no}: not an exported answer ({e!r})") from e
        firsts = {}
        for r in rows:
            firsts.setdefault(r["request_key"], [0, 0])
            firsts[r["request_key"]][0] = r.get("tokens_in") or firsts[r["request_key"]][0]
            firsts[r["request_key"]][1] += r.get("tokens_out") or 0
        for t_in, t_out in firsts.values():
            self.add_spend(".", 1, t_in, t_out, 0.0)
        return self.put(rows)

    def export_parquet(self, path: str | Path) -> int:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as e:  # pragma: no cover - optional dependency
            raise ImportError("Parquet export needs pyarrow: pip install pyarrow") from e
        rows = self.rows()
        for r in rows:
            for k in ("settings", "prompt", "logprobs"):
                r[k] = json.dumps(r[k], ensure_ascii=False) if r[k] is not None else None
        pq.write_table(pa.Table.from_pylist(rows), str(path))
        return len(rows)

    def close(self) -> None:
        self.db.close()
        self.lock.release()


def _changed(a: Any, b: Any, prefix: str = "") -> set[str]:
    """The dotted keys whose values differ between two nested dicts."""
    if isinstance(a, dict) and isinstance(b, dict):
        return set().union(
            *(_changed(a.get(k), b.get(k), f"{prefix}{k}.") for k in set(a) | set(b))
        )
    return set() if a == b else {prefix.rstrip(".")}


def _diff(a: Any, b: Any, prefix: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        parts = [_diff(a.get(k), b.get(k), f"{prefix}{k}.") for k in sorted(set(a) | set(b))]
        return ", ".join(p for p in parts if p)
    return "" if a == b else f"{prefix.rstrip('.')}: {a!r} -> {b!r}"
