"""Thin adapters between the host WebUIs (A1111, Forge) and the core. Imported lazily.

The Script (`scripts/fooocus.py`) talks to one adapter:

    from lib_fooocus.hosts import create_adapter, detect_host
    adapter = create_adapter(detect_host())  # the WebUI context does this once, at first use
    adapter.begin_generation(p, params)     # Script.process(); params validated and clamped
    adapter.before_sampling(p, params)      # process_before_every_sampling (A1111 1.10, Forge),
                                            # process_batch and before_hr (A1111 1.6-1.9); idempotent
    adapter.end_generation(p)               # Script.postprocess(); idempotent, removes everything

`begin_generation` with `params.enabled == False` does nothing at all, and so do the two other
calls afterwards: a disabled generation is bit-identical to one without the extension.
`before_sampling` decides itself whether the hires-fix second pass gets the tricks
(`params.apply_in_hires` and `p.is_hr_pass`).

Adapter names: "a1111" (AUTOMATIC1111 1.6-1.10), "forge-main" (Forge on `backend/`) and
"forge-classic" (Forge's early-2024 `ldm_patched` line, incl. reForge / Forge Classic builds on it).
Detection is by feature (which host modules exist), never by version strings.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any, Protocol

from lib_fooocus.params import FooocusParams


class HostAdapter(Protocol):
    name: str

    def begin_generation(self, p: Any, params: FooocusParams, *, filter_method: str = "auto") -> None: ...

    def before_sampling(self, p: Any, params: FooocusParams) -> None: ...

    def end_generation(self, p: Any) -> None: ...


def module_available(name: str) -> bool:
    """True when `name` is importable (already imported modules count; a `None` entry does not)."""
    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError, AttributeError):
        return False


def detect_host() -> str:
    """"a1111", "forge-main" or "forge-classic", from the modules the running host provides."""
    if not module_available("modules_forge"):
        return "a1111"
    if module_available("backend.patcher.unet"):
        return "forge-main"
    if module_available("ldm_patched") or module_available("modules_forge.unet_patcher"):
        return "forge-classic"
    return "forge-main"


def create_adapter(host: str) -> HostAdapter:
    if host == "a1111":
        from .a1111 import A1111Adapter

        return A1111Adapter()
    if host in ("forge-main", "forge-classic"):
        from .forge import ForgeAdapter

        return ForgeAdapter(name=host)
    msg = f"unknown host {host!r}; expected 'a1111', 'forge-main' or 'forge-classic'"
    raise ValueError(msg)
