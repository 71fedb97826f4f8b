"""The NNX model against transformers' PyTorch models on tiny random checkpoints (float32)."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from utility_jax.finetune import (
    CheckpointError,
    UnsupportedArchitecture,
    load_checkpoint,
    save_checkpoint,
)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


PARITY_ATOL = 1e-4  # the bound, float32

COMMON = dict(
    vocab_size=96,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=256,
    initializer_range=0.2,
)
ARCHS = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", dict(num_key_value_heads=4)),
    "llama_tied_gqa": (
        "LlamaConfig",
        "LlamaForCausalLM",
        dict(num_key_value_heads=2, tie_word_embeddings=True),
    ),
    "llama3_rope_scaling": (
        "LlamaConfig",
        "LlamaForCausalLM",
        dict(
            num_key_value_heads=2,
            rope_parameters={
                "rope_type": "llama3",
                "rope_theta": 500000.0,
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 16,
            },
        ),
    ),
    "mistral": (
        "MistralConfig",
        "MistralForCausalLM",
        dict(num_key_value_heads=2, sliding_window=None),
    ),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", dict(num_key_value_heads=2)),
    "qwen2_tied": (
        "Qwen2Config",
        "Qwen2ForCausalLM",
        dict(num_key_value_heads=1, tie_word_embeddings=True),
    ),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", dict(num_key_value_heads=2, head_dim=24)),
}


def _build(tmp_path, name, seed=0):
    cfg_cls, model_cls, extra = ARCHS[name]
    cfg = getattr(transformers, cfg_cls)(**COMMON, **extra)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = getattr(transformers, model_cls)(cfg).eval()
        if getattr(model.model.layers[0].self_attn.q_proj, "bias", None) is not None:
            with torch.no_grad():  # random biases, so they matter in the comparison
                for layer in model.model.layers:
                    for p in ("q_proj", "k_proj", "v_proj"):
                        getattr(layer.self_attn, p).bias.normal_(0, 0.5)
    path = tmp_path / name
    model.save_pretrained(path)
    return model, path


def _ids(seed=0, b=3, t=40):
    return np.random.default_rng(seed).integers(0, COMMON["vocab_size"], (b, t))


@pytest.mark.parametrize("name", list(ARCHS))
def test_logits_match_transformers(tmp_path, name):
    ref, path = _build(tmp_path, name)
    ours = load_checkpoint(path)
    ids = _ids()
    with torch.no_grad():
        want = ref(torch.tensor(ids)).logits.numpy()
    got = np.asarray(ours(jnp.asarray(ids)))
    assert np.abs(want).max() > 1.0  # the comparison is not trivially small
    np.testing.assert_allclose(got, want, atol=PARITY_ATOL, rtol=0)


@pytest.mark.parametrize("name", ["llama3_rope_scaling", "qwen2"])
def test_padded_rows_equal_unpadded(tmp_path, name):
    _, path = _build(tmp_path, name)
    m = load_checkpoint(path)
    ids = _ids(1, b=1, t=20)
    full = np.asarray(m(jnp.asarray(ids)))[0]
    pad = 7
    left = np.concatenate([np.zeros((1, pad), int), ids], 1)
    lmask = np.concatenate([np.zeros((1, pad), int), np.ones((1, 20), int)], 1)
    out_l = np.asarray(m(jnp.asarray(left), jnp.asarray(lmask)))[0, pad:]
    np.testing.assert_allclose(out_l, full, atol=1e-5)
    right = np.concatenate([ids, np.zeros((1, pad), int)], 1)
    rmask = np.concatenate([np.ones((1, 20), int), np.zeros((1, pad), int)], 1)
    out_r = np.asarray(m(jnp.asarray(right), jnp.asarray(rmask)))[0, :20]
    np.testing.assert_allclose(out_r, full, atol=1e-5)
    both = np.concatenate([left, right], 0)
    masks = np.concatenate([lmask, rmask], 0)
    last = np.asarray(m.last_logits(jnp.asarray(both), jnp.asarray(masks)))
    np.testing.assert_allclose(last, np.stack([full[-1], full[-1]]), atol=1e-5)


def test_save_then_load_in_transformers_reproduces_tuned_logits(tmp_path):
    _, path = _build(tmp_path, "qwen2_tied")
    m = load_checkpoint(path)
    # "tune" it: change a few weights
    w = m.layers[0].mlp.up_proj.weight
    w[...] = w[...] + 0.3 * jnp.sign(w[...])
    m.embed_tokens[...] = m.embed_tokens[...] * 1.5
    out = save_checkpoint(m, tmp_path / "tuned", source=path)
    back = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    ids = _ids(2)
    with torch.no_grad():
        want = back(torch.tensor(ids)).logits.numpy()
    np.testing.assert_allclose(np.asarray(m(jnp.asarray(ids))), want, atol=PARITY_ATOL, rtol=0)


def test_bad_checkpoints_fail_clearly(tmp_path):
    _, path = _build(tmp_path, "llama")
    cfg = json.loads((path / "config.json").read_text())
    bad = tmp_path / "gpt2"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({**cfg, "model_type": "gpt2"}))
    with pytest.raises(UnsupportedArchitecture, match="gpt2"):
        load_checkpoint(bad)
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "config.json").write_text(json.dumps({**cfg, "intermediate_size": 128}))
    (wrong / "model.safetensors").symlink_to(path / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"mlp\.\w+_proj\.weight has shape"):
        load_checkpoint(wrong)
    fewer = tmp_path / "fewer"
    fewer.mkdir()
    (fewer / "config.json").write_text(json.dumps({**cfg, "num_hidden_layers": 3}))
    (fewer / "model.safetensors").symlink_to(path / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"missing weights \['model\.layers\.2"):
        load_checkpoint(fewer)


def test_jit_equals_eager(tmp_path):
    from utility_jax.finetune.model import last_logits_jit

    _, path = _build(tmp_path, "qwen3")
    m = load_checkpoint(path)
    ids = jnp.asarray(_ids(3))
    mask = jnp.ones_like(ids).at[0, :5].set(0)
    np.testing.assert_allclose(
        np.asarray(last_logits_jit(m, ids, mask)), np.asarray(m.last_logits(ids, mask)), atol=2e-5
    )


def test_sharded_over_two_devices_gives_the_same_logits(tmp_path):
    """In a subprocess with two (host) devices: parameters sharded over a 2-device mesh give the
    unsharded logits."""
    import os
    import subprocess
    import sys

    _, path = _build(tmp_path, "qwen2")
    code = f"""
import jax, jax.numpy as jnp, numpy as np
assert len(jax.devices()) == 2
from jax.sharding import Mesh
from utility_jax.finetune.load import load_checkpoint, shard_model
from utility_jax.finetune.model import last_logits_jit
ids = jnp.asarray(np.random.default_rng(0).integers(0, 96, (4, 24)))
mask = jnp.ones_like(ids)
m = load_checkpoint({str(path)!r})
ref = np.asarray(last_logits_jit(m, ids, mask))
sm = shard_model(load_checkpoint({str(path)!r}), Mesh(np.array(jax.devices()), ("model",)))
w = sm.layers[0].mlp.up_proj.weight[...]
assert len(w.sharding.device_set) == 2
np.testing.assert_allclose(np.asarray(last_logits_jit(sm, ids, mask)), ref, atol=1e-5)
print("ok")
"""
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "JAX_PLATFORMS": "cpu",
    }
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert p.returncode == 0 and "ok" in p.stdout, p.stderr[-2000:]
