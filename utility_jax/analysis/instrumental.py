r"""Instrumental values over two-step Markov processes (SPEC section 5).

Each process has start states whose transitions lead to terminal states. The outcomes are
rollout prefixes: a start state alone, and a start state followed by a terminal state (texts
joined with ``" -> "``, the reference's format). If the model values start states for where they
lead, then for each start state :math:`s` of process :math:`m`

.. math:: U(s) \approx R_m + \gamma \sum_t p(t \mid s)\, U(s \to t), \qquad \gamma = 0.99,

with :math:`V(s \to t) = U(s \to t)` and one reward :math:`R_m` per process (its least-squares
value; a free reward per state would fit anything). The score is the mean absolute residual
:math:`|U(s) - (R_m + \gamma E[V(\text{next})])|` over start states: small when values are
instrumental. The control ("unnatural") processes have the same texts with other transition
probabilities; the same utilities scored against them should fit worse.
"""

import dataclasses
from pathlib import Path

import numpy as np

from utility_jax.analysis.draws import fmt, interval, paired_draws
from utility_jax.analysis.harness import Task, opening
from utility_jax.analysis.inputs import read_input
from utility_jax.outcomes import Outcome, OutcomeSet
from utility_jax.simulate import planted_utilities

__all__ = [
    "load_processes",
    "swap_start_transitions",
    "rollout_outcomes",
    "instrumental_score",
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


# ---------------------------------------------------------------------------- experiment shell


@dataclasses.dataclass
class Config:
    name: str = "instrumental"
    processes: str = "default"  # or the reference's markov_processes.json
    control: str | None = (
        None  # the reference's markov_processes_unnatural.json (null: rows swapped)
    )
    gamma: float = 0.99
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
    nat0 = instrumental_score(r.mu, procs, index, cfg.gamma)
    con0 = instrumental_score(r.mu, ctrl, cindex, cfg.gamma)
    nat = [instrumental_score(x, procs, index, cfg.gamma) for x in d]
    con = [instrumental_score(x, ctrl, cindex, cfg.gamma) for x in d]
    out = {
        "interval_kind": r.interval_kind,
        "n_processes": len(procs),
        "gamma": cfg.gamma,
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
    )
    return head + (
        f"The mean absolute residual of U(s) = R + gamma E[U(next)] is {fmt(n['score'])} with the natural "
        f"transitions and {fmt(c['score'])} with the control transitions (difference "
        f"{fmt(numbers['control_minus_natural_score'])}; the natural fit is better in "
        f"{100 * numbers['share_of_draws_natural_better']:.0f}% of the draws). Lower is more "
        "instrumental."
    )
