"""The quickstart notebook runs top to bottom and uses only the public API."""

import re

import nbformat
from conftest import ROOT

NB = ROOT / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_runs(capsys):
    nb = nbformat.read(NB, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    src = "\n".join(code)
    # only public modules: the package, its elicit and outcomes namespaces
    for mod in re.findall(r"from (utility_jax[\w.]*) import|import (utility_jax[\w.]*)", src):
        name = mod[0] or mod[1]
        assert name in ("utility_jax", "utility_jax.elicit", "utility_jax.outcomes"), name
        assert not re.search(r"\._", src)
    ns: dict = {}
    for c in code:
        exec(compile(c, str(NB), "exec"), ns)  # noqa: S102
    out = capsys.readouterr().out
    assert "converged: True" in out
    corr = float(re.search(r"rank correlation with the truth: ([\d.]+)", out).group(1))
    assert corr > 0.95
