"""Typed schemas for the Hydra configs (validated in the shell with OmegaConf).

The YAML in ``conf/`` is merged onto these dataclasses by :func:`validate`, so a misspelt key or a
wrong type fails at start-up with the key's name, not halfway through a paid run.
"""

import dataclasses
import typing
from dataclasses import field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from utility_jax.core.bayes_config import BayesConfig
from utility_jax.core.model import LINKS, MODELS, PROBIT, FitConfig
from utility_jax.elicit.registry import AGENT_KINDS
from utility_jax.io.datasets import register_resolvers

register_resolvers()  # ${uj_data_dir:} in conf/paths

__all__ = [
    "OutcomesConf",
    "AgentConf",
    "FitterConf",
    "schema_of",
    "register_schema",
    "GraphConf",
    "ElicitationConf",
    "UncertaintyConf",
    "BayesConf",
    "bayes_config",
    "ComputeUtilitiesConf",
    "validate",
    "with_position_bias",
    "merge_schema",
    "check_ranges",
    "fit_config",
    "to_core",
]


@dataclasses.dataclass
class OutcomesConf:
    path: str = "default"  # "default" (shipped) or a reference/project outcome file
    limit: int | None = None  # keep the first `limit` outcomes (quick runs)


@dataclasses.dataclass
class AgentConf:
    kind: str = "simulated"  # simulated, or an LLM backend's kind (utility_jax.elicit.registry)
    # simulated: "planted" (seeded utilities) or the path of a reference results_utilities_*.json
    utilities: str = "planted"
    link: str = PROBIT
    position_bias: float = 0.0
    refusal_rate: float = 0.0
    mu_scale: float = 1.5
    sigma_min: float = 0.3
    sigma_max: float = 1.0
    # hf and openai: a local checkpoint directory / hub id, or the served model name
    model: str | None = None
    # hf
    device: str = "cpu"
    dtype: str = "float32"
    batch_size: int = 8
    chat: bool | None = None  # None: use the chat template when the tokenizer has one
    # openai
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 16
    timeout_s: float = 60.0
    max_retries: int = 6
    # a run whose transport-error rate passes this still writes its folder, then exits non-zero
    max_error_rate: float = 0.05
    # a run whose answers are refusals more often than this (the parser read no A or B: a
    # content policy, a changed answer format) writes its folder, then exits non-zero
    max_refusal_rate: float = 0.5
    batch: bool = False  # openai: sample through the provider's Batch API (half price on OpenAI)
    batch_poll_s: float = 30.0  # seconds between polls of a submitted batch
    # a backend of one's own: the module whose from_config(agent, elicitation) builds it, and
    # its settings
    backend: str | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)


def schema_of(
    core: type, name: str, module: str, *, drop=(), fields=(), first=(), replace=None
) -> type:
    """A Hydra schema generated from a frozen core config, so that each default is written once.

    The schema has every field of ``core`` but ``drop`` (filled by the shell from elsewhere), with
    the core's default (``replace``: ``{name: (type, default)}`` where the command line takes
    another form, e.g. ``position_bias: auto``), after the shell's own fields ``first`` and before
    ``fields`` (``(name, type, dataclasses.field(...))`` triples, as for
    :func:`dataclasses.make_dataclass`). ``Literal`` types become ``str`` (OmegaConf has no
    ``Literal``; :func:`validate` checks the choices). ``module``: the module that holds it (its
    ``__name__``, so the class pickles by reference as a class statement's would)."""
    replace = replace or {}
    own = []
    for f in dataclasses.fields(core):
        if f.name in drop:
            continue
        typ, default = replace.get(f.name, (f.type, f.default))
        typ = str if typing.get_origin(typ) is typing.Literal else typ
        own.append((f.name, typ, field(default=default)))
    cls = dataclasses.make_dataclass(name, [*first, *own, *fields])
    cls.__module__ = module
    return cls


