"""No import cycles between the project's modules, at any level.

import-linter's contracts check the layering between packages; a cycle between two modules of one
package hides from them, because the import that closes it sits inside a function or under
``TYPE_CHECKING``. grimp (import-linter's graph library) records those imports too, so the graph
built here holds every import the code can make, and each cycle is a shared piece living in the
wrong module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGES = ("microstrain_cli", "microstrain", "data_gen", "training", "evaluation", "serving")


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_strongly_connected_finds_a_cycle_and_only_it():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert strongly_connected(graph) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


# Built in a fresh interpreter at the repository root: under pytest, ``training`` and the other
# package names also match the test directories of the same names.
_BUILD = """
import json, sys
import grimp
graph = grimp.build_graph(*sys.argv[1:], cache_dir=None, exclude_type_checking_imports=False)
modules = graph.modules
edges = {m: sorted(graph.find_modules_directly_imported_by(m) & modules) for m in modules}
print(json.dumps(edges))
"""


def import_graph_of(packages: tuple[str, ...], root: Path) -> dict[str, set[str]]:
    """Module -> the project modules it imports, anywhere in its code, for ``packages`` under
    ``root``; function-level and ``TYPE_CHECKING`` imports are edges too."""
    done = subprocess.run(
        [sys.executable, "-c", _BUILD, *packages],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return {m: set(imports) for m, imports in json.loads(done.stdout).items()}


def test_a_cycle_closed_in_a_function_and_under_type_checking_is_found(tmp_path):
    package = tmp_path / "cyclic"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "report.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from cyclic.plot import draw\n"
    )
    (package / "plot.py").write_text("def draw():\n    from cyclic.report import x\n")
    (package / "free.py").write_text("import cyclic.plot\n")
    graph = import_graph_of(("cyclic",), tmp_path)
    assert strongly_connected(graph) == [["cyclic.plot", "cyclic.report"]]


@pytest.fixture(scope="module")
def import_graph() -> dict[str, set[str]]:
    return import_graph_of(PACKAGES, Path(__file__).resolve().parents[1])


def test_no_module_imports_itself_back(import_graph):
    cycles = strongly_connected(import_graph)
    assert cycles == [], "import cycles (move the shared piece to its own home): " + "; ".join(
        " <-> ".join(c) for c in cycles
    )
