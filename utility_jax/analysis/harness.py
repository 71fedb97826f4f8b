"""The shell every analysis runs in: tasks (one utility fit each) through the run's agent.

An analysis (``utility_jax.analysis.<module>``) provides

* ``Config``: a dataclass of its settings (the ``analysis`` section of the run config);
* ``run(acfg, ctx) -> dict``: builds its outcome sets, asks them through ``ctx`` (each
  :meth:`Context.fit` is a full elicitation + Thurstonian fit with the run's fitter, graph,
  uncertainty and bayes settings, written to its own sub-folder), and returns its numbers;
* ``plot(numbers, path)`` and ``summary(numbers) -> str``, from the numbers alone (so a finished
  run can be re-plotted from its ``analysis.json``).

Every derived number is computed on each utility draw (bootstrap, Laplace or posterior, per
config) as well as on the point estimate, and reported as ``{"estimate", "lo", "hi"}``.

With a simulated agent, each task carries planted utilities built from the outcomes' structure
(an expected-utility maximiser, a hyperbolic discounter, a planted exchange rate...), so the right
answer is known by construction.
"""

import dataclasses
import importlib
import json
import logging
import re
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
from omegaconf import DictConfig, OmegaConf

from utility_jax.config import ComputeUtilitiesConf, validate
from utility_jax.outcomes import OutcomeSet
from utility_jax.pipeline import ComputeUtilitiesResult, compute_utilities
from utility_jax.report import _jsonable, write_run

__all__ = [
    "ANALYSES",
    "Task",
    "TaskResult",
    "Context",
    "interval",
    "map_draws",
    "run_analysis",
    "analysis_config",
]

log = logging.getLogger("utility_jax")

#: analysis name -> module under utility_jax.analysis
ANALYSES = {
    "lotteries": "lotteries",
    "instrumental": "instrumental",
    "maximization": "maximization",
    "convergence": "convergence",
    "political": "political",
    "exchange_rates": "exchange_rates",
    "discounting": "discounting",
    "power_seeking": "power",
    "corrigibility": "corrigibility",
}


@dataclasses.dataclass
class Task:
    """One outcome set asked with one prompt and fitted once."""

    name: str
    outcomes: OutcomeSet
    template: str | None = None  # a prompt template name; None: the run's elicitation.template
    fields: dict[str, str] = dataclasses.field(default_factory=dict)  # {entity}, {scenario}...
    system: str | None = None  # a system message name/text; None: the run's
    truth: tuple[np.ndarray, np.ndarray] | None = None  # planted (mu, sigma): simulated agents


@dataclasses.dataclass
class TaskResult:
    task: Task
    result: ComputeUtilitiesResult
    mu: np.ndarray  # [N] normalised point estimate (mean 0, sd 1)
    draws: np.ndarray  # [D, N] normalised draws
    interval_kind: str  # bootstrap | laplace | posterior


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:80] or "task"


