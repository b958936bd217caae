"""The package's layers point one way, and no module takes part in an import circle.

formats < transforms, kernels, recipes < qgemm < nn < the rest (train, models, data, analysis, cli, ...):
a package may import only from packages of a lower layer (or from itself); the packages of the top
layer may import one another, but not in a circle.  Every import counts, a function-local one too
(a local import must not hide an upward edge or a circle).  Read from the source with ``ast``, so
nothing is imported to check it.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "averis"
LAYERS = {"formats": 0, "transforms": 1, "kernels": 1, "recipes": 1, "qgemm": 2, "nn": 3}
TOP = max(LAYERS.values()) + 1  # every other package and module of averis, and averis/__init__ itself


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / ROOT).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _imports(module: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int]]:
    """(imported averis module, line) for every import statement in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package_of(module, path).split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                sub = f"{target}.{alias.name}"
                found.append((sub if sub in modules else target, node.lineno))
    return [(name, line) for name, line in found if name == ROOT or name.startswith(ROOT + ".")]


def _unit(module: str) -> str:
    """The part of averis a module belongs to: its first-level package or module ('' for averis itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _layer(unit: str) -> int:
    return LAYERS.get(unit, TOP)


def _graph():
    modules = _modules()
    edges = {}
    for module, path in modules.items():
        targets = {}
        for name, line in _imports(module, path, modules):
            while name not in modules:  # `import averis.a.b.attr` style: the longest module prefix
                name = name.rpartition(".")[0]
            if name != module:
                targets.setdefault(name, line)
        edges[module] = targets
    return modules, edges


def _cycles(nodes, succ) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in succ(v):
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

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def test_no_module_imports_upward():
    modules, edges = _graph()
    bad = []
    for module, targets in edges.items():
        src = _unit(module)
        for target, line in targets.items():
            dst = _unit(target)
            if dst == src or dst == "" and src == "":
                continue
            if src == "" or _layer(dst) < _layer(src) or _layer(dst) == _layer(src) == TOP:
                continue
            bad.append(f"{modules[module].relative_to(SRC)}:{line} imports {target} "
                       f"({src} is layer {_layer(src)}, {dst or ROOT} layer {_layer(dst)})")
    assert not bad, "upward or sideways imports:\n" + "\n".join(bad)


def test_no_import_circle_between_modules():
    modules, edges = _graph()
    cycles = _cycles(modules, lambda m: edges[m])
    assert not cycles, f"modules importing each other in a circle: {cycles}"


def test_no_import_circle_between_packages():
    modules, edges = _graph()
    units = {_unit(m) for m in modules} - {""}
    succ = {u: set() for u in units}
    for module, targets in edges.items():
        for target in targets:
            a, b = _unit(module), _unit(target)
            if a and b and a != b:
                succ[a].add(b)
    cycles = _cycles(units, lambda u: succ[u])
    assert not cycles, f"packages importing each other in a circle: {cycles}"


def test_the_checker_sees_local_imports_and_circles(tmp_path):
    """The parser finds a function-local relative import, and the cycle finder a circle of three."""
    path = tmp_path / "mod.py"
    path.write_text("def f():\n    from ..kernels import dispatch\n    from . import e2m1\n")
    modules = {"averis.formats.mod": path, "averis.kernels.dispatch": path, "averis.formats.e2m1": path}
    assert _imports("averis.formats.mod", path, modules) == [("averis.kernels.dispatch", 2),
                                                             ("averis.formats.e2m1", 3)]
    ring = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(ring, lambda v: ring[v]) == [["a", "b", "c"]]
