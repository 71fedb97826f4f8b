"""Run by tests/finetune/test_sharding.py in a process with 8 host devices (or as one process of
a two-process run): one SFT step, single-device and sharded, and the differences as JSON."""

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from utility_jax.finetune.config import LMConfig
from utility_jax.finetune.model import CausalLM
from utility_jax.finetune.sft import (
    SFTConfig,
    answer_loss,
    jit_train_step,
    prepare_training,
    train_step_fn,
)
from utility_jax.finetune.sharding import MeshConfig, make_mesh, param_name, to_host

CFG = LMConfig("qwen2", 128, 64, 128, 2, 4, 2, 16, 1e-6, 10000.0, None, False, True, False)


def batch(seed=0, b=8, t=12):
    r = np.random.default_rng(seed)
    ids = r.integers(0, CFG.vocab_size, (b, t)).astype(np.int32)
    mask = np.ones((b, t), np.int32)
    mask[:3, :4] = 0  # left padding on some rows
    return jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(r.random(b), jnp.float32)


def one_step(mesh, lora):
    model = CausalLM(CFG, nnx.Rngs(0))
    cfg = SFTConfig(steps=3, warmup=0, lr=1e-2, lora_rank=4 if lora else 0)
    opt, wrt = prepare_training(model, cfg, mesh)
    graphdef, state = nnx.split((model, opt))
    step = jit_train_step(
        train_step_fn(graphdef, answer_loss, wrt, jnp.array([5, 6]), jnp.array([7])), state, mesh
    )
    x, m, t = batch()
    for _ in range(2):  # two steps: the second uses the first's (sharded) optimizer moments
        loss, state = step(state, x, m, t)
    flat = {param_name(p): to_host(v) for p, v in jax.tree_util.tree_leaves_with_path(state)}
    specs = {
        param_name(p): str(v.sharding.spec)
        for p, v in jax.tree_util.tree_leaves_with_path(state)
        if hasattr(v.sharding, "spec")
    }
    return float(loss), flat, specs


def compare(ref, got):
    """Gradients (Adam's first moments, linear in them) relative to their leaf's largest; the
    parameters where the gradient is not at round-off (Adam's step is lr * sign there, whatever
    the order of the sums); and every parameter."""
    moments = [k for k in ref if ".mu." in k]
    rel = max(
        float(np.max(np.abs(ref[k] - got[k])) / max(np.max(np.abs(ref[k])), 1e-30)) for k in moments
    )
    where = 0.0
    for k in ref:
        if not k.startswith("0."):
            continue
        mk = next((m for m in moments if m.endswith(k[2:])), None)
        if mk is None:
            continue
        big = np.abs(ref[mk]) >= 1e-2 * np.max(np.abs(ref[mk]))
        if big.any():
            where = max(where, float(np.max(np.abs(ref[k] - got[k])[big])))
    every = max(float(np.max(np.abs(ref[k] - got[k]))) for k in ref if k.startswith("0."))
    return dict(moment_rel_diff=rel, param_diff_where_gradient=where, param_diff_all=every)


def main():
    meshes = [
        MeshConfig(data=2, fsdp=4),
        MeshConfig(fsdp=4, tensor=2),
        MeshConfig(data=2, fsdp=2, tensor=2),
    ]
    if os.environ.get("SHARDED_STEP_MESHES") == "first":
        meshes = meshes[:1]
    out = {"devices": jax.device_count(), "process": jax.process_index(), "runs": []}
    for lora in (False, True):
        loss0, ref, _ = one_step(None, lora)
        for mc in meshes:
            loss, got, specs = one_step(make_mesh(mc), lora)
            out["runs"].append(
                dict(
                    mesh=str(mc),
                    lora=lora,
                    loss_ref=loss0,
                    loss=loss,
                    **compare(ref, got),
                    specs={k: v for k, v in specs.items() if "q_proj" in k and "layers.0" in k},
                )
            )
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1:  # process id, count, port: one process of a multi-process run
        pid, count, port = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
        jax.distributed.initialize(f"localhost:{port}", count, pid)
    main()
