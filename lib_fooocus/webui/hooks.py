"""The Script's host-facing glue: building its UI, and the callbacks registered once at import
(settings, REST + API validation, infotext paste, X/Y/Z axes)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from lib_fooocus.webui import settings
from lib_fooocus.webui.context import FooocusContext

log = logging.getLogger(__name__)


def _in_current_blocks(component: Any) -> bool:
    """Whether `component` belongs to the Blocks being built now (not to an earlier build: the API
    builds the UI again in a throw-away Blocks)."""
    try:
        from gradio.context import Context
    except ImportError:
        return False
    root = getattr(Context, "root_block", None)
    blocks = getattr(root, "blocks", None)
    if not isinstance(blocks, dict):
        return False
    return blocks.get(getattr(component, "_id", None)) is component


def paste_field_class() -> Any:
    try:
        from modules.infotext_utils import PasteField
    except ImportError:
        return None
    return PasteField


PREVIEW_WAIT_SECONDS = 15.0  # the preview waits this long for a model being prepared, then says so


def build_script_ui(script: Any, is_img2img: bool, context: FooocusContext) -> Any:
    from lib_fooocus.text import expansion_source
    from lib_fooocus.webui.checkpoints import refiner_choices, refresh_checkpoints
    from lib_fooocus.webui.style_import import host_style_files
    from lib_fooocus.webui.style_picker import build_style_picker
    from lib_fooocus.webui.ui import build_ui
    from lib_fooocus.webui.ui_tools import HOST_CONTROL_NAMES

    tabname = "img2img" if is_img2img else "txt2img"
    library = context.style_library()
    defaults = settings.default_params(library)
    seen = getattr(script, "seen_components", {}) or {}
    prompt = seen.get((tabname, "prompt"))
    seed = seen.get((tabname, "seed"))
    if not (_in_current_blocks(prompt) and _in_current_blocks(seed)):
        prompt = seed = None
    schedule_inputs = _tab_components(seen, tabname, SCHEDULE_INPUT_NAMES)
    host_controls = _tab_components(seen, tabname, HOST_CONTROL_NAMES)

    def picker(elem_prefix: str, value: list[str]) -> Any:
        return build_style_picker(elem_prefix, context.style_library, context.reload_style_library, value=value)

    def expand(text: str, seed_value: int) -> str:
        try:
            return context.expansion_service().expand(text, seed_value, wait=PREVIEW_WAIT_SECONDS)
        finally:
            context.unload_expansion_if_configured()

    return build_ui(
        tabname=tabname,
        elem_id=script.elem_id,
        defaults=defaults,
        accordion_open=bool(settings.read(settings.KEY_ACCORDION_OPEN)),
        build_style_picker=picker,
        expand=expand,
        expansion_source=expansion_source,
        expansion_status=context.expansion_state,
        retry_expansion=context.retry_expansion,
        license_folder=str(settings.expansion_model_dir()),
        prompt_component=prompt,
        seed_component=seed,
        known_style=context.resolve_style,
        paste_field_class=paste_field_class(),
        paste_cache=context.paste_cache,
        schedule_inputs=schedule_inputs,
        refiner_choices=refiner_choices,
        refresh_refiner_choices=refresh_checkpoints,
        host_controls=host_controls,
        current_library=context.style_library,
        style_imports=context.style_imports(),
        host_style_files=host_style_files,
    )


SCHEDULE_INPUT_NAMES = ("steps", "cfg_scale", "sampler", "scheduler")


def _tab_components(seen: dict[tuple[str, str], Any], tabname: str, names: Iterable[str]) -> dict[str, Any]:
    """Those of the tab's components named `names` that the Script saw being built in the Blocks
    being built now: the schedule plot's inputs, the "Fooocus defaults" row's controls."""
    found = {}
    for name in names:
        component = seen.get((tabname, name))
        if component is not None and _in_current_blocks(component):
            found[name] = component
    return found


def _register(register: Any, callback: Any, name: str) -> None:
    """`on_*(callback, name=...)` where the host has `name=` (A1111 1.9+, Forge), else plain."""
    try:
        register(callback, name=name)
    except TypeError:
        register(callback)


def register_callbacks(script_callbacks: Any, scripts_module: Any, context: FooocusContext) -> None:
    from lib_fooocus.webui.app import on_app_started
    from lib_fooocus.webui.checkpoints import refiner_choices
    from lib_fooocus.webui.paste import restore_prompts_on_paste
    from lib_fooocus.webui.xyz import register_axes

    def on_ui_settings() -> None:
        settings.register_settings()

    def on_before_ui() -> None:
        try:
            register_axes(scripts_module.scripts_data, context.style_library, refiner_choices)
        except Exception:
            log.exception("Fooocus: X/Y/Z axes not added")

    def on_app_started_with_context(demo: Any, app: Any) -> None:
        on_app_started(demo, app, context)

    def register_all() -> None:
        _register(script_callbacks.on_ui_settings, on_ui_settings, "fooocus_settings")
        _register(script_callbacks.on_app_started, on_app_started_with_context, "fooocus_app")
        _register(script_callbacks.on_infotext_pasted, restore_prompts_on_paste, "fooocus_paste")
        _register(script_callbacks.on_before_ui, on_before_ui, "fooocus_xyz")

    in_own_thread(register_all)


def in_own_thread(work: Callable[[], None]) -> None:
    """Run `work` in a short-lived thread and wait for it; its error is raised here.

    Why, for the callback registrations: the hosts' `script_callbacks.add_callback` finds the file
    that registers a callback with `inspect.stack()`, which looks up the module of every frame of the
    calling thread. While the WebUI loads a script, that stack holds frames no module owns (the
    script file, importlib's frozen frames), and each one makes `inspect.getmodule` scan all of
    `sys.modules` (thousands of modules in a WebUI) again: ~25 ms per registration on A1111, 0.1 s
    for our four, nearly all of the script's load time (`bench/startup.py --webui`). A new thread's
    stack holds only frames of modules inspect has cached. The registrations, their order and the
    file they are attributed to (this module) stay the same."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as error:  # handed to the caller, as if it had run there
            errors.append(error)

    thread = threading.Thread(target=run, name="fooocus-register-callbacks", daemon=True)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
