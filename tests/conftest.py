import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ANCHOR = Path(
    os.environ.get(
        "UTILITY_JAX_ANCHOR_DATA", ROOT.parent / "shared" / "anchor-data" / "emergent-values"
    )
)
# the checkout's sibling shared/ exists in CI too (STYLE/brief)
OPTIONS_HIERARCHICAL = ANCHOR / "utility_analysis" / "shared_options" / "options_hierarchical.json"
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
