"""The structure check: the packages are the layers, every import points down, and there are no circles.

Reads every module's imports (lazy ones inside functions included) with `ast`, so a new arrow
upwards or a new circle fails here, naming the modules.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("stylecore", "spaces", "kernels")

# Bottom to top; a module may import from lower layers and from its own package.
LAYERS = (
    ("stylecore.progress", "stylecore.ops.args"),
    ("kernels",),
    ("stylecore.ops",),
    ("stylecore.networks",),
    ("stylecore.formats",),
    ("stylecore.engine",),
    ("stylecore.codes", "stylecore.perception"),
    ("stylecore.inversion", "stylecore.edit", "stylecore.video"),
    ("stylecore.bench",),
    ("stylecore", "stylecore.__main__"),
    ("spaces",),
    ("app",),
)


def module_files() -> dict[str, Path]:
    files = {"app": ROOT / "app.py"}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            files[name.removesuffix(".__init__")] = path
    return files


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports; `from package import submodule` counts as the submodule."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
            targets = submodules if len(submodules) == len(node.names) else [base, *submodules]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def layer_of(module: str) -> tuple[int, str]:
    """(rank, group) of the longest layer prefix that names `module`."""
    best = (-1, "", "")
    for rank, group in enumerate(LAYERS):
        for prefix in group:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best[2]):
                best = (rank, prefix, prefix)
    assert best[0] >= 0, f"{module} belongs to no layer: add its package to LAYERS"
    return best[0], best[1]


def graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: imports(name, path, set(files)) for name, path in files.items()}


def test_every_import_points_down_or_stays_in_its_package():
    wrong = []
    for module, targets in graph().items():
        rank, group = layer_of(module)
        for target in targets:
            target_rank, target_group = layer_of(target)
            if target_group != group and target_rank >= rank:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports that point up or sideways:\n" + "\n".join(sorted(wrong))


def test_no_circles():
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    assert not circles, f"import circles: {circles}"


def test_the_engine_imports_without_gradio_or_the_top_level_kernels_package():
    for module, targets in graph().items():
        if module.startswith("stylecore"):
            assert not any(t == "spaces" or t.startswith("spaces.") for t in targets), module
    source = "\n".join(p.read_text() for p in (ROOT / "stylecore").rglob("*.py"))
    assert "import gradio" not in source and "from gradio" not in source
