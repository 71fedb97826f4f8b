"""Both notebooks run top to bottom in a Jupyter kernel (nbclient, as nbconvert --execute does)
and use only the public API."""

import re

import nbformat
import pytest
from conftest import ROOT

NB = ROOT / "notebooks"
PUBLIC = {
    "quickstart.ipynb": {"utility_jax", "utility_jax.elicit", "utility_jax.io.outcomes"},
    "run_folder.ipynb": {"utility_jax.run.collect", "utility_jax.run.runner"},
}


def _execute(name):
    from nbclient import NotebookClient

    nb = nbformat.read(NB / name, as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    return nb


def _text(nb) -> str:
    out = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            out.append(o.get("text", "") or str(o.get("data", {}).get("text/plain", "")))
    return "\n".join(out)


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_notebook_uses_only_the_public_api_and_is_saved_with_outputs(name):
    nb = nbformat.read(NB / name, as_version=4)
    src = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for mod in re.findall(r"from (utility_jax[\w.]*) import|import (utility_jax[\w.]*)", src):
        assert (mod[0] or mod[1]) in PUBLIC[name], mod
    assert not re.search(r"\._", src)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs for c in code[1:]), "saved without outputs: run notebooks/build_*.py"


def test_quickstart_executes():
    out = _text(_execute("quickstart.ipynb"))
    assert "converged: True" in out
    corr = float(re.search(r"rank correlation with the truth: ([\d.]+)", out).group(1))
    assert corr > 0.95


@pytest.mark.slow  # CI budget: the fast tier must stay under 20 minutes cold
def test_run_folder_notebook_executes():
    out = _text(_execute("run_folder.ipynb"))
    acc = float(re.search(r"held-out accuracy\s+model\s+([\d.]+)", out).group(1))
    assert acc > 0.85
    assert re.search(r"bootstrap_coverage_of_true_normalised_mu\s+[\d.]+", out)
