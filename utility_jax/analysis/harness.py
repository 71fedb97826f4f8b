"""The shell every analysis runs in: tasks (one utility fit each) through the run's agent.

An analysis (``utility_jax.analysis.<module>``, found by :mod:`~utility_jax.analysis.registry`)
provides

* ``Config``: a dataclass of its settings (the ``analysis`` section of the run config);
* ``BOUNDS``: the natural range of each number it reports (intervals are clipped to them);
* ``run(acfg, ctx) -> dict``: builds its outcome sets, asks them through ``ctx`` (each
  :meth:`Context.fit` is a full elicitation + Thurstonian fit with the run's fitter, graph,
  uncertainty and bayes settings, written to its own sub-folder), and returns its numbers;
* ``plot(numbers) -> Figure`` and ``summary(numbers) -> str``, from the numbers alone (so a
  finished run can be re-plotted from its ``analysis.json``); the summary opens with
  :func:`opening`. :func:`write_analysis` saves the figure, the summary and the numbers.

Every derived number is computed on each utility draw (bootstrap, Laplace or posterior, per
config) as well as on the point estimate (:mod:`~utility_jax.analysis.draws`).

With a simulated agent, each task carries planted utilities built from the outcomes' structure
(an expected-utility maximiser, a hyperbolic discounter, a planted exchange rate...), so the right
answer is known by construction.
"""

import dataclasses
import json
import logging
import re
import zlib
from pathlib import Path

import jax
import numpy as np
from omegaconf import OmegaConf

from utility_jax.elicit.registry import AGENT_KINDS
from utility_jax.io.outcomes import OutcomeSet
from utility_jax.run.agents import build_agent, build_backend
from utility_jax.run.config import AgentConf, ComputeUtilitiesConf
from utility_jax.run.pipeline import ComputeUtilitiesResult, compute_utilities
from utility_jax.run.report import jsonable, write_run

__all__ = [
    "Task",
    "TaskResult",
    "Context",
    "analysis_config",
    "judge_conf",
    "opening",
    "write_analysis",
]

log = logging.getLogger("utility_jax")


@dataclasses.dataclass
class Task:
    """One outcome set asked with one prompt and fitted once."""

    name: str
    outcomes: OutcomeSet
    template: str | None = None  # a prompt template name; None: the run's elicitation.template
    fields: dict[str, str] = dataclasses.field(default_factory=dict)  # {entity}, {scenario}...
    system: str | None = None  # a system message name/text; None: the run's
    truth: tuple[np.ndarray, np.ndarray] | None = None  # planted (mu, sigma): simulated agents
    elicitation: dict = dataclasses.field(default_factory=dict)  # e.g. {"orders": "first"}
    fitter: dict = dataclasses.field(default_factory=dict)  # e.g. {"position_bias": False}
    agent: AgentConf | None = None  # another agent for this task (a judge); None: the run's


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
        self.ledger = None  # dry_run=true: what every task would send (set by the registry)
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
        el = dataclasses.replace(el, **task.elicitation)
        fitter = dataclasses.replace(self.conf.fitter, **task.fitter)
        agent = task.agent or self.conf.agent
        return dataclasses.replace(
            self.conf, elicitation=el, fitter=fitter, agent=agent, name=task.name, plots=False
        )

    def agent(self, task: Task, folder: Path):
        conf = self.task_conf(task)
        if conf.agent.kind == "simulated" and task.truth is None and not conf.dry_run:
            raise ValueError(f"task {task.name!r}: a simulated agent needs planted utilities")
        agent, _ = build_agent(
            conf,
            task.outcomes,
            self.task_key("agent:" + task.name),
            out_dir=folder,
            progress=self.progress,
            fields=task.fields,
            truth=task.truth,
            ledger=self.ledger,
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

    def query(self, task: Task, pairs: np.ndarray) -> np.ndarray:
        """Ask ``pairs`` directly (both orders, ``elicitation.k`` each; no graph, no fit):
        ``[n_pairs, 2, 3]`` counts, answers kept in the task's folder."""
        folder = self.folder(task)
        agent = self.agent(task, folder)
        try:
            return agent.query(pairs, self.conf.elicitation.k, key=self.task_key(task.name))
        finally:
            agent.close(export_dir=folder)

    def fit(self, task: Task) -> TaskResult:
        """Elicit and fit one task in its folder (see :meth:`folder`)."""
        folder = self.folder(task)
        conf = self.task_conf(task)
        agent = self.agent(task, folder)
        try:
            res = compute_utilities(
                task.outcomes,
                agent,
                conf,
                key=self.task_key("fit:" + task.name),
                progress=self.progress,
                true_utilities=task.truth,
            )
        finally:
            agent.close(export_dir=folder)
        write_run(res, folder, config=dataclasses.asdict(conf), plots=False)
        mu = np.asarray(res.fit.mu_normalized, dtype=np.float64)
        if conf.fitter.solver != "lbfgs" and conf.bayes.method == "none":
            # the reference's fitter gives no draws: derived numbers get no interval (NaN),
            # said in every summary as "no intervals (fitter=reference)"
            log.warning(
                "task %s: fitter.solver=%s gives no utility draws", task.name, conf.fitter.solver
            )
            return TaskResult(task, res, mu, np.zeros((0, len(mu))), "none (fitter=reference)")
        kind, draws = res.utility_draws()
        return TaskResult(task, res, mu, np.asarray(draws, dtype=np.float64), kind)

    def backend(self, agent: AgentConf | None = None, **elicitation_overrides):
        """The run's LLM backend (or ``agent``'s, e.g. a judge) with some elicitation settings
        changed (e.g. temperature=0)."""
        el = dataclasses.replace(self.conf.elicitation, **elicitation_overrides)
        if self.conf.dry_run:
            from utility_jax.elicit.dry_run import DryRunBackend

            return DryRunBackend(agent or self.conf.agent, el, self.ledger, seed=self.conf.seed)
        return build_backend(agent or self.conf.agent, el)


def judge_conf(raw: dict | None, what: str) -> AgentConf | None:
    """A judge agent from an analysis' ``judge`` setting (any agent config: ``{kind: openai,
    model: gpt-4o, base_url: ...}``), validated; None when unset."""
    if not raw:
        return None
    try:
        conf = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(AgentConf), raw))
    except Exception as e:
        raise ValueError(f"{what}.judge: bad agent setting: {e}") from e
    if conf.backend is None and conf.kind not in AGENT_KINDS:
        raise ValueError(f"{what}.judge.kind={conf.kind!r} is not one of {AGENT_KINDS}")
    if conf.kind != "simulated" and not conf.model:
        raise ValueError(f"{what}.judge needs a model (judge.model=...)")
    return conf


