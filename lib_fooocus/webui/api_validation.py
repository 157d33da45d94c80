"""Refuse bad Fooocus args with HTTP 422 before the host runs a txt2img/img2img request.

The hosts catch exceptions raised inside Script hooks and generate anyway, so validation has to
happen in front of the endpoint. `FooocusRequestValidator` is a plain ASGI middleware (a Starlette
`@app.middleware("http")` that reads the body makes every passed-on request hang on the hosts'
Starlette 0.26/0.27): it reads the whole body (which may arrive in several messages), checks
`alwayson_scripts.fooocus` (key matched case-insensitively, as the hosts do) and the `infotext`
field, and either answers 422 or hands the request on with a `receive` that replays the body once.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from lib_fooocus.params import (
    FIELD_NAMES,
    FIELDS,
    FIELDS_BY_INFOTEXT,
    FIELDS_BY_NAME,
    FooocusParams,
    ParamsError,
)

log = logging.getLogger(__name__)

GENERATION_PATHS = ("/sdapi/v1/txt2img", "/sdapi/v1/img2img")
SCRIPT_KEY = "fooocus"

StyleResolver = Callable[[str], "str | None"]


class ArgError(dict):
    """One problem, shaped like FastAPI's own 422 entries: loc, msg, type."""

    def __init__(self, loc: list[Any], msg: str):
        super().__init__(loc=loc, msg=msg, type="value_error")


def _field_errors(values: Mapping[str, Any], loc_of: Callable[[str], list[Any]]) -> list[ArgError]:
    errors = []
    for name, value in values.items():
        try:
            FooocusParams.from_dict({name: value})
        except ParamsError as error:
            errors += [ArgError(loc_of(name), line) for line in error.errors]
    return errors


def _style_errors(styles: Any, loc: list[Any], resolve: StyleResolver | None) -> list[ArgError]:
    if resolve is None or isinstance(styles, str) or not isinstance(styles, (list, tuple)):
        return []
    unknown = [name for name in styles if isinstance(name, str) and resolve(name) is None]
    if not unknown:
        return []
    names = ", ".join(repr(n) for n in unknown)
    return [ArgError(loc, f"styles: unknown style name(s) {names}; GET /fooocus/v1/styles lists the available names")]


def validate_script_entry(entry: Any, key: str, resolve: StyleResolver | None = None) -> list[ArgError]:
    """Problems of `alwayson_scripts[key]`: `{"args": [...]}` with either the positional list in UI
    order or ONE object with named fields."""
    base: list[Any] = ["body", "alwayson_scripts", key]
    if not isinstance(entry, Mapping):
        return [ArgError(base, 'expected an object {"args": [...]} (positional values in UI order, or one object '
                               f"with named fields: {', '.join(FIELD_NAMES)})")]
    if "args" not in entry:
        return []
    args = entry["args"]
    if not isinstance(args, list):
        return [ArgError([*base, "args"], f"args: expected a list, got {args!r}")]
    if args and isinstance(args[0], Mapping):
        if len(args) > 1:
            return [ArgError([*base, "args"], "args: with named fields send exactly one object, "
                                              f"got {len(args)} items")]
        named = args[0]
        errors = []
        unknown = [name for name in named if name not in FIELDS_BY_NAME]
        for name in unknown:
            errors.append(ArgError([*base, "args", 0, name],
                                   f"unknown field {name!r}; known fields: {', '.join(FIELD_NAMES)}"))
        known = {k: v for k, v in named.items() if k in FIELDS_BY_NAME}
        errors += _field_errors(known, lambda name: [*base, "args", 0, name])
        if not errors and "styles" in known:
            errors += _style_errors(known["styles"], [*base, "args", 0, "styles"], resolve)
        return errors
    if len(args) > len(FIELDS):
        return [ArgError([*base, "args"], f"args: too many positional values: got {len(args)}, at most "
                                          f"{len(FIELDS)} ({', '.join(FIELD_NAMES)})")]
    positional = dict(zip(FIELD_NAMES, args))
    index = {name: i for i, name in enumerate(FIELD_NAMES)}
    errors = _field_errors(positional, lambda name: [*base, "args", index[name]])
    if not errors and "styles" in positional:
        errors += _style_errors(positional["styles"], [*base, "args", index["styles"]], resolve)
    return errors


# -- infotext field (A1111 1.8+, Forge main) --------------------------------------------------------

