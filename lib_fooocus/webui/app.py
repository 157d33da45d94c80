"""`on_app_started`: the API validation middleware and the extension's REST routes."""

from __future__ import annotations

import logging
from typing import Any

from lib_fooocus.webui import services
from lib_fooocus.webui.api_validation import install_validator

log = logging.getLogger(__name__)


def style_resolver() -> Any:
    return services.style_library().resolve


def route_paths(app: Any) -> set[str]:
    return {getattr(route, "path", "") for route in getattr(app, "routes", [])}


def register_routes(app: Any) -> list[str]:
    """Add the expansion and styles routes unless present (a UI reload calls this again)."""
    from lib_fooocus.expansion_rest import EXPAND_PATH, register_expand_route
    from lib_fooocus.styles_rest import API_PREFIX, register_style_routes

    added = []
    present = route_paths(app)
    if EXPAND_PATH not in present:
        register_expand_route(app, services.expander)
        added.append(EXPAND_PATH)
    if f"{API_PREFIX}/styles" not in present:
        register_style_routes(app, services.style_library)
        added.append(f"{API_PREFIX}/styles")
    return added


def on_app_started(_demo: Any, app: Any) -> None:
    try:
        install_validator(app, style_resolver)
    except Exception:
        log.exception("Fooocus: could not add the API argument check; bad args will only be logged")
    try:
        register_routes(app)
    except Exception:
        log.exception("Fooocus: could not add the /fooocus/v1 REST routes")
