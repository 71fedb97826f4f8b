"""Bad input to the public API is a clear error, never a silent wrong answer (each case returned
a plausible-looking number before)."""

import jax
import numpy as np
import pytest

import utility_jax as uj


def _two():
    return uj.PairwiseData.from_counts(2, [0], [1], [3], [4])


def test_float_indices_are_refused_not_truncated():
    with pytest.raises(ValueError, match=r"idx_a row 0: 0.9 is not an integer index"):
        uj.PairwiseData.from_counts(3, [0.9, 1.0], [1, 2], [1, 1], [2, 2])
    d = uj.PairwiseData.from_counts(3, [0.0, 1.0], [1, 2], [1, 1], [2, 2])  # whole floats are fine
    assert np.asarray(d.valid()["idx_a"]).tolist() == [0, 1]


def test_predict_proba_checks_its_indices():
    fit = uj.fit_thurstonian(_two())
    with pytest.raises(ValueError, match=r"idx_a: index outside \[0, 2\)"):
        uj.predict_proba(fit, [5], [0])  # was 0.25
    with pytest.raises(ValueError, match="idx_b: indices must be integers"):
        uj.predict_proba(fit, [0], [0.5])
    p = float(uj.predict_proba(fit, np.array([0]), np.array([1]))[0])
    assert p == pytest.approx(1 - float(uj.predict_proba(fit, [1], [0])[0]), abs=1e-6)


def test_init_of_another_size_or_model_is_refused():
    small = uj.fit_thurstonian(_two())
    d3 = uj.PairwiseData.from_counts(3, [0, 1], [1, 2], [3, 1], [4, 4])
    with pytest.raises(ValueError, match="init has 2 items but the data has 3"):
        uj.fit_thurstonian(d3, init=small)
    with pytest.raises(ValueError, match="init is a probit fit"):
        uj.fit_thurstonian(_two(), init=small, model="logit")


def test_bootstrap_needs_whole_votes():
    d = uj.PairwiseData.from_counts(2, [0], [1], [0.3], [0.5])
    with pytest.raises(ValueError, match="vote total below 1"):
        uj.fit_bootstrap(jax.random.key(0), d, 5)  # returned zeros marked converged


def test_laplace_refuses_a_model_mismatch():
    fit = uj.fit_thurstonian(_two(), model="logit")
    with pytest.raises(
        ValueError, match="the fit is a logit fit but the config's model is 'case3'"
    ):
        uj.laplace_stderr(fit, _two())  # returned NaN
    se = uj.laplace_stderr(fit, _two(), model="logit")
    assert np.all(np.isfinite(np.asarray(se["mu"])))


def test_a_disconnected_graph_is_reported_and_each_component_centred():
    """Before: converged=True with the components at arbitrary offsets (+1.25, -0.45, +0.17 from
    three starts). Now the fit counts its components and centres each, whatever the start."""
    from utility_jax.core.model import component_labels

    d = uj.PairwiseData.from_counts(6, [0, 1, 3], [1, 2, 4], [15, 12, 16], [20, 20, 20])
    assert np.asarray(component_labels(d)).tolist() == [0, 0, 0, 3, 3, 5]
    fits = [uj.fit_thurstonian(d, key=jax.random.key(s), init_scale=1.0) for s in range(3)]
    for f in fits:
        mu = np.asarray(f.mu)
        assert int(f.n_components) == 3
        np.testing.assert_allclose([mu[:3].mean(), mu[3:5].mean(), mu[5]], 0.0, atol=1e-6)
    # within a component the differences are identified and agree across starts
    diffs = [float(f.mu[0] - f.mu[2]) for f in fits]
    assert max(diffs) - min(diffs) < 5e-3
    connected = uj.fit_thurstonian(
        uj.PairwiseData.from_counts(3, [0, 1], [1, 2], [15, 12], [20, 20])
    )
    assert int(connected.n_components) == 1


def test_named_shapes_match_real_data():
    from utility_jax.core import types as T

    d = uj.PairwiseData.from_counts(4, [0, 1, 2], [1, 2, 3], [3.0, 5.0, 1.0], [10.0, 10.0, 10.0])
    assert isinstance(d.idx_a, T.PairIdx) and isinstance(d.idx_b, T.PairIdx)
    assert isinstance(d.n_a, T.VoteCounts) and isinstance(d.n_total, T.VoteCounts)
    assert isinstance(d.mask, T.PairMask)
    assert not isinstance(d.n_a, T.PairIdx)  # floats are not indices
    fit = uj.fit_thurstonian(d)
    assert isinstance(fit.mu, T.Utilities) and isinstance(fit.log_var, T.LogVariances)
    assert not isinstance(fit.mu[None], T.Utilities)  # a batch axis is not one vector


def test_model_names_live_in_one_module():
    """No code outside core/model.py compares or passes a model or link name as a string (the
    UtilityModel objects carry them); docstrings may name them."""
    import ast
    from pathlib import Path

    from utility_jax.core.model import LINKS, MODELS

    names = set(MODELS) | set(LINKS)
    pkg = Path(uj.__file__).parent
    found = []
    for p in pkg.rglob("*.py"):
        if p == pkg / "core" / "model.py":
            continue
        tree = ast.parse(p.read_text())
        docs = {
            id(n.body[0].value)
            for n in ast.walk(tree)
            if isinstance(n, ast.Module | ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)
            and n.body
            and isinstance(n.body[0], ast.Expr)
            and isinstance(n.body[0].value, ast.Constant)
        }
        found += [
            f"{p.relative_to(pkg)}:{n.lineno} {n.value!r}"
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and n.value in names and id(n) not in docs
        ]
    assert not found, found
