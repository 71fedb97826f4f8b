"""The architecture settings our NNX model needs, read from a checkpoint's ``config.json``."""

import dataclasses
import json
from pathlib import Path
from typing import Any

__all__ = ["LMConfig", "UnsupportedArchitecture", "SUPPORTED"]

#: ``model_type`` values we implement: Llama (incl. Llama-3 RoPE scaling), Mistral, Qwen2/2.5, Qwen3.
SUPPORTED = ("llama", "mistral", "qwen2", "qwen3")


class UnsupportedArchitecture(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class LMConfig:
    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    rope_scaling: tuple | None  # a hashable view of the llama3 scaling dict, or None
    tie_word_embeddings: bool
    attention_bias: bool  # bias on q, k, v projections (Qwen2)
    qk_norm: bool  # RMSNorm on queries and keys per head (Qwen3)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config.json") -> "LMConfig":
        mt = d.get("model_type")
        if mt not in SUPPORTED:
            raise UnsupportedArchitecture(
                f"{source}: model_type {mt!r} is not supported (supported: {', '.join(SUPPORTED)})"
            )
        heads = int(d["num_attention_heads"])
        head_dim = d.get("head_dim") or d["hidden_size"] // heads
        rs = d.get("rope_scaling") or (
            d.get("rope_parameters") if isinstance(d.get("rope_parameters"), dict) else None
        )
        theta = d.get("rope_theta")
        if theta is None and isinstance(d.get("rope_parameters"), dict):
            theta = d["rope_parameters"].get("rope_theta")
        scaling = None
        if rs:
            kind = rs.get("rope_type", rs.get("type", "default"))
            if kind == "llama3":
                scaling = (
                    ("factor", float(rs["factor"])),
                    ("low_freq_factor", float(rs["low_freq_factor"])),
                    ("high_freq_factor", float(rs["high_freq_factor"])),
                    (
                        "original_max_position_embeddings",
                        int(rs["original_max_position_embeddings"]),
                    ),
                )
            elif kind not in ("default", None):
                raise UnsupportedArchitecture(
                    f"{source}: rope scaling type {kind!r} is not supported (llama3 is)"
                )
        return cls(
            model_type=mt,
            vocab_size=int(d["vocab_size"]),
            hidden_size=int(d["hidden_size"]),
            intermediate_size=int(d["intermediate_size"]),
            num_hidden_layers=int(d["num_hidden_layers"]),
            num_attention_heads=heads,
            num_key_value_heads=int(d.get("num_key_value_heads") or heads),
            head_dim=int(head_dim),
            rms_norm_eps=float(d.get("rms_norm_eps", 1e-6)),
            rope_theta=float(theta if theta is not None else 10000.0),
            rope_scaling=scaling,
            tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
            attention_bias=bool(d.get("attention_bias", mt == "qwen2")),
            qk_norm=mt == "qwen3",
        )

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "LMConfig":
        p = Path(path) / "config.json"
        if not p.exists():
            raise FileNotFoundError(f"{p}: no config.json in the checkpoint directory")
        return cls.from_dict(json.loads(p.read_text()), source=str(p))
