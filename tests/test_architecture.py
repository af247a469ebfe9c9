"""The shape of the library (docs/architecture.md section 1): no import circles, small modules, imports run one way."""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "safelora_lite"
MAX_LINES = 300


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The package's modules that `path` imports (at any depth of the file, lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in known}
    return found - {module_name(path)}


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(paths)
    return {m: imported_modules(p, known) for m, p in paths.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None. A package's __init__ importing its
    own submodules is not a cycle with them unless a submodule imports the package back."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (cycle := visit(n)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_circles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_is_short(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(PACKAGE)} has {n} lines: split it (one idea per module)"


def test_no_citations_of_documents_outside_the_repository():
    root = PACKAGE.parent
    files = [*PACKAGE.rglob("*.py"), *root.glob("notebooks/*.ipynb"), *root.glob("lessons/**/*.md"), *root.glob("*.toml"),
             root / "README.md", root / "data" / "README.md"]
    bad = [str(p.relative_to(root)) for p in files if re.search(r"DESIGN section|DESIGN \d|STYLE \d", p.read_text())]
    assert not bad, f"cite docs/architecture.md instead of a document outside the repository: {bad}"


# Lower layers never import higher ones; inside a layer, only the pairs listed in SIBLINGS_APART stay apart.
LAYERS = [
    {"errors", "paths", "device", "records", "cache", "outputs", "options"},
    {"maths"},
    {"adapters", "training"},
    {"evaluation"},
    {"worlds", "methods"},
    {"comparison", "scale"},
    {"course", "cli", "__main__", ""},
]
WORLD_INTERFACE = "safelora_lite.worlds.base"


def layer_of(module: str) -> int:
    part = module.split(".")[1] if "." in module else ""
    return next(i for i, group in enumerate(LAYERS) if part in group)


def test_imports_run_one_way():
    wrong = []
    for module, targets in import_graph().items():
        for target in targets:
            if layer_of(target) > layer_of(module):
                wrong.append(f"{module} -> {target} (upwards)")
            mine, theirs = module.split(".")[1:2], target.split(".")[1:2]
            if {*mine, *theirs} == {"worlds", "methods"} and target != WORLD_INTERFACE:
                wrong.append(f"{module} -> {target} (methods and worlds meet only through {WORLD_INTERFACE})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_private_names_imported_across_modules():
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("safelora_lite"):
                found += [f"{path.relative_to(PACKAGE)}: {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    assert not found, "make these public or keep them in their module: " + ", ".join(found)
