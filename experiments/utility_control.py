"""Utility control: assembly -> target utilities -> model before -> SFT -> model after (Hydra).

python experiments/utility_control.py
python experiments/utility_control.py model.path=/path/to/hf/checkpoint sft.steps=500
"""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from utility_jax.control import run_utility_control


@hydra.main(version_base="1.3", config_path="../conf", config_name="utility_control")
def main(cfg: DictConfig) -> float:
    out = HydraConfig.get().runtime.output_dir
    m = run_utility_control(cfg, out)
    print(open(f"{out}/summary.txt").read())
    print(f"run folder: {out}")
    return m["after"]["heldout_accuracy_refit"]


if __name__ == "__main__":
    main()
