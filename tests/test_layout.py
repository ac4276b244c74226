"""The house reads as its data flows: no module imports from a later stage, and no import cycles.

Every ``import`` in the package counts, also those inside functions (the CLI's lazy ones), so a
module cannot reach back up the flow by hiding its import in a function body.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "stockpile"

# the stages in the order the data flows (README: "Layout"); a module may import its own
# stage and earlier ones. The foundation modules are read by every stage.
STAGES = [
    {"version", "errors", "enums", "fmt", "jsontypes"},
    {"config"},
    {"model"},
    {"solver"},
    {"results"},
    {"api"},
    {"analysis"},
    {"report", "tools"},
    {"cli", "__init__", "__main__"},
]
STAGE = {name: i for i, names in enumerate(STAGES) for name in names}
# the verifier re-reads a run folder without the optimizer: it must never import it
VERIFIER_MAY_IMPORT = {
    "stockpile.config",
    "stockpile.enums",
    "stockpile.errors",
    "stockpile.fmt",
    "stockpile.jsontypes",
}


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The stockpile modules a file imports, anywhere in it (a name imported from a package
    counts as that package's submodule when one of that name exists)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "stockpile"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "stockpile":
            assert node.level == 0, f"{path}: relative import (the house imports absolutely)"
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                exists = (PACKAGE.parent / sub.replace(".", "/")).with_suffix(".py").exists()
                found.add(sub if exists or (PACKAGE.parent / sub.replace(".", "/")).is_dir() else node.module)
    return found


def _stage(module: str) -> int:
    parts = module.split(".")
    return STAGE[parts[1] if len(parts) > 1 else "__init__"]


FILES = sorted(PACKAGE.rglob("*.py"))
GRAPH = {_module(p): _imports(p) for p in FILES}


def test_every_module_belongs_to_a_stage():
    assert {m.split(".")[1] for m in GRAPH if "." in m} <= set(STAGE), "a new top-level module needs a stage"


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_module_imports_from_a_later_stage(module):
    if module in ("stockpile", "stockpile.__main__"):
        return  # the package's lazy names and `python -m` point down the flow by design
    later = sorted(m for m in GRAPH[module] if _stage(m) > _stage(module))
    assert not later, f"{module} (stage {_stage(module)}) imports from later stages: {later}"


def test_no_import_cycles():
    """Depth-first search over every import between the package's modules."""
    known = set(GRAPH)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(GRAPH[m] & known):
            # a module importing its own package's __init__ is the package, not a cycle
            if m.startswith(n + "."):
                continue
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*stack[stack.index(n) :], n]))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(known):
        if m not in state:
            visit(m)


def test_the_verifier_imports_no_optimizer_module():
    reached = GRAPH["stockpile.results.check"]
    assert all(any(m == ok or m.startswith(ok + ".") for ok in VERIFIER_MAY_IMPORT) for m in reached), reached


def test_every_cost_kind_is_named_for_the_terminal_and_the_report():
    """A new CostKind without its words would break the cost tables of a run that pays it."""
    from stockpile.enums import CostKind

    for kind in CostKind:
        assert kind.head and kind.caption and kind.label, kind
