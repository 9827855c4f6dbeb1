"""The layout of the packages, checked from their source (nothing is imported).

* layers: ``pyloader_core.formats`` and ``pyloader_core.storage`` import neither the runtime nor the
  tools; the runtime never imports the tools (imports inside functions count too);
* no import cycles between the modules of ``pyloader_core`` (imports under ``if TYPE_CHECKING:``
  do not count; imports inside functions do);
* every ``__all__`` is sorted;
* each package ships ``py.typed`` and ``setup.cfg`` lists it as package data;
* no source file over :data:`MAX_FILE_LINES` lines and no function over :data:`MAX_FUNCTION_LINES`
  lines, except the ones in :data:`PENDING_FILES` / :data:`PENDING_FUNCTIONS`.
"""

from __future__ import annotations

import ast
import configparser
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pyloader_core", "pyloader_torch", "pyloader_tf")
MAX_FILE_LINES = 450
MAX_FUNCTION_LINES = 80

# PENDING: what still exceeds the limits. Entries are to be split up and removed (the set is to stay
# empty); nothing may be added. Files by path from the repository root ("pyloader_core/loader.py"),
# functions as "path::qualified.name" ("pyloader_core/runtime/pools.py::Pool.run"). Empty since
# runtime/engine.py, runtime/pools.py, loader.py and the torch/tf datasets were split up.
PENDING_FILES: frozenset[str] = frozenset()
PENDING_FUNCTIONS: frozenset[str] = frozenset()


def _sources(packages: tuple[str, ...] = PACKAGES) -> Iterator[Path]:
    for package in packages:
        yield from sorted((ROOT / package).rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Imports(ast.NodeVisitor):
    """The modules of ``known`` that one module imports (``if TYPE_CHECKING:`` blocks skipped)."""

    def __init__(self, name: str, is_package: bool, known: set[str]) -> None:
        self.package = name if is_package else name.rpartition(".")[0]
        self.known = known
        self.found: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found.update(alias.name for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            parts = self.package.split(".")
            parts = parts[: len(parts) - node.level + 1]
            base = ".".join(parts + ([node.module] if node.module else []))
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            self.found.add(sub if sub in self.known else base)  # a submodule, or a name of ``base``


def _import_graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in _sources(("pyloader_core",))}
    known = set(paths)
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        visitor = _Imports(name, path.name == "__init__.py", known)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        graph[name] = (visitor.found & known) - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
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


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_layers():
    graph = _import_graph()
    assert graph["pyloader_core.index"], "the import graph came out empty"
    rules = [
        ("pyloader_core.formats", ("pyloader_core.runtime", "pyloader_core.tools")),
        ("pyloader_core.storage", ("pyloader_core.runtime", "pyloader_core.tools")),
        ("pyloader_core.runtime", ("pyloader_core.tools",)),
    ]
    wrong = [
        f"{module} imports {dep}"
        for module, deps in sorted(graph.items())
        for layer, forbidden in rules
        if _in(module, layer)
        for dep in sorted(deps)
        if any(_in(dep, f) for f in forbidden)
    ]
    assert wrong == []


def test_no_import_cycles():
    assert _cycles(_import_graph()) == []


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _dunder_alls() -> Iterator[tuple[str, list[str]]]:
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
                yield _rel(path), list(ast.literal_eval(node.value))


def test_every_dunder_all_is_sorted():
    """Sorted plainly (``sorted()``: as Grain keeps its re-exports), so a name is found where it belongs."""
    alls = list(_dunder_alls())
    assert len(alls) > 20
    unsorted = [path for path, names in alls if names != sorted(names)]
    assert unsorted == []
    dupes = [path for path, names in alls if len(set(names)) != len(names)]
    assert dupes == []


def test_py_typed_is_shipped():
    for package in PACKAGES:
        assert (ROOT / package / "py.typed").is_file(), package
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    data = cfg["options.package_data"]
    for package in PACKAGES:
        assert "py.typed" in data.get(package, "").split(), package


def _functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.AST]]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node
            yield from _functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        else:
            yield from _functions(node, prefix)


def _sizes() -> tuple[dict[str, int], dict[str, int]]:
    files: dict[str, int] = {}
    functions: dict[str, int] = {}
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        files[_rel(path)] = len(text.splitlines())
        for name, node in _functions(ast.parse(text, str(path))):
            functions[f"{_rel(path)}::{name}"] = node.end_lineno - node.lineno + 1  # type: ignore[attr-defined]
    return files, functions


def test_no_file_or_function_is_too_long():
    files, functions = _sizes()
    long_files = {name: n for name, n in files.items() if n > MAX_FILE_LINES and name not in PENDING_FILES}
    long_functions = {
        name: n for name, n in functions.items() if n > MAX_FUNCTION_LINES and name not in PENDING_FUNCTIONS
    }
    assert long_files == {}, f"over {MAX_FILE_LINES} lines: split them up"
    assert long_functions == {}, f"over {MAX_FUNCTION_LINES} lines: split them up"


def test_pending_entries_still_exceed():
    """A PENDING entry for code that is gone, or now within the limits, is a leftover: remove it."""
    files, functions = _sizes()
    stale = [name for name in PENDING_FILES if files.get(name, 0) <= MAX_FILE_LINES]
    stale += [name for name in PENDING_FUNCTIONS if functions.get(name, 0) <= MAX_FUNCTION_LINES]
    assert stale == []


def test_the_size_check_sees_functions_and_methods():
    files, functions = _sizes()
    assert "pyloader_core/tools/cli/run.py" in files
    assert "pyloader_core/tools/cli/run.py::main" in functions
    assert "pyloader_core/storage/checks.py::CheckedRaw.readinto" in functions
