"""The packages import in one direction: firmware_sign -> edge, never back, and no cycles.

``edge`` is the runtime (daemon, aggregator, formats, key files, package builder);
``firmware_sign`` is a command line over it. Imports are read with ``ast``, so one
hidden inside a function counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("edge", "firmware_sign")


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, root: Path = ROOT) -> set[str]:
    """Every module ``path`` imports (absolute names), wherever the import statement is."""
    module = _module_name(path, root)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".")
                if path.name != "__init__.py":
                    package.pop()
                base = ".".join(package[: len(package) - node.level + 1])
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
    return found


def _graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    files = {_module_name(p, root): p for pkg in PACKAGES for p in (root / pkg).rglob("*.py")}
    return {name: {m for m in _imports(path, root) if m in files and m != name}
            for name, path in files.items()}


def _package(module: str) -> str:
    return module.split(".", 1)[0]


def test_edge_never_imports_firmware_sign() -> None:
    back = sorted(f"{m} -> {d}" for m, deps in _graph().items() for d in deps
                  if _package(m) == "edge" and _package(d) == "firmware_sign")
    assert back == [], "edge must not import firmware_sign:\n" + "\n".join(back)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycles_within(package: str) -> None:
    graph = {m: {d for d in deps if _package(d) == package}
             for m, deps in _graph().items() if _package(m) == package}
    # A package's __init__ runs with any of its modules; only module-to-module edges
    # make a cycle a reader has to untangle.
    inits = {_module_name(p) for p in (ROOT / package).rglob("__init__.py")}
    graph = {m: deps - inits for m, deps in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        stack.append(module)
        for dep in sorted(graph[module]):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep):], dep]
            if dep not in state and (cycle := visit(dep)) is not None:
                return cycle
        stack.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)) is not None:
            pytest.fail(f"import cycle in {package}: " + " -> ".join(cycle))


def test_the_scan_sees_imports_inside_functions(tmp_path: Path) -> None:
    """The checker itself: a back import hidden in a function body, relative or absolute."""
    for pkg in PACKAGES:
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "firmware_sign" / "cli.py").write_text("from .outputs import x\n")
    (tmp_path / "firmware_sign" / "outputs.py").write_text("x = 1\n")
    (tmp_path / "edge" / "probe.py").write_text(
        "def f():\n    from firmware_sign.cli import main\n    return main\n")
    graph = _graph(tmp_path)
    assert graph["edge.probe"] == {"firmware_sign.cli"}
    assert graph["firmware_sign.cli"] == {"firmware_sign.outputs"}
