"""Utility control: assembly -> target utilities -> model before -> SFT -> model after (Hydra).

python experiments/utility_control.py
python experiments/utility_control.py model.path=/path/to/hf/checkpoint sft.steps=500
"""

import sys

from utility_jax.cli import main

if __name__ == "__main__":
    # the same as `utility-jax control ...` (configs from the package: utility_jax/conf, also conf/)
    sys.exit(main(["control", *sys.argv[1:]]))
