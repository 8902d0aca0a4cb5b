"""The package's import graph: no cycles, each layer imports only the layers below it, and an
import inside a function is for a heavy library (or one of the few modelpress modules that pull
one in), never a way to hide a cycle.

The graph is read from the source with ``ast``, type-only imports (``if TYPE_CHECKING:``)
included, so a cycle that only the type checker follows still counts. Run this file with
``python tests/test_layers.py`` to print the graph's problems without pytest.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# where each installed package's source lives in the checkout (pyproject's package-dir)
FOLDERS = {"modelpress": ROOT / "src" / "modelpress", "modelpress.steps": ROOT / "steps",
           "modelpress.pipelines": ROOT / "pipelines", "modelpress.deploy": ROOT / "deploy",
           "modelpress.kernels": ROOT / "kernels"}

# Each package's layer: a module may import its own layer's other packages and any lower layer.
LAYERS: dict[str, int] = {
    # the core (src/modelpress)
    "modelpress": 0, "modelpress.core": 0, "modelpress.recipes": 0,
    "modelpress.settings": 1, "modelpress.tracking": 1,
    "modelpress.datasets": 2, "modelpress.lm": 2, "modelpress.lm.scorers": 2,
    "modelpress.tasks": 3, "modelpress.sources": 3, "modelpress.training": 3, "modelpress.builds": 3,
    "modelpress.recipe": 4,
    "modelpress.gate": 5,
    "modelpress.release": 6,
    # the rooms (kernels/, steps/, deploy/) above the core, then the public ZenML steps that use
    # them, the recipe's pipeline built from those steps, and the CLI on top
    "modelpress.kernels": 7,
    "modelpress.steps": 8,
    "modelpress.deploy": 9,
    "modelpress.zenml": 10,
    "modelpress.pipelines": 11,
    "modelpress.cli": 12,
}

# Libraries that make an import slow (seconds, or hundreds of MB): a modelpress module that loads
# one at import time, itself or through the modelpress modules it imports, is heavy, and may be
# imported inside a function so that `modelpress --help` and the registries stay fast.
HEAVY_LIBRARIES = frozenset({
    "torch", "transformers", "onnx", "onnxruntime", "onnxruntime_genai", "mlflow", "zenml", "pandas",
    "numpy", "great_expectations", "matplotlib", "PIL", "sklearn", "scipy", "datasets", "peft",
    "torch_pruning", "triton", "gguf", "accelerate", "optimum", "tokenizers", "safetensors",
    "compressed_tensors", "tensorrt", "uvicorn", "starlette", "fastapi", "kserve", "tritonclient",
})
# Function-level imports of light modelpress modules that are allowed anyway, and why.
ALLOWED: dict[str, str] = {}


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module (a module, never a name inside one)
    line: int
    in_function: bool
    type_only: bool = False


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    found = {}
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join((package, *parts))
            # modelpress's own folder holds the mapped packages' names only through FOLDERS
            if not any(name.startswith(other + ".") or name == other
                       for other in FOLDERS if other != package and other.startswith(package + ".")):
                found[name] = path
    return found


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _inside(tree: ast.AST, kind: type | tuple[type, ...], test: str | None = None) -> set[int]:
    """ids of the nodes nested in a node of ``kind`` (for ``ast.If``: whose test names ``test``)."""
    return {id(n) for outer in ast.walk(tree) if isinstance(outer, kind)
            and (test is None or test in ast.unparse(outer.test))  # type: ignore[attr-defined]
            for body in ([outer.body] if test else [[outer]]) for part in body  # type: ignore[attr-defined]
            for n in ast.walk(part) if n is not outer}


def libraries_of(path: Path) -> set[str]:
    """Third-party top-level names imported when the module itself is imported."""
    tree = ast.parse(path.read_text(), str(path))
    hidden = _inside(tree, (ast.FunctionDef, ast.AsyncFunctionDef)) | _inside(tree, ast.If, "TYPE_CHECKING")
    names = set()
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names - {"modelpress"}


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> Iterator[Import]:
    tree = ast.parse(path.read_text(), str(path))
    functions = _inside(tree, (ast.FunctionDef, ast.AsyncFunctionDef))
    typing_only = _inside(tree, ast.If, "TYPE_CHECKING")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, module, path.name == "__init__.py")
            # `from pkg import sub` imports the submodule; `from mod import name` the module
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for target in dict.fromkeys(targets):
            while target and target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in modules and target != module:
                yield Import(module, target, node.lineno, id(node) in functions, id(node) in typing_only)


def graph() -> list[Import]:
    modules = module_files()
    return [imp for name, path in sorted(modules.items()) for imp in imports_of(name, path, modules)]


def cycles(edges: list[Import]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    succ: dict[str, set[str]] = {}
    for e in edges:
        succ.setdefault(e.source, set()).add(e.target)
        succ.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(succ[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(succ):
        if v not in index:
            visit(v)
    return found


def layer_of(module: str) -> tuple[str, int]:
    """The package a module belongs to in LAYERS (its longest listed prefix), and its layer."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in LAYERS:
            return prefix, LAYERS[prefix]
    raise KeyError(f"{module} is in no layer: add its package to LAYERS in tests/test_layers.py")


