"""The analyses by name, and the run that executes one (``utility-jax analyze experiment=<name>``).

An analysis is a module with ``Config`` (a dataclass whose ``name`` default is the analysis'
name), ``run``, ``plot`` and ``summary`` (:mod:`~utility_jax.analysis.harness` says what each
does). Every such module in this package is found here, so adding one takes the module, its
``conf/experiment/<name>.yaml`` and its test, nothing else. An analysis of your own, outside the
package, is named by its experiment config: ``analysis.module: my_package.my_analysis``.
"""

import dataclasses
import functools
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

import jax
from omegaconf import DictConfig, OmegaConf

import utility_jax.analysis as _package
from utility_jax.analysis.harness import Context, analysis_config, write_analysis
from utility_jax.run.config import save_hydra_record, validate
from utility_jax.run.progress import progress_factory

__all__ = ["analyses", "analysis_name", "run_analysis"]

_PARTS = ("Config", "run", "plot", "summary")


def analysis_name(mod: ModuleType) -> str | None:
    """The name of the analysis a module implements (its ``Config.name`` default), or None when
    the module is not an analysis (a helper such as ``draws`` or ``harness``)."""
    if not all(hasattr(mod, a) for a in _PARTS) or not dataclasses.is_dataclass(mod.Config):
        return None
    return {f.name: f.default for f in dataclasses.fields(mod.Config)}.get("name")


@functools.cache
def analyses() -> dict[str, ModuleType]:
    """Every analysis of the package by name (the ``analysis.name`` of its experiment config)."""
    found = {}
    for info in pkgutil.iter_modules(_package.__path__):
        mod = importlib.import_module(f"{_package.__name__}.{info.name}")
        name = analysis_name(mod)
        if name is not None:
            found[name] = mod
    return found


def _module_of(a: dict) -> ModuleType:
    """The module of the analysis a run config's ``analysis`` section names."""
    name, where = a.get("name"), a.get("module")
    if where:
        try:
            mod = importlib.import_module(where)
        except ImportError as e:
            raise ValueError(f"analysis.module={where!r} does not import: {e}") from e
        if analysis_name(mod) != name:
            raise ValueError(
                f"analysis.module={where!r} is not the analysis {name!r}: it needs "
                f"{', '.join(_PARTS)}, with Config.name defaulting to {name!r}"
            )
        return mod
    found = analyses()
    if name not in found:
        raise ValueError(
            f"analysis.name={name!r}: choose one of {sorted(found)} "
            "(e.g. experiment=exchange_rates), or name your own with analysis.module"
        )
    return found[name]


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
    pl = plan(ctx.ledger, conf.agent, conf.budget)
    (out / "plan.json").write_text(json.dumps(pl, indent=1))
    return pl


def run_analysis(cfg: DictConfig | dict, out_dir: str | Path) -> dict:
    """Run the analysis named by ``cfg.analysis.name``; write analysis.json, a plot and summary."""
    raw = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    a = raw.get("analysis") or {}
    name = a.get("name")
    mod = _module_of(a)
    conf = validate(cfg)
    if conf.x64:
        jax.config.update("jax_enable_x64", True)
    settings = getattr(mod, "paper_settings", None)
    data = (raw.get("paths") or {}).get("data", "")
    acfg = analysis_config(mod.Config, a, name, settings(str(data)) if settings else None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_hydra_record(cfg, out)
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