# `Key: value` pairs of an infotext line; a value is either JSON-quoted or runs to the next comma.
_PAIR = re.compile(r'\s*([A-Za-z0-9_][A-Za-z0-9_ \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def infotext_pairs(infotext: str) -> dict[str, str]:
    """The `Key: value` pairs of the infotext's parameter line (its last line)."""
    last_line = infotext.strip().split("\n")[-1]
    pairs: dict[str, str] = {}
    for key, value in _PAIR.findall(last_line):
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
        pairs[key.strip()] = value
    return pairs


def validate_infotext(infotext: Any, resolve: StyleResolver | None = None) -> list[ArgError]:
    """Fooocus values in the request's `infotext` are lenient (clamped, like a paste), but values
    that cannot be read at all, and unknown style names, are refused."""
    if not isinstance(infotext, str) or "Fooocus" not in infotext:
        return []
    pairs = {k: v for k, v in infotext_pairs(infotext).items() if k in FIELDS_BY_INFOTEXT}
    if not pairs:
        return []
    errors = []
    for key, value in pairs.items():
        _params, warnings = FooocusParams.from_infotext({key: value})
        spec = FIELDS_BY_INFOTEXT[key]
        errors += [
            ArgError(["body", "infotext", key], f"{spec.name} ({key}): {w}; expected {spec.range_text()}")
            for w in warnings
            if "cannot read" in w or "not a finite" in w
        ]
    styles_key = FIELDS_BY_NAME["styles"].infotext
    if not errors and styles_key in pairs:
        params, _ = FooocusParams.from_infotext({styles_key: pairs[styles_key]})
        errors += _style_errors(list(params.styles), ["body", "infotext", styles_key], resolve)
    return errors


def validate_request(body: Any, resolve: StyleResolver | None = None) -> list[ArgError]:
    """Every Fooocus problem of a parsed txt2img/img2img request body ([] = let it through)."""
    if not isinstance(body, Mapping):
        return []
    errors: list[ArgError] = []
    scripts = body.get("alwayson_scripts")
    if isinstance(scripts, Mapping):
        for key, entry in scripts.items():
            if isinstance(key, str) and key.lower() == SCRIPT_KEY:
                errors += validate_script_entry(entry, key, resolve)
    errors += validate_infotext(body.get("infotext"), resolve)
    return errors


def error_body(errors: list[ArgError]) -> dict[str, Any]:
    return {
        "error": "ValidationError",
        "detail": list(errors),
        "message": "Invalid Fooocus arguments: " + "; ".join(e["msg"] for e in errors),
    }


# -- the middleware ----------------------------------------------------------------------------------

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def is_generation_request(scope: Mapping[str, Any]) -> bool:
    if scope.get("type") != "http" or scope.get("method", "").upper() != "POST":
        return False
    path = str(scope.get("path", "")).rstrip("/")
    return path.endswith(GENERATION_PATHS)  # endswith: --subpath / root_path may prefix it


class FooocusRequestValidator:
    """ASGI middleware; `resolve_style(name)` returns the library's name or None (optional)."""

    def __init__(self, app: Any, resolve_style: Callable[[], StyleResolver | None] | None = None):
        self.app = app
        self.resolve_style = resolve_style

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if not is_generation_request(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        pending: list[dict[str, Any]] = []
        while True:
            message = await receive()
            if message.get("type") != "http.request":
                pending.append(message)  # a disconnect: let the app see it after the body
                break
            chunks.append(message.get("body", b"") or b"")
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        errors = [] if pending else self._check(body)
        if errors:
            await _send_json(send, 422, error_body(errors))
            return
        await self.app(scope, _replay(body, pending, receive), send)

    def _check(self, body: bytes) -> list[ArgError]:
        try:
            parsed = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return []  # the endpoint answers malformed JSON itself
        try:
            resolver = self.resolve_style() if self.resolve_style else None
        except Exception as error:  # the style library must never block a request
            log.warning("Fooocus: style names not checked (%s)", error)
            resolver = None
        return validate_request(parsed, resolver)


def _replay(body: bytes, pending: list[dict[str, Any]], receive: Receive) -> Receive:
    queue = [{"type": "http.request", "body": body, "more_body": False}, *pending]

    async def replayed() -> dict[str, Any]:
        if queue:
            return queue.pop(0)
        return await receive()  # after the body: disconnects still reach the app

    return replayed


async def _send_json(send: Send, status: int, content: Any) -> None:
    payload = json.dumps(content, ensure_ascii=False).encode("utf-8")
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
    })
    await send({"type": "http.response.body", "body": payload})


def install_validator(app: Any, resolve_style: Callable[[], StyleResolver | None] | None = None) -> bool:
    """Add the middleware to the host's FastAPI app (once). In UI mode the app has already started,
    and Starlette refuses `add_middleware`: the stack is then reset so it is rebuilt, with ours, at
    the next request (what the WebUI itself does for its own middleware). Returns True if added."""
    for middleware in getattr(app, "user_middleware", []):
        if getattr(getattr(middleware, "cls", None), "__name__", "") == FooocusRequestValidator.__name__:
            return False
    try:
        app.add_middleware(FooocusRequestValidator, resolve_style=resolve_style)
    except RuntimeError:
        app.middleware_stack = None
        app.add_middleware(FooocusRequestValidator, resolve_style=resolve_style)
    return True
