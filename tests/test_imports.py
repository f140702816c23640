"""The layers import one way (server → tools → memory / inference; inference may use memory's
types and errors, memory imports no other layer) and no module imports itself back through
others: read from the source, function-level imports included, type-checking ones not."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("server", "tools", "memory", "inference")
MAY_IMPORT = {
    "server": {"server", "tools", "memory", "inference"},
    "tools": {"tools", "memory", "inference"},
    "inference": {"inference", "memory"},
    "memory": {"memory"},
}


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for layer in LAYERS:
        for path in (ROOT / layer).rglob("*.py"):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            targets: set[str] = set()
            tree = ast.parse(path.read_text())
            # Imports for type checkers only never run: they make no cycle.
            typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                           and ast.unparse(block.test).endswith("TYPE_CHECKING")
                           for n in ast.walk(block)}
            for node in ast.walk(tree):
                if id(node) in typing_only:
                    continue
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                else:
                    continue
                targets.update(n for n in names if n.split(".")[0] in LAYERS)
            graph[module] = targets
    return {m: {t for t in targets if t in graph and t != m} for m, targets in graph.items()}


def test_layers_import_one_way() -> None:
    wrong = sorted(f"{m} imports {t}" for m, targets in _graph().items() for t in targets
                   if t.split(".")[0] not in MAY_IMPORT[m.split(".")[0]])
    assert wrong == []


def test_no_module_imports_itself_back() -> None:
    graph = _graph()
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        for target in graph[module]:
            if target == path[0]:
                cycles.append([*path, target])
            elif target not in path and target > path[0]:  # each cycle once, from its least
                visit(target, [*path, target])

    for module in sorted(graph):
        visit(module, [module])
    assert cycles == []
