"""The shared style library and expansion service, built from the settings on first use.

Generation, the preview button, the REST routes and the API validation all use the same objects.
The style library is reloaded by the picker's refresh button; the expansion service is rebuilt when
its settings change (the loaded model is dropped then).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from lib_fooocus.webui import settings

log = logging.getLogger(__name__)

_LOCK = threading.RLock()
_STATE: dict[str, Any] = {}


def style_library() -> Any:
    with _LOCK:
        library = _STATE.get("library")
        if library is None:
            library = reload_style_library()
        return library


def reload_style_library() -> Any:
    from lib_fooocus.styles import load_library

    library = load_library(settings.read(settings.KEY_STYLES_FOOOCUS_DIR) or None, settings.extra_style_sources())
    with _LOCK:
        _STATE["library"] = library
    return library


def expansion_settings() -> Any:
    from lib_fooocus.expansion import ExpansionSettings
    from lib_fooocus.expansion_files import ExpansionSource

    use_cpu = settings.read(settings.KEY_EXPANSION_DEVICE) == settings.DEVICE_CPU
    source = ExpansionSource(
        weights_repo=str(settings.read(settings.KEY_EXPANSION_REPO) or "lllyasviel/misc").strip(),
        weights_revision=str(settings.read(settings.KEY_EXPANSION_REVISION) or "main").strip(),
    )
    return ExpansionSettings(
        model_dir=str(settings.expansion_model_dir()),
        device=None if use_cpu else text_encoder_device(),
        use_cpu=use_cpu,
        unload_after_generation=bool(settings.read(settings.KEY_EXPANSION_UNLOAD)),
        allow_download=bool(settings.read(settings.KEY_EXPANSION_DOWNLOAD)),
        source=source,
    )


def expansion_service() -> Any:
    """The service for the current settings (a new one, without a loaded model, when they changed)."""
    from lib_fooocus.expansion import ExpansionService

    wanted = expansion_settings()
    with _LOCK:
        service = _STATE.get("expansion")
        if service is None or service.settings != wanted:
            if service is not None:
                service.unload()
            service = ExpansionService(wanted)
            _STATE["expansion"] = service
        return service


def unload_expansion_if_configured() -> None:
    """After a generation or a preview: drop the model when "unload after generation" is set."""
    with _LOCK:
        service = _STATE.get("expansion")
    if service is not None:
        service.finish_generation()  # unloads only when the setting says so


def text_encoder_device() -> Any:
    """The device the host runs its text encoders on (None = CPU when nothing can be found)."""
    for module_name, function_name in (
        ("backend.memory_management", "text_encoder_device"),  # Forge main
        ("ldm_patched.modules.model_management", "text_encoder_device"),  # Forge's 2024 line
    ):
        try:
            module = __import__(module_name, fromlist=[function_name])
            return getattr(module, function_name)()
        except Exception:  # not this host
            continue
    try:
        from modules import devices

        return getattr(devices, "device", None)
    except ImportError:
        return None


def set_for_tests(*, library: Any = None, expansion: Any = None) -> None:
    """Install ready-made objects (tests, or a host embedding its own)."""
    with _LOCK:
        if library is not None:
            _STATE["library"] = library
        if expansion is not None:
            _STATE["expansion_override"] = expansion


def expander() -> Any:
    """What generation calls: `expand(prompt, seed)`; a test override wins."""
    with _LOCK:
        override = _STATE.get("expansion_override")
    return override if override is not None else expansion_service()


def reset() -> None:
    with _LOCK:
        _STATE.clear()
