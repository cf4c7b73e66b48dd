"""models/ imports form no circle (function-level imports included) and never reach a higher layer."""

import ast
from pathlib import Path

import ssmbench.models

MODELS_DIR = Path(ssmbench.models.__file__).parent
# what models may import from ssmbench: itself and the layers below it, plus the shared homes
ALLOWED = ("ssmbench.models", "ssmbench.layers", "ssmbench.ops", "ssmbench.errors", "ssmbench.device")


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of its syntax tree; relative imports resolved."""
    package = "ssmbench.models"
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names.add(base)
            # "from ssmbench.models import size" imports the submodule size
            names.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module":
            names.add("<importlib.import_module>")
    return names


def models_graph() -> dict[str, set[str]]:
    """module name -> the models/ modules it imports."""
    modules = {f"ssmbench.models.{p.stem}": p for p in MODELS_DIR.glob("*.py") if p.stem != "__init__"}
    return {name: imported_modules(path) & modules.keys() - {name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path of module names, or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_imports_walk_function_bodies(tmp_path):
    src = tmp_path / "mod.py"
    src.write_text(
        "import importlib\n"
        "def f():\n"
        "    from ssmbench.models.size import param_counts\n"
        "    from . import lm\n"
        "    return importlib.import_module('ssmbench.models.megabyte')\n"
    )
    found = imported_modules(src)
    assert {"ssmbench.models.size", "ssmbench.models.lm", "<importlib.import_module>"} <= found
    graph = models_graph()
    assert "ssmbench.models.registry" in graph["ssmbench.models.size"]
    assert len(graph) >= 10


def test_models_have_no_import_circle():
    assert find_cycle(models_graph()) is None


def test_models_import_nothing_from_higher_layers():
    for path in MODELS_DIR.glob("*.py"):
        for name in imported_modules(path):
            assert name != "<importlib.import_module>", f"{path.name} imports by name at run time"
            if name.startswith("ssmbench"):
                assert name.startswith(ALLOWED), f"{path.name} imports {name}"
