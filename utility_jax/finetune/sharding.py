"""Sharding the NNX model and its training state over a JAX device mesh (SPMD, no home-made
collectives).

A mesh has three named axes:

* ``data``: pure data parallelism (the batch is split, the parameters replicated);
* ``fsdp``: fully-sharded data parallelism (the batch is split *and* every large weight, its
  gradient and its optimizer state are split along their input dimension: ZeRO-3);
* ``tensor``: tensor (model) parallelism for attention and MLP (Megatron layout: q/k/v, gate
  and up split by output, o and down by input).

One rule table, :data:`RULES`, maps Hugging Face parameter names to partition specs over those
axes; a dimension that the axes' size does not divide is left whole. XLA's SPMD partitioner
inserts the all-gathers and reduce-scatters: the same jit-compiled step runs on one CPU, a GPU
host or a TPU pod slice. Across hosts, call :func:`initialize_distributed` first; the mesh then
spans every process's devices.
"""

import dataclasses
import math
import os
import re

import jax
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = [
    "AXES",
    "RULES",
    "MeshConfig",
    "make_mesh",
    "spec_for",
    "batch_sharding",
    "initialize_distributed",
    "is_writer",
    "to_host",
]

#: the mesh's axis names, outermost first
AXES = ("data", "fsdp", "tensor")

#: (regex on the Hugging Face parameter name, partition spec per dimension). First match wins.
#: Weights are stored [out, in] (the checkpoints' layout).
RULES: tuple[tuple[str, tuple], ...] = (
    (r"self_attn\.(q|k|v)_proj\.weight$", ("tensor", "fsdp")),
    (r"self_attn\.(q|k|v)_proj\.bias$", ("tensor",)),
    (r"self_attn\.o_proj\.weight$", ("fsdp", "tensor")),
    (r"mlp\.(gate|up)_proj\.weight$", ("tensor", "fsdp")),
    (r"mlp\.down_proj\.weight$", ("fsdp", "tensor")),
    (r"embed_tokens\.weight$", ("tensor", "fsdp")),
    (r"lm_head\.weight$", ("tensor", "fsdp")),
    # LoRA adapters: A [rank, in] follows the weight's input dim, B [out, rank] its output dim
    (r"(q|k|v|gate|up)_proj\.lora_a$", (None, "fsdp")),
    (r"(q|k|v|gate|up)_proj\.lora_b$", ("tensor", None)),
    (r"(o|down)_proj\.lora_a$", (None, "tensor")),
    (r"(o|down)_proj\.lora_b$", ("fsdp", None)),
    (r".*", ()),  # norms and anything else: replicated
)


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """Sizes of the mesh axes; one of them may be -1 ("the rest of the devices").

    The default, ``fsdp=-1``, shards everything over every device, which is right for full
    fine-tuning from one GPU to a pod; ``tensor`` > 1 helps where one layer's activations or a
    70B model's weights do not fit even when split by FSDP.
    """

    data: int = 1
    fsdp: int = -1
    tensor: int = 1

    def sizes(self, n_devices: int) -> dict[str, int]:
        """The axis sizes for ``n_devices`` devices (the -1 resolved); a ``ValueError`` says
        why they do not fit."""
        raw = {a: int(getattr(self, a)) for a in AXES}
        free = [a for a, v in raw.items() if v == -1]
        if len(free) > 1 or any(v == 0 or v < -1 for v in raw.values()):
            raise ValueError(f"mesh: sizes must be >= 1 with at most one -1, got {raw}")
        fixed = math.prod(v for v in raw.values() if v != -1)
        if free:
            if n_devices % fixed:
                raise ValueError(f"mesh {raw}: {n_devices} devices are not a multiple of {fixed}")
            raw[free[0]] = n_devices // fixed
        if math.prod(raw.values()) != n_devices:
            raise ValueError(
                f"mesh {raw} needs {math.prod(raw.values())} devices, but {n_devices} are used"
            )
        return raw


def make_mesh(cfg: MeshConfig | None = None, devices=None) -> Mesh:
    """A :class:`jax.sharding.Mesh` with axes ``("data", "fsdp", "tensor")`` over ``devices``
    (default: every device of every process)."""
    cfg = cfg or MeshConfig()
    devices = list(jax.devices() if devices is None else devices)
    sizes = cfg.sizes(len(devices))
    grid = np.asarray(devices, dtype=object).reshape([sizes[a] for a in AXES])
    return Mesh(grid, AXES)


