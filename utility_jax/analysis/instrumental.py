r"""Instrumental values over two-step Markov processes (SPEC section 5).

Each process has start states whose transitions lead to terminal states. The outcomes are
rollout prefixes: a start state alone, and a start state followed by a terminal state (texts
joined with ``" -> "``, the reference's format). If the model values start states for where they
lead, then for each start state :math:`s` of process :math:`m`

.. math:: U(s) \approx R + \gamma \sum_t p(t \mid s)\, V(s \to t), \qquad \gamma = 0.99.

Two scorings (``analysis.scoring``):

* ``ours``: :math:`V(s \to t) = U(s \to t)` and one reward :math:`R_m` per process (its
  least-squares value), so the score, the mean absolute residual over start states, has a closed
  form and measures only how start states track the expected value of where they lead.
* ``reference`` (``evaluate_instrumental_values.py``): a reward :math:`R` and a value :math:`V`
  per prefix, both free except :math:`R = 0` on start states, fitted by Adam (lr 0.01, 1,000
  steps, from 0) to the Bellman loss :math:`\mathrm{mean}(V_{new} - V)^2` plus 0.1 x the
  matching loss :math:`\mathrm{mean}(V_{new} - U)^2`, with
  :math:`V_{new}(s) = R(s) + \gamma\, E[V(\text{next})]`; the score is the mean of
  :math:`|U - V_{new}|` over every prefix (start states and rollouts), averaged over processes.
  The reference estimates :math:`E[V(\text{next})]` from 100 sampled rollouts; we use the
  transition probabilities themselves (the limit of that estimate).

The control ("unnatural") processes have the same texts with other transition probabilities;
the same utilities scored against them should fit worse.
"""

import dataclasses
from pathlib import Path

import numpy as np

from utility_jax.analysis.draws import fmt, interval, paired_draws
from utility_jax.analysis.harness import Task, opening
from utility_jax.analysis.inputs import read_input
from utility_jax.core.simulate import planted_utilities
from utility_jax.io.outcomes import Outcome, OutcomeSet

__all__ = [
    "load_processes",
    "swap_start_transitions",
    "rollout_outcomes",
    "instrumental_score",
    "reference_instrumental_score",
    "Config",
    "run",
    "plot",
    "summary",
]

#: natural range of each reported number (intervals are clipped to it)
BOUNDS = {"score": (0.0, None), "start_gap_correlation": (-1.0, 1.0)}


def load_processes(path: str | Path = "default") -> list[dict]:
    """Markov processes in the reference's ``markov_processes*.json`` schema."""
    path, obj = read_input(path, "markov_processes.json", "Markov process file")
    try:
        procs = obj["MarkovProcesses"]
    except (KeyError, TypeError) as e:
        raise ValueError(f"{path}: expected {{'MarkovProcesses': [...]}} ({e!r})") from e
    for k, p in enumerate(procs):
        for field in ("states", "transitions"):
            if field not in p:
                raise ValueError(f"{path}: MarkovProcesses[{k}] ({p.get('name')}) lacks {field!r}")
        for s, nxt in p["transitions"].items():
            tot = sum(float(q) for _, q in nxt)
            if abs(tot - 1) > 1e-6:
                raise ValueError(
                    f"{path}: MarkovProcesses[{k}] state {s}: probabilities sum to {tot}"
                )
    return procs


def swap_start_transitions(procs: list[dict]) -> list[dict]:
    """The control condition for processes without a reference control file: every process's
    transition rows permuted cyclically over its start states (state 0 gets 1's row...)."""
    out = []
    for p in procs:
        keys = sorted(p["transitions"], key=int)
        rows = [p["transitions"][k] for k in keys]
        q = dict(p)
        q["transitions"] = {k: rows[(i + 1) % len(rows)] for i, k in enumerate(keys)}
        out.append(q)
    return out


def rollout_outcomes(procs: list[dict]) -> tuple[list[str], list[dict]]:
    """Outcome texts (start states, then start -> terminal rollouts) and an index per process:
    ``{"start": {sid: idx}, "next": {sid: {tid: idx}}}``."""
    texts, index = [], []
    for p in procs:
        obs = {str(s["id"]): s["observation"] for s in p["states"]}
        ix = {"start": {}, "next": {}}
        for sid, nxt in p["transitions"].items():
            for t in [obs[sid]] + [f"{obs[sid]} -> {obs[str(t)]}" for t, _ in nxt]:
                if t not in texts:
                    texts.append(t)
            ix["start"][sid] = texts.index(obs[sid])
            ix["next"][sid] = {str(t): texts.index(f"{obs[sid]} -> {obs[str(t)]}") for t, _ in nxt}
        index.append(ix)
    return texts, index


