"""The floors of docs/architecture.md, kept true: imports only point down, and nothing imports in a circle.

Every ``randommask`` import in ``src/`` (at the top of a module or inside a function) is read from the
source; a module on no floor, an import up a floor, or an import cycle fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "randommask"

#: The floors, top down (docs/architecture.md). ``analysis`` stands for every module of the subpackage.
FLOORS: dict[int, set[str]] = {
    5: {"cli", "commands"},
    4: {"pretrain", "finetune", "evaluate", "inference", "analysis", "study", "replication", "replication_report",
        "bpe_train",
        "hf", "demo"},
    3: {"runtime", "checkpoint"},
    2: {"genome", "tasks"},
    1: {"tokenizers", "tokens", "bpe", "masking", "model", "metrics", "config"},
    0: {"errors", "alphabet", "files"},
}
FLOOR_OF = {name: floor for floor, names in FLOORS.items() for name in names}


def _room(module: str) -> str:
    """``randommask.analysis.probe`` -> ``analysis``; ``randommask.pretrain`` -> ``pretrain``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def import_graph() -> dict[str, set[str]]:
    """Module (dotted, under randommask) -> the randommask modules it imports."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.startswith("randommask.")}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module == "randommask":  # from randommask import checkpoint
                    targets |= {f"randommask.{a.name}" for a in node.names}
                elif node.module.startswith("randommask."):
                    targets.add(node.module)
        graph[name] = targets - {name}
    return graph


def test_every_module_stands_on_a_floor() -> None:
    rooms = {_room(m) for m in import_graph()} - {""}
    assert sorted(rooms - set(FLOOR_OF)) == [], "add the new module to FLOORS here and in docs/architecture.md"


def test_imports_only_point_down() -> None:
    upward = []
    for module, targets in import_graph().items():
        here = FLOOR_OF.get(_room(module))
        if here is None:
            continue
        for target in targets:
            there = FLOOR_OF.get(_room(target))
            # Down, or along the same floor (study runs pretrain and benchmark; alphabet raises errors):
            # never up. Loops along a floor are the cycle test's.
            allowed = there is not None and there <= here
            if not allowed:
                upward.append(f"{module} (floor {here}) -> {target} (floor {there})")
    assert upward == []


def test_no_workflow_imports_the_cli() -> None:
    importers = sorted(m for m, t in import_graph().items() if t & {"randommask.cli", "randommask.commands"}
                       and m != "randommask.cli")
    assert importers == []


def test_no_import_cycle() -> None:
    graph = import_graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert cycles == []


def test_the_registry_lists_every_command_once() -> None:
    from randommask.commands import all_commands

    names = [c.name for c in all_commands()]
    assert names == ["prepare", "pretrain", "tokenizer train", "demo", "export", "import", "finetune", "benchmark",
                     "predict", "embed", "analyze", "study"]
