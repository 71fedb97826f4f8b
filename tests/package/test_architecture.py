"""The package's floor plan, checked: folders are layers, data flows one way, functions are short.

Layers (a module may import from its own layer or below, never above):

0. ``core/``: pure JAX/NumPy, no I/O, keys passed in;
1. ``io/``: files in and out (outcome sets, the paper's data, prompt templates, shipped assets);
   ``assets/`` and ``conf/`` are data folders beside it;
2. ``finetune/``: the NNX model and SFT;
3. ``elicit/``: agents, backends, the answer store;
4. ``run/``: config to run folder;
5. ``analysis/`` and ``control/``, built on the run shell, never on each other;
6. the command line (``cli``, ``__main__``, ``studies``) and the public namespace
   (``__init__``, ``_compat``).

Inside ``core/``, ``elicit/`` and ``run/`` the modules are ordered too (:data:`ORDER`): a module
imports only those listed before it. What counts as an import: ``import`` and ``from`` statements
anywhere (inside functions too), ``from utility_jax import <name>`` (the top-level namespace, layer
6), and any string that is a dotted ``utility_jax....`` path (a Hydra ``_target_``, a
``monkeypatch`` path); the ``_target_`` strings of ``conf/**/*.yaml`` must name an object that
exists, below the command line.
"""

import ast
import importlib
import re
from pathlib import Path

import pytest
import yaml

PKG = Path(__file__).resolve().parents[2] / "utility_jax"
MAX_FUNCTION_LINES = 80
TOP = 6

LAYER = {
    "core": 0,
    "io": 1,
    "assets": 1,
    "conf": 1,
    "finetune": 2,
    "elicit": 3,
    "run": 4,
    "analysis": 5,
    "control": 5,
    "cli": TOP,
    "__main__": TOP,
    "studies": TOP,
    "__init__": TOP,
    "_compat": TOP,
}

#: the order inside a folder: a module may import only modules listed before it
ORDER = {
    "core": [
        "__init__",
        "types",
        "data",
        "second_order",
        "model",
        "likelihood",
        "fit",
        "laplace",
        "bootstrap",
        "simulate",
        "metrics",
        "graph",
        "triads",
        "demography",
        "prior_scales",
        "reference",
        "bayes_config",
        "bayes",
    ],
    "elicit": [
        "backend",
        "base",
        "budget",
        "parse",
        "store",
        "simulated",
        "dry_run",
        "hf",
        "jax_backend",
        "openai_compat",
        "registry",
        "llm",
        "__init__",
    ],
    "run": [
        "__init__",
        "config",
        "progress",
        "cost",
        "agents",
        "incidents",
        "evaluation",
        "uncertainty",
        "pipeline",
        "report",
        "runner",
        "collect",
        "compare",
        "tracking",
    ],
}

_DOTTED = re.compile(r"^utility_jax(\.[A-Za-z_]\w*)+$")


def _modules():
    return sorted(PKG.rglob("*.py"))


def _where(rel: Path) -> tuple[str, str | None]:
    """(room, module inside the room) of a path relative to the package."""
    parts = rel.parts
    if len(parts) == 1:
        return parts[0].removesuffix(".py"), None
    return parts[0], parts[1].removesuffix(".py")


