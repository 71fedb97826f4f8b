import inspect
import os
import re

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# One on-disk cache of compiled programs for the session (and the CLI subprocesses, through the
# environment): the per-module cache clearing below, and every subprocess, would otherwise
# recompile the same fitter programs many times over.
_JAX_CACHE = os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(ROOT / ".jax_cache"))
jax.config.update("jax_compilation_cache_dir", _JAX_CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)


def _paper_data() -> Path:
    """Where the paper's inputs are: UTILITY_JAX_DATA (or the older UTILITY_JAX_ANCHOR_DATA), a
    checkout's sibling shared/ folder (developers and CI), else the folder `utility-jax data
    fetch` writes. A user's clone has none of them: the tests that need the data skip."""
    for var in ("UTILITY_JAX_DATA", "UTILITY_JAX_ANCHOR_DATA"):
        if os.environ.get(var):
            return Path(os.environ[var])
    sibling = ROOT.parent / "shared" / "anchor-data" / "emergent-values"
    if sibling.exists():
        return sibling
    from utility_jax.io.datasets import data_dir

    return data_dir()


ANCHOR = _paper_data()
os.environ["UTILITY_JAX_DATA"] = str(ANCHOR)  # configs read ${paths.data} from it
OPTIONS_HIERARCHICAL = ANCHOR / "utility_analysis" / "shared_options" / "options_hierarchical.json"
HAVE_PAPER_DATA = OPTIONS_HIERARCHICAL.exists() and (ANCHOR / "derived").exists()
PAPER_DATA_REASON = (
    f"the paper's data is not in {ANCHOR}: run `utility-jax data fetch` "
    "(or set UTILITY_JAX_DATA); CI has it"
)
needs_paper_data = pytest.mark.skipif(not HAVE_PAPER_DATA, reason=PAPER_DATA_REASON)
RESULTS_DIR = (
    ANCHOR
    / "forks"
    / "notrichardren+emergent-values-multimodal"
    / "utility_analysis"
    / "shared_utilities"
    / "text"
    / "options_hierarchical"
)
LLAMA2_RESULTS = RESULTS_DIR / "llama-2-7b-instruct" / "results_utilities_llama-2-7b-instruct.json"


@pytest.fixture
def x64():
    """Run the test body with 64-bit floats enabled."""
    with jax.enable_x64(True):
        yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def synthetic_problem(n, *, seed=0, votes=20, edges=None, sigma=(0.5, 1.5)):
    """SPEC's synthetic problem: mu ~ N(0,1), sigma ~ U[lo, hi], random pairs, binomial votes."""
    from scipy.stats import norm

    r = np.random.default_rng(seed)
    mu = r.normal(size=n)
    sig = r.uniform(*sigma, n)
    e = edges or int(2 * n * np.log2(n))
    a = r.integers(0, n, e)
    b = (a + r.integers(1, n, e)) % n
    p = norm.cdf((mu[a] - mu[b]) / np.sqrt(sig[a] ** 2 + sig[b] ** 2))
    na = r.binomial(votes, p)
    return mu, sig, a, b, na.astype(float), np.full(e, float(votes))


def in_model_gauge(mu, sigma):
    """Means on the NumPyro model's scale: centred, in units of the geometric-mean sigma (the
    gauge where the log-sigmas sum to 0)."""
    mu = np.asarray(mu)
    return (mu - mu.mean()) / np.exp(np.mean(np.log(np.asarray(sigma))))


# what marks a test as needing the paper's data: a name in its source, or a parameter
_PAPER_NAMES = re.compile(
    r"\b(ANCHOR|OPTIONS_HIERARCHICAL|LLAMA2_RESULTS|RESULTS_DIR|EXP|paper_templates|"
    r"templates_json)\b|simulated_llama2|simulated_qwen25|experiment=paper|outcomes=paper"
)


def pytest_collection_modifyitems(config, items):
    """Tests that read the paper's data skip, with a reason naming the fix, where it is absent."""
    if HAVE_PAPER_DATA:
        return
    for item in items:
        fn = getattr(item, "function", None)
        try:
            src = inspect.getsource(fn) if fn is not None else ""
        except (OSError, TypeError):
            src = ""
        params = " ".join(map(str, getattr(getattr(item, "callspec", None), "params", {}).values()))
        if _PAPER_NAMES.search(src) or re.search(r"paper|simulated_(llama2|qwen25)", params):
            item.add_marker(pytest.mark.skip(reason=PAPER_DATA_REASON))


@pytest.fixture(autouse=True, scope="module")
def _bounded_jax_caches():
    """Drop JAX's compiled-program caches after each test module: one process runs every test,
    and hundreds of compiled shapes otherwise pile up (the full tier ran out of room for XLA's
    compiler near its end)."""
    yield
    import jax

    jax.clear_caches()