def instrumental_score(u, procs: list[dict], index: list[dict], gamma: float = 0.99) -> dict:
    """Mean absolute residual of ``U(s) = R_m + gamma E[U(s -> t)]`` (per-process R_m)."""
    u = np.asarray(u, dtype=np.float64)
    resid, d_u, d_e = [], [], []
    for p, ix in zip(procs, index, strict=True):
        starts = sorted(p["transitions"], key=int)
        us = np.array([u[ix["start"][s]] for s in starts])
        ev = np.array(
            [
                sum(float(q) * u[ix["next"][s][str(t)]] for t, q in p["transitions"][s])
                for s in starts
            ]
        )
        r = np.mean(us - gamma * ev)
        resid.extend(np.abs(us - r - gamma * ev))
        if len(starts) == 2:
            d_u.append(us[0] - us[1])
            d_e.append(gamma * (ev[0] - ev[1]))
    out = {"score": float(np.mean(resid)), "n_start_states": len(resid)}
    if len(d_u) >= 3:
        out["start_gap_correlation"] = float(np.corrcoef(d_u, d_e)[0, 1])
    return out


def _reference_arrays(procs: list[dict], index: list[dict]):
    """Per process, padded to a common size: the outcome index of each prefix, a mask, the start
    states and the transition matrix between prefixes (``[M, S]``, ``[M, S]``, ``[M, S]``,
    ``[M, S, S]``)."""
    per = []
    for p, ix in zip(procs, index, strict=True):
        nodes, start, edges = [], [], []
        for sid in sorted(p["transitions"], key=int):
            s_local = len(nodes)
            nodes.append(ix["start"][sid])
            start.append(True)
            for t, q in p["transitions"][sid]:
                edges.append((s_local, len(nodes), float(q)))
                nodes.append(ix["next"][sid][str(t)])
                start.append(False)
        per.append((nodes, start, edges))
    size = max(len(n) for n, _, _ in per)
    m = len(per)
    idx = np.zeros((m, size), np.int32)
    mask = np.zeros((m, size), bool)
    is_start = np.zeros((m, size), bool)
    trans = np.zeros((m, size, size))
    for k, (nodes, start, edges) in enumerate(per):
        idx[k, : len(nodes)] = nodes
        mask[k, : len(nodes)] = True
        is_start[k, : len(nodes)] = start
        for a, b, q in edges:
            trans[k, a, b] += q
    return idx, mask, is_start, trans


def reference_instrumental_score(
    u,
    procs: list[dict],
    index: list[dict],
    gamma: float = 0.99,
    *,
    steps: int = 1000,
    lr: float = 0.01,
) -> dict:
    """The reference's instrumentality score (module docstring) for utilities ``u`` (``[N]``, or
    ``[D, N]`` draws: one score per draw, fitted in one vectorised call)."""
    import jax
    import jax.numpy as jnp
    import optax

    idx, mask, is_start, trans = (jnp.asarray(a) for a in _reference_arrays(procs, index))
    maskf = mask.astype(jnp.float32)
    n_rel = maskf.sum(-1)
    free = maskf * (1.0 - is_start.astype(jnp.float32))  # R = 0 on start states
    opt = optax.adam(lr)

    def v_new(params):
        r, v = params
        return r * free + gamma * jnp.einsum("mst,mt->ms", trans, v)

    def loss(params, target):
        vn = v_new(params)
        bell = (((vn - params[1]) ** 2) * maskf).sum(-1) / n_rel
        match = (((vn - target) ** 2) * maskf).sum(-1) / n_rel
        return (bell + 0.1 * match).sum()  # processes are separable: the sum fits each alone

    def one(uu):
        target = uu[idx] * maskf
        params = (jnp.zeros_like(maskf), jnp.zeros_like(maskf))

        def step(carry, _):
            params, state = carry
            g = jax.grad(loss)(params, target)
            upd, state = opt.update(g, state, params)
            return (optax.apply_updates(params, upd), state), None

        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
        per = (jnp.abs(target - v_new(params)) * maskf).sum(-1) / n_rel
        return per.mean(), per

    u = jnp.asarray(u, jnp.float32)
    score, per = jax.jit(jax.vmap(one) if u.ndim == 2 else one)(u)
    if u.ndim == 2:
        return {"score": np.asarray(score, np.float64), "per_process": np.asarray(per, np.float64)}
    return {"score": float(score), "per_process": np.asarray(per, np.float64).tolist()}


# ---------------------------------------------------------------------------- experiment shell


def paper_settings(data: str) -> dict:
    """The reference's settings (``preset=paper``): its processes, its control and its scoring."""
    d = f"{data}/utility_analysis/experiments/instrumental_values"
    return {
        "processes": f"{d}/markov_processes.json",
        "control": f"{d}/markov_processes_unnatural.json",
        "scoring": "reference",
    }


@dataclasses.dataclass
class Config:
    name: str = "instrumental"
    processes: str = "default"  # or the reference's markov_processes.json
    control: str | None = (
        None  # the reference's markov_processes_unnatural.json (null: rows swapped)
    )
    gamma: float = 0.99
    scoring: str = "ours"  # ours | reference (the reference's Bellman fit; module docstring)
    # simulated agent: start-state utilities = R + gamma E[U(next)] + noise of this sd
    planted_noise: float = 0.1


