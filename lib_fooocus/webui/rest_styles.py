"""REST routes for styles, added to the WebUI's FastAPI app (call from `on_app_started`).

    GET  /fooocus/v1/styles[?search=WORD]      every style: name, prompt, negative_prompt, source, preview_url
    POST /fooocus/v1/styles/apply              {prompt, negative_prompt, styles, seed[, expansion]} -> the parts
    GET  /fooocus/v1/styles/preview/{key}.jpg  a style's preview image (only files the library knows)

and, for the picker's hover previews in the page, the same previews behind the UI's login instead of
the API auth (`register_ui_preview_routes`, under /fooocus/ui/v1).

Bodies are parsed here rather than by pydantic models, so the routes behave the same under fastapi
0.94/pydantic 1 (A1111) and 0.104/pydantic 2 (Forge). Every input problem is a 422 whose `detail`
says what is wrong; unknown style names are listed in `unknown_styles`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lib_fooocus.styles.library import SPECIAL_NAMES, StyleLibrary, UnknownStyleError, preview_key

API_PREFIX = "/fooocus/v1"
UI_PREFIX = "/fooocus/ui/v1"  # routes for the browser session (UI login, not API auth)
APPLY_FIELDS = ("prompt", "negative_prompt", "styles", "seed", "expansion")


class RequestError(ValueError):
    pass


def preview_url(key: str, prefix: str = API_PREFIX) -> str:
    return f"{prefix}/styles/preview/{key}.jpg"


def styles_payload(library: StyleLibrary, search: str = "", prefix: str = API_PREFIX) -> dict[str, Any]:
    """What GET /styles returns; also used by the UI. `source` is relative to the style folder."""

    def url_for(name: str) -> str | None:
        return preview_url(preview_key(name), prefix) if library.preview_path(name) else None

    styles = [
        {**{k: v for k, v in style.to_dict().items() if k != "has_preview"},
         "source": library.public_source(style.source), "preview_url": url_for(style.name)}
        for style in library.search(search)
    ]
    return {
        "styles": styles,
        "special": [{"name": name, "preview_url": url_for(name)} for name in SPECIAL_NAMES],
        "default_selection": library.default_selection(),
        "warnings": library.public_warnings(),  # no server paths: style folders by name only
    }


def apply_payload(library: StyleLibrary, body: Any) -> dict[str, Any]:
    """What POST /styles/apply returns for a parsed JSON body. Raises RequestError or UnknownStyleError."""
    from lib_fooocus.styles.assembly import plan_prompt

    prompt, negative, styles, seed, expansion = _read_apply_body(body)
    plan = plan_prompt(library, prompt, negative, styles, seed)
    return {
        "positive_parts": plan.positive_parts,
        "negative_parts": plan.negative_parts,
        "styles": plan.styles,
        "expansion_requested": plan.expansion_requested,
        "prompt": plan.positive_text(expansion),
        "negative_prompt": plan.negative_text(),
    }


def _read_apply_body(body: Any) -> tuple[str, str, list[str], int | None, str]:
    if not isinstance(body, dict):
        msg = "the body must be a JSON object {prompt, negative_prompt, styles, seed}"
        raise RequestError(msg)
    errors = []
    unknown = [k for k in body if k not in APPLY_FIELDS]
    if unknown:
        errors.append(f"unknown field(s) {', '.join(map(repr, unknown))}; known fields: {', '.join(APPLY_FIELDS)}")
    texts = {}
    for key in ("prompt", "negative_prompt", "expansion"):
        value = body.get(key, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            errors.append(f"{key}: expected a string, got {value!r}")
        texts[key] = value if isinstance(value, str) else ""
    styles = body.get("styles", [])
    if isinstance(styles, str) or not isinstance(styles, list) or not all(isinstance(s, str) for s in styles):
        errors.append(f"styles: expected a list of style names, got {styles!r}")
        styles = []
    seed = body.get("seed")
    if isinstance(seed, float) and math.isfinite(seed) and seed.is_integer():
        seed = int(seed)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        errors.append(f"seed: expected an integer or null, got {seed!r}")
        seed = None
    if errors:
        raise RequestError("; ".join(errors))
    return texts["prompt"], texts["negative_prompt"], styles, seed, texts["expansion"]


def preview_listing(library: StyleLibrary, prefix: str) -> dict[str, Any]:
    """What the picker's page needs for its hover previews: style name -> preview URL (keys only, no
    server paths), for the styles that have one."""
    names = [*library.selectable_names, *SPECIAL_NAMES]
    return {"previews": {name: preview_url(preview_key(name), prefix) for name in names if library.preview_path(name)}}


def _preview_response(library: StyleLibrary, key: str) -> Any:
    """The preview file of `key` (only files the library lists), or a 404."""
    from fastapi.responses import FileResponse, JSONResponse

    path = library.find_preview(key)
    if not path or not Path(path).is_file():
        return JSONResponse(status_code=404, content={"detail": f"no preview image for {key!r}"})
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})


def register_style_routes(
    app: Any, get_library: Callable[[], StyleLibrary], prefix: str = API_PREFIX, dependencies: Sequence[Any] = ()
) -> None:
    """Add the style routes to a FastAPI `app`. `get_library()` returns the current library (the UI's
    refresh replaces it, so it is looked up per request; its first call reads the style folders).
    `dependencies`: the host's API auth.

    Everything that touches the disk (the first library load, the preview file) runs in FastAPI's
    thread pool, never on the server's event loop: the listing and the preview are plain `def`
    endpoints, and apply reads its body on the loop but gets the library through `run_in_threadpool`."""
    from fastapi import Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import JSONResponse

    def unprocessable(detail: str, **extra: Any) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": detail, **extra})

    def list_styles(request: Request):  # a sync endpoint: FastAPI runs it in its thread pool
        search = request.query_params.get("search", "")
        return JSONResponse(styles_payload(get_library(), search, prefix))

    async def apply_styles(request: Request):
        raw = await request.body()
        try:
            body = json.loads(raw.decode("utf-8") or "{}")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return unprocessable(f"the body is not valid JSON: {exc}")
        library = await run_in_threadpool(get_library)
        try:
            return JSONResponse(apply_payload(library, body))
        except UnknownStyleError as exc:
            return unprocessable(str(exc), unknown_styles=exc.names)
        except (RequestError, ValueError) as exc:
            return unprocessable(str(exc))

    def style_preview(request: Request):  # sync: the lookup and the file's stat run in the thread pool
        return _preview_response(get_library(), request.path_params.get("key", ""))

    # With postponed annotations FastAPI would look `Request` up in this module's globals, where the
    # lazy import does not put it; give the endpoints the real class.
    for endpoint in (list_styles, apply_styles, style_preview):
        endpoint.__annotations__["request"] = Request

    auth = list(dependencies)
    app.add_api_route(f"{prefix}/styles", list_styles, methods=["GET"], response_model=None, dependencies=auth)
    app.add_api_route(f"{prefix}/styles/apply", apply_styles, methods=["POST"], response_model=None,
                      dependencies=auth)
    app.add_api_route(f"{prefix}/styles/preview/{{key}}.jpg", style_preview, methods=["GET"], response_model=None,
                      dependencies=auth)


def register_ui_preview_routes(
    app: Any, get_library: Callable[[], StyleLibrary], dependencies: Sequence[Any], prefix: str = UI_PREFIX
) -> None:
    """The style picker's hover previews for the browser session, behind the UI's own login (gradio's
    `--gradio-auth` check, passed as `dependencies`) instead of the API's:

        GET  <prefix>/styles/previews            {"previews": {name: preview URL}}
        GET  <prefix>/styles/preview/{key}.jpg   a style's preview image (only files the library knows)

    With `--api-auth` the page cannot call the API routes (it holds no API credentials, and a 401 with
    `WWW-Authenticate: Basic` makes browsers prompt for them); these answer exactly who may load the UI.
    They give style names and images only, which the page shows anyway, and no server paths."""
    from fastapi import Request
    from fastapi.responses import JSONResponse

    def list_previews():  # sync endpoints: the first library load and the file stat run in the pool
        return JSONResponse(preview_listing(get_library(), prefix), headers={"Cache-Control": "no-store"})

    def ui_preview(request: Request):
        return _preview_response(get_library(), request.path_params.get("key", ""))

    ui_preview.__annotations__["request"] = Request
    auth = list(dependencies)
    app.add_api_route(f"{prefix}/styles/previews", list_previews, methods=["GET"], response_model=None,
                      dependencies=auth, include_in_schema=False)
    app.add_api_route(f"{prefix}/styles/preview/{{key}}.jpg", ui_preview, methods=["GET"], response_model=None,
                      dependencies=auth, include_in_schema=False)
