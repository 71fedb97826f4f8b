"""Write notebooks/run_folder.ipynb (the cells live here, reviewable as plain Python), then
execute both notebooks in place with their outputs:

    python notebooks/build_run_folder_notebook.py
"""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).parent

CELLS = [
    (
        "md",
        """# Reading a finished run

A run folder holds everything a `utility-jax compute` run produced: its settings, its metrics, the
utilities of every outcome with their intervals, and a summary. This notebook reads one with the
public API (`utility_jax.run.collect.load_run`) and walks through what a researcher checks first:
coherence beside the random responder, the utilities with their intervals, and whether the
intervals can be trusted.

It makes its own small run first (a simulated agent, under a minute), so it runs anywhere; point
`FOLDER` at any of your own run folders instead.""",
    ),
    (
        "code",
        """import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from utility_jax.run.collect import load_run
from utility_jax.run.runner import run_compute_utilities

FOLDER = Path(tempfile.mkdtemp()) / "run"
run_compute_utilities(
    {"outcomes": {"limit": 40}, "graph": {"edges_per_round": 100}, "progress": False, "plots": False},
    FOLDER,
)
run = load_run(FOLDER)
print(f"{run.metrics['n_outcomes']} outcomes, {run.metrics['n_train_pairs']} training pairs, "
      f"{run.metrics['votes_per_pair']} votes per pair; files: {sorted(p.name for p in FOLDER.iterdir())[:6]} ...")""",
    ),
    (
        "md",
        """## 1. Coherence, always beside a 50/50 random responder
Held-out accuracy and log loss say how well the utilities predict answers they were not fitted
on; the random responder answers the same pairs with the same number of votes. The cycle rate is
measured on triangles of the asked graph (not the paper's protocol: for that, run
`utility-jax analyze experiment=transitivity`).""",
    ),
    (
        "code",
        """m, rr = run.metrics, run.metrics["random_responder"]
rows = [
    ("held-out accuracy", m["heldout"]["accuracy"], rr["heldout"]["accuracy"]),
    ("held-out log loss / vote", m["heldout"]["log_loss"], rr["heldout"]["log_loss"]),
    ("log10 P(cycle), training graph", m["training_graph_transitivity"]["log10_p_cycle"],
     rr["training_graph_transitivity"]["log10_p_cycle"]),
]
for name, model, rand in rows:
    print(f"{name:32s} model {model:7.4f}   random {rand:7.4f}")
print("fit converged:", m["fit"]["converged"], "| warnings:", m["warnings"] or "none")""",
    ),
    (
        "md",
        """## 2. Utilities with their intervals
Normalised utilities (mean 0, sd 1 over the outcomes), top and bottom ten, each with the run's
interval (here a vote-level bootstrap).""",
    ),
    (
        "code",
        """df = run.to_frame().sort_values("mu_normalized")
kind = run.interval_kind()
show = np.r_[0:10, len(df) - 10:len(df)]
sub = df.iloc[show]
fig, ax = plt.subplots(figsize=(7, 6))
y = np.arange(len(sub))
ax.errorbar(sub["mu_normalized"], y,
            xerr=[sub["mu_normalized"] - sub[f"{kind}_lo"], sub[f"{kind}_hi"] - sub["mu_normalized"]],
            fmt="o", capsize=2)
ax.set_yticks(y, [t[:55] for t in sub["text"]], fontsize=7)
ax.axhline(9.5, color="grey", lw=0.5)
ax.set_xlabel(f"normalised utility (90% {kind} interval)")
fig.tight_layout()""",
    ),
    (
        "md",
        """## 3. Can the intervals be trusted?
With a simulated agent the true utilities are known, so the run reports how often each kind of
interval covers them (nominally 90%), and how bootstrap and Laplace widths compare.""",
    ),
    (
        "code",
        """rec = m.get("recovery", {})
print("Spearman with the true utilities:", round(rec.get("spearman_mu", float("nan")), 4))
for k, v in rec.items():
    if "coverage" in k:
        print(f"{k:45s} {v:.3f}")
print("interval agreement (median width ratio):", m.get("interval_agreement"))""",
    ),
    (
        "md",
        """The same folder also holds `summary.txt` (below, its first lines), `votes.csv` (every
pair's votes per presentation order) and the figures; `utility-jax compare` puts several runs side
by side.""",
    ),
    ("code", """print("\\n".join(run.summary.splitlines()[:12]))"""),
]


def build() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(src) if kind == "md" else nbformat.v4.new_code_cell(src)
        for kind, src in CELLS
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


def execute(path: Path, timeout: int = 600) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(HERE.parent)}},
    ).execute()
    return nb


if __name__ == "__main__":
    target = HERE / "run_folder.ipynb"
    nbformat.write(build(), target)
    for name in ("quickstart.ipynb", "run_folder.ipynb"):
        p = HERE / name
        nbformat.write(execute(p), p)
        print(f"executed with outputs: {p}")