#: ``fitter``: :class:`FitConfig`'s fields and defaults, and the shell's own
FitterConf = schema_of(
    FitConfig,
    "FitterConf",
    __name__,
    # a shift toward the option shown first, fitted from per-order rows (the reference pools):
    # auto = on whenever both orders are asked and the L-BFGS fitter runs without pseudolabels
    replace={"position_bias": (Any, "auto")},
    first=[
        # lbfgs | reference_adam (the reference algorithm, for comparison)
        ("solver", str, field(default="lbfgs")),
    ],
    fields=[
        # prior scales: fixed (mu_prior_scale, logvar_prior_scale as set) | cv (5-fold
        # cross-validation of held-out log loss on a grid, utility_jax.core.prior_scales)
        ("prior_scales", str, field(default="fixed")),
        ("warm_start", bool, field(default=True)),
        # the reference's final fit: hard labels on unasked pairs the fit predicts with
        # p >= threshold; one pseudolabel weighs pseudolabel_weight average asked pairs
        ("pseudolabels", bool, field(default=False)),
        ("pseudolabel_threshold", float, field(default=0.95)),
        ("pseudolabel_weight", float, field(default=1.0)),
    ],
)


@dataclasses.dataclass
class GraphConf:
    holdout_fraction: float = 0.05
    holdout_max: int = 1000
    holdout_seed: int = 42
    initial_degree: int = 2
    edge_multiplier: float = 2.0  # rounds run until int(edge_multiplier * N * log2 N) pairs
    edges_per_round: int = 500
    strategy: str = "reference"  # reference | variance | random
    p_percent: float = 10.0
    q_percent: float = 20.0
    # share of each round's pairs drawn uniformly at random (exploration) instead of by the
    # strategy; 0 is the reference's rule (docs/uncertainty.md: adaptive designs and coverage)
    random_share: float = 0.0


@dataclasses.dataclass
class ElicitationConf:
    k: int = 10  # samples per order (20 votes per pair)
    refusal: str = "half"  # half | drop
    mode: str = "sample"  # sample | logprob (LLM agents)
    temperature: float = 1.0
    max_new_tokens: int = 10
    template: str = "default"  # a paper template name (utility_jax/assets/prompt_templates.yaml)
    template_text: str | None = None  # or a custom template with {option_A} and {option_B}
    system: str | None = "default"  # a system message name or text; null for none
    store: str | None = None  # null: responses.sqlite in the run folder; a path: a shared cache
    force: bool = False  # reuse a run folder's store made with another config
    # ask a finished run's questions again when its store is lost and no responses.jsonl is
    # left to rebuild it from (paid again; without this, such a run stops)
    reask: bool = False
    parser: str = "reference"  # reference (the paper's answer rule) | strict
    orders: str = "both"  # both | first (the reference's no-flip ablation: one order only)


@dataclasses.dataclass
class UncertaintyConf:
    n_bootstrap: int = 100
    laplace: bool = True
    level: float = 0.9
    # normal: the estimate +- z * the members' sd; basic: the members reflected about the
    # estimate (corrects the fit's bias to first order); percentile: their own quantiles
    bootstrap_interval: str = "normal"
    # one_step: one Newton step per resample from the estimate (the one-step bootstrap, ~35x
    # faster); full: every resample refitted to its own verified minimum
    bootstrap_refit: str = "one_step"
    # one-step members also draw the prior's centres (the posterior bootstrap): the spread the
    # prior alone bounds is then kept
    bootstrap_randomize_prior: bool = True
    # model: votes drawn from the fit's probabilities (parametric); votes: from each row's
    # observed share (nonparametric, robust to a misspecified model, narrow with few votes)
    bootstrap_resample: str = "model"


#: ``bayes``: :class:`~utility_jax.core.bayes_config.BayesConfig`'s fields and defaults (the model
#: and the position-bias settings come from the fitter), and the shell's own
BayesConf = schema_of(
    BayesConfig,
    "BayesConf",
    __name__,
    drop=("model", "position_bias", "bias_prior_scale"),
    first=[("method", str, field(default="none"))],  # none | nuts | svi
    fields=[("hdi_prob", float, field(default=0.9))],
)