def upward(edges: list[Import]) -> list[str]:
    problems = []
    for e in edges:
        (src_pkg, src), (dst_pkg, dst) = layer_of(e.source), layer_of(e.target)
        if dst > src:
            problems.append(f"{e.source}:{e.line} imports {e.target} ({dst_pkg}, layer {dst} above {src_pkg}, {src})")
    return problems


def heavy_modules(edges: list[Import]) -> set[str]:
    """Modules whose import loads a heavy library: directly, through a parent package's
    ``__init__``, or through the modelpress modules they import at module level."""
    modules = module_files()
    heavy = {m for m, path in modules.items() if libraries_of(path) & HEAVY_LIBRARIES}
    runtime = [(e.source, e.target) for e in edges if not e.in_function and not e.type_only]
    parents = [(m, m.rsplit(".", 1)[0]) for m in modules if "." in m and m.rsplit(".", 1)[0] in modules]
    changed = True
    while changed:
        new = {src for src, dst in runtime + parents if dst in heavy and src not in heavy}
        heavy |= new
        changed = bool(new)
    return heavy


def hidden(edges: list[Import]) -> list[str]:
    heavy = heavy_modules(edges)
    return [f"{e.source}:{e.line} imports {e.target} inside a function, and {e.target} is not heavy "
            f"(move it to the top, or add it to ALLOWED in tests/test_layers.py with the reason)"
            for e in edges if e.in_function and e.target not in heavy and e.target not in ALLOWED]


def test_every_module_has_a_layer() -> None:
    for name in module_files():
        layer_of(name)


def test_every_package_is_installed() -> None:
    """A subpackage missing from pyproject's list installs nothing: its imports fail only when
    installed, never in the checkout."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {name for name, path in module_files().items() if path.name == "__init__.py"}
    assert packages <= listed, f"not in pyproject.toml's packages: {sorted(packages - listed)}"


def test_no_import_cycles() -> None:
    found = cycles(graph())
    assert not found, "import cycles (type-only imports included):\n" + "\n".join(" <-> ".join(c) for c in found)


def test_layers_import_downward_only() -> None:
    problems = upward(graph())
    assert not problems, "imports of a higher layer:\n" + "\n".join(problems)


def test_function_level_imports_are_for_heavy_modules() -> None:
    problems = hidden(graph())
    assert not problems, "\n".join(problems)


def test_the_graph_sees_a_cycle_added_back(tmp_path: Path) -> None:
    """The checks above read real files: a cycle written into a copy of two modules is found."""
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from modelpress.b import x\n")
    b.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from modelpress.a import y\n")
    modules = {"modelpress.a": a, "modelpress.b": b}
    edges = [imp for name, path in modules.items() for imp in imports_of(name, path, modules)]
    assert cycles(edges) == [["modelpress.a", "modelpress.b"]]


if __name__ == "__main__":
    edges = graph()
    for line in [" <-> ".join(c) for c in cycles(edges)] + upward(edges) + hidden(edges):
        print(line)
