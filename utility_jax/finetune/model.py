"""A decoder-only transformer in Flax NNX: Llama, Llama-3 (RoPE scaling), Mistral, Qwen2, Qwen3.

Matches the transformers (PyTorch) implementations: pre-norm RMSNorm blocks, grouped-query
attention with rotary embeddings in the "rotate half" layout, SwiGLU MLPs, optional q/k/v biases
(Qwen2) and per-head q/k RMSNorm (Qwen3), tied or untied output heads. Positions come from the
attention mask (``cumsum(mask) - 1``), so a left- or right-padded row gives the same logits at
its tokens as the unpadded row.

Precision (``param_dtype``, ``compute_dtype``): weights are stored in ``param_dtype`` and every
matrix product runs in ``compute_dtype`` (bfloat16 on accelerators); RMSNorm, the attention
softmax, the rotary angles and the returned logits stay in float32, and LoRA adapters are
float32 whatever the base's dtype. ``remat="layer"`` recomputes each decoder layer's activations
in the backward pass instead of keeping them (``jax.checkpoint`` per layer): activation memory
then grows with one layer's worth plus the layer inputs, at about one extra forward's cost.
"""

import math

import jax
import jax.numpy as jnp
from flax import nnx

from utility_jax.finetune.config import LMConfig

__all__ = ["CausalLM", "last_logits_jit", "rope_inv_freq"]


def rope_inv_freq(cfg: LMConfig) -> jnp.ndarray:
    d = cfg.head_dim
    inv = 1.0 / (cfg.rope_theta ** (jnp.arange(0, d, 2, dtype=jnp.float32) / d))
    if cfg.rope_scaling is None:
        return inv
    s = dict(cfg.rope_scaling)
    factor, lo, hi, old = (
        s["factor"],
        s["low_freq_factor"],
        s["high_freq_factor"],
        s["original_max_position_embeddings"],
    )
    wavelen = 2 * math.pi / inv
    low_wl, high_wl = old / lo, old / hi
    scaled = jnp.where(wavelen > low_wl, inv / factor, inv)
    smooth = (old / wavelen - lo) / (hi - lo)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= high_wl) & (wavelen <= low_wl)
    return jnp.where(medium, smoothed, scaled)


def _rotate_half(x):
    h = x.shape[-1] // 2
    return jnp.concatenate([-x[..., h:], x[..., :h]], axis=-1)


class RMSNorm(nnx.Module):
    def __init__(self, dim: int, eps: float, param_dtype=jnp.float32):
        self.weight = nnx.Param(jnp.ones((dim,), param_dtype))
        self.eps = eps

    def __call__(self, x):
        dtype = x.dtype
        x = x.astype(jnp.float32)
        x = x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + self.eps)
        return (self.weight[...].astype(jnp.float32) * x).astype(dtype)


class Linear(nnx.Module):
    """``y = x W^T (+ b)`` with W stored as ``[out, in]``, the PyTorch layout of the checkpoints."""

    def __init__(self, d_in: int, d_out: int, bias: bool, rngs: nnx.Rngs, param_dtype=jnp.float32):
        w = jax.random.normal(rngs.params(), (d_out, d_in), jnp.float32) * d_in**-0.5
        self.weight = nnx.Param(w.astype(param_dtype))
        self.bias = nnx.Param(jnp.zeros((d_out,), param_dtype)) if bias else None
        self.lora_a = nnx.data(None)
        self.lora_b = nnx.data(None)
        self.lora_scale = 0.0

    def add_lora(self, rank: int, alpha: float, key) -> None:
        """Attach a LoRA adapter ``W + (alpha / rank) B A`` (``B`` starts at zero)."""
        d_out, d_in = self.weight[...].shape
        self.lora_a = nnx.data(
            nnx.LoRAParam(jax.random.normal(key, (rank, d_in), jnp.float32) * d_in**-0.5)
        )
        self.lora_b = nnx.data(nnx.LoRAParam(jnp.zeros((d_out, rank), jnp.float32)))
        self.lora_scale = alpha / rank

    def merge_lora(self) -> None:
        if self.lora_a is not None:
            w = self.weight[...]
            delta = self.lora_scale * self.lora_b[...] @ self.lora_a[...]
            self.weight[...] = (w.astype(jnp.float32) + delta).astype(w.dtype)
            self.lora_a = nnx.data(None)
            self.lora_b = nnx.data(None)

    def __call__(self, x):
        y = x @ self.weight[...].astype(x.dtype).T
        if self.lora_a is not None:  # float32 adapters, applied in the compute dtype
            a, b = self.lora_a[...].astype(x.dtype), self.lora_b[...].astype(x.dtype)
            y = y + ((x @ a.T) @ b.T) * jnp.asarray(self.lora_scale, x.dtype)
        return y + self.bias[...].astype(x.dtype) if self.bias is not None else y


