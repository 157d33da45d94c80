"""`on_app_started`: the API validation middleware and the extension's REST routes."""

from __future__ import annotations

import logging
from typing import Any

from lib_fooocus.webui.api_validation import install_validator
from lib_fooocus.webui.context import FooocusContext

log = logging.getLogger(__name__)


def route_paths(app: Any) -> set[str]:
    return {getattr(route, "path", "") for route in getattr(app, "routes", [])}


def register_routes(app: Any, context: FooocusContext) -> list[str]:
    """Add the expansion and styles routes unless present (a UI reload calls this again)."""
    from lib_fooocus.webui.rest_expansion import EXPAND_PATH, register_expand_route
    from lib_fooocus.webui.rest_styles import API_PREFIX, register_style_routes

    added = []
    present = route_paths(app)
    if EXPAND_PATH not in present:
        register_expand_route(app, context.expansion_service)
        added.append(EXPAND_PATH)
    if f"{API_PREFIX}/styles" not in present:
        register_style_routes(app, context.style_library)
        added.append(f"{API_PREFIX}/styles")
    return added


def on_app_started(_demo: Any, app: Any, context: FooocusContext) -> None:
    try:
        install_validator(app, lambda: context.style_library().resolve)
    except Exception:
        log.exception("Fooocus: could not add the API argument check; bad args will only be logged")
    try:
        register_routes(app, context)
    except Exception:
        log.exception("Fooocus: could not add the /fooocus/v1 REST routes")
