"""The import graph of the project's packages, read with `ast` (no module is imported or executed).

Rules checked (each package's `__init__` docstring states its own):

1. No import circle between modules of `nares`, counting the imports a module runs when it is imported:
   statements at module level, including those inside module-level `if`/`try`/`with` blocks, but not
   `if TYPE_CHECKING:` blocks (never run). Imports inside functions are deferred on purpose (to keep
   `nares --help` fast, or to load a heavy dependency only on the path that needs it); they cannot make a
   circle at import time and are left out of this rule, but count for every rule below.
   `from P import m` where `P.m` is a module is an edge to `P.m` (not to the package `P`); loading a
   module's parent packages is implicit and is no edge.
2. `nares` (the library) imports no Prefect, Ray, `flows`, `tasks` or `factory`, at any level.
3. `tasks` (the Ray adapters) imports no `flows` or `factory`; `flows` imports no `factory`.
4. `flows` and `tasks` hold no protocol logic: they import no numeric library (torch, numpy, scipy,
   pandas, pyarrow) and none of the library's protocol packages (`nares.attacks`, `nares.models`,
   `nares.evaluate`, `nares.data`); a flow module's only numeric literals are 0 and 1 (thresholds,
   timeouts and percentages are settings of the library or of `tasks/`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("nares", "tasks", "flows", "factory")
NUMERIC = ("torch", "numpy", "scipy", "pandas", "pyarrow")
PROTOCOL = ("nares.attacks", "nares.models", "nares.evaluate", "nares.data")


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for pkg in PACKAGES if (ROOT / pkg).is_dir() for p in sorted((ROOT / pkg).rglob("*.py"))}


def _under(name: str, *roots: str) -> bool:
    return any(name == r or name.startswith(r + ".") for r in roots)


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _targets(module: str, is_pkg: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules one import statement names (see rule 1 for `from P import m`)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        base = module.split(".") if is_pkg else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join([*base, node.module] if node.module else base)
    else:
        source = node.module or ""
    subs = [f"{source}.{a.name}" for a in node.names if f"{source}.{a.name}" in MODULES]
    return subs if len(subs) == len(node.names) else [source, *subs]


def _module_level(body: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    """Import statements run at import time (rule 1): module level and its blocks, not functions or classes'
    methods, not `if TYPE_CHECKING:`."""
    out: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            out.append(node)
        elif isinstance(node, ast.If):
            out += _module_level(node.orelse) if _type_checking(node) else _module_level(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            out += _module_level(node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body])
        elif isinstance(node, ast.With | ast.ClassDef):
            out += _module_level(node.body)
    return out


def _imports(module: str, *, module_level: bool) -> set[str]:
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    nodes = _module_level(tree.body) if module_level else [
        n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    return {t for n in nodes for t in _targets(module, path.name == "__init__.py", n)}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, edges = work[-1]
            w = next(edges, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def _edge_list(graph: dict[str, set[str]], comp: list[str]) -> str:
    return "; ".join(f"{a} -> {b}" for a in comp for b in sorted(graph[a]) if b in comp)


def test_the_rules_see_the_real_tree():
    assert {"nares", "nares.environment", "nares.store.objects", "tasks.pool", "flows.nares_flow"} <= set(MODULES)
    # the edge rule of `from P import m`: a submodule named in a from-import is an edge to it, not to P
    assert "nares.data.paths" in _imports("nares.data.readers", module_level=True)
    assert "nares.data" not in _imports("nares.data.readers", module_level=True)


def test_cycle_finder_on_a_known_graph():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": {"d"}, "f": set()}
    assert sorted(_cycles(g)) == [["a", "b", "c"], ["d", "e"]]


def test_no_import_circle_in_the_library():
    graph = {m: {t for t in _imports(m, module_level=True) if t in MODULES and t != m}
             for m in MODULES if _under(m, "nares")}
    circles = _cycles(graph)
    assert not circles, "import circles (module level): " + " | ".join(_edge_list(graph, c) for c in circles)


FORBIDDEN = {
    "nares": ("prefect", "prefect_ray", "ray", "flows", "tasks", "factory"),
    "tasks": ("flows", "factory"),
    "flows": ("factory",),
}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layering(package):
    bad = sorted(f"{m} imports {t}" for m in MODULES if _under(m, package)
                 for t in _imports(m, module_level=False) if _under(t, *FORBIDDEN[package]))
    assert not bad, f"{package} must not import {', '.join(FORBIDDEN[package])}: " + "; ".join(bad)


# Known violations being removed (may only shrink: a listed one that is gone fails too, so the list is kept exact).
PENDING: set[str] = set()
PENDING_LITERALS: set[str] = set()


def _check_pending(found: set[str], pending: set[str], what: str) -> None:
    assert not found - pending, f"{what}: " + "; ".join(sorted(found - pending))
    assert not pending - found, f"fixed, remove from the pending list: {'; '.join(sorted(pending - found))}"


def test_flows_and_tasks_hold_no_protocol_logic():
    bad = {f"{m} imports {t}" for m in MODULES if _under(m, "flows", "tasks")
           for t in _imports(m, module_level=False) if _under(t, *NUMERIC, *PROTOCOL)}
    _check_pending(bad, PENDING, "flows/tasks import numeric or protocol code")


def test_flows_have_no_numeric_literals():
    bad = set()
    for m, path in MODULES.items():
        if _under(m, "flows"):
            for n in ast.walk(ast.parse(path.read_text())):
                if (isinstance(n, ast.Constant) and isinstance(n.value, int | float) and not isinstance(n.value, bool)
                        and n.value not in (0, 1)):
                    bad.add(f"{path.relative_to(ROOT)}: {n.value!r}")
    _check_pending(bad, PENDING_LITERALS, "numeric literals in flows (move them to settings or tasks/)")


def test_every_package_says_what_it_owns_and_must_not_import():
    missing = []
    for m, path in MODULES.items():
        if path.name == "__init__.py":
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            if "must not import" not in doc.lower() and "never import" not in doc.lower():
                missing.append(m)
    assert not missing, "package docstrings without an import rule: " + ", ".join(sorted(missing))