class Attention(nnx.Module):
    def __init__(self, cfg: LMConfig, rngs: nnx.Rngs, param_dtype=jnp.float32):
        h, kv, d, e = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.head_dim,
            cfg.hidden_size,
        )
        self.cfg = cfg
        pd = param_dtype
        self.q_proj = Linear(e, h * d, cfg.attention_bias, rngs, pd)
        self.k_proj = Linear(e, kv * d, cfg.attention_bias, rngs, pd)
        self.v_proj = Linear(e, kv * d, cfg.attention_bias, rngs, pd)
        self.o_proj = Linear(h * d, e, False, rngs, pd)
        self.q_norm = RMSNorm(d, cfg.rms_norm_eps, pd) if cfg.qk_norm else None
        self.k_norm = RMSNorm(d, cfg.rms_norm_eps, pd) if cfg.qk_norm else None

    def __call__(self, x, cos, sin, bias):
        b, t, _ = x.shape
        c = self.cfg
        q = self.q_proj(x).reshape(b, t, c.num_attention_heads, c.head_dim)
        k = self.k_proj(x).reshape(b, t, c.num_key_value_heads, c.head_dim)
        v = self.v_proj(x).reshape(b, t, c.num_key_value_heads, c.head_dim)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        cos, sin = cos[:, :, None, :], sin[:, :, None, :]
        q = (q * cos + _rotate_half(q) * sin).astype(x.dtype)
        k = (k * cos + _rotate_half(k) * sin).astype(x.dtype)
        rep = c.num_attention_heads // c.num_key_value_heads
        k, v = jnp.repeat(k, rep, axis=2), jnp.repeat(v, rep, axis=2)
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32)
        scores = scores / math.sqrt(c.head_dim) + bias
        w = jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(v.dtype)
        out = jnp.einsum("bhqk,bkhd->bqhd", w, v).reshape(b, t, -1)
        return self.o_proj(out)


class MLP(nnx.Module):
    def __init__(self, cfg: LMConfig, rngs: nnx.Rngs, param_dtype=jnp.float32):
        e, i = cfg.hidden_size, cfg.intermediate_size
        self.gate_proj = Linear(e, i, False, rngs, param_dtype)
        self.up_proj = Linear(e, i, False, rngs, param_dtype)
        self.down_proj = Linear(i, e, False, rngs, param_dtype)

    def __call__(self, x):
        return self.down_proj(jax.nn.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nnx.Module):
    def __init__(self, cfg: LMConfig, rngs: nnx.Rngs, param_dtype=jnp.float32):
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, param_dtype)
        self.self_attn = Attention(cfg, rngs, param_dtype)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, param_dtype)
        self.mlp = MLP(cfg, rngs, param_dtype)

    def __call__(self, x, cos, sin, bias):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, bias)
        return x + self.mlp(self.post_attention_layernorm(x))


def _run_layer(layer, x, cos, sin, bias):
    return layer(x, cos, sin, bias)


#: ``remat`` settings: how much of the forward pass the backward pass recomputes
REMAT = ("none", "layer")