class Context:
    """What an analysis may do: fit tasks, ask free questions, know the run's settings."""

    def __init__(self, conf: ComputeUtilitiesConf, out_dir: Path, key: jax.Array, progress=None):
        self.conf, self.out_dir, self.key, self.progress = conf, Path(out_dir), key, progress
        self.simulated = conf.agent.kind == "simulated"
        self.level = conf.uncertainty.level
        self._folders: dict[str, str] = {}  # task folder -> task name

    def task_key(self, name: str) -> jax.Array:
        return jax.random.fold_in(self.key, zlib.crc32(name.encode()) & 0x7FFFFFFF)

    def rng(self, name: str) -> np.random.Generator:
        """A NumPy generator derived from the run seed and a name (no global state)."""
        return np.random.default_rng([self.conf.seed, *name.encode()])

    def task_conf(self, task: Task) -> ComputeUtilitiesConf:
        el = self.conf.elicitation
        el = dataclasses.replace(
            el,
            template=task.template or el.template,
            template_text=None if task.template else el.template_text,
            system=task.system if task.system is not None else el.system,
        )
        return dataclasses.replace(self.conf, elicitation=el, name=task.name, plots=False)

    def agent(self, task: Task, folder: Path):
        from utility_jax.runner import build_agent

        conf = self.task_conf(task)
        if self.simulated and task.truth is None:
            raise ValueError(f"task {task.name!r}: a simulated agent needs planted utilities")
        agent, _ = build_agent(
            conf,
            task.outcomes,
            self.task_key("agent:" + task.name),
            out_dir=folder,
            progress=self.progress,
            fields=task.fields,
            truth=task.truth,
        )
        return agent

    def folder(self, task: Task) -> Path:
        """The task's run folder ``tasks/<name>/``, never shared by two tasks of a run."""
        slug = _slug(task.name)
        if self._folders.setdefault(slug, task.name) != task.name:
            raise ValueError(
                f"tasks {self._folders[slug]!r} and {task.name!r} would share the folder "
                f"tasks/{slug}: rename one"
            )
        folder = self.out_dir / "tasks" / slug
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @staticmethod
    def _close(agent, folder: Path) -> None:
        store = getattr(agent, "store", None)
        if store is not None:
            store.export_jsonl(folder / "responses.jsonl")
            store.close()

    def query(self, task: Task, pairs: np.ndarray) -> np.ndarray:
        """Ask ``pairs`` directly (both orders, ``elicitation.k`` each; no graph, no fit):
        ``[n_pairs, 2, 3]`` counts, answers kept in the task's folder."""
        folder = self.folder(task)
        agent = self.agent(task, folder)
        try:
            return agent.query(pairs, self.conf.elicitation.k, key=self.task_key(task.name))
        finally:
            self._close(agent, folder)

    def fit(self, task: Task) -> TaskResult:
        """Elicit and fit one task in its folder (see :meth:`folder`)."""
        folder = self.folder(task)
        conf = self.task_conf(task)
        agent = self.agent(task, folder)
        res = compute_utilities(
            task.outcomes,
            agent,
            conf,
            key=self.task_key("fit:" + task.name),
            progress=self.progress,
            true_utilities=task.truth,
        )
        self._close(agent, folder)
        write_run(res, folder, config=dataclasses.asdict(conf), plots=False)
        kind, draws = res.utility_draws()
        mu = np.asarray(res.fit.mu_normalized, dtype=np.float64)
        return TaskResult(task, res, mu, np.asarray(draws, dtype=np.float64), kind)

    def backend(self, **elicitation_overrides):
        """The run's LLM backend with some elicitation settings changed (e.g. temperature=0)."""
        from utility_jax.runner import build_backend

        el = dataclasses.replace(self.conf.elicitation, **elicitation_overrides)
        return build_backend(dataclasses.replace(self.conf, elicitation=el))


#: natural bounds of the derived numbers, by name (intervals are clipped to them)
BOUNDS: dict[str, tuple[float | None, float | None]] = {
    **dict.fromkeys(
        (
            "pearson_r",
            "spearman_rho",
            "start_gap_correlation",
            "pearson_similarity_vs_capability",
            "spearman_similarity_vs_capability",
            "mean_similarity",
            "correlation",
        ),
        (-1.0, 1.0),
    ),
    **dict.fromkeys(("pair_agreement", "top1", "top3", "top5", "share"), (0.0, 1.0)),
    **dict.fromkeys(("mae_z", "score", "rmse_log"), (0.0, None)),
    **dict.fromkeys(("r2", "r2_log"), (None, 1.0)),
}


