"""The analyses by name (explicit imports: every analysis module is listed here once) and the
run that executes one (``utility-jax analyze experiment=<name>``)."""

import dataclasses
from pathlib import Path

import jax
from omegaconf import DictConfig, OmegaConf

from utility_jax.analysis import (
    convergence,
    corrigibility,
    discounting,
    emergence,
    exchange_rates,
    instrumental,
    lotteries,
    maximization,
    no_flip,
    political,
    power,
    transitivity,
)
from utility_jax.analysis.harness import Context, analysis_config, write_analysis
from utility_jax.run.config import validate
from utility_jax.run.progress import progress_factory

__all__ = ["ANALYSES", "run_analysis"]

#: analysis name (``analysis.name``, the experiment override's name) -> module
ANALYSES = {
    "lotteries": lotteries,
    "instrumental": instrumental,
    "maximization": maximization,
    "convergence": convergence,
    "political": political,
    "exchange_rates": exchange_rates,
    "discounting": discounting,
    "power_seeking": power,
    "corrigibility": corrigibility,
    "transitivity": transitivity,
    "no_flip": no_flip,
    "emergence": emergence,
}


def _dry_run(conf, mod, acfg, out: Path) -> dict:
    """Every task of the analysis against a counting backend in a scratch folder (nothing sent,
    nothing kept but ``plan.json``)."""
    import json
    import tempfile

    from utility_jax.elicit.dry_run import Ledger
    from utility_jax.run.cost import plan

    # a few cheap draws: the analyses need some, and their numbers are not the point here
    conf = dataclasses.replace(
        conf, uncertainty=dataclasses.replace(conf.uncertainty, n_bootstrap=2, laplace=False)
    )
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Context(conf, Path(tmp), jax.random.key(conf.seed), progress_factory(conf.progress))
        ctx.ledger = Ledger()
        mod.run(acfg, ctx)
    pl = plan(ctx.ledger, conf)
    (out / "plan.json").write_text(json.dumps(pl, indent=1))
    return pl


def run_analysis(cfg: DictConfig | dict, out_dir: str | Path) -> dict:
    """Run the analysis named by ``cfg.analysis.name``; write analysis.json, a plot and summary."""
    raw = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    a = raw.get("analysis") or {}
    name = a.get("name")
    if name not in ANALYSES:
        raise ValueError(
            f"analysis.name={name!r}: choose one of {sorted(ANALYSES)} "
            "(e.g. experiment=exchange_rates)"
        )
    conf = validate(cfg)
    if conf.x64:
        jax.config.update("jax_enable_x64", True)
    mod = ANALYSES[name]
    settings = getattr(mod, "paper_settings", None)
    data = (raw.get("paths") or {}).get("data", "")
    acfg = analysis_config(mod.Config, a, name, settings(str(data)) if settings else None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if conf.dry_run:
        return _dry_run(conf, mod, acfg, out)
    ctx = Context(conf, out, jax.random.key(conf.seed), progress_factory(conf.progress))
    numbers = mod.run(acfg, ctx)
    numbers = {
        "analysis": name,
        "agent": conf.agent.kind if ctx.simulated else f"{conf.agent.kind}:{conf.agent.model}",
        "interval_level": conf.uncertainty.level,
        **numbers,
    }
    raw.pop("hydra", None)
    write_analysis(out, name, numbers, raw, mod, conf.plots)
    return numbers
