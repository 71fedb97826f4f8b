r"""Supervised fine-tuning toward target preferences (utility control, SPEC section 6).

Training examples are forced-choice prompts (both orders of each training pair) with a target
probability of answering "A". The loss is the cross-entropy between the target {A, B}
distribution and the model's next-token distribution renormalised over the answer tokens:

.. math:: \ell = -[t \log q_A + (1 - t) \log q_B],\quad
          q_A = \frac{\sum_{a \in A} p(a)}{\sum_{a \in A} p(a) + \sum_{b \in B} p(b)}

Full fine-tuning with AdamW and a warm-up + cosine schedule; a seeded shuffle; a validation
agreement (share of validation prompts whose majority matches the target's) on a separate set.
"""

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

__all__ = ["SFTConfig", "answer_loss", "train_sft"]


@dataclasses.dataclass(frozen=True)
class SFTConfig:
    steps: int = 250
    batch_size: int = 32
    lr: float = 3e-3
    warmup: int = 20
    weight_decay: float = 0.0
    seed: int = 0
    eval_every: int = 50
    loss: str = "answer"  # answer: CE against the target {A, B} distribution; token: plain SFT on sampled letters
    lora_rank: int = 0  # > 0: train LoRA adapters of this rank instead of every weight
    lora_alpha: float = 16.0


def _answer_logps(model, ids, mask, a_ids, b_ids):
    """log P("A") and log P("B") over the whole vocabulary, summed over their spellings."""
    logits = model.last_logits(ids, mask).astype(jnp.float32)
    logp = jax.nn.log_softmax(logits, axis=-1)
    return jax.nn.logsumexp(logp[:, a_ids], axis=-1), jax.nn.logsumexp(logp[:, b_ids], axis=-1)


def _log_q(model, ids, mask, a_ids, b_ids):
    la, lb = _answer_logps(model, ids, mask, a_ids, b_ids)
    norm = jnp.logaddexp(la, lb)
    return la - norm, lb - norm


def answer_loss(model, ids, mask, target, a_ids, b_ids):
    """Mean cross-entropy between target P(A) and the model's renormalised {A, B} distribution."""
    lqa, lqb = _log_q(model, ids, mask, a_ids, b_ids)
    return -jnp.mean(target * lqa + (1 - target) * lqb)


def token_loss(model, ids, mask, letter_is_a, a_ids, b_ids):
    """Plain token-level SFT: -log p(sampled target letter) over the whole vocabulary."""
    la, lb = _answer_logps(model, ids, mask, a_ids, b_ids)
    return -jnp.mean(jnp.where(letter_is_a > 0.5, la, lb))


def _agreement(q_a, val, bs: int) -> float:
    """The share of validation examples whose tuned answer (P(A) >= 0.5) matches the target's."""
    vx, vm, vt = val
    q = np.concatenate(
        [
            np.asarray(q_a(jnp.asarray(vx[i : i + bs]), jnp.asarray(vm[i : i + bs])))
            for i in range(0, len(vx), bs)
        ]
    )
    return float(np.mean((q >= 0.5) == (vt >= 0.5)))


def train_sft(
    model,
    ids: np.ndarray,
    mask: np.ndarray,
    target: np.ndarray,
    a_ids,
    b_ids,
    cfg: SFTConfig = SFTConfig(),
    *,
    val: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    progress: Callable | None = None,
    on_step: Callable[[int, object], None] | None = None,
) -> list[dict]:
    """Tune ``model`` in place; returns the training log (loss, and validation agreement).

    ``cfg.loss="token"`` samples one target letter per example (seeded) and trains plain next-token
    cross-entropy on it, as the paper likely did; ``cfg.lora_rank > 0`` trains LoRA adapters only.
    ``on_step(step, model)`` is called after every step (e.g. to save checkpoints).
    """
    a_ids, b_ids = jnp.asarray(a_ids), jnp.asarray(b_ids)
    if cfg.loss not in ("answer", "token"):
        raise ValueError(f"loss must be 'answer' or 'token', got {cfg.loss!r}")
    rng = np.random.default_rng(cfg.seed)
    if cfg.loss == "token":
        target = (rng.random(len(target)) < np.asarray(target)).astype(np.float32)
    loss_fn = answer_loss if cfg.loss == "answer" else token_loss
    wrt = nnx.Param
    if cfg.lora_rank > 0:
        model.add_lora(cfg.lora_rank, cfg.lora_alpha, seed=cfg.seed)
        wrt = nnx.LoRAParam
    warmup = max(0, min(cfg.warmup, cfg.steps - 1))
    sched = optax.warmup_cosine_decay_schedule(0.0, cfg.lr, warmup, max(cfg.steps, warmup + 1))
    opt = nnx.Optimizer(model, optax.adamw(sched, weight_decay=cfg.weight_decay), wrt=wrt)

    @nnx.jit
    def step(model, opt, x, m, t):
        diff = nnx.DiffState(0, wrt)
        loss, grads = nnx.value_and_grad(loss_fn, argnums=diff)(model, x, m, t, a_ids, b_ids)
        opt.update(model, grads)
        return loss

    @nnx.jit
    def q_a(model, x, m):
        return jnp.exp(_log_q(model, x, m, a_ids, b_ids)[0])

    n = len(ids)
    bs = min(cfg.batch_size, n)
    order, pos, log = rng.permutation(n), 0, []
    bar = progress(total=cfg.steps, desc="SFT", unit="step") if progress else None
    for s in range(cfg.steps):
        if pos + bs > n:
            order, pos = rng.permutation(n), 0
        b = order[pos : pos + bs]
        pos += bs
        loss = float(
            step(
                model,
                opt,
                jnp.asarray(ids[b]),
                jnp.asarray(mask[b]),
                jnp.asarray(target[b], jnp.float32),
            )
        )
        rec = {"step": s + 1, "loss": loss}
        if val is not None and ((s + 1) % cfg.eval_every == 0 or s + 1 == cfg.steps):
            rec["val_agreement"] = _agreement(lambda x, m: q_a(model, x, m), val, bs)
        log.append(rec)
        if on_step is not None:
            on_step(s + 1, model)
        if bar is not None:
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in rec.items() if k != "step"})
    if bar is not None:
        bar.close()
    return log
