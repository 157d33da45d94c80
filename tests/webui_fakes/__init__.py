"""Fake host modules (`modules.*`) for the Script tests: only what the extension touches, shaped as
the hosts define them (A1111 `modules/scripts.py`,
`modules/shared.py`, `modules/script_callbacks.py`; Forge the same modules). `install(host, setitem)` puts a fresh set into `sys.modules`.

Hosts imitated:
- "a1111-1.6": no InputAccordion, no PasteField, callbacks without `name=`, infotext values str()-ed.
- "a1111-1.10": InputAccordion class, PasteField, `name=`, per-image list values in infotext.
- "forge-main": like 1.10, with InputAccordion a factory function (as Forge main has it).
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any

HOSTS = ("a1111-1.6", "a1111-1.10", "forge-main")
MODULE_NAMES = (
    "modules", "modules.scripts", "modules.script_callbacks", "modules.shared", "modules.ui_components",
    "modules.processing", "modules.infotext_utils", "modules.paths", "modules.devices",
)


def install(host: str = "a1111-1.10", setitem: Callable[[Any, str, Any], None] | None = None,
            models_path: str = "/tmp/fooocus-test-models") -> types.SimpleNamespace:
    """Build the modules and register them (`setitem(sys.modules, name, module)`; monkeypatch's in
    tests so they are removed afterwards)."""
    if host not in HOSTS:
        msg = f"unknown fake host {host!r}; one of {HOSTS}"
        raise ValueError(msg)
    from . import fake_modules

    modules = fake_modules.build(host, models_path)
    put = setitem or (lambda mapping, key, value: mapping.__setitem__(key, value))
    for name in MODULE_NAMES:
        put(sys.modules, name, modules[name])
    return types.SimpleNamespace(host=host, **{name.split(".")[-1]: module for name, module in modules.items()})
