"""The ``utility-jax`` command: ``compute``, ``analyze``, ``control`` (Hydra apps over the
configs shipped in the package) and ``data`` (the paper's public inputs).

    utility-jax compute experiment=smoke fitter=logit
    utility-jax compute -m fitter=case3,logit seed=0,1,2      # a sweep
    utility-jax analyze experiment=lotteries
    utility-jax control sft=lora
    utility-jax data fetch

Every Hydra option works after the subcommand (``--help``, ``--cfg job``, ``-m``,
``--config-dir`` for a folder of your own configs, ``hydra.run.dir=...``). Runs go to
``./logs/<name>/`` under the folder you are in (``paths.log_dir`` or ``UTILITY_JAX_LOG_DIR``).
"""

import importlib
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["main", "COMMANDS"]

CONFIG_MODULE = "pkg://utility_jax.conf"

#: exit status of a run stopped by ``budget.max_requests`` / ``budget.max_usd`` (everything
#: asked is stored; the same command with a higher limit goes on). Hydra's own errors exit 1,
#: bad usage 2, an interrupt (Ctrl-C) 130.
EXIT_BUDGET = 3
#: exit status of a run that finished and wrote its folder but failed (an error or refusal rate
#: past its maximum, outcomes never compared, a judge that never answered)
EXIT_FAILED_RUN = 4
EXIT_INTERRUPTED = 130
_exit: dict = {
    "code": 0,
    "out": None,
}  # the worst status of the runs of this invocation (a sweep runs several)

_USAGE = """usage: utility-jax COMMAND [hydra options and overrides...]

commands:
  compute   elicit and fit utilities (default: the simulated agent on the shipped outcomes)
  analyze   one of the paper's analyses:
            {analyses}
  (compute and analyze take dry_run=true: count requests, tokens and cost; send nothing)
  control   utility control: steer a model toward a citizen assembly by fine-tuning
  data      the paper's public inputs: 'utility-jax data fetch' (see 'utility-jax data --help')
  collect   one table of every run under a folder: 'utility-jax collect SWEEP_DIR [--out DIR]'
  compare   runs side by side, table and figures: 'utility-jax compare RUN_OR_SWEEP... [--out DIR]'

'utility-jax COMMAND --help' lists a command's config groups and options.
"""


def analysis_experiments() -> list[str]:
    """The shipped experiments that run an analysis (their config has an ``analysis`` section),
    read from the configs, so the usage never imports the analyses (and JAX) to list them."""
    import yaml

    folder = Path(__file__).parent / "conf" / "experiment"
    return sorted(
        p.stem
        for p in folder.glob("*.yaml")
        if (yaml.safe_load(p.read_text()) or {}).get("analysis")
    )


def usage() -> str:
    """The command's usage text, with the analyses as the configs name them."""
    lines, line = [], "experiment="
    for name in analysis_experiments():
        if len(line) + len(name) > 76:
            lines.append(line)
            line = ""
        line += name + "|"
    return _USAGE.format(analyses=("\n" + " " * 12).join(lines + [line.rstrip("|")]))


def _compute(cfg) -> float:
    from hydra.core.hydra_config import HydraConfig

    from utility_jax.elicit.budget import BudgetExceeded
    from utility_jax.run.cost import plan_text
    from utility_jax.run.incidents import RunIncidentError
    from utility_jax.run.runner import run_compute_utilities

    out = HydraConfig.get().runtime.output_dir
    _exit["out"] = out
    try:
        res = run_compute_utilities(cfg, out)
    except BudgetExceeded as e:
        _stopped(e)
        return float("nan")
    except RunIncidentError as e:
        _failed(e)
        return float("nan")
    if isinstance(res, dict):  # dry_run=true: the plan
        print(plan_text(res))
        print(f"plan: {out}/plan.json")
        return float("nan")
    with open(f"{out}/summary.txt") as fh:
        print(fh.read().split("\noutcomes by utility")[0])
    print(f"run folder: {out}")
    # the value an optimising sweeper minimises
    return float(res.metrics.get("heldout", {}).get("log_loss", float("nan")))


