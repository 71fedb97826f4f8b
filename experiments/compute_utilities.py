"""Fit utilities: outcomes x agent x edge sampling x fit (Hydra entry point).

    python experiments/compute_utilities.py                       # embedded default (simulated)
    python experiments/compute_utilities.py experiment=paper      # the paper's setting
    python experiments/compute_utilities.py -m fitter=case3,logit seed=0,1,2

The run folder (printed at the end) holds the resolved config, votes, utilities, metrics,
summary.txt and plots.
"""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from utility_jax.runner import run_compute_utilities


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    out = HydraConfig.get().runtime.output_dir
    res = run_compute_utilities(cfg, out)
    print(open(f"{out}/summary.txt").read().split("\noutcomes by utility")[0])
    print(f"run folder: {out}")
    # the value an optimising sweeper minimises
    return float(res.metrics.get("heldout", {}).get("log_loss", float("nan")))


if __name__ == "__main__":
    main()