class CausalLM(nnx.Module):
    """``CausalLM(cfg, rngs)``; call with ``input_ids [b, t]`` and ``attention_mask [b, t]``.

    Keywords: ``param_dtype`` (the weights' storage), ``compute_dtype`` (the matrix products),
    ``remat`` (``"none"`` or ``"layer"``; see the module docstring)."""

    def __init__(
        self,
        cfg: LMConfig,
        rngs: nnx.Rngs,
        *,
        param_dtype=jnp.float32,
        compute_dtype=jnp.float32,
        remat: str = "none",
    ):
        if remat not in REMAT:
            raise ValueError(f"remat must be one of {REMAT}, got {remat!r}")
        self.cfg = cfg
        self.compute_dtype = jnp.dtype(compute_dtype).name
        self.remat = remat
        emb = jax.random.normal(rngs.params(), (cfg.vocab_size, cfg.hidden_size)) * 0.02
        self.embed_tokens = nnx.Param(emb.astype(param_dtype))
        self.layers = nnx.List(
            [DecoderLayer(cfg, rngs, param_dtype) for _ in range(cfg.num_hidden_layers)]
        )
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, param_dtype)
        self.lm_head = (
            None
            if cfg.tie_word_embeddings
            else Linear(cfg.hidden_size, cfg.vocab_size, False, rngs, param_dtype)
        )

    def hidden(self, input_ids, attention_mask=None):
        """The final-norm hidden states ``[b, t, hidden]`` (in the compute dtype)."""
        b, t = input_ids.shape
        mask = jnp.ones((b, t), bool) if attention_mask is None else attention_mask.astype(bool)
        pos = jnp.clip(jnp.cumsum(mask, axis=-1) - 1, 0)
        ang = pos[..., None].astype(jnp.float32) * rope_inv_freq(self.cfg)
        ang = jnp.concatenate([ang, ang], axis=-1)
        cos, sin = jnp.cos(ang), jnp.sin(ang)
        causal = jnp.tril(jnp.ones((t, t), bool))
        allowed = causal[None, None] & mask[:, None, None, :]
        bias = jnp.where(allowed, 0.0, jnp.finfo(jnp.float32).min)
        x = self.embed_tokens[...][input_ids].astype(self.compute_dtype)
        run = nnx.remat(_run_layer) if self.remat == "layer" else _run_layer
        for layer in self.layers:
            x = run(layer, x, cos, sin, bias)
        return self.norm(x)

    def project(self, h):
        """Logits (float32) from hidden states."""
        if self.lm_head is None:
            w = self.embed_tokens[...].astype(h.dtype)
            return (h @ w.T).astype(jnp.float32)
        return self.lm_head(h).astype(jnp.float32)

    def __call__(self, input_ids, attention_mask=None):
        return self.project(self.hidden(input_ids, attention_mask))

    def _linears(self):
        for layer in self.layers:
            a, m = layer.self_attn, layer.mlp
            yield from (a.q_proj, a.k_proj, a.v_proj, a.o_proj, m.gate_proj, m.up_proj, m.down_proj)

    def add_lora(self, rank: int = 8, alpha: float = 16.0, seed: int = 0) -> None:
        """LoRA adapters on every attention and MLP projection (train with ``wrt=nnx.LoRAParam``)."""
        key = jax.random.key(seed)
        for i, lin in enumerate(self._linears()):
            lin.add_lora(rank, alpha, jax.random.fold_in(key, i))

    def merge_lora(self) -> None:
        """Fold the adapters into the weights (before saving a plain checkpoint)."""
        for lin in self._linears():
            lin.merge_lora()

    def last_logits(self, input_ids, attention_mask):
        """Next-token logits at each row's last real token (left or right padding); the output
        head runs on those positions only, not on every token (``[b, vocab]``, not
        ``[b, t, vocab]``)."""
        h = self.hidden(input_ids, attention_mask)
        t = input_ids.shape[1]
        idx = (
            t - 1 - jnp.argmax(attention_mask[:, ::-1].astype(jnp.int32), axis=-1)
        )  # last 1 per row
        return self.project(jnp.take_along_axis(h, idx[:, None, None], axis=1)[:, 0])


@nnx.jit
def last_logits_jit(model: CausalLM, input_ids, attention_mask):
    """:meth:`CausalLM.last_logits`, jit-compiled (one compilation per padded shape)."""
    return model.last_logits(input_ids, attention_mask)