def _stopped(e: Exception) -> None:
    """A budget stop: one line, and the invocation exits :data:`EXIT_BUDGET` (a retry loop or
    a requeue sees that it did not finish)."""
    print(f"stopped at the limit: {e}", file=sys.stderr)
    _exit["code"] = max(_exit["code"], EXIT_BUDGET)


def _failed(e: Exception) -> None:
    """A run that wrote its folder but failed: the reasons, and exit :data:`EXIT_FAILED_RUN`."""
    print(f"FAILED: {e}", file=sys.stderr)
    _exit["code"] = max(_exit["code"], EXIT_FAILED_RUN)


def _analyze(cfg) -> None:
    from hydra.core.hydra_config import HydraConfig

    from utility_jax.analysis.registry import run_analysis
    from utility_jax.elicit.budget import BudgetExceeded
    from utility_jax.run.incidents import RunIncidentError

    out = HydraConfig.get().runtime.output_dir
    _exit["out"] = out
    try:
        res = run_analysis(cfg, out)
    except BudgetExceeded as e:
        _stopped(e)
        return
    except RunIncidentError as e:
        _failed(e)
        return
    if "token_count" in res:  # dry_run=true: the plan
        from utility_jax.run.cost import plan_text

        print(plan_text(res))
        print(f"plan: {out}/plan.json")
        return
    with open(f"{out}/summary.txt") as fh:
        print(fh.read())
    print(f"run folder: {out}")


def _control(cfg) -> float:
    from hydra.core.hydra_config import HydraConfig

    from utility_jax.control import run_utility_control
    from utility_jax.control.config import validate_control
    from utility_jax.studies import control_political_shift

    out = HydraConfig.get().runtime.output_dir
    _exit["out"] = out
    m = run_utility_control(cfg, out)
    if "token_count" in m:  # dry_run=true: the plan
        from utility_jax.run.cost import plan_text

        print(plan_text(m))
        if "memory" in m:
            print(m["memory"]["text"])
        print(f"plan: {out}/plan.json")
        return float("nan")
    conf = validate_control(cfg)
    if conf.political:
        control_political_shift(Path(out), conf, m["base_model"], m["tuned_model"])
    with open(f"{out}/summary.txt") as fh:
        print(fh.read())
    print(f"run folder: {out}")
    return m["after"]["heldout_accuracy_refit"]


#: argparse writes "usage: " itself
DATA_USAGE = "utility-jax data {fetch,where,check} [--dest DIR] [--base-url URL]"
DATA_ACTIONS = """actions:
  fetch   download the paper's public inputs at pinned commits, check each sha256
  where   print the data folder
  check   verify the files in the data folder (missing or changed files are listed)
"""


