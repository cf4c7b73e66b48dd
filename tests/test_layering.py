"""The import direction of the package, read from the source with ``ast``.

Every ``import`` and ``from ... import`` of every module counts: top-level, inside functions,
under ``if TYPE_CHECKING``. Two rules:

1. No module imports a higher layer. Layers, lowest first; groups in one tier are independent
   (neither imports the other):

       errors  <  device  <  results | bench | progress  <  data | ops  <  layers  <  models
       <  train | generate | profile  <  report  <  cli  <  __main__

   So a task (train, generate, profile) may use data, ops, layers, models, bench, results,
   progress and device, never report or cli; report renders from results; only the CLI sees all.
2. No import cycle between modules (strongly connected components of the module graph).

Imports by name at run time (``importlib.import_module("ssmbench.report.x")``) are not seen.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ssmbench"

# Lowest first. A group is the first name under ssmbench ("" for ssmbench/__init__.py).
TIERS: tuple[tuple[str, ...], ...] = (
    ("", "errors"),
    ("device",),
    ("results", "bench", "progress"),
    ("data", "ops"),
    ("layers",),
    ("models",),
    ("train", "generate", "profile"),
    ("report",),
    ("cli",),
    ("__main__",),
)
TIER = {group: i for i, groups in enumerate(TIERS) for group in groups}



def all_modules(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of ``package``."""
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


MODULES = all_modules(PACKAGE)


def group(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imported_modules(module: str, path: Path, modules: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """(ssmbench module imported, line) for every import statement anywhere in ``path``."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "ssmbench" or alias.name.startswith("ssmbench."):
                    yield _known(alias.name, modules), node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source != "ssmbench" and not source.startswith("ssmbench."):
                continue
            for alias in node.names:
                # `from ssmbench.ops import scan` imports the module ssmbench.ops.scan
                sub = f"{source}.{alias.name}"
                yield (sub if sub in modules else _known(source, modules)), node.lineno


def _known(name: str, modules: dict[str, Path]) -> str:
    """The module ``name`` names: itself, or the nearest package above it that exists (a name
    imported as ``import ssmbench.pkg.attr``); never above ``ssmbench.<group>``."""
    while name not in modules and name.count(".") > 1:
        name = name.rsplit(".", 1)[0]
    return name


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    return {m: {t for t, _ in imported_modules(m, p, modules) if t != m} for m, p in modules.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative): every component of two or more modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
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
                        m = stack.pop()
                        on_stack.discard(m)
                        component.append(m)
                        if m == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_every_module_is_in_a_layer() -> None:
    assert {group(m) for m in MODULES} <= set(TIER), "a new top-level module needs a place in TIERS"


def test_no_module_imports_a_higher_layer_or_a_sibling_group() -> None:
    wrong = []
    for module, path in MODULES.items():
        mine = group(module)
        for target, line in sorted(set(imported_modules(module, path, MODULES))):
            theirs = group(target)
            if theirs == mine:
                continue
            if TIER[theirs] >= TIER[mine]:
                where = "a higher layer" if TIER[theirs] > TIER[mine] else "a sibling group"
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target} ({where})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle_outside_models() -> None:
    cycles = [c for c in strongly_connected(import_graph(MODULES)) if any(group(m) != "models" for m in c)]
    assert not cycles, "\n".join(" <-> ".join(c) for c in cycles)


def test_no_import_cycle_in_models() -> None:
    cycles = [c for c in strongly_connected(import_graph(MODULES)) if all(group(m) == "models" for m in c)]
    assert not cycles, "\n".join(" <-> ".join(c) for c in cycles)


def test_the_checks_see_function_level_imports_and_cycles(tmp_path) -> None:
    """The walker and the cycle finder themselves, on a made-up package."""
    pkg = tmp_path / "ssmbench"
    (pkg / "train").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "train" / "__init__.py").write_text("")
    (pkg / "train" / "a.py").write_text("def f():\n    from ssmbench.report import b\n")
    (pkg / "train" / "c.py").write_text("from . import d\n")
    (pkg / "train" / "d.py").write_text("import ssmbench.train.c\n")
    fake = all_modules(pkg)
    assert list(imported_modules("ssmbench.train.a", fake["ssmbench.train.a"], fake)) == [
        ("ssmbench.report", 2)]
    assert list(imported_modules("ssmbench.train.c", fake["ssmbench.train.c"], fake)) == [
        ("ssmbench.train.d", 1)]
    assert strongly_connected(import_graph(fake)) == [["ssmbench.train.c", "ssmbench.train.d"]]
