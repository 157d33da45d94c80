"""`on_app_started`: the API argument check and the extension's REST routes, both behind the host's
`--api-auth`, and the style previews for the page behind the UI's login (see `host_auth`)."""

from __future__ import annotations

import logging
from typing import Any

from lib_fooocus.webui.api_validation import install_validator
from lib_fooocus.webui.context import FooocusContext
from lib_fooocus.webui.host_auth import HostAuth, ui_route_dependencies

log = logging.getLogger(__name__)


def route_paths(app: Any) -> set[str]:
    return {getattr(route, "path", "") for route in getattr(app, "routes", [])}


def register_routes(app: Any, context: FooocusContext, auth: HostAuth | None = None) -> list[str]:
    """Add the expansion and styles routes unless present (a UI reload calls this again), with the
    host's API auth dependency when it has one."""
    from lib_fooocus.webui.rest_expansion import EXPAND_PATH, register_expand_route
    from lib_fooocus.webui.rest_styles import API_PREFIX, register_style_routes

    dependencies = (auth or HostAuth.of(app)).route_dependencies()
    added = []
    present = route_paths(app)
    if EXPAND_PATH not in present:
        register_expand_route(app, context.expansion_service, dependencies=dependencies)
        added.append(EXPAND_PATH)
    if f"{API_PREFIX}/styles" not in present:
        register_style_routes(app, context.style_library, dependencies=dependencies)
        added.append(f"{API_PREFIX}/styles")
    added += register_ui_routes(app, context)
    return added


def register_ui_routes(app: Any, context: FooocusContext) -> list[str]:
    """The picker's preview routes behind gradio's login check, when the app serves the UI."""
    from lib_fooocus.webui.rest_styles import UI_PREFIX, register_ui_preview_routes

    listing = f"{UI_PREFIX}/styles/previews"
    ui_dependencies = ui_route_dependencies(app)
    if ui_dependencies is None or listing in route_paths(app):
        return []
    register_ui_preview_routes(app, context.style_library, ui_dependencies)
    return [listing]


def on_app_started(_demo: Any, app: Any, context: FooocusContext) -> None:
    try:
        auth = HostAuth.of(app)
    except Exception:  # fail closed: no routes rather than routes without the host's auth
        log.exception("Fooocus: could not read the host's API auth; REST routes and the API check not added")
        return
    def style_resolver() -> Any:
        return context.style_library().resolve

    try:
        if not install_validator(app, style_resolver, auth.accepts if auth.required else None):
            log.info("Fooocus: no /sdapi/v1/txt2img or img2img route to check (API off, or already checked)")
    except Exception:
        log.exception("Fooocus: could not add the API argument check; bad args will only be logged")
    try:
        register_routes(app, context, auth)
    except Exception:
        log.exception("Fooocus: could not add the /fooocus/v1 REST routes")