def interval(
    point: float,
    draws,
    level: float,
    kind: str = "bootstrap",
    *,
    bounds: tuple[float | None, float | None] | None = None,
    log: bool = False,
) -> dict[str, float]:
    """``{"estimate", "lo", "hi", "draws_shift"}`` for a number derived from utilities.

    ``estimate`` is the number computed from the point-estimate utilities. With posterior draws
    the interval is the equal-tailed posterior interval of the number. With bootstrap or Laplace
    draws it is the draws' spread re-centred on the estimate, ``estimate + (quantile - median)``:
    each draw adds its own sampling noise on top of the estimate's, so a nonlinear number (a
    correlation, a mean absolute error) computed on draws is shifted away from the estimate
    (attenuated correlations...). That shift is reported as ``draws_shift`` (median of the draws
    minus the estimate) rather than folded into the interval. ``log``: work on the log scale
    (positive numbers such as exchange rates); ``bounds``: clip to the number's range.
    """
    d = np.asarray(draws, dtype=np.float64)
    d = d[np.isfinite(d)]
    p = float(point)
    if log:
        d = np.log(d[d > 0])
        p = np.log(p) if p > 0 else np.nan
    a = (1 - level) / 2
    if d.size == 0 or not np.isfinite(p):
        lo = hi = shift = np.nan
    else:
        qlo, med, qhi = np.quantile(d, [a, 0.5, 1 - a])
        shift = med - p
        lo, hi = (qlo, qhi) if kind == "posterior" else (p + qlo - med, p + qhi - med)
    if log:
        p, lo, hi = np.exp(p), np.exp(lo), np.exp(hi)
        shift = np.exp(shift)  # a ratio on the log scale
    if bounds is not None:
        b_lo = -np.inf if bounds[0] is None else bounds[0]
        b_hi = np.inf if bounds[1] is None else bounds[1]
        lo, hi = float(np.clip(lo, b_lo, b_hi)), float(np.clip(hi, b_lo, b_hi))
    return {"estimate": float(p), "lo": float(lo), "hi": float(hi), "draws_shift": float(shift)}


def map_draws(
    fn: Callable[..., dict],
    level: float,
    point_args,
    draw_args,
    kind: str = "bootstrap",
    bounds: tuple[float | None, float | None] | None = None,
) -> dict:
    """Apply ``fn`` (returning a dict of scalars) to the point estimate and to every draw.

    ``draw_args`` are arrays with a leading draw axis (all the same length); numbers of ``fn``
    become :func:`interval` s (bounded by ``bounds``, else by :data:`BOUNDS` for their name),
    other values (counts, names) are taken from the point estimate.
    """
    point = fn(*point_args)
    n = len(draw_args[0])
    per = [fn(*(a[d] for a in draw_args)) for d in range(n)]
    out: dict[str, Any] = {}
    for k, v in point.items():
        if isinstance(v, float):
            b = bounds if bounds is not None else BOUNDS.get(k)
            out[k] = interval(v, [p[k] for p in per], level, kind, bounds=b)
        else:
            out[k] = v
    return out


def paired_draws(*results: TaskResult) -> list[np.ndarray]:
    """Draws of several tasks cut to a common length (independent fits pair up by index)."""
    n = min(len(r.draws) for r in results)
    return [r.draws[:n] for r in results]


def analysis_config(cls, raw: dict | None, name: str):
    """Merge ``raw`` onto the analysis' ``Config`` dataclass; unknown keys name themselves."""
    raw = {k: v for k, v in (raw or {}).items() if k != "name"}
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls), raw)
    except Exception as e:  # omegaconf's errors name the key
        raise ValueError(f"analysis={name}: bad setting: {e}") from e
    return OmegaConf.to_object(merged)


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
    mod = importlib.import_module(f"utility_jax.analysis.{ANALYSES[name]}")
    acfg = analysis_config(mod.Config, a, name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    progress = None
    if conf.progress:
        from tqdm.auto import tqdm

        progress = lambda **kw: tqdm(file=sys.stderr, dynamic_ncols=True, **kw)  # noqa: E731
    ctx = Context(conf, out, jax.random.key(conf.seed), progress)
    numbers = mod.run(acfg, ctx)
    numbers = {
        "analysis": name,
        "agent": conf.agent.kind if ctx.simulated else f"{conf.agent.kind}:{conf.agent.model}",
        "interval_level": conf.uncertainty.level,
        **numbers,
    }
    raw.pop("hydra", None)
    (out / "config.json").write_text(json.dumps(_jsonable(raw), indent=2))
    (out / "analysis.json").write_text(json.dumps(_jsonable(numbers), indent=2))
    text = mod.summary(numbers)
    (out / "summary.txt").write_text(text + "\n")
    if conf.plots:
        import matplotlib

        matplotlib.use("Agg")
        mod.plot(numbers, out / f"{name}.png")
    log.info("%s done; files in %s", name, out)
    return numbers


def fmt(iv: dict[str, float], digits: int = 3) -> str:
    """``0.912 [0.880, 0.941]``."""
    return f"{iv['estimate']:.{digits}f} [{iv['lo']:.{digits}f}, {iv['hi']:.{digits}f}]"
