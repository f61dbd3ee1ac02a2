"""The shape of the package, checked statically (``ast``, nothing imported): the method's
packages depend on each other one way (``LAYERS``), and no import inside ``sap_kernels`` closes a
cycle, counting imports inside functions and under ``TYPE_CHECKING`` as well, so that none can be
used to hold a cycle apart."""
from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sap_kernels"
SAP = "sap_kernels.sap"
# The method's packages, lowest first: a module may import its own package and the ones before it.
# The entry points (``sap/*.py``: pipeline, planning, routes, result, find_issues, __init__) may import any.
LAYERS = ["options", "data", "runtime", "layers", "trusted", "spectra", "gram", "projection", "alpha", "issues"]


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _target(module: str, is_package: bool, node: ast.ImportFrom, name: str) -> str:
    """The module an ``from X import name`` statement in ``module`` loads: ``X.name`` when that is a
    module of the package, else ``X``."""
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    return f"{source}.{name}" if f"{source}.{name}" in MODULES else source


def imports(module: str) -> dict[str, int]:
    """Every ``sap_kernels`` module ``module`` imports, anywhere in the file -> first line."""
    path = MODULES[module]
    out: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom):
            names = [_target(module, path.name == "__init__.py", node, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for n in names:
            if n.split(".")[0] == "sap_kernels" and n != module:
                out.setdefault(n, node.lineno)
    return out


GRAPH = {m: imports(m) for m in MODULES}


def _layer(module: str) -> int | None:
    """Index in ``LAYERS`` of a module of the method, None for an entry point or outside ``sap``."""
    if not module.startswith(SAP + "."):
        return None
    part = module[len(SAP) + 1:].split(".")[0]
    return LAYERS.index(part) if part in LAYERS else None


def test_every_package_of_the_method_is_listed():
    packages = {p.name for p in (PACKAGE / "sap").iterdir() if (p / "__init__.py").exists()}
    assert packages == set(LAYERS)


def test_the_method_imports_run_one_way():
    """A module of layer ``i`` imports only layers ``<= i`` of the method (never an entry point)."""
    offenders = []
    for module, targets in GRAPH.items():
        mine = _layer(module)
        if mine is None:
            continue
        for target, line in targets.items():
            theirs = _layer(target)
            if target.startswith(SAP) and (theirs is None or theirs > mine):
                offenders.append(f"{MODULES[module].relative_to(ROOT)}:{line} imports {target}")
    assert not offenders, "\n".join(offenders)


def test_no_import_cycle_in_the_package():
    """Depth-first search for a cycle in the graph of every import (function-level included)."""
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(GRAPH.get(m, {})):
            if t not in MODULES:
                continue
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(MODULES):
        if m not in state:
            visit(m)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_the_method_imports_its_own_modules_at_module_level():
    """Inside ``sap_kernels/sap`` every import of a ``sap_kernels`` module is at module level (an
    import inside a function is left only for optional third-party packages, loaded when used)."""
    offenders = []
    for module, path in MODULES.items():
        if not module.startswith(SAP):
            continue
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("sap_kernels")):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} in {fn.name}")
                elif isinstance(node, ast.Import) and any(a.name.startswith("sap_kernels") for a in node.names):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} in {fn.name}")
    assert not offenders, "\n".join(offenders)


def test_the_method_packages_export_nothing():
    """Each package's ``__init__`` is its docstring: no re-export shadows a module by a name."""
    for name in LAYERS:
        tree = ast.parse((PACKAGE / "sap" / name / "__init__.py").read_text())
        assert len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr), name


def test_no_module_is_shadowed_by_a_name_its_package_exports():
    """``sap_kernels.sap.X`` is never both a module and a function/class ``sap/__init__`` exports."""
    tree = ast.parse((PACKAGE / "sap" / "__init__.py").read_text())
    exported = {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names}
    shadowed = {m for m in MODULES if m.startswith(SAP + ".") and m.split(".")[2] in exported}
    assert not shadowed, shadowed


def test_the_checker_sees_what_it_checks():
    """The graph is not empty and resolves both relative forms (``from . import x``, ``from .x import y``)."""
    assert f"{SAP}.data.batches" in GRAPH[f"{SAP}.trusted.selection"]
    assert f"{SAP}.options.precision" in GRAPH[f"{SAP}.gram.collector"]
    assert f"{SAP}.pipeline" in GRAPH[SAP]
