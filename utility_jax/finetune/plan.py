"""A memory plan before anything is loaded: the real training step compiled on abstract shapes.

:func:`memory_plan` builds the model and its optimizer with :func:`flax.nnx.eval_shape` (no
weights, no memory), places them on the mesh by the same rule table the run uses, compiles the
same jitted step that :func:`~utility_jax.finetune.sft.train_sft` runs, and reads the compiled
program's own memory analysis: per device, the bytes of the parameters, the optimizer state, the
batch, and XLA's temporaries (activations kept for the backward pass, gradients, collectives'
buffers). A verdict compares the peak with a device's memory.

Plan on the machine you have: with ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` a CPU
compiles an 8-device plan. The numbers are XLA's for the CPU backend; a GPU or TPU compiler
schedules and fuses differently (``benchmarks/device_check.py`` compares the two where a device
is at hand), so keep a margin.

    python -m utility_jax.finetune.plan --model llama-3.1-8b --mesh fsdp=8 --device h100
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
from flax import nnx

from utility_jax.finetune.config import LMConfig
from utility_jax.finetune.model import CausalLM
from utility_jax.finetune.sft import (
    SFTConfig,
    answer_loss,
    jit_train_step,
    prepare_training,
    train_step_fn,
    trainable,
)
from utility_jax.finetune.sharding import MeshConfig, batch_sharding, make_mesh, state_shardings

__all__ = ["PRESETS", "DEVICE_MEMORY_GB", "memory_plan", "lm_config"]

_LLAMA31 = dict(
    model_type="llama",
    vocab_size=128256,
    rms_norm_eps=1e-5,
    rope_theta=500000.0,
    rope_scaling={
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    },
    tie_word_embeddings=False,
)
#: the shapes of a few models' ``config.json`` (from their Hugging Face repositories)
PRESETS: dict[str, dict] = {
    "llama-3.1-8b": dict(
        _LLAMA31,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
    ),
    "llama-3.1-70b": dict(
        _LLAMA31,
        hidden_size=8192,
        intermediate_size=28672,
        num_hidden_layers=80,
        num_attention_heads=64,
        num_key_value_heads=8,
    ),
    "qwen2.5-7b": dict(
        model_type="qwen2",
        vocab_size=152064,
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        rms_norm_eps=1e-6,
        rope_theta=1000000.0,
        tie_word_embeddings=False,
    ),
    "qwen2.5-0.5b": dict(
        model_type="qwen2",
        vocab_size=151936,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        rms_norm_eps=1e-6,
        rope_theta=1000000.0,
        tie_word_embeddings=True,
    ),
}

#: memory per device, GB (10^9 bytes) as sold
DEVICE_MEMORY_GB = {
    "h100": 80.0,
    "h200": 141.0,
    "a100-80gb": 80.0,
    "a100-40gb": 40.0,
    "l4": 24.0,
    "tpu-v4": 32.0,
    "tpu-v5e": 16.0,
    "tpu-v5p": 95.0,
}


def lm_config(model: str, layers: int | None = None) -> LMConfig:
    """A preset name or a path to a ``config.json`` (or its folder); ``layers`` overrides the
    depth (to plan a shallower copy)."""
    if model in PRESETS:
        d = dict(PRESETS[model])
    else:
        p = Path(model)
        p = p / "config.json" if p.is_dir() else p
        if not p.exists():
            raise FileNotFoundError(
                f"model {model!r}: neither a preset ({', '.join(PRESETS)}) nor a config.json"
            )
        d = json.loads(p.read_text())
    if layers is not None:
        d["num_hidden_layers"] = int(layers)
    return LMConfig.from_dict(d, source=str(model))


def _per_device_bytes(state, shardings) -> int:
    def one(x, s):
        return jnp.dtype(x.dtype).itemsize * math.prod(s.shard_shape(tuple(x.shape)))

    return sum(jax.tree.leaves(jax.tree.map(one, state, shardings)))


def memory_plan(
    lm: LMConfig,
    sft: SFTConfig,
    mesh_cfg: MeshConfig,
    *,
    batch_size: int,
    seq_len: int,
    param_dtype: str = "float32",
    devices=None,
    device_gb: float | None = None,
) -> dict:
    """Compile the training step on abstract shapes and return its per-device memory (bytes):
    ``params``, ``optimizer``, ``batch``, ``temporaries``, ``peak`` (arguments + outputs not
    aliased to them + temporaries), the compile time, and a ``verdict`` against ``device_gb``."""
    mesh = make_mesh(mesh_cfg, devices)

    def build():
        model = CausalLM(lm, nnx.Rngs(0), param_dtype=jnp.dtype(param_dtype))
        opt, _ = prepare_training(model, sft, None)
        return model, opt

    model, opt = nnx.eval_shape(build)
    graphdef, state = nnx.split((model, opt))  # state[0]: the model's, state[1]: the optimizer's
    shardings = state_shardings(state, mesh)
    abstract = jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings
    )
    b2, b1 = batch_sharding(mesh, 2), batch_sharding(mesh, 1)
    ids = jax.ShapeDtypeStruct((batch_size, seq_len), jnp.int32, sharding=b2)
    target = jax.ShapeDtypeStruct((batch_size,), jnp.float32, sharding=b1)
    step = jit_train_step(
        train_step_fn(graphdef, answer_loss, trainable(sft), jnp.array([0]), jnp.array([1])),
        state,
        mesh,
    )
    t0 = time.perf_counter()
    compiled = step.lower(abstract, ids, ids, target).compile()
    seconds = time.perf_counter() - t0
    ma = compiled.memory_analysis()
    params = _per_device_bytes(state[0], shardings[0])
    optim = _per_device_bytes(state[1], shardings[1])
    args, out = int(ma.argument_size_in_bytes), int(ma.output_size_in_bytes)
    alias, temp = int(ma.alias_size_in_bytes), int(ma.temp_size_in_bytes)
    peak = args + out - alias + temp
    n_params = sum(math.prod(x.shape) for x in jax.tree.leaves(state[0]))
    res = dict(
        model_params=n_params,
        devices=int(mesh.size),
        mesh={k: int(v) for k, v in mesh.shape.items()},
        params=params,
        optimizer=optim,
        batch=args - params - optim,
        temporaries=temp,
        peak=peak,
        compile_seconds=round(seconds, 1),
        platform=mesh.devices.flat[0].platform,  # whose compiler made the plan
    )
    if device_gb is not None:
        res["device_gb"] = device_gb
        res["verdict"] = "fits" if peak <= device_gb * 1e9 else "does not fit"
    return res


def _gb(x: int) -> str:
    return f"{x / 1e9:8.2f} GB"


def format_plan(res: dict) -> str:
    """The plan as a few aligned lines (what ``dry_run`` prints)."""
    lines = [
        f"memory plan per device ({res['devices']} devices, mesh {res['mesh']}; "
        f"{res['model_params'] / 1e9:.2f}B parameters; compiled in {res['compile_seconds']} s):"
    ]
    for k in ("params", "optimizer", "batch", "temporaries", "peak"):
        lines.append(f"  {k:<12}{_gb(res[k])}")
    if "verdict" in res:
        lines.append(f"  verdict: {res['verdict']} in {res['device_gb']:.0f} GB")
    if res.get("platform") == "cpu":
        lines.append(
            "  WARNING: planned by the CPU compiler, which schedules and fuses differently from a "
            "GPU's or TPU's (on it, remat=layer hardly lowers the temporaries): a first check, "
            "not a promise"
        )
    return "\n".join(lines)


def _mesh_arg(text: str) -> MeshConfig:
    kw = {}
    for part in filter(None, text.split(",")):
        k, _, v = part.partition("=")
        if k not in ("data", "fsdp", "tensor"):
            raise argparse.ArgumentTypeError(f"mesh axis {k!r}: use data, fsdp or tensor")
        kw[k] = int(v)
    return MeshConfig(**kw)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m utility_jax.finetune.plan", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument(
        "--model", required=True, help=f"a preset ({', '.join(PRESETS)}) or config.json"
    )
    ap.add_argument(
        "--mesh", type=_mesh_arg, default=MeshConfig(), help="e.g. fsdp=8 or data=2,fsdp=4"
    )
    ap.add_argument("--lora-rank", type=int, default=0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--param-dtype", default="float32")
    ap.add_argument("--compute-dtype", default="bfloat16")
    ap.add_argument("--remat", default="layer")
    ap.add_argument("--layers", type=int, default=None, help="plan a copy with this many layers")
    ap.add_argument("--device", default="h100", help=f"one of {', '.join(DEVICE_MEMORY_GB)}, or GB")
    ap.add_argument("--devices", type=int, default=None, help="use the first N devices")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    gb = DEVICE_MEMORY_GB.get(a.device.lower())
    gb = float(a.device) if gb is None else gb
    sft = SFTConfig(lora_rank=a.lora_rank, remat=a.remat, compute_dtype=a.compute_dtype)
    res = memory_plan(
        lm_config(a.model, a.layers),
        sft,
        a.mesh,
        batch_size=a.batch,
        seq_len=a.seq,
        param_dtype=a.param_dtype,
        devices=None if a.devices is None else jax.devices()[: a.devices],
        device_gb=gb,
    )
    res["settings"] = dict(
        model=a.model,
        lora_rank=a.lora_rank,
        batch=a.batch,
        seq=a.seq,
        param_dtype=a.param_dtype,
        compute_dtype=a.compute_dtype,
        remat=a.remat,
        layers=a.layers,
    )
    sys.stdout.write((json.dumps(res) if a.json else format_plan(res)) + "\n")
    return 0 if res.get("verdict") != "does not fit" else 1


if __name__ == "__main__":
    sys.exit(main())
