"""The architecture rules, checked: a host-free core, lazy heavy imports, nothing host-specific at import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "lib_fooocus"
HOST_GLUE = {"hosts", "webui"}  # sub-packages allowed to touch host modules (lazily)
HOST_MODULES = {"modules", "ldm", "sgm", "ldm_patched", "backend", "modules_forge", "k_diffusion", "launch"}
HEAVY_MODULES = ("transformers", "huggingface_hub", "gradio", "fastapi", "kornia", "safetensors", "tokenizers")


def core_files():
    for path in sorted(CORE.rglob("*.py")):
        relative = path.relative_to(CORE)
        if relative.parts[0] not in HOST_GLUE:
            yield path


def imported_roots(tree: ast.AST, *, top_level_only: bool):
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def test_core_never_imports_host_modules():
    offenders = []
    for path in core_files():
        roots = set(imported_roots(ast.parse(path.read_text(encoding="utf-8")), top_level_only=False))
        if roots & HOST_MODULES:
            offenders.append(f"{path.relative_to(ROOT)}: {sorted(roots & HOST_MODULES)}")
    assert offenders == []


def test_no_module_imports_host_or_heavy_packages_at_top_level():
    offenders = []
    for path in sorted([*CORE.rglob("*.py"), *(ROOT / "scripts").glob("*.py")]):
        roots = set(imported_roots(ast.parse(path.read_text(encoding="utf-8")), top_level_only=True))
        bad = roots & (HOST_MODULES | set(HEAVY_MODULES))
        if path.parent.name == "scripts":
            bad -= {"modules", "gradio"}  # the Script file is loaded by the host itself
        if bad:
            offenders.append(f"{path.relative_to(ROOT)}: {sorted(bad)}")
    assert offenders == []


def test_importing_every_core_module_loads_no_heavy_package():
    modules = [
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in CORE.rglob("*.py")
        if path.name != "__main__.py"
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {sorted(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        f"loaded = [m for m in {HEAVY_MODULES!r} if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


# -- the layout: feature packages, host faces, no cycles ---------------------------------------------

FACE_MODULES = {"gradio", "fastapi", "starlette"}
HOST_ONLY = {"modules", "backend", "ldm_patched", "modules_forge"}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def import_nodes(tree: ast.AST):
    """Every import statement, top level or inside functions, except under `if TYPE_CHECKING:`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if is_type_checking_block(node):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def internal_imports(path: Path, known: set[str]) -> set[str]:
    """The lib_fooocus modules `path` imports (`from pkg import submodule` counts as the submodule)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        found.update(target for target in targets if target in known)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = sorted(CORE.rglob("*.py"))
    known = {module_name(path) for path in paths}
    return {module_name(path): internal_imports(path, known) - {module_name(path)} for path in paths}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as a list of modules (first == last), or [] when the graph has none."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return []


def test_only_webui_and_hosts_touch_gradio_fastapi_or_the_host():
    offenders = []
    for path in core_files():
        roots = set(imported_roots(ast.parse(path.read_text(encoding="utf-8")), top_level_only=False))
        bad = roots & (FACE_MODULES | HOST_ONLY)
        if bad:
            offenders.append(f"{path.relative_to(ROOT)}: {sorted(bad)}")
    assert offenders == []


def test_no_import_cycles_in_lib_fooocus():
    graph = import_graph()
    assert "lib_fooocus.styles.library" in graph["lib_fooocus.styles.importer"]  # the graph sees imports
    assert find_cycle(graph) == []


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_guidance_knows_nothing_of_expansion_or_styles():
    graph = import_graph()
    offenders = {
        module: sorted(target for target in targets if target.startswith(("lib_fooocus.expansion", "lib_fooocus.styles")))
        for module, targets in graph.items()
        if module.startswith("lib_fooocus.guidance")
    }
    assert {module: targets for module, targets in offenders.items() if targets} == {}


def test_feature_packages_exist_as_the_readme_describes():
    expected = {
        "guidance": {"schedule", "adm", "sharpness", "cfg"},
        "expansion": {"engine", "files", "service"},
        "styles": {"library", "importer", "assembly"},
        "cli": {"expansion", "styles"},
        "hosts": {"a1111", "forge", "lifecycle", "conditioning"},
    }
    for package, modules in expected.items():
        present = {path.stem for path in (CORE / package).glob("*.py")}
        assert modules <= present, (package, modules - present)
