"""Precision, rematerialisation, resumable SFT and the memory plan, on a tiny random model."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from utility_jax.finetune import load_checkpoint, save_checkpoint
from utility_jax.finetune.config import LMConfig
from utility_jax.finetune.model import CausalLM
from utility_jax.finetune.plan import memory_plan
from utility_jax.finetune.sft import SFTConfig, answer_loss, train_sft
from utility_jax.finetune.sharding import MeshConfig

CFG = LMConfig("qwen2", 128, 64, 128, 2, 4, 2, 16, 1e-6, 10000.0, None, False, True, False)
A, B = jnp.array([5, 6]), jnp.array([7])


def _batch(seed=0, b=6, t=10):
    r = np.random.default_rng(seed)
    ids = jnp.asarray(r.integers(0, CFG.vocab_size, (b, t)), jnp.int32)
    mask = jnp.ones((b, t), jnp.int32).at[:2, :3].set(0)
    return ids, mask, jnp.asarray(r.random(b), jnp.float32)


def _loss_and_grads(**kw):
    model = CausalLM(CFG, nnx.Rngs(0), **kw)
    x, m, t = _batch()
    loss, g = nnx.value_and_grad(answer_loss)(model, x, m, t, A, B)
    return float(loss), jax.tree.leaves(nnx.state(g))


def test_remat_changes_memory_not_numbers():
    loss, grads = _loss_and_grads()
    loss_r, grads_r = _loss_and_grads(remat="layer")
    assert loss_r == pytest.approx(loss, abs=1e-6)
    for a, b in zip(grads, grads_r, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    with pytest.raises(ValueError, match="remat"):
        CausalLM(CFG, nnx.Rngs(0), remat="all")


def test_bfloat16_stays_close_to_float32_and_keeps_the_softmax_and_logits_in_float32():
    loss, grads = _loss_and_grads()
    loss_h, grads_h = _loss_and_grads(param_dtype=jnp.bfloat16, compute_dtype=jnp.bfloat16)
    assert loss_h == pytest.approx(loss, rel=2e-2)
    assert all(g.dtype == jnp.bfloat16 for g in grads_h)  # stored (and differentiated) in bf16
    # the gradients point the same way
    for a, b in zip(grads, grads_h, strict=True):
        a, b = np.ravel(a), np.ravel(np.asarray(b, np.float32))
        if np.linalg.norm(a) > 1e-6:
            assert a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) > 0.95
    model = CausalLM(CFG, nnx.Rngs(0), param_dtype=jnp.bfloat16, compute_dtype=jnp.bfloat16)
    x, m, _ = _batch()
    assert model(x, m).dtype == jnp.float32
    model.add_lora(4)
    lin = model.layers[0].self_attn.q_proj
    assert lin.weight[...].dtype == jnp.bfloat16 and lin.lora_a[...].dtype == jnp.float32


def _write_config(path, dtype: str):
    d = dict(
        model_type="qwen2",
        vocab_size=CFG.vocab_size,
        hidden_size=CFG.hidden_size,
        intermediate_size=CFG.intermediate_size,
        num_hidden_layers=CFG.num_hidden_layers,
        num_attention_heads=CFG.num_attention_heads,
        num_key_value_heads=CFG.num_key_value_heads,
        rms_norm_eps=CFG.rms_norm_eps,
        rope_theta=CFG.rope_theta,
        torch_dtype=dtype,
    )
    (path / "config.json").write_text(json.dumps(d))


def test_a_bfloat16_checkpoint_is_saved_in_bfloat16(tmp_path):
    src = tmp_path / "src"
    model = CausalLM(CFG, nnx.Rngs(0), param_dtype=jnp.bfloat16)
    save_checkpoint(model, src)
    _write_config(src, "bfloat16")
    loaded = load_checkpoint(src, dtype="auto")
    assert loaded.embed_tokens[...].dtype == jnp.bfloat16
    out = save_checkpoint(loaded, tmp_path / "out", source=src)
    assert json.loads((out / "config.json").read_text())["torch_dtype"] == "bfloat16"
    header = (out / "model.safetensors").read_bytes()[:4000]
    assert b'"BF16"' in header and b'"F32"' not in header
    again = load_checkpoint(out, dtype="auto")
    np.testing.assert_array_equal(
        np.asarray(again.embed_tokens[...], np.float32),
        np.asarray(model.embed_tokens[...], np.float32),
    )


def _train(tmp_path, stop_at=None, steps=4):
    model = CausalLM(CFG, nnx.Rngs(0))
    r = np.random.default_rng(1)
    ids = r.integers(0, CFG.vocab_size, (12, 10)).astype(np.int32)
    mask, target = np.ones_like(ids), r.random(12).astype(np.float32)
    cfg = SFTConfig(steps=steps, batch_size=4, warmup=1, lr=1e-2, save_every=1)

    def stop(step, _):
        if step == stop_at:
            raise KeyboardInterrupt

    log = train_sft(model, ids, mask, target, A, B, cfg, state_dir=tmp_path / "state", on_step=stop)
    return model, log


def test_sft_killed_after_a_saved_step_resumes_to_the_same_parameters(tmp_path):
    ref, ref_log = _train(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "b", stop_at=2)
    resumed, log = _train(tmp_path / "b")
    assert [r["step"] for r in log][0] in (2, 3)  # it went on from a saved step
    assert log[-1]["loss"] == pytest.approx(ref_log[-1]["loss"], abs=1e-6)
    for a, b in zip(
        jax.tree.leaves(nnx.state(ref)), jax.tree.leaves(nnx.state(resumed)), strict=True
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


def test_memory_plan_counts_parameters_and_optimizer_state_exactly():
    one = jax.devices()[:1]
    full = memory_plan(CFG, SFTConfig(), MeshConfig(), batch_size=4, seq_len=16, devices=one)
    n = full["model_params"]
    assert full["params"] == 4 * n and full["optimizer"] >= 2 * 4 * n  # Adam: two moments
    assert full["peak"] >= full["params"] + full["optimizer"] and full["temporaries"] > 0
    lora = memory_plan(
        CFG,
        SFTConfig(lora_rank=4),
        MeshConfig(),
        batch_size=4,
        seq_len=16,
        devices=one,
        param_dtype="bfloat16",
        device_gb=1e-6,
    )
    assert lora["optimizer"] < full["optimizer"] / 5 and lora["verdict"] == "does not fit"


def test_control_dry_run_plans_memory_for_a_preset_without_loading_weights(tmp_path):
    from hydra import compose, initialize_config_dir
    from test_configs import CONF

    from utility_jax.control import run_utility_control

    config = tmp_path / "config.json"
    _write_config(tmp_path, "bfloat16")
    over = [
        "dry_run=true",
        f"model.config={config}",
        "model.param_dtype=bfloat16",
        "model.plan_seq_len=32",
        "model.device_gb=0.001",
        "sft=lora",
        "sft.batch_size=4",
        "sft.compute_dtype=bfloat16",
        "sft.remat=layer",
        "outcomes.limit=6",
    ]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        pl = run_utility_control(
            compose(config_name="utility_control", overrides=over), tmp_path / "run"
        )
    mem = pl["memory"]
    assert mem["devices"] == 1 and mem["verdict"] == "does not fit"
    assert mem["params"] < 4 * mem["model_params"]  # a bfloat16 base (LoRA adapters float32)
    assert "memory plan per device" in mem["text"]
    assert mem["platform"] == "cpu" and "WARNING: planned by the CPU compiler" in mem["text"]
    saved = json.loads((tmp_path / "run" / "plan.json").read_text())
    assert saved["memory"]["peak"] == mem["peak"]
