"""The package's folders are its layers: no module imports from a layer above its own, and the product never
imports the emulator (which is not in its wheel)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "sync_pipelines"
# bottom-up; a module may import from its own layer and those below it
LAYERS = ["ground", "synchroteam", "warehouse", "defs", "definitions"]


def layer_of(module: str) -> str:
    """`sync_pipelines.warehouse.tables` -> `warehouse`; the top-level modules are the ground."""
    parts = module.split(".")
    if parts[1:2] == ["definitions"]:
        return "definitions"
    return parts[1] if len(parts) > 2 and parts[1] in LAYERS else "ground"


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        dotted = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        found[dotted.removesuffix(".__init__")] = path
    return found


def test_no_module_imports_from_a_layer_above_its_own():
    climbing = []
    for module, path in modules().items():
        rank = LAYERS.index(layer_of(module))
        for imported in imports(path):
            if imported.startswith("sync_pipelines.") and LAYERS.index(layer_of(imported)) > rank:
                climbing.append(f"{module} imports {imported}")
    assert climbing == []


def test_the_layers_are_the_folders_this_test_knows():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == {"synchroteam", "warehouse", "defs"}


def test_the_product_never_imports_the_emulator():
    leaking = [
        f"{module} imports {imported}"
        for module, path in modules().items()
        for imported in imports(path)
        if imported.split(".")[0] == "synchroteam_emulator"
    ]
    assert leaking == []
