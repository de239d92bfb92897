"""chain/'s modules import each other one way: no cycle (at file level or hidden inside a function),
the ABI leaf imports no other chain module but protocol, and only heavy third-party imports are
deferred into functions (anvil's, so `fedmarket chain start` does not load web3)."""

from __future__ import annotations

import ast
from pathlib import Path

import fedmarket.chain

CHAIN = Path(fedmarket.chain.__file__).parent
DEFERRED_ALLOWED = {"anvil"}  # its web3 imports are deferred on purpose (see AnvilProcess.web3)


def chain_imports() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """module -> the chain modules it imports at file level, and inside functions."""
    top: dict[str, set[str]] = {}
    deferred: dict[str, set[str]] = {}
    for path in sorted(CHAIN.glob("*.py")):
        name = path.stem
        tree = ast.parse(path.read_text())
        top[name], deferred[name] = set(), set()
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        inside = {id(n) for f in functions for n in ast.walk(f) if n is not f}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fedmarket.chain."):
                target = node.module.split(".")[2]
                (deferred if id(node) in inside else top)[name].add(target)
    return top, deferred


def test_no_import_cycle_in_chain() -> None:
    top, deferred = chain_imports()
    graph = {m: top[m] | deferred[m] for m in top}
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in graph.get(module, ()):
            assert state.get(target) != 1, f"import cycle: {' -> '.join([*path, module, target])}"
            if state.get(target) is None:
                visit(target, [*path, module])
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module, [])


def test_the_abi_leaf_and_the_low_modules_import_nothing_above_them() -> None:
    top, deferred = chain_imports()
    assert top["abi"] <= {"protocol"} and not deferred["abi"]
    assert top["protocol"] == set()
    for module in ("records", "reverts"):
        assert not (top[module] | deferred[module]) & {"events", "client"}, module
    assert "client" not in top["events"] | deferred["events"]


def test_only_anvil_defers_chain_imports() -> None:
    _, deferred = chain_imports()
    assert {m for m, targets in deferred.items() if targets} <= DEFERRED_ALLOWED
