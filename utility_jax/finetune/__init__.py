"""Flax NNX decoder-only LMs read from Hugging Face checkpoints (the fine-tuning shell).

Imports flax; ``import utility_jax`` does not import this subpackage.
"""

from utility_jax.finetune.config import LMConfig, UnsupportedArchitecture
from utility_jax.finetune.load import CheckpointError, load_checkpoint, save_checkpoint
from utility_jax.finetune.model import CausalLM

__all__ = [
    "CausalLM",
    "CheckpointError",
    "LMConfig",
    "UnsupportedArchitecture",
    "load_checkpoint",
    "save_checkpoint",
]
