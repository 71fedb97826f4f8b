"""SFT step time and peak memory: our JAX/NNX step against a transformers/PyTorch step.

    python benchmarks/bench_sft.py                    # Qwen2.5-0.5B shape (~494M parameters)
    python benchmarks/bench_sft.py --preset small     # a 4-layer model: a quick check
    python benchmarks/bench_sft.py --batch 8 --seq 128 --steps 5   # on a GPU

The model is a random-weight Qwen2 with Qwen2.5-0.5B's shape (hidden 896, 24 layers, 14 heads, 2
KV heads, MLP 4864, vocabulary 151,936, tied embeddings: 494M), saved with ``save_pretrained`` and read
back by both frameworks. Both run the same step: the answer loss of utility control (cross-
entropy between a target {A, B} distribution and the next-token distribution renormalised over
the answer tokens, at each row's last token), AdamW (lr 1e-4), the same batch and sequence
length, float32. Full fine-tuning, then LoRA (rank 8 on every attention and MLP projection),
then the same in bfloat16 on our side only (``full_bf16``: float32 weights, bfloat16 products;
``lora_bf16``: a bfloat16 base with float32 adapters), against PyTorch's float32 rows.

Each (framework, mode) runs in its own subprocess so its peak resident memory (``ru_maxrss``)
is its own; step time is the mean of ``--steps`` steps after one untimed warm-up step (JAX's
warm-up includes compilation, reported apart). Ratios are JAX / PyTorch (below 1: JAX better).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRESETS = {
    "0.5b": dict(hidden=896, layers=24, heads=14, kv=2, mlp=4864, vocab=151936, tie=True),
    "small": dict(hidden=256, layers=4, heads=4, kv=2, mlp=1024, vocab=32000, tie=False),
}
LORA_RANK, LR = 8, 1e-4


def build(path: Path, p: dict) -> None:
    """A random Qwen2 of the preset's shape and a small locally trained tokenizer."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"])
    tok.train_from_iterator(["Option A or Option B? A B answer A answer B"] * 50, trainer)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|endoftext|>")
    hf.save_pretrained(path)
    cfg = Qwen2Config(
        vocab_size=p["vocab"],
        hidden_size=p["hidden"],
        intermediate_size=p["mlp"],
        num_hidden_layers=p["layers"],
        num_attention_heads=p["heads"],
        num_key_value_heads=p["kv"],
        max_position_embeddings=2048,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg)
    model.save_pretrained(path)
    n = sum(x.numel() for x in model.parameters())
    (path / "n_params.txt").write_text(str(n))


def _batch(batch: int, seq: int, vocab: int):
    import numpy as np

    r = np.random.default_rng(0)
    ids = r.integers(10, min(vocab, 300), size=(batch, seq)).astype("int32")
    return ids, np.ones((batch, seq), "int32"), r.random(batch).astype("float32")


