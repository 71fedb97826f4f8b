"""The paper's analyses (SPEC section 5), one experiment override each (Hydra entry point).

    python experiments/analysis.py experiment=lotteries                 # simulated agent
    python experiments/analysis.py experiment=exchange_rates agent=openai agent.model=... \
        agent.base_url=http://localhost:8000/v1
    python experiments/analysis.py experiment=discounting analysis.shape=exponential

Analyses: lotteries, instrumental, maximization, convergence, political, exchange_rates,
discounting, power_seeking, corrigibility. The run folder holds analysis.json (every number with
its interval), <analysis>.png, summary.txt and one sub-folder per utility fit (tasks/<name>/).
"""

import sys

from utility_jax.cli import main

if __name__ == "__main__":
    # the same as `utility-jax analyze ...` (configs from the package: utility_jax/conf, also conf/)
    sys.exit(main(["analyze", *sys.argv[1:]]))