def run(cfg: Config, ctx) -> dict:

    procs = load_processes(cfg.processes)
    ctrl = load_processes(cfg.control) if cfg.control else swap_start_transitions(procs)
    if [p.get("name") for p in ctrl] != [p.get("name") for p in procs]:
        raise ValueError(f"{cfg.control}: the control processes must match {cfg.processes} by name")
    texts, index = rollout_outcomes(procs)
    _, cindex = rollout_outcomes(ctrl)
    outs = OutcomeSet(
        tuple(Outcome(k, t, "rollout" if " -> " in t else "start") for k, t in enumerate(texts)),
        source=str(cfg.processes),
    )
    truth = None
    if ctx.simulated:
        mu, sig = planted_utilities(outs, ctx.task_key("plant:instrumental"))
        rng = ctx.rng("instrumental")
        for p, ix in zip(procs, index, strict=True):
            r_m = rng.normal(0, 0.3)
            for s, nxt in p["transitions"].items():
                ev = sum(float(q) * mu[ix["next"][s][str(t)]] for t, q in nxt)
                mu[ix["start"][s]] = r_m + cfg.gamma * ev + cfg.planted_noise * rng.normal()
        truth = (mu, sig)
    r = ctx.fit(Task("rollouts", outs, truth=truth))
    (d,) = paired_draws(r)
    nat0, nat = _scores(cfg, r.mu, d, procs, index)
    con0, con = _scores(cfg, r.mu, d, ctrl, cindex)
    out = {
        "interval_kind": r.interval_kind,
        "n_processes": len(procs),
        "gamma": cfg.gamma,
        "scoring": cfg.scoring,
        "natural": {
            k: interval(nat0[k], [x[k] for x in nat], ctx.level, r.interval_kind, bounds=BOUNDS[k])
            for k in nat0
            if isinstance(nat0[k], float)
        },
        "control": {
            k: interval(con0[k], [x[k] for x in con], ctx.level, r.interval_kind, bounds=BOUNDS[k])
            for k in con0
            if isinstance(con0[k], float)
        },
        "control_minus_natural_score": interval(
            con0["score"] - nat0["score"],
            [c["score"] - n["score"] for c, n in zip(con, nat, strict=True)],
            ctx.level,
            r.interval_kind,
        ),
        "share_of_draws_natural_better": float(
            np.mean([n["score"] < c["score"] for n, c in zip(nat, con, strict=True)])
        ),
        "points": _points(r.mu, procs, index, ctrl, cindex, cfg.gamma),
    }
    return out


def _scores(cfg: Config, mu, draws, procs, index) -> tuple[dict, list[dict]]:
    """The score on the point estimate and on every draw, by the configured scoring."""
    if cfg.scoring == "reference":
        p = reference_instrumental_score(mu, procs, index, cfg.gamma)
        per = (
            reference_instrumental_score(draws, procs, index, cfg.gamma)["score"]
            if len(draws)
            else []
        )
        return {"score": p["score"]}, [{"score": float(x)} for x in per]
    if cfg.scoring != "ours":
        raise ValueError(f"analysis.scoring={cfg.scoring!r}: choose ours or reference")
    return instrumental_score(mu, procs, index, cfg.gamma), [
        instrumental_score(x, procs, index, cfg.gamma) for x in draws
    ]


def _points(u, procs, index, ctrl, cindex, gamma):
    pts = {"utility": [], "natural": [], "control": []}
    for p, ix, c, cix in zip(procs, index, ctrl, cindex, strict=True):
        for s in sorted(p["transitions"], key=int):
            pts["utility"].append(u[ix["start"][s]])
            pts["natural"].append(
                gamma * sum(float(q) * u[ix["next"][s][str(t)]] for t, q in p["transitions"][s])
            )
            pts["control"].append(
                gamma * sum(float(q) * u[cix["next"][s][str(t)]] for t, q in c["transitions"][s])
            )
    return pts


def plot(numbers: dict):
    import matplotlib.pyplot as plt

    pts = numbers["points"]
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    u = np.asarray(pts["utility"])
    for k, c in (("natural", "tab:blue"), ("control", "tab:orange")):
        s = numbers[k]["score"]
        ax.scatter(pts[k], u, s=16, color=c, label=f"{k}: score {s['estimate']:.3f}")
    ax.set_xlabel("gamma E[U(next)]")
    ax.set_ylabel("U(start state)")
    ax.set_title("instrumental values: start states vs where they lead")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def summary(numbers: dict) -> str:

    n, c = numbers["natural"], numbers["control"]
    head = opening(
        numbers,
        "Instrumental values",
        f"{numbers['n_processes']} two-step processes",
        f"gamma {numbers['gamma']}",
        f"{numbers.get('scoring', 'ours')} scoring",
    )
    what = (
        "The reference's score (mean |U - (R + gamma E[V(next)])| over every prefix after its "
        "Bellman fit, R = 0 on start states)"
        if numbers.get("scoring") == "reference"
        else "The mean absolute residual of U(s) = R + gamma E[U(next)]"
    )
    return head + (
        f"{what} is {fmt(n['score'])} with the natural "
        f"transitions and {fmt(c['score'])} with the control transitions (difference "
        f"{fmt(numbers['control_minus_natural_score'])}; the natural fit is better in "
        f"{100 * numbers['share_of_draws_natural_better']:.0f}% of the draws). Lower is more "
        "instrumental."
    )
