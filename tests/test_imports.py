"""Imports go one way: no module of ``src/wmhkit`` imports a higher layer, and no import cycle exists.

Every module is parsed with :mod:`ast` (imports inside functions and ``TYPE_CHECKING``
blocks count too). ``from package import name`` is an import of the submodule when
``name`` is one, else of the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src"

#: Top-level packages and modules of ``wmhkit`` from the lowest layer up: a module may import its
#: own package, and packages of lower layers; packages sharing a layer never import each other
#: (``train`` and ``infer``). ``metrics`` and ``stats`` are torch-free functions on arrays and
#: tables, so they sit low: silver quality, training validation and predict's CSVs use them.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",),
    ("wmhkit", "itk_threads", "torch_threads"),
    ("io",),
    ("cohort", "qc"),
    ("preprocess",),
    ("metrics",),
    ("stats",),
    ("bronze", "synth"),
    ("fusion",),
    ("nn",),
    ("models",),
    ("train", "infer"),
    ("report",),
    ("demo",),
    ("cli",),
    ("__main__",),
)
LAYER_OF = {package: index for index, layer in enumerate(LAYERS) for package in layer}


def module_files() -> dict[str, Path]:
    """Dotted module name → file, for every module of ``src/wmhkit``."""
    modules = {}
    for path in sorted((SOURCE / "wmhkit").rglob("*.py")):
        parts = list(path.relative_to(SOURCE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_modules(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The ``wmhkit`` modules that ``module`` imports."""
    imported = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                imported.add(submodule if submodule in modules else base)
    return {name for name in imported if name in modules and name != module}


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {module: imported_modules(module, path, modules) for module, path in modules.items()}


def top_level(module: str) -> str:
    """``wmhkit.train.volume`` → ``train``; ``wmhkit`` → ``wmhkit``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)) is not None:
            return cycle
    return None


def test_every_package_has_a_layer() -> None:
    packages = {top_level(module) for module in module_files()}
    assert packages == set(LAYER_OF), "place new top-level packages in LAYERS (and drop removed ones)"


def test_no_import_goes_up_or_sideways() -> None:
    wrong = [
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        for target in sorted(targets)
        if top_level(target) != top_level(module) and LAYER_OF[top_level(target)] >= LAYER_OF[top_level(module)]
    ]
    assert not wrong, "imports from a lower layer to a higher (or sibling) one:\n" + "\n".join(wrong)


def test_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("graph, cycle", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ({"a": {"b"}, "b": set(), "c": {"b"}}, None),
])
def test_the_cycle_finder_finds_cycles(graph: dict[str, set[str]], cycle: list[str] | None) -> None:
    assert find_cycle(graph) == cycle


def test_the_parser_sees_submodule_and_relative_imports(tmp_path: Path) -> None:
    module = tmp_path / "stage.py"
    module.write_text("from wmhkit.report import figures\nfrom . import records\nfrom .runner import run\n"
                      "def late():\n    import wmhkit.io.nifti\n")
    modules = {name: tmp_path for name in ("wmhkit.report", "wmhkit.report.figures", "wmhkit.cohort",
                                           "wmhkit.cohort.records", "wmhkit.cohort.runner", "wmhkit.io.nifti")}
    assert imported_modules("wmhkit.cohort.stage", module, modules) == {
        "wmhkit.report.figures", "wmhkit.cohort.records", "wmhkit.cohort.runner", "wmhkit.io.nifti"}
