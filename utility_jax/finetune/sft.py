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
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from utility_jax.finetune.sharding import (
    batch_sharding,
    data_parallel_size,
    shard_module,
    state_shardings,
)

__all__ = [
    "SFTConfig",
    "answer_loss",
    "prepare_training",
    "train_sft",
    "train_step_fn",
    "jit_train_step",
]


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
    remat: str = "none"  # none | layer: recompute each decoder layer in the backward pass
    compute_dtype: str = "float32"  # float32 | bfloat16: the products (weights stay as stored)
    save_every: int = 0  # > 0 (with state_dir): save the train state every N steps, resume from it


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


def _batch_order(n: int, bs: int, seed_rng: np.random.Generator, steps: int) -> np.ndarray:
    """``[steps, bs]`` the examples of every step: seeded shuffles, a fresh one whenever the
    current one runs out (the same order on a resumed run)."""
    order, pos, out = seed_rng.permutation(n), 0, []
    for _ in range(steps):
        if pos + bs > n:
            order, pos = seed_rng.permutation(n), 0
        out.append(order[pos : pos + bs])
        pos += bs
    return np.stack(out) if out else np.zeros((0, bs), int)


def trainable(cfg: SFTConfig) -> type:
    """The variables ``cfg`` trains: the LoRA adapters (``lora_rank > 0``) or every weight."""
    return nnx.LoRAParam if cfg.lora_rank > 0 else nnx.Param


def prepare_training(model, cfg: SFTConfig, mesh=None):
    """The model set up for ``cfg`` (LoRA adapters, remat, compute dtype) and its optimizer:
    ``(optimizer, wrt)``; on ``mesh``, both placed by :data:`~utility_jax.finetune.sharding.RULES`
    (moments split like their parameters)."""
    wrt = trainable(cfg)
    if cfg.lora_rank > 0:
        model.add_lora(cfg.lora_rank, cfg.lora_alpha, seed=cfg.seed)
    model.remat = cfg.remat
    model.compute_dtype = jnp.dtype(cfg.compute_dtype).name
    warmup = max(0, min(cfg.warmup, cfg.steps - 1))
    sched = optax.warmup_cosine_decay_schedule(0.0, cfg.lr, warmup, max(cfg.steps, warmup + 1))
    opt = nnx.Optimizer(model, optax.adamw(sched, weight_decay=cfg.weight_decay), wrt=wrt)
    if mesh is not None:
        shard_module(model, mesh)
        shard_module(opt, mesh)
    return opt, wrt


def train_step_fn(graphdef, loss_fn, wrt, a_ids, b_ids):
    """The pure training step ``(state, ids, mask, target) -> (loss, state)`` over the split
    ``(model, optimizer)`` state: the function that :func:`train_sft` runs and that
    :mod:`utility_jax.finetune.plan` compiles on abstract shapes."""

    def step(state, x, m, t):
        model, opt = nnx.merge(graphdef, state)
        diff = nnx.DiffState(0, wrt)
        loss, grads = nnx.value_and_grad(loss_fn, argnums=diff)(model, x, m, t, a_ids, b_ids)
        opt.update(model, grads)
        return loss, nnx.state((model, opt))

    return step


def jit_train_step(step, state, mesh=None):
    """``step`` compiled with the state donated; on ``mesh``, the state keeps its shardings and
    the batch is split over the data-parallel axes."""
    if mesh is None:
        return jax.jit(step, donate_argnums=0)
    sh = state_shardings(state, mesh)
    b2, b1 = batch_sharding(mesh, 2), batch_sharding(mesh, 1)
    rep = NamedSharding(mesh, P())
    return jax.jit(step, in_shardings=(sh, b2, b2, b1), out_shardings=(rep, sh), donate_argnums=0)


def _checkpointer(cfg: SFTConfig, state_dir):
    if not (cfg.save_every > 0 and state_dir is not None):
        return None
    import orbax.checkpoint as ocp

    opts = ocp.CheckpointManagerOptions(max_to_keep=2, save_interval_steps=cfg.save_every)
    return ocp.CheckpointManager(Path(state_dir).absolute(), options=opts)


