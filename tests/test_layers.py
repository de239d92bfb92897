"""The house's rules, checked on the source: imports point one way, no two modules import each
other in a loop, and no module grows past the size a reader can hold (design.md §1).

    cli, bench -> market -> roles -> chain, storage, fl, wallet -> errors, paths, files

Every import counts, also those inside functions and under TYPE_CHECKING: an upward import is
upward wherever it stands. Loops are looked for among the imports that run (TYPE_CHECKING ones
never do).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "agents" / "fedmarket"
MAX_LINES = 650

BASE = {"errors", "paths", "files", "__init__"}
ALLOWED: dict[str, set[str]] = {
    # package -> the packages it may import besides itself and BASE
    "storage": set(),
    "chain": {"storage"},
    "fl": {"storage"},
    "wallet": {"chain"},
    "roles": {"chain", "storage", "fl", "wallet"},
    "market": {"roles", "chain", "storage", "fl", "wallet"},
    "bench": {"market", "roles", "chain", "storage", "fl", "wallet"},
    "cli": {"bench", "market", "roles", "chain", "storage", "fl", "wallet"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(path: Path) -> list[tuple[str, bool]]:
    """(imported fedmarket module, whether it runs) for every import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, runs: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for item in child.body:
                    visit_one(item, False)
                for item in child.orelse:
                    visit_one(item, runs)
                continue
            visit_one(child, runs)

    def visit_one(node: ast.AST, runs: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend((alias.name, runs) for alias in node.names if alias.name.startswith("fedmarket"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fedmarket") and node.level == 0:
            for alias in node.names:
                # `from fedmarket.market import views` imports the module fedmarket.market.views
                candidate = f"{node.module}.{alias.name}"
                found.append((candidate if _exists(candidate) else node.module, runs))
        visit(node, runs)

    visit(tree, True)
    return found


def _exists(module: str) -> bool:
    relative = Path(*module.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").is_file() or (PACKAGE / relative / "__init__.py").is_file()


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_imports_point_one_way() -> None:
    upward: set[str] = set()
    for path in sources():
        source = module_name(path)
        own = package_of(source)
        allowed = ALLOWED.get(own, set()) | BASE | {own}
        for target, _runs in imports_of(path):
            theirs = package_of(target)
            if theirs not in allowed:
                upward.add(f"{source} imports {target} ({own} -> {theirs})")
    assert sorted(upward) == []


def test_no_two_modules_import_each_other_in_a_loop() -> None:
    graph: dict[str, set[str]] = {}
    for path in sources():
        source = module_name(path)
        graph[source] = {target for target, runs in imports_of(path) if runs and target != source}
    loops = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def walk(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                loops.append(" -> ".join([*trail[trail.index(nxt) :], nxt]))
            elif nxt not in state:
                walk(nxt, [*trail, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node, [node])
    assert loops == []


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_small(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE)} has {lines} lines (at most {MAX_LINES}): split it by concern"


def test_the_rules_see_the_imports() -> None:
    """The checks above would pass on nothing: make sure they see real imports."""
    agent = PACKAGE / "roles" / "agent.py"
    assert ("fedmarket.roles.faults", True) in imports_of(agent)
    devnet = PACKAGE / "market" / "devnet.py"
    assert any(target == "fedmarket.market.setup" for target, _ in imports_of(devnet))
