"""Fit utilities: outcomes x agent x edge sampling x fit (Hydra entry point).

    python experiments/compute_utilities.py                       # embedded default (simulated)
    python experiments/compute_utilities.py experiment=paper      # the paper's setting
    python experiments/compute_utilities.py -m fitter=case3,logit seed=0,1,2

The run folder (printed at the end) holds the resolved config, votes, utilities, metrics,
summary.txt and plots.
"""

import sys

from utility_jax.cli import main

if __name__ == "__main__":
    # the same as `utility-jax compute ...` (configs from the package: utility_jax/conf, also conf/)
    sys.exit(main(["compute", *sys.argv[1:]]))