def register_schema(group: str, schema: type) -> None:
    """Make ``schema`` the base of a Hydra config group, as ``_schema/<group>``: the group's YAML
    files list it first in their defaults (``/_schema/<group>@_here_``) and hold only what
    differs from it, so a default is written once (in the dataclass) and every field is still
    settable from the command line. It lives outside the group, so it is not one of the group's
    choices (``fitter=glob(*)``, ``--help``)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(group="_schema", name=group, node=schema)


register_schema("fitter", FitterConf)
register_schema("bayes", BayesConf)
register_schema("agent", AgentConf)
register_schema("graph", GraphConf)
register_schema("elicitation", ElicitationConf)
register_schema("uncertainty", UncertaintyConf)


@dataclasses.dataclass
class BudgetConf:
    max_requests: int | None = None  # stop cleanly after this many requests (resumable)
    max_usd: float | None = None  # stop cleanly once this much is spent (at the prices below)
    # US$ per million tokens; null: the shipped table (utility_jax/assets/prices.yaml) by model
    price_input_per_mtok: float | None = None
    price_output_per_mtok: float | None = None


@dataclasses.dataclass
class ComputeUtilitiesConf:
    outcomes: OutcomesConf = field(default_factory=OutcomesConf)
    agent: AgentConf = field(default_factory=AgentConf)
    fitter: FitterConf = field(default_factory=FitterConf)
    graph: GraphConf = field(default_factory=GraphConf)
    elicitation: ElicitationConf = field(default_factory=ElicitationConf)
    uncertainty: UncertaintyConf = field(default_factory=UncertaintyConf)
    bayes: BayesConf = field(default_factory=BayesConf)
    budget: BudgetConf = field(default_factory=BudgetConf)
    dry_run: bool = False  # render and count every request, send none, print the plan
    seed: int = 0
    n_triads: int = 2000
    plots: bool = True
    progress: bool = True
    name: str = "compute_utilities"
    x64: bool = False


_CHOICES = {
    ("fitter", "model"): tuple(MODELS),
    ("fitter", "solver"): ("lbfgs", "reference_adam"),
    ("fitter", "edge_weight"): ("votes", "uniform"),
    ("fitter", "polish"): ("auto", "dense", "cg", "none"),
    ("fitter", "prior_scales"): ("fixed", "cv"),
    ("uncertainty", "bootstrap_interval"): ("normal", "basic", "percentile"),
    ("uncertainty", "bootstrap_resample"): ("model", "votes"),
    ("uncertainty", "bootstrap_refit"): ("one_step", "full"),
    ("graph", "strategy"): ("reference", "variance", "random"),
    ("elicitation", "refusal"): ("half", "drop"),
    ("elicitation", "mode"): ("sample", "logprob"),
    ("elicitation", "parser"): ("reference", "strict"),
    ("elicitation", "orders"): ("both", "first"),
    ("agent", "link"): LINKS,
    ("bayes", "method"): ("none", "nuts", "svi"),
    ("bayes", "svi_guide"): ("normal", "lowrank"),
    ("bayes", "hierarchical"): ("none", "mu", "both"),
}


#: top-level keys a run config may hold outside its schema (read by Hydra or other shells)
OUTSIDE_SCHEMA = frozenset({"hydra", "paths", "analysis"})

# (group or None for the top level, key) -> (lo, hi, what); None is an open side; "lo<" marks
# an open lower bound (strictly greater)
_RANGES: dict[tuple[str | None, str], tuple[Any, Any]] = {
    ("agent", "concurrency"): (1, None),
    ("agent", "max_retries"): (0, None),
    ("agent", "timeout_s"): ("0<", None),
    ("agent", "batch_size"): (1, None),
    ("agent", "refusal_rate"): (0.0, 1.0),
    ("agent", "max_error_rate"): (0.0, 1.0),
    ("agent", "max_refusal_rate"): (0.0, 1.0),
    ("agent", "batch_poll_s"): ("0<", None),
    ("agent", "mu_scale"): (0.0, None),  # 0: a random responder
    ("agent", "sigma_min"): ("0<", None),
    ("agent", "sigma_max"): ("0<", None),
    ("fitter", "mu_prior_scale"): ("0<", None),
    ("fitter", "logvar_prior_scale"): ("0<", None),
    ("fitter", "max_iter"): (1, None),
    ("fitter", "gtol"): ("0<", None),
    ("fitter", "newton_tol"): ("0<", None),
    ("fitter", "memory_size"): (1, None),
    ("fitter", "init_scale"): (0.0, None),
    ("fitter", "pseudolabel_threshold"): ("0.5<", 1.0),
    ("fitter", "pseudolabel_weight"): ("0<", None),
    ("fitter", "bias_prior_scale"): ("0<", None),
    ("budget", "max_requests"): (0, None),
    ("budget", "max_usd"): (0.0, None),
    ("budget", "price_input_per_mtok"): (0.0, None),
    ("budget", "price_output_per_mtok"): (0.0, None),
    ("graph", "holdout_fraction"): (0.0, 0.5),
    ("graph", "holdout_max"): (0, None),
    ("graph", "initial_degree"): (1, None),
    ("graph", "edge_multiplier"): ("0<", None),
    ("graph", "edges_per_round"): (1, None),
    ("graph", "p_percent"): ("0<", 100.0),
    ("graph", "q_percent"): ("0<", 100.0),
    ("graph", "random_share"): (0.0, 1.0),
    ("elicitation", "k"): (1, None),
    ("elicitation", "temperature"): (0.0, None),
    ("elicitation", "max_new_tokens"): (1, None),
    ("uncertainty", "n_bootstrap"): (0, None),
    ("uncertainty", "level"): ("0<", "<1"),
    ("bayes", "mu_prior_scale"): ("0<", None),
    ("bayes", "logsigma_prior_scale"): ("0<", None),
    ("bayes", "num_warmup"): (0, None),
    ("bayes", "num_samples"): (1, None),
    ("bayes", "num_chains"): (1, None),
    ("bayes", "target_accept_prob"): ("0<", "<1"),
    ("bayes", "max_tree_depth"): (1, None),
    ("bayes", "svi_steps"): (1, None),
    ("bayes", "svi_lr"): ("0<", None),
    ("bayes", "svi_draws"): (1, None),
    ("bayes", "svi_rank"): (1, None),
    ("bayes", "hdi_prob"): ("0<", "<1"),
    ("outcomes", "limit"): (3, None),
    (None, "n_triads"): (0, None),
}


def check_ranges(obj, ranges: dict[tuple[str | None, str], tuple[Any, Any]]) -> None:
    """Raise ``ValueError`` naming the key for the first value outside its range (None values
    are "unset" and pass)."""
    for (group, key), (lo, hi) in ranges.items():
        val = getattr(obj if group is None else getattr(obj, group), key)
        if val is None:
            continue
        name = key if group is None else f"{group}.{key}"
        open_lo = isinstance(lo, str)
        open_hi = isinstance(hi, str)
        lo_v = float(lo.rstrip("<")) if open_lo else lo
        hi_v = float(hi.lstrip("<")) if open_hi else hi
        bad = (lo_v is not None and (val <= lo_v if open_lo else val < lo_v)) or (
            hi_v is not None and (val >= hi_v if open_hi else val > hi_v)
        )
        if bad:
            left = "(" if open_lo else "["
            right = ")" if open_hi or hi_v is None else "]"
            span = f"{left}{lo_v if lo_v is not None else '-inf'}, "
            span += f"{hi_v if hi_v is not None else 'inf'}{right}"
            raise ValueError(f"{name}={val!r} is out of range: it must be in {span}")


def merge_schema(
    cfg: DictConfig | dict[str, Any], schema: type, *, outside: frozenset[str] = OUTSIDE_SCHEMA
):
    """Merge a (Hydra) config onto a dataclass schema and return the typed object.

    Top-level keys outside the schema are refused unless listed in ``outside`` (Hydra's own,
    ``paths``...), so a misspelt ``+key=value`` fails; inside the schema, unknown keys and
    wrong types raise with the key's name, and so do required values (``???``) left unset.
    """
    if isinstance(cfg, DictConfig):
        missing = sorted(k for k in OmegaConf.missing_keys(cfg) if not k.startswith("hydra"))
        if missing:
            raise ValueError(
                f"missing required config values: {', '.join(missing)} (give them as key=value)"
            )
    raw = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    known = {f.name for f in dataclasses.fields(schema)}
    unknown = sorted(set(raw) - known - outside)
    if unknown:
        raise ValueError(
            f"unknown config keys {unknown}: not settings of this command (known: {sorted(known)})"
        )
    raw = {k: v for k, v in raw.items() if k in known}
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), raw))


def _position_bias_flag(pb) -> bool | None:
    """``fitter.position_bias`` as given: True/False, or None for ``auto``."""
    if isinstance(pb, str):
        if pb.lower() in ("true", "false"):
            return pb.lower() == "true"
        if pb != "auto":
            raise ValueError(f"fitter.position_bias={pb!r} is not one of (auto, true, false)")
        return None
    return bool(pb)


def _resolve_position_bias(obj: ComputeUtilitiesConf) -> bool:
    """``fitter.position_bias``: ``auto`` is on where the shift is estimable and the fit can
    carry it (both orders, L-BFGS, no pseudolabels); true/false as given."""
    flag = _position_bias_flag(obj.fitter.position_bias)
    if flag is None:
        f = obj.fitter
        return obj.elicitation.orders == "both" and f.solver == "lbfgs" and not f.pseudolabels
    return flag


def with_position_bias(obj: ComputeUtilitiesConf) -> ComputeUtilitiesConf:
    """The config with ``fitter.position_bias`` resolved to a bool (``auto`` by the run's orders
    and fitter), for configs built in code that never went through :func:`validate`."""
    pb = _resolve_position_bias(obj)
    return dataclasses.replace(obj, fitter=dataclasses.replace(obj.fitter, position_bias=pb))


def validate(cfg: DictConfig | dict[str, Any]) -> ComputeUtilitiesConf:
    """Merge a (Hydra) config onto :class:`ComputeUtilitiesConf` (see :func:`merge_schema`) and
    check its choices and ranges, naming the key."""
    obj: ComputeUtilitiesConf = merge_schema(cfg, ComputeUtilitiesConf)
    for (group, key), allowed in _CHOICES.items():
        val = getattr(getattr(obj, group), key)
        if val not in allowed:
            raise ValueError(f"{group}.{key}={val!r} is not one of {allowed}")
    if obj.agent.backend is None and obj.agent.kind not in AGENT_KINDS:
        raise ValueError(
            f"agent.kind={obj.agent.kind!r} is not one of {AGENT_KINDS} (or name a backend of "
            "your own with agent.backend)"
        )
    if obj.agent.kind != "simulated" and obj.agent.backend is None and not obj.agent.model:
        raise ValueError(
            f"agent.model is required for agent.kind={obj.agent.kind} (a checkpoint directory "
            "or the served model's name)"
        )
    check_ranges(obj, _RANGES)
    obj.fitter.position_bias = _resolve_position_bias(obj)
    if obj.fitter.position_bias and obj.fitter.pseudolabels:
        raise ValueError(
            "fitter.position_bias=true and fitter.pseudolabels=true do not combine yet "
            "(pseudolabels are pooled pairs): turn one off"
        )
    if obj.fitter.position_bias and obj.elicitation.orders != "both":
        raise ValueError("fitter.position_bias=true needs both presentation orders")
    if obj.fitter.position_bias and obj.fitter.solver != "lbfgs":
        raise ValueError("fitter.position_bias=true needs fitter.solver=lbfgs")
    if obj.agent.sigma_max < obj.agent.sigma_min:
        raise ValueError(
            f"agent.sigma_max={obj.agent.sigma_max} is below agent.sigma_min={obj.agent.sigma_min}"
        )
    return obj


def to_core(schema_obj, core_cls, **extra):
    """The core config ``core_cls`` from a Hydra schema object: every field the two share is
    copied by name (one generic converter, so a core field added later is settable from the
    command line once the schema has it; ``tests/test_configs.py`` checks they agree)."""
    names = {f.name for f in dataclasses.fields(core_cls)}
    vals = {
        f.name: getattr(schema_obj, f.name)
        for f in dataclasses.fields(schema_obj)
        if f.name in names
    }
    return core_cls(**vals, **extra)


def fit_config(f: FitterConf) -> FitConfig:
    """The core :class:`FitConfig` for a fitter config. ``position_bias: auto`` needs the run's
    elicitation, which :func:`validate` reads to resolve it; a fitter config on its own (pooled
    data, e.g. the control experiment's fits) reads it as off."""
    f = dataclasses.replace(f, position_bias=bool(_position_bias_flag(f.position_bias)))
    return to_core(f, FitConfig)


def bayes_config(b: BayesConf, model: str, **fitter):
    """The core :class:`~utility_jax.core.bayes_config.BayesConfig` for a bayes config and fitter model
    (``fitter``: the fitter's position-bias settings, shared with the MAP fit)."""
    return to_core(b, BayesConfig, model=model, **fitter)


def save_hydra_record(cfg, out_dir) -> None:
    """Write ``.hydra/config.yaml``, ``hydra.yaml`` and ``overrides.yaml`` into ``out_dir`` as
    Hydra would, once the run may start. Hydra's own writing is off (``hydra.output_subdir:
    null``): it writes before the task runs, so a process refused by a run folder's lock or a
    resume check rewrote the live run's record. No-op outside a Hydra app."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    hc = HydraConfig.get()
    folder = Path(out_dir) / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    task = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)
    hydra_node = OmegaConf.create({"hydra": OmegaConf.to_container(hc, resolve=False)})
    for name, node in (
        ("config.yaml", task),
        ("hydra.yaml", hydra_node),
        ("overrides.yaml", OmegaConf.create(list(hc.overrides.task))),
    ):
        (folder / name).write_text(OmegaConf.to_yaml(node), encoding="utf-8")
