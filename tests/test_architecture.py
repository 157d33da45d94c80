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