def analysis_config(cls, raw: dict | None, name: str, paper: dict | None = None):
    """Merge ``raw`` onto the analysis' ``Config`` dataclass; unknown keys name themselves.

    ``raw["preset"] == "paper"`` (set by ``preset=paper``) applies ``paper``, the analysis'
    reference settings, on top (``paper_settings`` of the module)."""
    raw = dict(raw or {})
    preset = raw.pop("preset", None)
    raw = {k: v for k, v in raw.items() if k not in ("name", "module")}
    if preset == "paper" and paper:
        raw.update(paper)
    elif preset not in (None, "none", "paper"):
        raise ValueError(f"analysis={name}: unknown preset {preset!r} (paper or none)")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls), raw)
    except Exception as e:  # omegaconf's errors name the key
        raise ValueError(f"analysis={name}: bad setting: {e}") from e
    return OmegaConf.to_object(merged)


def opening(numbers: dict, title: str, *details: str, intervals: str | None = None) -> str:
    """The common first sentence of every analysis summary:
    ``"<title> (<agent>; <details>; 90% bootstrap intervals). "``.

    ``intervals`` names the interval kind when it is not the run's ``interval_kind``
    (e.g. ``"vote-bootstrap"``); ``numbers`` carries ``agent`` and ``interval_level``.
    """
    lvl = int(round(100 * numbers["interval_level"]))
    kind = intervals or numbers.get("interval_kind", "")
    parts = [p for p in (numbers.get("agent"), *details) if p]
    if kind.startswith("none"):
        parts.append("no intervals: fitter=reference gives no utility draws")
    else:
        parts.append(f"{lvl}% {kind} intervals")
    return f"{title} ({'; '.join(parts)}). "


def write_analysis(out: Path, name: str, numbers: dict, raw_config: dict, module, plots: bool):
    """The run folder of an analysis: ``config.json``, ``analysis.json``, ``summary.txt`` and,
    with ``plots``, ``<name>.png`` from the module's figure."""
    (out / "config.json").write_text(json.dumps(jsonable(raw_config), indent=2))
    (out / "analysis.json").write_text(json.dumps(jsonable(numbers), indent=2))
    (out / "summary.txt").write_text(module.summary(numbers) + "\n")
    if plots:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = module.plot(numbers)
        fig.savefig(out / f"{name}.png", dpi=120)
        plt.close(fig)
        extra = getattr(module, "per_metric_figures", None)  # more figures, in out/<name>/
        for key, f in (extra(numbers) if extra else {}).items():
            (out / name).mkdir(exist_ok=True)
            f.savefig(out / name / f"{_slug(key)}.png", dpi=110)
            plt.close(f)
    log.info("%s done; files in %s", name, out)