def _targets(tree: ast.AST):
    """Every dotted ``utility_jax`` name a module reaches, with its line."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "utility_jax":
                for a in node.names:  # a room (from utility_jax import core) or the namespace
                    yield (
                        ("utility_jax." + a.name) if a.name in LAYER else "utility_jax",
                        (node.lineno),
                    )
            else:
                for a in node.names:
                    yield f"{node.module}.{a.name}", node.lineno
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, node.lineno
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if _DOTTED.match(node.value):
                yield node.value, node.lineno


def _resolve(name: str) -> tuple[str, str | None] | None:
    """(room, module) a dotted name lands in; None outside the package."""
    parts = name.split(".")
    if parts[0] != "utility_jax":
        return None
    if len(parts) == 1:
        return "__init__", None
    room = parts[1]
    if room not in LAYER:  # a name of the top-level namespace (utility_jax.fit_thurstonian)
        return "__init__", None
    return room, parts[2] if len(parts) > 2 and room in ORDER else None


def violations(rel: Path, source: str) -> list[str]:
    """The floor-plan rules a module at ``rel`` (relative to the package) breaks."""
    room, mod = _where(rel)
    if room not in LAYER:
        return [f"{rel}: no room {room!r} in the floor plan"]
    out = []
    for name, line in _targets(ast.parse(source)):
        hit = _resolve(name)
        if hit is None:
            continue
        other, other_mod = hit
        where = f"{rel}:{line} ({room}, layer {LAYER[room]})"
        if other == room:
            order = ORDER.get(room)
            if order and mod in order and other_mod in order:
                if order.index(other_mod) > order.index(mod):
                    out.append(f"{where} imports {room}.{other_mod}, listed after {mod}")
            continue
        if LAYER[other] > LAYER[room]:
            out.append(f"{where} imports {name} ({other}, layer {LAYER[other]})")
        elif LAYER[room] == LAYER[other] == 5:
            out.append(f"{where}: {room} imports {other}")
    return out


def test_every_module_has_a_room_and_an_order():
    for p in _modules():
        room, mod = _where(p.relative_to(PKG))
        assert room in LAYER, p
        if room in ORDER:
            assert mod in ORDER[room], f"{p.relative_to(PKG)}: add it to ORDER[{room!r}]"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_imports_flow_one_way(path):
    assert not violations(path.relative_to(PKG), path.read_text())


PLANTED = {
    "core imports io": ("core/x.py", "from utility_jax.io.outcomes import OutcomeSet\n"),
    "core imports run": ("core/x.py", "from utility_jax.run import report\n"),
    "core imports an analysis": ("core/x.py", "import utility_jax.analysis.lotteries\n"),
    "core imports the namespace": ("core/x.py", "from utility_jax import fit_thurstonian\n"),
    "core names a _target_": (
        "core/x.py",
        'SPEC = {"_target_": "utility_jax.run.report.write_run"}\n',
    ),
    "import inside a function": (
        "core/x.py",
        "def f():\n    from utility_jax.elicit import llm\n    return llm\n",
    ),
    "analysis imports control": ("analysis/x.py", "from utility_jax.control import run\n"),
    "core out of order": ("core/data.py", "from utility_jax.core.fit import fit_thurstonian\n"),
    "run out of order": ("run/config.py", "from utility_jax.run.runner import run_compute\n"),
    "io imports elicit": ("io/x.py", "from utility_jax.elicit.store import ResponseStore\n"),
}


@pytest.mark.parametrize("case", PLANTED, ids=list(PLANTED))
def test_planted_violations_are_caught(case):
    rel, source = PLANTED[case]
    assert violations(Path(rel), source), case


def test_allowed_imports_pass():
    ok = (
        "from utility_jax.core.data import PairwiseData\n"
        "from utility_jax.core import graph as G\n"
        "X = 'utility_jax is a package'\n"
    )
    assert violations(Path("run/pipeline.py"), ok) == []
    assert violations(Path("core/fit.py"), "from utility_jax.core.likelihood import f\n") == []


def _yaml_targets():
    for p in sorted((PKG / "conf").rglob("*.yaml")):

        def walk(node):
            if isinstance(node, dict):
                for k, v in node.items():
                    if k == "_target_":
                        yield v
                    yield from walk(v)
            elif isinstance(node, list):
                for v in node:
                    yield from walk(v)

        for t in walk(yaml.safe_load(p.read_text()) or {}):
            yield p.relative_to(PKG), t


@pytest.mark.parametrize("where,target", list(_yaml_targets()), ids=str)
def test_config_targets_exist_below_the_command_line(where, target):
    if not target.startswith("utility_jax."):
        return  # Hydra's own (launchers, sweepers)
    room, _ = _resolve(target)
    assert LAYER[room] < TOP, f"{where}: {target} reaches the command line"
    module, _, attr = target.rpartition(".")
    assert hasattr(importlib.import_module(module), attr), f"{where}: {target} does not exist"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_no_function_is_longer_than_the_limit(path):
    tree = ast.parse(path.read_text())
    long = [
        f"{n.name} ({n.end_lineno - n.lineno + 1} lines, line {n.lineno})"
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{path.relative_to(PKG)}: {long}"


def test_old_import_paths_warn_and_still_work():
    import sys

    sys.modules.pop("utility_jax.pipeline", None)
    with pytest.warns(DeprecationWarning, match="utility_jax.run.pipeline"):
        from utility_jax.pipeline import compute_utilities
    from utility_jax.run.pipeline import compute_utilities as new

    assert compute_utilities is new
