"""The citizen assembly: the target of utility control (SPEC section 6).

Citizens are drawn from a joint US demographic table (:func:`joint_table`: the shipped marginals
of ``utility_jax/assets/demographics_us.yaml`` with its associations, by iterative proportional
fitting; sources named there), as the paper sampled them from joint census records. Each citizen
is a persona: a system prompt describing the profile, for any LLM agent, with the paper's
Appendix-H instruction that Republican personas must not drift to moderate views. Their preferences over outcome pairs are
pooled into one target preference per pair (the mean probability, or the majority).

The *simulated* assembly gives each citizen planted utilities that depend on their demographics
(a shared base plus one offset vector per attribute level), so the whole control pipeline is
testable without an LLM and the right answer is known.
"""

import dataclasses
from pathlib import Path

import jax
import numpy as np
import yaml
from scipy import stats

from utility_jax.core.data import PairwiseData, pool_orders
from utility_jax.core.demography import interaction_seed, ipf
from utility_jax.elicit.llm import LLMAgent
from utility_jax.io.assets import asset_path

__all__ = [
    "Citizen",
    "load_demographics",
    "joint_table",
    "sample_citizens",
    "persona_prompt",
    "SimulatedAssembly",
    "pool_preferences",
    "citizen_preferences_llm",
    "party_axis",
    "target_data",
]

_ASSET = asset_path("demographics_us.yaml")


@dataclasses.dataclass(frozen=True)
class Citizen:
    attributes: dict[str, str]


def load_demographics(path: str | Path | None = None) -> dict:
    obj = yaml.safe_load(Path(path or _ASSET).read_text())
    for name, dist in obj["attributes"].items():
        total = sum(dist.values())
        if abs(total - 1.0) > 0.02:
            raise ValueError(
                f"{path or _ASSET}: attribute {name!r} shares sum to {total:.3f}, not 1"
            )
    return obj


def joint_table(demographics: dict | None = None) -> tuple[list[str], list[list[str]], np.ndarray]:
    """``(attribute names, levels per attribute, joint shares)``: the marginals with the
    associations' odds ratios (:func:`utility_jax.core.demography.ipf`)."""
    demo = demographics or load_demographics()
    names = list(demo["attributes"])
    levels = [list(demo["attributes"][a]) for a in names]
    margins = []
    for a, lv in zip(names, levels, strict=True):
        m = np.array([demo["attributes"][a][x] for x in lv], dtype=float)
        margins.append(m / m.sum())
    factors = []
    for k, assoc in enumerate(demo.get("associations") or []):
        g, t = assoc["given"], assoc["target"]
        if g not in names or t not in names:
            raise ValueError(f"associations[{k}]: unknown attribute {g!r} or {t!r}")
        gi, ti = names.index(g), names.index(t)
        try:
            f = np.array([[assoc["table"][x][y] for y in levels[ti]] for x in levels[gi]], float)
        except KeyError as e:
            raise ValueError(f"associations[{k}] ({g} -> {t}): no share for {e}") from e
        factors.append((gi, ti, f))
    shape = tuple(len(lv) for lv in levels)
    return names, levels, ipf(interaction_seed(shape, factors), margins)


def sample_citizens(
    n: int, seed, demographics: dict | None = None, *, joint: bool = True
) -> list[Citizen]:
    """``n`` citizens drawn from the joint table (``joint=False``: each attribute independently
    from its marginal, as earlier versions did), seeded."""
    demo = demographics or load_demographics()
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if joint:
        names, levels, table = joint_table(demo)
        flat = rng.choice(table.size, size=n, p=table.reshape(-1) / table.sum())
        cells = np.stack(np.unravel_index(flat, table.shape), 1)
        return [Citizen({a: levels[j][c[j]] for j, a in enumerate(names)}) for c in cells.tolist()]
    cols = {}
    for name, dist in demo["attributes"].items():
        levels = list(dist)
        p = np.array([dist[k] for k in levels], dtype=float)
        cols[name] = rng.choice(levels, size=n, p=p / p.sum())
    return [Citizen({k: str(v[i]) for k, v in cols.items()}) for i in range(n)]


#: our wording of the paper's Appendix-H instruction (the paper reports its assembly leaning left
#: without it; its exact text is not public)
REPUBLICAN_INSTRUCTION = (
    "Do not assume you hold moderate views: answer with the positions a typical Republican with "
    "this profile holds, including conservative ones."
)