def spec_for(name: str, shape: tuple[int, ...], mesh: Mesh, rules=RULES) -> P:
    """The partition spec of parameter ``name`` of ``shape`` on ``mesh``: the first matching
    rule, with every axis whose size does not divide its dimension (or is 1) dropped."""
    spec = next((tuple(sp) for pattern, sp in rules if re.search(pattern, name)), ())
    spec = (spec + (None,) * len(shape))[: len(shape)]
    out = []
    for dim, axis in zip(shape, spec, strict=True):
        size = mesh.shape[axis] if axis is not None else 1
        out.append(axis if axis is not None and size > 1 and dim % size == 0 else None)
    return P(*out)


def batch_sharding(mesh: Mesh, ndim: int = 2) -> NamedSharding:
    """Batches are split over the data-parallel axes (``data`` and ``fsdp``) on their first
    dimension; the batch size must be a multiple of their product."""
    return NamedSharding(mesh, P(("data", "fsdp"), *([None] * (ndim - 1))))


def data_parallel_size(mesh: Mesh) -> int:
    """How many ways a batch is split (the ``data`` and ``fsdp`` axes together)."""
    return mesh.shape["data"] * mesh.shape["fsdp"]


def to_host(x) -> np.ndarray:
    """A device array as a NumPy array, gathered from every process where it spans several
    (every process must call it then)."""
    if not x.is_fully_addressable:
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))


def is_writer() -> bool:
    """Whether this process writes run files: process 0 only (every process reads the same
    data and holds the same results)."""
    return jax.process_index() == 0


def initialize_distributed(
    mode: str = "off",
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """Join a multi-host run with :func:`jax.distributed.initialize` (JAX's own; nothing of
    ours). ``mode``: ``"off"`` (one process), ``"auto"`` (TPU pods, SLURM and other clusters
    JAX detects by itself; one process where none is detected), or ``"explicit"`` (the three
    arguments, e.g. two processes on one machine). Returns whether this is a multi-process run.
    Call it before anything touches a device."""
    if mode == "off":
        return False
    if mode == "explicit":
        if coordinator_address is None or num_processes is None or process_id is None:
            raise ValueError(
                "distributed=explicit needs coordinator_address, num_processes and process_id"
            )
        jax.distributed.initialize(coordinator_address, int(num_processes), int(process_id))
        return jax.process_count() > 1
    if mode != "auto":
        raise ValueError(f"distributed must be off, auto or explicit, got {mode!r}")
    cluster = any(
        k in os.environ
        for k in ("SLURM_JOB_ID", "TPU_WORKER_HOSTNAMES", "MEGASCALE_COORDINATOR_ADDRESS")
    )
    if not cluster:
        return False
    jax.distributed.initialize()
    return jax.process_count() > 1


def _key_name(k) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def param_name(path) -> str:
    """A training-state leaf's dotted name (``layers.0.self_attn.q_proj.weight``, or, in the
    optimizer state, ``opt_state.0.mu.layers.0....weight``), which :data:`RULES` match by their
    suffix; the embedding, a bare parameter, is named ``embed_tokens.weight``."""
    parts = [_key_name(k) for k in path]
    parts = [p for p in parts if p not in ("value", "raw_value")]
    name = ".".join(parts)
    return name + ".weight" if name.endswith("embed_tokens") else name


def state_shardings(state, mesh: Mesh, rules=RULES):
    """The :class:`NamedSharding` of every leaf of an NNX state (a model's or an optimizer's):
    by :data:`RULES` on its name, so an optimizer moment is split like its parameter."""

    def one(path, x):
        return NamedSharding(mesh, spec_for(param_name(path), tuple(x.shape), mesh, rules))

    return jax.tree_util.tree_map_with_path(one, state)


def shard_module(obj, mesh: Mesh, rules=RULES):
    """Place an NNX object's state (a model, or an ``nnx.Optimizer`` with its moments) on
    ``mesh`` by :data:`RULES`, in place; returns ``obj``."""
    state = nnx.state(obj)
    nnx.update(obj, jax.device_put(state, state_shardings(state, mesh, rules)))
    return obj
