"""A decoder-only transformer in Flax NNX: Llama, Llama-3 (RoPE scaling), Mistral, Qwen2, Qwen3.

Matches the transformers (PyTorch) implementations: pre-norm RMSNorm blocks, grouped-query
attention with rotary embeddings in the "rotate half" layout, SwiGLU MLPs, optional q/k/v biases
(Qwen2) and per-head q/k RMSNorm (Qwen3), tied or untied output heads. Positions come from the
attention mask (``cumsum(mask) - 1``), so a left- or right-padded row gives the same logits at
its tokens as the unpadded row.
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
    def __init__(self, dim: int, eps: float):
        self.weight = nnx.Param(jnp.ones((dim,), jnp.float32))
        self.eps = eps

    def __call__(self, x):
        dtype = x.dtype
        x = x.astype(jnp.float32)
        x = x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + self.eps)
        return (self.weight[...] * x).astype(dtype)


class Linear(nnx.Module):
    """``y = x W^T (+ b)`` with W stored as ``[out, in]``, the PyTorch layout of the checkpoints."""

    def __init__(self, d_in: int, d_out: int, bias: bool, rngs: nnx.Rngs):
        self.weight = nnx.Param(
            jax.random.normal(rngs.params(), (d_out, d_in), jnp.float32) * d_in**-0.5
        )
        self.bias = nnx.Param(jnp.zeros((d_out,), jnp.float32)) if bias else None
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
            self.weight[...] = (
                self.weight[...] + self.lora_scale * self.lora_b[...] @ self.lora_a[...]
            )
            self.lora_a = nnx.data(None)
            self.lora_b = nnx.data(None)

    def __call__(self, x):
        y = x @ self.weight[...].T
        if self.lora_a is not None:
            y = y + self.lora_scale * (x @ self.lora_a[...].T) @ self.lora_b[...].T
        return y + self.bias[...] if self.bias is not None else y


class Attention(nnx.Module):
    def __init__(self, cfg: LMConfig, rngs: nnx.Rngs):
        h, kv, d, e = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.head_dim,
            cfg.hidden_size,
        )
        self.cfg = cfg
        self.q_proj = Linear(e, h * d, cfg.attention_bias, rngs)
        self.k_proj = Linear(e, kv * d, cfg.attention_bias, rngs)
        self.v_proj = Linear(e, kv * d, cfg.attention_bias, rngs)
        self.o_proj = Linear(h * d, e, False, rngs)
        self.q_norm = RMSNorm(d, cfg.rms_norm_eps) if cfg.qk_norm else None
        self.k_norm = RMSNorm(d, cfg.rms_norm_eps) if cfg.qk_norm else None

    def __call__(self, x, cos, sin, bias):
        b, t, _ = x.shape
        c = self.cfg
        q = self.q_proj(x).reshape(b, t, c.num_attention_heads, c.head_dim)
        k = self.k_proj(x).reshape(b, t, c.num_key_value_heads, c.head_dim)
        v = self.v_proj(x).reshape(b, t, c.num_key_value_heads, c.head_dim)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        cos, sin = cos[:, :, None, :], sin[:, :, None, :]
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        rep = c.num_attention_heads // c.num_key_value_heads
        k, v = jnp.repeat(k, rep, axis=2), jnp.repeat(v, rep, axis=2)
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(c.head_dim) + bias
        w = jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(v.dtype)
        out = jnp.einsum("bhqk,bkhd->bqhd", w, v).reshape(b, t, -1)
        return self.o_proj(out)


class MLP(nnx.Module):
    def __init__(self, cfg: LMConfig, rngs: nnx.Rngs):
        self.gate_proj = Linear(cfg.hidden_size, cfg.intermediate_size, False, rngs)
        self.up_proj = Linear(cfg.hidden_size, cfg.intermediate_size, False, rngs)
        self.down_proj = Linear(cfg.intermediate_size, cfg.hidden_size, False, rngs)

    def __call__(self, x):
        return self.down_proj(jax.nn.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nnx.Module):
    def __init__(self, cfg: LMConfig, rngs: nnx.Rngs):
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg, rngs)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg, rngs)

    def __call__(self, x, cos, sin, bias):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, bias)
        return x + self.mlp(self.post_attention_layernorm(x))


class CausalLM(nnx.Module):
    """``CausalLM(cfg, rngs)``; call with ``input_ids [b, t]`` and ``attention_mask [b, t]``."""

    def __init__(self, cfg: LMConfig, rngs: nnx.Rngs):
        self.cfg = cfg
        self.embed_tokens = nnx.Param(
            jax.random.normal(rngs.params(), (cfg.vocab_size, cfg.hidden_size)) * 0.02
        )
        self.layers = nnx.List([DecoderLayer(cfg, rngs) for _ in range(cfg.num_hidden_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.lm_head = (
            None
            if cfg.tie_word_embeddings
            else Linear(cfg.hidden_size, cfg.vocab_size, False, rngs)
        )

    def __call__(self, input_ids, attention_mask=None):
        b, t = input_ids.shape
        mask = jnp.ones((b, t), bool) if attention_mask is None else attention_mask.astype(bool)
        pos = jnp.clip(jnp.cumsum(mask, axis=-1) - 1, 0)
        ang = pos[..., None].astype(jnp.float32) * rope_inv_freq(self.cfg)
        ang = jnp.concatenate([ang, ang], axis=-1)
        cos, sin = jnp.cos(ang), jnp.sin(ang)
        causal = jnp.tril(jnp.ones((t, t), bool))
        allowed = causal[None, None] & mask[:, None, None, :]
        bias = jnp.where(allowed, 0.0, jnp.finfo(jnp.float32).min)
        x = self.embed_tokens[...][input_ids]
        for layer in self.layers:
            x = layer(x, cos, sin, bias)
        x = self.norm(x)
        if self.lm_head is None:
            return x @ self.embed_tokens[...].T
        return self.lm_head(x)

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
        """Next-token logits at each row's last real token (left or right padding)."""
        logits = self(input_ids, attention_mask)
        t = input_ids.shape[1]
        idx = (
            t - 1 - jnp.argmax(attention_mask[:, ::-1].astype(jnp.int32), axis=-1)
        )  # last 1 per row
        return jnp.take_along_axis(logits, idx[:, None, None], axis=1)[:, 0]


@nnx.jit
def last_logits_jit(model: CausalLM, input_ids, attention_mask):
    """:meth:`CausalLM.last_logits`, jit-compiled (one compilation per padded shape)."""
    return model.last_logits(input_ids, attention_mask)