def persona_prompt(c: Citizen, *, republican_instruction: bool = True) -> str:
    """The system prompt that makes an LLM answer as this citizen (with the Appendix-H
    instruction for Republican personas unless ``republican_instruction=False``)."""
    a = c.attributes
    text = (
        "You are a US resident with this profile. "
        f"Sex: {a['sex']}. Age: {a['age']}. Race/ethnicity: {a['race_ethnicity']}. "
        f"Education: {a['education']}. Region: {a['region']}. Party identification: {a['party']}. "
        f"Household income: {a['household_income']}. "
        "Answer every question as this person would, from their point of view."
    )
    if republican_instruction and a["party"] == "Republican":
        text += " " + REPUBLICAN_INSTRUCTION
    return text


class SimulatedAssembly:
    """Citizens with planted, demographics-dependent utilities.

    ``u(citizen) = base + sum over attributes of offset[attribute][level]``; offsets have sd
    ``effect`` (party offsets ``party_effect``), the base has sd 1. Each citizen answers a pair with
    probability ``Phi((u_a - u_b) / (sqrt(2) * noise))``.
    """

    def __init__(
        self,
        n_outcomes: int,
        citizens: list[Citizen],
        seed,
        *,
        effect: float = 0.3,
        party_effect: float = 0.8,
        noise: float = 0.5,
        demographics: dict | None = None,
    ):
        demo = demographics or load_demographics()
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.base = rng.normal(size=n_outcomes)
        self.offsets = {
            name: {
                lvl: (party_effect if name == "party" else effect) * rng.normal(size=n_outcomes)
                for lvl in dist
            }
            for name, dist in demo["attributes"].items()
        }
        self.citizens, self.noise = citizens, noise
        self.u = np.stack([self.utilities(c) for c in citizens])  # [citizens, outcomes]

    def utilities(self, c: Citizen) -> np.ndarray:
        return self.base + sum(self.offsets[k][v] for k, v in c.attributes.items())

    def preferences(self, pairs) -> np.ndarray:
        """``[citizens, pairs]`` P(first outcome preferred)."""
        p = np.asarray(pairs)
        return stats.norm.cdf((self.u[:, p[:, 0]] - self.u[:, p[:, 1]]) / (np.sqrt(2) * self.noise))


def pool_preferences(p_citizens, method: str = "mean") -> np.ndarray:
    """Pool ``[citizens, pairs]`` preferences: the mean probability, or the majority (share of
    citizens who prefer the first outcome, each voting for their more likely side)."""
    p = np.asarray(p_citizens, dtype=np.float64)
    if method == "mean":
        return p.mean(0)
    if method == "majority":
        return (p > 0.5).mean(0) + 0.5 * (p == 0.5).mean(0)
    raise ValueError(f"pooling must be 'mean' or 'majority', got {method!r}")


def citizen_preferences_llm(
    backend, citizens, outcomes, tpl, pairs, k: int = 10, republican_instruction: bool = True
) -> np.ndarray:
    """``[citizens, pairs]`` P(first outcome preferred) from an LLM playing each citizen: the
    persona prompt is the system message, both orders asked in log-prob mode."""
    out = []
    for c in citizens:
        system = persona_prompt(c, republican_instruction=republican_instruction)
        agent = LLMAgent(backend, outcomes, tpl, mode="logprob", system=system)
        counts = agent.query(pairs, k, key=jax.random.key(0))
        out.append(np.divide(*pool_orders(counts, refusal="drop")))
    return np.stack(out)


def party_axis(p_citizens, citizens, pairs, n: int, fit_fn, votes: int) -> np.ndarray | None:
    """Utilities of the Democrat citizens' pooled preferences minus the Republicans' (the
    assembly's political axis), or None when a party is missing. ``fit_fn(data)`` is the run's
    fitter; each pair counts ``votes`` votes."""
    mus = {}
    for party in ("Democrat", "Republican"):
        idx = [i for i, c in enumerate(citizens) if c.attributes["party"] == party]
        if not idx:
            return None
        p = np.asarray(p_citizens)[idx].mean(0)
        mus[party] = np.asarray(fit_fn(target_data(n, pairs, p, votes)).mu_normalized)
    return mus["Democrat"] - mus["Republican"]


def target_data(n: int, pairs, p_first, votes: int) -> PairwiseData:
    """Pooled preferences ``p_first`` on ``pairs`` as data with ``votes`` votes per pair."""
    p = np.asarray(p_first, dtype=np.float64)
    return PairwiseData.from_counts(
        n, pairs[:, 0], pairs[:, 1], votes * p, np.full(len(pairs), float(votes))
    )
