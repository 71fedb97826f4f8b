"""Sharded SFT on a device mesh: 8 host devices in one process, and 2 processes x 4 devices
with ``jax.distributed`` (CPU collectives), against the single-device step."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from utility_jax.finetune.sharding import MeshConfig, spec_for

SCRIPT = Path(__file__).with_name("sharded_step.py")
ROOT = Path(__file__).parents[2]


def _env(devices: int, **extra) -> dict:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def _result(stdout: str) -> dict:
    line = next(x for x in stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def _check(run: dict) -> None:
    assert abs(run["loss"] - run["loss_ref"]) <= 1e-5, run
    assert run["moment_rel_diff"] <= 2e-5, run  # the gradients (Adam's first moments)
    # Adam's step at a round-off gradient is lr * sign(g): there the parameters may differ by
    # up to 2 lr per step whatever the device count; everywhere else they agree
    assert run["param_diff_where_gradient"] <= 1e-4, run
    if run["lora"]:
        assert run["param_diff_all"] <= 1e-5, run


def test_sharded_sft_step_equals_the_single_device_step_on_8_devices():
    out = subprocess.run(
        [sys.executable, str(SCRIPT)], env=_env(8), capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    res = _result(out.stdout)
    assert res["devices"] == 8 and len(res["runs"]) == 6
    for run in res["runs"]:
        _check(run)
    specs = {r["mesh"]: r["specs"] for r in res["runs"] if not r["lora"]}
    tp = specs["MeshConfig(data=1, fsdp=4, tensor=2)"]
    # the optimizer's moments are split like their parameter
    assert tp["0.layers.0.self_attn.q_proj.weight"] == "P('tensor', 'fsdp')"
    assert tp["1.opt_state.0.mu.layers.0.self_attn.q_proj.weight"] == "P('tensor', 'fsdp')"
    assert (
        specs["MeshConfig(data=2, fsdp=4, tensor=1)"]["0.layers.0.self_attn.q_proj.weight"]
        == "P(None, 'fsdp')"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two JAX processes and their compiles: the fast tier's CI budget is spent
def test_two_processes_run_one_sharded_step_and_agree_with_one_process():
    port = str(_free_port())
    env = _env(4, SHARDED_STEP_MESHES="first")
    procs = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), str(i), "2", port],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    res = [_result(o) for o, _ in outs]
    assert [r["process"] for r in res] == [0, 1] and all(r["devices"] == 8 for r in res)
    for r in res:
        for run in r["runs"]:
            _check(run)
    # both processes hold the same global result
    assert res[0]["runs"][0]["loss"] == res[1]["runs"][0]["loss"]
    assert res[0]["runs"][0]["param_diff_all"] == res[1]["runs"][0]["param_diff_all"]


def test_mesh_sizes_and_rules():
    assert MeshConfig().sizes(8) == {"data": 1, "fsdp": 8, "tensor": 1}
    assert MeshConfig(data=2, fsdp=-1, tensor=2).sizes(8) == {"data": 2, "fsdp": 2, "tensor": 2}
    with pytest.raises(ValueError, match="not a multiple"):
        MeshConfig(tensor=3).sizes(8)
    with pytest.raises(ValueError, match="at most one -1"):
        MeshConfig(data=-1, fsdp=-1).sizes(8)

    class FakeMesh:
        shape = {"data": 1, "fsdp": 4, "tensor": 2}

    m = FakeMesh()
    P = jax.sharding.PartitionSpec
    assert spec_for("layers.3.mlp.down_proj.weight", (64, 128), m) == P("fsdp", "tensor")
    assert spec_for("layers.3.self_attn.k_proj.weight", (32, 64), m) == P("tensor", "fsdp")
    # a dimension the axis does not divide stays whole
    assert spec_for("layers.3.self_attn.k_proj.weight", (3, 64), m) == P(None, "fsdp")
    assert spec_for("layers.3.input_layernorm.weight", (64,), m) == P(None)
    assert spec_for("opt_state.0.mu.embed_tokens.weight", (128, 64), m) == P("tensor", "fsdp")