def data_main(args: list[str]) -> int:
    """``utility-jax data ...``."""
    import argparse

    from utility_jax.io.datasets import DEFAULT_BASE_URL, FILES, data_dir, fetch, sha256_file

    p = argparse.ArgumentParser(
        prog="utility-jax data",
        usage=DATA_USAGE,
        description=DATA_ACTIONS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("action", choices=["fetch", "where", "check"])
    p.add_argument("--dest", default=None, help="data folder (default: UTILITY_JAX_DATA or cache)")
    p.add_argument("--base-url", default=DEFAULT_BASE_URL, help="URL format for each file")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per read")
    p.add_argument("--deadline", type=float, default=600.0, help="seconds per file, in all")
    a = p.parse_args(args)
    dest = Path(a.dest) if a.dest else data_dir()
    if a.action == "where":
        print(dest)
        return 0
    if a.action == "check":
        bad = [
            rel
            for rel, (_, _, sha) in FILES.items()
            if not (dest / rel).exists() or sha256_file(dest / rel) != sha
        ]
        print(f"{len(FILES) - len(bad)} of {len(FILES)} files verified in {dest}")
        for rel in bad:
            print(f"  missing or changed: {rel}")
        return 1 if bad else 0
    print(f"fetching {len(FILES)} files into {dest}")
    try:
        report = fetch(
            dest, base_url=a.base_url, timeout=a.timeout, deadline_s=a.deadline, log=print
        )
    except (ConnectionError, RuntimeError, ValueError) as e:
        print(f"utility-jax data fetch: {e}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


def collect_main(args: list[str]) -> int:
    """``utility-jax collect SWEEP_DIR [--out DIR] [--parquet]``."""
    import argparse

    from utility_jax.run.collect import collect_runs

    p = argparse.ArgumentParser(prog="utility-jax collect")
    p.add_argument("root", help="a run folder, a sweep folder, or any folder of runs")
    p.add_argument("--out", default=None, help="where to write the tables (default: root)")
    p.add_argument("--parquet", action="store_true", help="also write Parquet files")
    a = p.parse_args(args)
    try:
        written = collect_runs(a.root, a.out, parquet=a.parquet)
    except (FileNotFoundError, ValueError) as e:
        print(f"utility-jax collect: {e}", file=sys.stderr)
        return 1
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0


def compare_main(args: list[str]) -> int:
    """``utility-jax compare RUN_OR_SWEEP... [--out DIR]``."""
    import argparse

    from utility_jax.run.compare import compare_runs, table_text

    p = argparse.ArgumentParser(prog="utility-jax compare")
    p.add_argument("paths", nargs="+", help="run folders, sweep folders, or folders of runs")
    p.add_argument("--out", default="compare", help="where to write the table and figures")
    a = p.parse_args(args)
    try:
        res = compare_runs(a.paths, a.out)
    except (FileNotFoundError, ValueError) as e:
        print(f"utility-jax compare: {e}", file=sys.stderr)
        return 1
    print(table_text(res))
    print(f"table and figures: {a.out}/compare.csv, compare_metrics.png, compare_utilities.png")
    return 0


#: command -> (primary config, task function)
#: command -> (primary config, task, the module whose import registers its groups' schemas)
COMMANDS: dict[str, tuple[str, Callable, str]] = {
    "compute": ("config", _compute, "utility_jax.run.config"),
    "analyze": ("config", _analyze, "utility_jax.run.config"),
    "control": ("utility_control", _control, "utility_jax.control.config"),
}


def run_hydra(command: str, args: list[str]):
    """Run a command's Hydra app with ``args`` as its command line."""
    import hydra

    from utility_jax.io.datasets import register_resolvers

    register_resolvers()
    config_name, task, schemas = COMMANDS[command]
    importlib.import_module(schemas)
    saved = sys.argv
    sys.argv = [f"utility-jax {command}", *args]
    try:
        app = hydra.main(version_base="1.3", config_path=CONFIG_MODULE, config_name=config_name)
        return app(task)()
    finally:
        sys.argv = saved


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``utility-jax`` (and ``python -m utility_jax``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage(), end="")
        return 0
    command, rest = args[0], args[1:]
    if command == "data":
        return data_main(rest)
    if command == "collect":
        return collect_main(rest)
    if command == "compare":
        return compare_main(rest)
    if command not in COMMANDS:
        print(f"utility-jax: unknown command {command!r}\n\n{usage()}", end="", file=sys.stderr)
        return 2
    _exit.update(code=0, out=None)
    try:
        run_hydra(command, rest)
    except KeyboardInterrupt:
        print(_interrupted(command, rest), file=sys.stderr)
        return EXIT_INTERRUPTED
    return _exit["code"]


def _interrupted(command: str, args: list[str]) -> str:
    """What Ctrl-C prints: what is kept, and the command that goes on."""
    import shlex

    out = _exit.get("out")
    if out is None:
        return "\nstopped (Ctrl-C) before the run started"
    again = [a for a in args if not a.startswith("hydra.run.dir=")] + [f"hydra.run.dir={out}"]
    return (
        f"\nstopped (Ctrl-C): every answer received is stored in {out}; resume with:\n"
        f"  utility-jax {command} {shlex.join(again)}"
    )
