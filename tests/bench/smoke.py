"""Run a benchmark script at a tiny size and check that it reached its end.

Every benchmark gets such a smoke test, so none can rot unnoticed (the elicitation benchmark
crashed on a KeyError for weeks because no test ran it). ``bench_convergence`` runs in
the fast tier (CI); the other six are in the slow tier (``make test-full``): with CI's cold
compilation cache the seven added about 6 CPU-minutes, past its 20-minute budget. The numbers are
not checked here: a benchmark prints ratios for people, at sizes that take minutes.
"""

import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def run_benchmark(name: str, args: list[str], last_words: str, env: dict | None = None) -> str:
    """Run ``benchmarks/<name>`` with ``args``; its stdout, which must hold ``last_words``."""
    full_env = {
        **os.environ,
        # compile fast, run slow: a smoke test times nothing
        "JAX_DISABLE_MOST_OPTIMIZATIONS": "1",
        "PYTHONWARNINGS": "ignore",
        **(env or {}),
    }
    p = subprocess.run(
        [sys.executable, str(BENCH / name), *args],
        capture_output=True,
        text=True,
        timeout=900,
        env=full_env,
    )
    assert p.returncode == 0, f"{name} failed:\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}"
    assert last_words in p.stdout, f"{name} did not reach its end:\n{p.stdout[-3000:]}"
    return p.stdout