def worker_jax(path: str, mode: str, batch: int, seq: int, steps: int) -> dict:
    """The library's own training step (``prepare_training``, ``train_step_fn``,
    ``jit_train_step``: the state donated), as ``train_sft`` runs it. ``*_bf16`` modes: LoRA on
    a bfloat16 base, or full fine-tuning with float32 weights and bfloat16 products."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from utility_jax.finetune.load import load_checkpoint
    from utility_jax.finetune.sft import (
        SFTConfig,
        answer_loss,
        jit_train_step,
        prepare_training,
        train_step_fn,
    )

    base, _, precision = mode.partition("_")
    bf16 = precision == "bf16"
    store = "bfloat16" if (bf16 and base == "lora") else "float32"
    model = load_checkpoint(path, dtype=store)
    cfg = SFTConfig(
        steps=1000,
        warmup=0,
        lr=LR,
        lora_rank=LORA_RANK if base == "lora" else 0,
        compute_dtype="bfloat16" if bf16 else "float32",
    )
    opt, wrt = prepare_training(model, cfg)
    graphdef, state = nnx.split((model, opt))
    a_ids, b_ids = jnp.array([5]), jnp.array([6])
    step = jit_train_step(train_step_fn(graphdef, answer_loss, wrt, a_ids, b_ids), state)
    vocab = model.cfg.vocab_size
    del model, opt
    ids, mask, tgt = (jnp.asarray(a) for a in _batch(batch, seq, vocab))
    t0 = time.perf_counter()
    loss, state = step(state, ids, mask, tgt)
    float(loss)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        loss, state = step(state, ids, mask, tgt)
        loss = float(loss)
    return {
        "step_s": (time.perf_counter() - t0) / steps,
        "first_step_s": first,
        "loss": loss,
        "device": str(jax.devices()[0]),
    }


def worker_torch(path: str, mode: str, batch: int, seq: int, steps: int) -> dict:
    import torch
    from transformers import Qwen2ForCausalLM

    torch.set_num_threads(os.cpu_count() or 1)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    model = Qwen2ForCausalLM.from_pretrained(path, torch_dtype=torch.float32).to(dev)

    class LoRA(torch.nn.Module):
        def __init__(self, lin: torch.nn.Linear):
            super().__init__()
            self.lin = lin
            self.a = torch.nn.Parameter(
                torch.randn(LORA_RANK, lin.in_features) / lin.in_features**0.5
            )
            self.b = torch.nn.Parameter(torch.zeros(lin.out_features, LORA_RANK))
            self.scale = 16.0 / LORA_RANK

        def forward(self, x):
            return self.lin(x) + self.scale * (x @ self.a.T) @ self.b.T

    if mode == "lora":
        for p in model.parameters():
            p.requires_grad_(False)
        for layer in model.model.layers:
            for parent, names in (
                (layer.self_attn, ("q_proj", "k_proj", "v_proj", "o_proj")),
                (layer.mlp, ("gate_proj", "up_proj", "down_proj")),
            ):
                for n in names:
                    setattr(parent, n, LoRA(getattr(parent, n)).to(dev))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.0)
    ids, mask, tgt = (
        torch.as_tensor(a).to(dev) for a in _batch(batch, seq, model.config.vocab_size)
    )
    ids, mask = ids.long(), mask.long()

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, -1].float()
        logp = torch.log_softmax(logits, -1)
        la, lb = logp[:, 5], logp[:, 6]
        norm = torch.logaddexp(la, lb)
        loss = -(tgt * (la - norm) + (1 - tgt) * (lb - norm)).mean()
        loss.backward()
        opt.step()
        return float(loss)

    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    if dev == "cuda":
        torch.cuda.synchronize()
    return {
        "step_s": (time.perf_counter() - t0) / steps,
        "first_step_s": first,
        "loss": loss,
        "device": dev,
    }


def _run_worker(framework, path, mode, a) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        framework,
        "--path",
        str(path),
        "--mode",
        mode,
        "--batch",
        str(a.batch),
        "--seq",
        str(a.seq),
        "--steps",
        str(a.steps),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    last = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not last:
        why = "killed (out of memory?)" if out.returncode in (-9, 137) else f"exit {out.returncode}"
        raise RuntimeError(f"{framework}/{mode} failed, {why}:\n{out.stderr[-3000:]}")
    return json.loads(last[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="0.5b")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--modes", default="full,lora,full_bf16,lora_bf16")
    ap.add_argument("--worker", choices=["jax", "torch"])
    ap.add_argument("--path")
    ap.add_argument("--mode")
    a = ap.parse_args()
    if a.worker:
        fn = worker_jax if a.worker == "jax" else worker_torch
        res = fn(a.path, a.mode, a.batch, a.seq, a.steps)
        res["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(json.dumps(res))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model"
        build(path, PRESETS[a.preset])
        n = int((path / "n_params.txt").read_text())
        print(
            f"Qwen2 random weights, preset {a.preset}: {n / 1e6:.0f}M parameters; batch "
            f"{a.batch} x {a.seq} tokens, AdamW, float32, {a.steps} timed steps"
        )
        print(
            f"{'mode':9s} {'framework':9s} {'step s':>9s} {'first s':>9s} {'peak RSS GB':>12s}"
            f" {'device':>8s}"
        )
        torch_runs = {}
        for mode in a.modes.split(","):
            base = mode.partition("_")[0]  # PyTorch runs float32 for every row
            if base not in torch_runs:
                torch_runs[base] = _run_worker("torch", path, base, a)
            res = {"torch": torch_runs[base], "jax": _run_worker("jax", path, mode, a)}
            for fw, r in res.items():
                print(
                    f"{mode:9s} {fw:9s} {r['step_s']:9.3f} {r['first_step_s']:9.2f} "
                    f"{r['peak_rss_gb']:12.2f} {r['device']:>8s}"
                )
            j, t = res["jax"], res["torch"]
            print(
                f"{mode:9s} ratio JAX/PyTorch: step time {j['step_s'] / t['step_s']:.2f}, "
                f"peak memory {j['peak_rss_gb'] / t['peak_rss_gb']:.2f}"
            )


if __name__ == "__main__":
    main()
