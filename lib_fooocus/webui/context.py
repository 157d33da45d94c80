"""The extension's shared state in one WebUI process: the style library, the expansion service, the
host adapter and the infotext paste cache.

`scripts/fooocus.py` creates one `FooocusContext` and hands it to every Script instance, to the
callbacks it registers and to the REST routes, so generation, the preview button, the routes and the
API validation all use the same objects. Tests build their own context with their own loaders.

Locking: the lock only guards swapping the references. Loading a library, building or unloading an
expansion service (which may wait for a download in progress) happens outside it, so no request path
waits on disk or network I/O of another through this lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from lib_fooocus.webui import settings
from lib_fooocus.webui.paste import PasteCache

log = logging.getLogger(__name__)


def load_style_library_from_settings() -> Any:
    from lib_fooocus.styles.library import load_library

    return load_library(settings.read(settings.KEY_STYLES_FOOOCUS_DIR) or None, settings.extra_style_sources())


def expansion_settings_from_options() -> Any:
    from lib_fooocus.expansion.files import ExpansionSource
    from lib_fooocus.expansion.service import ExpansionSettings

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


def new_expansion_service(expansion_settings: Any) -> Any:
    from lib_fooocus.expansion.service import ExpansionService

    return ExpansionService(expansion_settings)


def detected_adapter() -> Any:
    from lib_fooocus.hosts import create_adapter, detect_host

    return create_adapter(detect_host())


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


class FooocusContext:
    """Lazily built shared objects. The factories are the seams tests use to supply their own."""

    def __init__(
        self,
        *,
        load_style_library: Callable[[], Any] = load_style_library_from_settings,
        read_expansion_settings: Callable[[], Any] = expansion_settings_from_options,
        make_expansion_service: Callable[[Any], Any] = new_expansion_service,
        make_adapter: Callable[[], Any] = detected_adapter,
    ):
        self._load_style_library = load_style_library
        self._read_expansion_settings = read_expansion_settings
        self._make_expansion_service = make_expansion_service
        self._make_adapter = make_adapter
        self._lock = threading.Lock()
        self._library: Any = None
        self._expansion: tuple[Any, Any] | None = None  # (the settings it was built with, the service)
        self._adapter: Any = None
        self._style_imports: Any = None
        self.paste_cache = PasteCache()

    # -- styles ------------------------------------------------------------------------------------

    def style_library(self) -> Any:
        library = self._library
        return library if library is not None else self.reload_style_library()

    def reload_style_library(self) -> Any:
        library = self._load_style_library()  # disk I/O, outside the lock
        with self._lock:
            self._library = library
        self.paste_cache.clear()  # a pasted style may resolve differently now
        return library

    def style_imports(self) -> Any:
        """The accordion's one-click imports (one at a time per process), reloading this library."""
        imports = self._style_imports
        if imports is None:
            from lib_fooocus.webui.style_import import StyleImports

            imports = StyleImports(self.style_library, self.reload_style_library)
            with self._lock:
                if self._style_imports is None:
                    self._style_imports = imports
                imports = self._style_imports
        return imports

    def resolve_style(self, name: str) -> str | None:
        return self.style_library().resolve(name)

    # -- expansion ---------------------------------------------------------------------------------

    def expansion_service(self) -> Any:
        """The service for the current settings (a new one, without a loaded model, when they changed)."""
        wanted = self._read_expansion_settings()
        replaced = None
        with self._lock:
            current = self._expansion
            if current is None or current[0] != wanted:
                replaced = current[1] if current is not None else None
                current = (wanted, self._make_expansion_service(wanted))
                self._expansion = current
        if replaced is not None:
            replaced.unload()  # may wait for a load in progress: never under our lock
        return current[1]

    def expansion_status(self) -> str:
        """The status line of the accordion: ready, being prepared, or unavailable and why."""
        return self.expansion_state().text

    def expansion_state(self) -> Any:
        """`expansion_status` with its kind and download progress (`ExpansionState`), what the
        accordion's status shows and polls while a download runs. Cheap: no hashing, no waiting."""
        from lib_fooocus.expansion.service import IDLE, UNAVAILABLE, ExpansionState

        try:
            service = self.expansion_service()
            state = getattr(service, "state", None)
            if state is not None:
                return state()
            status = getattr(service, "status", None)
            return ExpansionState(IDLE, status() if status is not None else "")
        except Exception as error:  # a status line must never break the UI
            return ExpansionState(UNAVAILABLE, f"Fooocus V2 expansion: status unknown ({error})")

    def retry_expansion(self) -> Any:
        """The Retry button: forget a remembered download failure; returns the new state."""
        forget = getattr(self.expansion_service(), "forget_failure", None)
        if forget is not None:
            forget()
        return self.expansion_state()

    def unload_expansion_if_configured(self) -> None:
        """After a generation or a preview: drop the model when "unload after generation" is set."""
        current = self._expansion
        if current is not None:
            current[1].finish_generation()  # unloads only when the setting says so

    # -- host adapter ------------------------------------------------------------------------------

    def adapter(self) -> Any:
        """The adapter for the running host: detected at the first call (not at import), then kept."""
        adapter = self._adapter
        if adapter is None:
            adapter = self._make_adapter()
            with self._lock:
                if self._adapter is None:
                    self._adapter = adapter
                adapter = self._adapter
        return adapter
