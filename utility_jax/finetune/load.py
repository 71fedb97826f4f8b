"""Read and write Hugging Face checkpoints (``config.json`` + safetensors, also sharded)."""

import json
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding

from utility_jax.finetune.config import LMConfig
from utility_jax.finetune.model import CausalLM
from utility_jax.finetune.sharding import is_writer, spec_for, to_host

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint", "hf_param_names", "shard_model"]


class CheckpointError(ValueError):
    pass


def hf_param_names(model: CausalLM) -> dict[str, nnx.Param]:
    """Our parameters under their Hugging Face names."""
    out = {"model.embed_tokens.weight": model.embed_tokens, "model.norm.weight": model.norm.weight}
    if model.lm_head is not None:
        out["lm_head.weight"] = model.lm_head.weight
    for i, layer in enumerate(model.layers):
        p = f"model.layers.{i}."
        a = layer.self_attn
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            lin = getattr(a, proj)
            out[f"{p}self_attn.{proj}.weight"] = lin.weight
            if lin.bias is not None:
                out[f"{p}self_attn.{proj}.bias"] = lin.bias
        if a.q_norm is not None:
            out[f"{p}self_attn.q_norm.weight"] = a.q_norm.weight
            out[f"{p}self_attn.k_norm.weight"] = a.k_norm.weight
        for proj in ("gate_proj", "up_proj", "down_proj"):
            out[f"{p}mlp.{proj}.weight"] = getattr(layer.mlp, proj).weight
        out[f"{p}input_layernorm.weight"] = layer.input_layernorm.weight
        out[f"{p}post_attention_layernorm.weight"] = layer.post_attention_layernorm.weight
    return out


def _tensor_files(path: Path) -> dict[str, Path]:
    """Tensor name -> file, from the shard index or the single file."""
    index = path / "model.safetensors.index.json"
    if index.exists():
        wm = json.loads(index.read_text())["weight_map"]
        return {k: path / v for k, v in wm.items()}
    single = path / "model.safetensors"
    if not single.exists():
        raise CheckpointError(f"{path}: no model.safetensors or model.safetensors.index.json")
    from safetensors import safe_open

    with safe_open(str(single), framework="numpy") as f:
        return {k: single for k in f.keys()}


def _get(var):
    return var.get_value() if hasattr(var, "get_value") else var.value


def _set(var, value) -> None:
    if hasattr(var, "set_value"):
        var.set_value(value)
    else:  # pragma: no cover - older flax
        var.value = value


def checkpoint_dtype(path: str | Path):
    """The dtype a checkpoint was saved in (``config.json``'s ``torch_dtype`` / ``dtype``),
    float32 where it does not say."""
    cfg = json.loads((Path(path) / "config.json").read_text())
    name = cfg.get("dtype") or cfg.get("torch_dtype") or "float32"
    return jnp.dtype({"bfloat16": "bfloat16", "float16": "float16"}.get(str(name), "float32"))


