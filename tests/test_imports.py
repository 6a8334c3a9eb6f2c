"""The import direction of DESIGN.md, checked on the source: no module imports a module that imports it
back (directly or round a longer loop, at the top of the file or inside a function), and inside finops
only the top floor (services, scheduler, cli) imports collectors or placement. Then every module
imports cleanly on its own in a fresh interpreter, whatever was imported before it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("finops", "collectors", "placement")
TOP_FLOOR = ("finops.services", "finops.scheduler", "finops.cli")


def modules() -> dict[str, Path]:
    """Every module of our packages: dotted name → file."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Our modules that ``name`` imports anywhere in its file (``if TYPE_CHECKING:`` blocks aside:
    they never run). ``from a.b import c`` counts as importing ``a.b.c`` when that is a module."""
    tree = ast.parse(path.read_text(), str(path))
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _type_checking(node)
            for n in ast.walk(node)}
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([base] if base else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.add(sub if sub in known else base)
    return {m for m in out if m in known and m != name}


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports(name, path, known) for name, path in found.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each a loop of imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_the_scan_sees_the_known_edges() -> None:
    g = graph()
    assert "collectors.formats" in g["collectors.files"]
    assert "finops.focus" in g["collectors.billing"]
    assert "finops.store" in g["finops.config"]  # a function-level import counts too


def test_no_module_imports_a_module_that_imports_it_back() -> None:
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_loop() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_finops_below_the_top_floor_imports_neither_collectors_nor_placement() -> None:
    wrong = {name: sorted(m for m in deps if m.split(".")[0] in ("collectors", "placement"))
             for name, deps in graph().items()
             if name.startswith("finops") and not name.startswith(TOP_FLOOR)}
    assert {k: v for k, v in wrong.items() if v} == {}


def test_collectors_and_placement_do_not_import_each_other() -> None:
    g = graph()
    for a, b in (("collectors", "placement"), ("placement", "collectors")):
        assert {n: sorted(d for d in deps if d.startswith(b)) for n, deps in g.items()
                if n.startswith(a) and any(d.startswith(b) for d in deps)} == {}


@pytest.mark.parametrize("first", ["collectors.files", "collectors.aws.cur", "collectors.azure.cost_details",
                                   "collectors.gcp.bigquery_export", "collectors.formats", "collectors.sources"])
def test_each_native_format_module_imports_first_in_a_fresh_interpreter(first: str) -> None:
    """The old cycle (files → formats → cur → files) broke whichever was imported first; now any order
    works, and the format registry finds every format."""
    code = (f"import {first}\n"
            "from collectors import formats\n"
            "print(len(formats.registry()))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert int(out.stdout) == 5


def test_finops_imports_no_collector_at_import_time() -> None:
    code = ("import sys\n"
            "import finops.providers, finops.config, finops.workloads, finops.store\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('collectors', 'placement')))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
