"""The paper's analyses (SPEC section 5), one experiment override each (Hydra entry point).

    python experiments/analysis.py experiment=lotteries                 # simulated agent
    python experiments/analysis.py experiment=exchange_rates agent=openai agent.model=... \
        agent.base_url=http://localhost:8000/v1
    python experiments/analysis.py experiment=discounting analysis.shape=exponential

Analyses: lotteries, instrumental, maximization, convergence, political, exchange_rates,
discounting, power_seeking, corrigibility. The run folder holds analysis.json (every number with
its interval), <analysis>.png, summary.txt and one sub-folder per utility fit (tasks/<name>/).
"""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from utility_jax.analysis.registry import run_analysis


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    out = HydraConfig.get().runtime.output_dir
    run_analysis(cfg, out)
    print(open(f"{out}/summary.txt").read())
    print(f"run folder: {out}")


if __name__ == "__main__":
    main()
