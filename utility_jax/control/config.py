"""Schemas of the utility-control experiment (``conf/utility_control.yaml`` and its groups
``model/``, ``assembly/``, ``sft/``, ``fitter/``, ``outcomes/``)."""

import dataclasses
from typing import Any

from omegaconf import DictConfig

from utility_jax.elicit.registry import BACKENDS
from utility_jax.finetune.sft import SFTConfig
from utility_jax.finetune.sharding import MeshConfig
from utility_jax.run.config import (
    AgentConf,
    FitterConf,
    OutcomesConf,
    merge_schema,
    register_schema,
    schema_of,
    to_core,
)

__all__ = [
    "ModelConf",
    "MeshConf",
    "AssemblyConf",
    "SFTConf",
    "ControlConf",
    "validate_control",
    "sft_config",
    "mesh_config",
]


@dataclasses.dataclass
class ModelConf:
    # a local HF checkpoint; null builds a tiny random Qwen2 in the run folder
    path: str | None = None
    hidden_size: int = 64
    num_hidden_layers: int = 2
    batch_size: int = 32
    # the weights' storage: float32 | bfloat16 | auto (the checkpoint's own); the products run in
    # sft.compute_dtype
    param_dtype: str = "float32"
    # dry_run=true: the shape to plan memory for, a preset (llama-3.1-8b, qwen2.5-7b,
    # llama-3.1-70b, ...) or a config.json; null: the checkpoint at path
    config: str | None = None
    plan_seq_len: int = 512  # dry_run=true: the prompt length the memory plan assumes
    device_gb: float = 80.0  # dry_run=true: one device's memory, for the plan's verdict


register_schema("model", ModelConf)


@dataclasses.dataclass
class MeshConf:
    """The device mesh (``finetune.sharding``): one size may be -1, "the rest"."""

    data: int = 1
    fsdp: int = -1
    tensor: int = 1
    # off | auto (TPU pods, SLURM) | explicit (the three below): jax.distributed.initialize
    distributed: str = "off"
    coordinator_address: str | None = None
    num_processes: int | None = None
    process_id: int | None = None


@dataclasses.dataclass
class AssemblyConf:
    kind: str = "simulated"  # simulated | agent (LLM citizens with persona prompts)
    n_citizens: int = 50
    pooling: str = "mean"  # mean | majority
    effect: float = 0.3
    party_effect: float = 0.8
    noise: float = 0.5
    # kind=agent: the LLM that plays every citizen (log-prob mode): any agent config, as in compute
    # runs (assembly.agent.kind=openai assembly.agent.base_url=...); model null: the model being
    # tuned plays them
    agent: AgentConf = dataclasses.field(default_factory=lambda: AgentConf(kind="jax"))
    joint: bool = True  # citizens from the joint demographic table (False: independent marginals)
    republican_instruction: bool = True  # the paper's Appendix-H instruction in Republican personas


#: ``sft``: :class:`~utility_jax.finetune.sft.SFTConfig`'s fields and defaults (the run's ``seed``
#: fills the core's), and when to save checkpoints
SFTConf = schema_of(
    SFTConfig,
    "SFTConf",
    __name__,
    drop=("seed",),
    fields=[("checkpoint_every", int, dataclasses.field(default=0))],  # > 0: checkpoints/step_N
)
register_schema("sft", SFTConf)


@dataclasses.dataclass
class ControlConf:
    outcomes: OutcomesConf = dataclasses.field(default_factory=lambda: OutcomesConf(limit=20))
    model: ModelConf = dataclasses.field(default_factory=ModelConf)
    mesh: MeshConf = dataclasses.field(default_factory=MeshConf)
    assembly: AssemblyConf = dataclasses.field(default_factory=AssemblyConf)
    sft: SFTConf = dataclasses.field(default_factory=SFTConf)
    fitter: FitterConf = dataclasses.field(default_factory=FitterConf)  # every utility fit
    template: str = "default"
    system: str | None = "default"
    heldout_fraction: float = 0.25
    heldout_outcomes: int = 5  # outcomes kept out of training entirely (their pairs scored apart)
    k: int = 10  # votes per order: targets and refits count 2k votes per pair
    # the model's political position before and after, by the political-values analysis
    political: bool = True
    political_policies: int = 8
    political_entities: int = 4
    seed: int = 0
    plots: bool = True
    progress: bool = True
    dry_run: bool = False  # count the assembly's requests (an LLM assembly on a server), send none
    name: str = "utility_control"


_CHOICES = {
    ("assembly", "kind"): ("simulated", "agent"),
    ("assembly", "pooling"): ("mean", "majority"),
    ("sft", "loss"): ("answer", "token"),
    ("sft", "remat"): ("none", "layer"),
    ("sft", "compute_dtype"): ("float32", "bfloat16"),
    ("model", "param_dtype"): ("float32", "bfloat16", "auto"),
    ("mesh", "distributed"): ("off", "auto", "explicit"),
    ("fitter", "solver"): ("lbfgs",),
}


def validate_control(cfg: DictConfig | dict[str, Any]) -> ControlConf:
    """The typed control config; bad choices raise naming the key."""
    conf: ControlConf = merge_schema(cfg, ControlConf)
    for (group, key), allowed in _CHOICES.items():
        val = getattr(getattr(conf, group), key)
        if val not in allowed:
            raise ValueError(f"{group}.{key}={val!r} must be one of {allowed}")
    agent = conf.assembly.agent
    if agent.backend is None and agent.kind not in BACKENDS:
        raise ValueError(f"assembly.agent.kind={agent.kind!r} must be one of {tuple(BACKENDS)}")
    if conf.k < 1:
        raise ValueError(f"k must be >= 1, got {conf.k}")
    return conf


def mesh_config(conf: ControlConf) -> MeshConfig:
    """The core mesh sizes of a control run."""
    return MeshConfig(data=conf.mesh.data, fsdp=conf.mesh.fsdp, tensor=conf.mesh.tensor)


def sft_config(conf: ControlConf) -> SFTConfig:
    """The core SFT config of a control run."""
    return to_core(conf.sft, SFTConfig, seed=conf.seed)
