"""The package's floor plan, checked: small functions, and data flowing one way between rooms.

Layers (a module may import from its own layer or below, never above):

0. core and what sits beside it: ``types, data, thurstonian, simulate, metrics, graph, bayes,
   reference, outcomes, assets, prompts, config, progress, datasets, conf``;
1. ``finetune`` (the NNX model, SFT) — below ``elicit``, which measures it;
2. ``elicit`` (agents, backends, the response store);
3. experiment shells: ``agents, pipeline, evaluation, uncertainty, cost, incidents, report,
   runner``;
4. ``control``, ``analysis`` (built on the shells; never on each other);
5. the ``utility-jax`` command (``cli``, ``__main__``).

Imports inside functions count.
"""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "utility_jax"
MAX_FUNCTION_LINES = 120

LAYER = {
    **dict.fromkeys(
        [
            "types",
            "data",
            "thurstonian",
            "simulate",
            "metrics",
            "graph",
            "triads",
            "second_order",
            "prior_scales",
            "demography",
            "bayes",
            "reference",
            "outcomes",
            "assets",
            "prompts",
            "config",
            "progress",
            "datasets",
            "conf",
            "__init__",
        ],
        0,
    ),
    "finetune": 1,
    "elicit": 2,
    **dict.fromkeys(
        [
            "agents",
            "pipeline",
            "evaluation",
            "uncertainty",
            "cost",
            "incidents",
            "report",
            "runner",
            "collect",
            "compare",
            "tracking",
        ],
        3,
    ),
    "control": 4,
    "analysis": 4,
    "cli": 5,
    "studies": 5,
    "__main__": 5,
}


def _modules():
    return sorted(p for p in PKG.rglob("*.py"))


def _room(path: Path) -> str:
    rel = path.relative_to(PKG).parts
    return rel[0] if len(rel) > 1 else rel[0].removesuffix(".py")


def _imported_rooms(tree: ast.AST):
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for n in names:
            parts = n.split(".")
            if parts[0] == "utility_jax" and len(parts) > 1 and parts[1] in LAYER:
                yield parts[1], node.lineno


def test_every_module_has_a_room():
    rooms = {_room(p) for p in _modules()}
    assert rooms <= set(LAYER), rooms - set(LAYER)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_imports_flow_one_way(path):
    room = _room(path)
    tree = ast.parse(path.read_text())
    for other, line in _imported_rooms(tree):
        if other == room:
            continue
        assert LAYER[other] <= LAYER[room], (
            f"{path.relative_to(PKG)}:{line} ({room}, layer {LAYER[room]}) imports {other} "
            f"(layer {LAYER[other]})"
        )
        assert not (LAYER[room] == 4 and LAYER[other] == 4), f"{room} imports {other}"


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