def _restore(mngr, state):
    """The latest saved train state (with the shardings of ``state``) and its step, or
    ``(state, 0)``."""
    step = None if mngr is None else mngr.latest_step()
    if step is None:
        return state, 0
    import orbax.checkpoint as ocp

    pure = nnx.to_pure_dict(state)
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), pure
    )
    restored = mngr.restore(step, args=ocp.args.StandardRestore(abstract))
    nnx.replace_by_pure_dict(state, restored)
    return state, int(step)


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
    mesh=None,
    state_dir=None,
) -> list[dict]:
    """Tune ``model`` in place; returns the training log (loss, and validation agreement).

    ``cfg.loss="token"`` samples one target letter per example (seeded) and trains plain next-token
    cross-entropy on it, as the paper likely did; ``cfg.lora_rank > 0`` trains LoRA adapters only.
    ``on_step(step, model)`` is called after every step (e.g. to save checkpoints).
    ``mesh``: a :func:`~utility_jax.finetune.sharding.make_mesh` mesh to shard the model, the
    optimizer state and the batches over. ``state_dir`` with ``cfg.save_every > 0``: the whole
    train state (parameters, optimizer, step; the data order follows from the seed) is saved
    there with Orbax every ``save_every`` steps, and the same call after a kill resumes from the
    last save. The log then covers the steps this call ran.
    """
    a_ids, b_ids = jnp.asarray(a_ids), jnp.asarray(b_ids)
    if cfg.loss not in ("answer", "token"):
        raise ValueError(f"loss must be 'answer' or 'token', got {cfg.loss!r}")
    rng = np.random.default_rng(cfg.seed)
    if cfg.loss == "token":
        target = (rng.random(len(target)) < np.asarray(target)).astype(np.float32)
    loss_fn = answer_loss if cfg.loss == "answer" else token_loss
    opt, wrt = prepare_training(model, cfg, mesh)
    graphdef, state = nnx.split((model, opt))
    step = jit_train_step(train_step_fn(graphdef, loss_fn, wrt, a_ids, b_ids), state, mesh)
    mngr = _checkpointer(cfg, state_dir)
    state, start = _restore(mngr, state)
    nnx.update((model, opt), state)

    @nnx.jit
    def q_a(model, x, m):
        return jnp.exp(_log_q(model, x, m, a_ids, b_ids)[0])

    n = len(ids)
    bs = min(cfg.batch_size, n)
    if mesh is not None and bs % data_parallel_size(mesh):
        raise ValueError(
            f"sft.batch_size={bs} (or the number of examples) must be a multiple of the mesh's "
            f"data-parallel size, data x fsdp = {data_parallel_size(mesh)}"
        )
    batches, log = _batch_order(n, bs, rng, cfg.steps), []
    bar = progress(total=cfg.steps, initial=start, desc="SFT", unit="step") if progress else None
    for s in range(start, cfg.steps):
        b = batches[s]
        x, m, t = jnp.asarray(ids[b]), jnp.asarray(mask[b]), jnp.asarray(target[b], jnp.float32)
        loss, state = step(state, x, m, t)
        nnx.update((model, opt), state)
        rec = {"step": s + 1, "loss": float(loss)}
        if mngr is not None:
            mngr.save(s + 1, args=_save_args(state))
        if val is not None and ((s + 1) % cfg.eval_every == 0 or s + 1 == cfg.steps):
            rec["val_agreement"] = _agreement(lambda x, m: q_a(model, x, m), val, bs)
        log.append(rec)
        if on_step is not None:
            on_step(s + 1, model)
        if bar is not None:
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in rec.items() if k != "step"})
    if mngr is not None:
        mngr.wait_until_finished()
        mngr.close()
    if bar is not None:
        bar.close()
    return log


def _save_args(state):
    import orbax.checkpoint as ocp

    return ocp.args.StandardSave(nnx.to_pure_dict(state))
