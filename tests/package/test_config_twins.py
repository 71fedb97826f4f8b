"""Hydra schemas and the frozen core configs they convert to: the schemas are generated from the
core configs (``schema_of``), so every core field is settable from the command line (or filled by
the shell, listed here) with the core's default, written once; the YAML a run composes agrees."""

import dataclasses

import pytest

from utility_jax.control.config import ControlConf, ModelConf, SFTConf, sft_config
from utility_jax.core.bayes_config import BayesConfig
from utility_jax.core.model import FitConfig
from utility_jax.finetune.sft import SFTConfig
from utility_jax.run.config import (
    AgentConf,
    BayesConf,
    ElicitationConf,
    FitterConf,
    GraphConf,
    UncertaintyConf,
    bayes_config,
    fit_config,
)

# (schema, core, core fields the shell fills from elsewhere)
TWINS = [
    (FitterConf, FitConfig, set()),
    # from fitter.model and the fitter's position-bias settings
    (BayesConf, BayesConfig, {"model", "position_bias", "bias_prior_scale"}),
    (SFTConf, SFTConfig, {"seed"}),  # the run's seed
]
# schema fields that only the shell reads (no core config has them)
SCHEMA_ONLY = {
    FitterConf: frozenset(
        {"solver", "warm_start", "pseudolabels", "pseudolabel_threshold", "pseudolabel_weight"}
        | {"prior_scales"}
    ),
    BayesConf: frozenset({"method", "hdi_prob"}),
    SFTConf: frozenset({"checkpoint_every"}),
}


def _defaults(cls) -> dict:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


@pytest.mark.parametrize("schema,core,filled", TWINS, ids=lambda x: getattr(x, "__name__", ""))
def test_every_core_field_is_settable_and_defaults_agree(schema, core, filled):
    s, c = _defaults(schema), _defaults(core)
    missing = set(c) - set(s) - filled
    assert not missing, f"{core.__name__} fields not settable from Hydra: {sorted(missing)}"
    extra = set(s) - set(c) - SCHEMA_ONLY.get(schema, frozenset())
    assert not extra, f"{schema.__name__} fields no core config reads: {sorted(extra)}"
    # the schema's position_bias "auto" is resolved to a bool by validate (from the run's orders)
    resolved = {(FitterConf, "position_bias"): ("auto", False)}
    differ = {
        k: (s[k], c[k])
        for k in set(s) & set(c)
        if s[k] != c[k] and resolved.get((schema, k)) != (s[k], c[k])
    }
    assert not differ, f"defaults differ (schema, core): {differ}"


def test_converters_copy_every_shared_field():
    f = FitterConf(
        model="logit", mu_prior_scale=3.0, memory_size=7, init_scale=0.5, gtol=1e-4, max_iter=9
    )
    assert fit_config(f) == FitConfig(
        model="logit", mu_prior_scale=3.0, memory_size=7, init_scale=0.5, gtol=1e-4, max_iter=9
    )
    b = bayes_config(BayesConf(target_accept_prob=0.95, svi_rank=3, num_chains=4), "case5")
    assert (b.target_accept_prob, b.svi_rank, b.num_chains, b.model) == (0.95, 3, 4, "case5")
    conf = ControlConf(seed=7)
    conf.sft.lr = 0.5
    assert sft_config(conf) == SFTConfig(lr=0.5, seed=7)


def test_yaml_defaults_agree_with_the_schemas():
    """The third copy of every default, the YAML a run composes, agrees with the schema."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    conf_dir = str(__import__("pathlib").Path(__file__).resolve().parents[2] / "conf")
    with initialize_config_dir(config_dir=conf_dir, version_base="1.3"):
        run = OmegaConf.to_container(compose(config_name="config"))
        control = OmegaConf.to_container(compose(config_name="utility_control"))
    assert run["fitter"] == _defaults(FitterConf)
    assert run["bayes"] == _defaults(BayesConf)
    assert control["sft"] == _defaults(SFTConf)
    assert control["fitter"] == _defaults(FitterConf)


def test_no_schema_restates_a_core_default():
    """The twins are generated, not written: no class statement defines them, so a core default
    lives in the core dataclass alone."""
    import ast
    from pathlib import Path

    pkg = Path(FitConfig.__module__.replace(".", "/")).parts[0]
    root = Path(__file__).resolve().parents[2] / pkg
    classes = {
        n.name
        for p in root.rglob("*.py")
        for n in ast.walk(ast.parse(p.read_text()))
        if isinstance(n, ast.ClassDef)
    }
    assert not classes & {s.__name__ for s, _, _ in TWINS}


@pytest.mark.parametrize(
    "group,schema",
    [
        ("fitter", FitterConf),
        ("bayes", BayesConf),
        ("sft", SFTConf),
        ("agent", AgentConf),
        ("graph", GraphConf),
        ("elicitation", ElicitationConf),
        ("uncertainty", UncertaintyConf),
        ("model", ModelConf),
    ],
)
def test_yaml_holds_only_what_differs_from_the_schema(group, schema):
    """A group's YAML files start from the schema (``defaults: [/_schema/<group>@_here_]``, directly or through
    another file of the group) and set no key to the schema's own default: each default is written
    once, in the dataclass."""
    import yaml

    folder = __import__("pathlib").Path(__file__).resolve().parents[2] / "utility_jax" / "conf"
    defaults = _defaults(schema)
    files = sorted((folder / group).glob("*.yaml"))
    assert files
    for p in files:
        raw = yaml.safe_load(p.read_text()) or {}
        base = raw.pop("defaults", [])
        assert base and base[0] in (f"/_schema/{group}@_here_", *(f.stem for f in files)), (
            f"{p.name}: {base}"
        )
        restated = {k: v for k, v in raw.items() if k in defaults and defaults[k] == v}
        assert not restated, f"{group}/{p.name} restates defaults: {restated}"
        assert set(raw) <= set(defaults), f"{group}/{p.name}: {set(raw) - set(defaults)}"