def load_checkpoint(
    path: str | Path,
    *,
    dtype=jnp.float32,
    compute_dtype=None,
    mesh=None,
) -> CausalLM:
    """Build a :class:`CausalLM` and fill it from a local checkpoint directory.

    The model is first built on abstract shapes (no memory), then every weight is read into
    ``dtype`` (its storage; ``"auto"``: the checkpoint's own). On ``mesh``, each device reads
    only its own slice of each tensor from the safetensors file (by
    :data:`~utility_jax.finetune.sharding.RULES`), so no host ever holds the whole model.
    ``compute_dtype`` (default: ``dtype``) is the dtype of the matrix products.

    Raises:
      UnsupportedArchitecture: an architecture we do not implement.
      CheckpointError: a missing or mis-shaped weight (named, with its file).
    """
    from safetensors import safe_open

    path = Path(path)
    cfg = LMConfig.from_pretrained(path)
    dtype = checkpoint_dtype(path) if str(dtype) == "auto" else jnp.dtype(dtype)
    compute = dtype if compute_dtype is None else jnp.dtype(compute_dtype)
    model = nnx.eval_shape(
        lambda: CausalLM(cfg, nnx.Rngs(0), param_dtype=dtype, compute_dtype=compute)
    )
    files = _tensor_files(path)
    params = hf_param_names(model)
    missing = [k for k in params if k not in files]
    if missing:
        raise CheckpointError(
            f"{path}: missing weights {missing[:5]}{' ...' if len(missing) > 5 else ''}"
        )
    by_file: dict[Path, list[str]] = {}
    for k in params:
        by_file.setdefault(files[k], []).append(k)
    for f, names in by_file.items():
        with safe_open(str(f), framework="numpy") as fh:
            for k in names:
                want = tuple(_get(params[k]).shape)
                got = tuple(fh.get_slice(k).get_shape())
                if got != want:
                    raise CheckpointError(f"{f}: weight {k} has shape {got}, expected {want}")
                _set(params[k], _read(fh, k, want, dtype, mesh))
    return model


def _read(fh, name: str, shape, dtype, mesh):
    """One tensor as a JAX array of ``dtype``: whole, or (on ``mesh``) one slice per device."""
    if mesh is None:
        return jnp.asarray(fh.get_tensor(name), dtype)
    sharding = NamedSharding(mesh, spec_for(name, shape, mesh))
    sl = fh.get_slice(name)

    def shard(index):
        return np.asarray(sl[index]).astype(dtype)

    return jax.make_array_from_callback(shape, sharding, shard)


def save_checkpoint(
    model: CausalLM, out: str | Path, *, source: str | Path | None = None, dtype=None
) -> Path:
    """Write the model as ``model.safetensors`` (+ ``config.json`` and tokenizer files copied from
    ``source``), loadable by transformers and vLLM. ``dtype``: the saved dtype, by default the
    one the weights are stored in (a bfloat16 checkpoint loaded as bfloat16 is saved as
    bfloat16); LoRA adapters are folded in, in float32, first."""
    from safetensors.numpy import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # a plain checkpoint: LoRA adapters folded into the weights (the model itself is not changed)
    delta = {
        id(lin.weight): lin.lora_scale * (lin.lora_b[...] @ lin.lora_a[...])
        for lin in model._linears()
        if lin.lora_a is not None
    }
    dtype = jnp.dtype(model.embed_tokens[...].dtype if dtype is None else dtype)

    def host(v):
        x = v[...]
        return to_host(
            (x.astype(jnp.float32) + delta[id(v)] if id(v) in delta else x).astype(dtype)
        )

    tensors = {k: host(v) for k, v in hf_param_names(model).items()}  # every process gathers
    if not is_writer():
        return out
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    if source is not None:
        src = Path(source)
        for f in src.iterdir():
            if f.suffix in (".json", ".jinja", ".txt", ".model") and not f.name.startswith(
                "model.safetensors"
            ):
                if f.name == "config.json":
                    cfg = json.loads(f.read_text())
                    cfg["torch_dtype"] = cfg["dtype"] = dtype.name
                    (out / f.name).write_text(json.dumps(cfg, indent=2))
                else:
                    shutil.copy(f, out / f.name)
    return out


def shard_model(model: CausalLM, mesh, axis: str = "model") -> CausalLM:
    """Place the parameters on ``mesh``: every 2-D weight split along its first (output) dimension
    over mesh axis ``axis`` when it divides evenly, everything else replicated. XLA's SPMD
    partitioner then runs the jit-compiled forward across the devices; results are unchanged."""
    import jax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    n = mesh.shape[axis]
    for param in hf_param_names(model).values():
        x = param[...]
        spec = P(axis, None) if x.ndim == 2 and x.shape[0] % n == 0 else P()
        param[...] = jax.device_put(x, NamedSharding(mesh, spec))
    return model
