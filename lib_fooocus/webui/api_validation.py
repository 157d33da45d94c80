"""Refuse bad Fooocus args with HTTP 422 before the host runs a txt2img/img2img request.

The hosts catch exceptions raised inside Script hooks and generate anyway, so validation has to
happen in front of the endpoint. `FooocusRequestValidator` is a plain ASGI app wrapped around the
endpoint of the host's two routes (a Starlette `@app.middleware("http")` that reads the body makes
every passed-on request hang on the hosts' Starlette 0.26/0.27). It runs inside the host's
middlewares and only for requests the host's `--api-auth` accepts; it reads the whole body (which
may arrive in several messages), checks `alwayson_scripts.fooocus` (key matched case-insensitively,
as the hosts do) and the `infotext` field, and either answers 422 or hands the request on with a
`receive` that replays the body once. The check is bounded (size caps, linear-time parsing, work off
the event loop) and never breaks a request: if it fails, the request passes unchecked.
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


def _checkpoint_errors(name: Any, loc: list[Any]) -> list[ArgError]:
    """An unknown refiner checkpoint (the host's own name matching: title, file name, short hash)."""
    from lib_fooocus.webui.checkpoints import resolve_checkpoint

    if not isinstance(name, str) or resolve_checkpoint(name) is not None:
        return []
    return [ArgError(loc, f"refiner_checkpoint: unknown checkpoint {name!r}; GET /sdapi/v1/sd-models lists the "
                          "available titles (\"title\"), file names and hashes; \"None\" turns the refiner off")]


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
        if not errors and "refiner_checkpoint" in known:
            errors += _checkpoint_errors(known["refiner_checkpoint"], [*base, "args", 0, "refiner_checkpoint"])
        return errors
    if len(args) > len(FIELDS):
        return [ArgError([*base, "args"], f"args: too many positional values: got {len(args)}, at most "
                                          f"{len(FIELDS)} ({', '.join(FIELD_NAMES)})")]
    positional = dict(zip(FIELD_NAMES, args))
    index = {name: i for i, name in enumerate(FIELD_NAMES)}
    errors = _field_errors(positional, lambda name: [*base, "args", index[name]])
    if not errors and "styles" in positional:
        errors += _style_errors(positional["styles"], [*base, "args", index["styles"]], resolve)
    if not errors and "refiner_checkpoint" in positional:
        errors += _checkpoint_errors(positional["refiner_checkpoint"], [*base, "args", index["refiner_checkpoint"]])
    return errors


# -- infotext field (A1111 1.8+, Forge main) --------------------------------------------------------

# Only this much of the parameter line is read (a real one is a few KB); a longer line is not checked.
MAX_INFOTEXT_LINE_CHARS = 65_536

_KEY_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_KEY_CHARS = _KEY_START | frozenset(" -/")
# One run of key characters; a single character class, so matching costs the run's length.
_KEY_RUN = re.compile(r"[A-Za-z0-9_ \-/]*")


def _quoted_end(line: str, start: int) -> int:
    """End (exclusive) of the JSON-style quoted value opening at `line[start] == '"'`, or -1 when it
    is not closed, is empty, or is not followed by a comma or the end of the line."""
    search = start + 1
    while True:
        close = line.find('"', search)
        if close < 0:
            return -1
        backslashes = 0
        while close - 1 - backslashes > start and line[close - 1 - backslashes] == "\\":
            backslashes += 1
        if backslashes % 2 == 0:
            break
        search = close + 1  # an escaped quote
    if close == start + 1:
        return -1  # `""`: read as a plain value
    end = close + 1
    return end if end == len(line) or line[end] == "," else -1


def _scan_pairs(line: str) -> list[tuple[str, str]]:
    """The `Key: value` pairs of one infotext line, in one left-to-right pass (linear time).

    A key starts with a letter, digit or `_`, continues with those, spaces, `-` or `/`, has at least
    two characters and ends at a colon; a value is either JSON-quoted (and then followed by a comma or
    the end) or runs to the next comma. Text that is not a pair is skipped."""
    pairs = []
    n = len(line)
    pos = 0
    while pos < n:
        start = pos
        while start < n and line[start].isspace():
            start += 1
        if start >= n:
            break
        if line[start] not in _KEY_START:
            pos = start + 1
            continue
        key_end = _KEY_RUN.match(line, start).end()
        if key_end >= n or line[key_end] != ":" or key_end - start < 2:
            # No start inside this run can end at a colon either: go on after it.
            pos = max(key_end, start + 1)
            continue
        value_start = key_end + 1
        while value_start < n and line[value_start].isspace():
            value_start += 1
        value_end = _quoted_end(line, value_start) if value_start < n and line[value_start] == '"' else -1
        if value_end < 0:
            comma = line.find(",", value_start)
            value_end = n if comma < 0 else comma
        pairs.append((line[start:key_end], line[value_start:value_end]))
        pos = value_end + 1 if value_end < n else n
    return pairs


def infotext_pairs(infotext: str) -> dict[str, str]:
    """The `Key: value` pairs of the infotext's parameter line (its last line)."""
    last_line = infotext.strip().split("\n")[-1]
    pairs: dict[str, str] = {}
    for key, value in _scan_pairs(last_line):
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            try:
                value = json.loads(value)
            except (ValueError, RecursionError):
                pass
        pairs[key.strip()] = value
    return pairs


def validate_infotext(infotext: Any, resolve: StyleResolver | None = None) -> list[ArgError]:
    """Fooocus values in the request's `infotext` are lenient (clamped, like a paste), but values
    that cannot be read at all, and unknown style names, are refused."""
    if not isinstance(infotext, str) or "Fooocus" not in infotext:
        return []
    last_line = infotext.strip().split("\n")[-1]
    if len(last_line) > MAX_INFOTEXT_LINE_CHARS:
        log.warning("Fooocus: the request's infotext parameter line has %d characters (over %d); its Fooocus "
                    "values are not checked here", len(last_line), MAX_INFOTEXT_LINE_CHARS)
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
    refiner_key = FIELDS_BY_NAME["refiner_checkpoint"].infotext
    if not errors and refiner_key in pairs:
        errors += _checkpoint_errors(str(pairs[refiner_key]).strip(), ["body", "infotext", refiner_key])
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


# -- the check, wrapped around the host's two generation endpoints ------------------------------------

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Authorized = Callable[[Mapping[str, Any]], bool]

# Bodies larger than this are passed on unchecked (the script's own hook still ignores bad args);
# real img2img bodies with a few base64 images are a few MB.
MAX_CHECKED_BODY_BYTES = 32 * 1024 * 1024
# Bodies up to this size that do not mention Fooocus are dismissed on the event loop; everything
# else (parsing, the style library) runs in the thread pool.
INLINE_BODY_BYTES = 64 * 1024
_MENTIONS_FOOOCUS = re.compile(rb"fooocus", re.IGNORECASE)


def mentions_fooocus(body: bytes) -> bool:
    """Cheap pre-filter before any JSON parse: a body that never says "fooocus" (any case) has
    nothing for us. (A key spelled with JSON unicode escapes slips past; the script's hook still ignores
    bad args, as without this check.)"""
    return _MENTIONS_FOOOCUS.search(body) is not None


def parse_body(body: bytes) -> Any:
    """The JSON body, or None when it is not JSON (the endpoint answers that itself)."""
    try:
        return json.loads(body)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return None


def check_body(body: bytes, resolve_style: Callable[[], StyleResolver | None] | None = None) -> list[ArgError]:
    """The Fooocus problems of a raw txt2img/img2img body. Never raises: a failure of the check itself
    is logged and the request passes (the host must keep working whatever the body holds)."""
    try:
        if len(body) > MAX_CHECKED_BODY_BYTES:
            log.info("Fooocus: request body of %d bytes not checked (over %d)", len(body), MAX_CHECKED_BODY_BYTES)
            return []
        if not mentions_fooocus(body):
            return []
        parsed = parse_body(body)
        if parsed is None:
            return []
        try:
            resolver = resolve_style() if resolve_style else None
        except Exception as error:  # the style library must never block a request
            log.warning("Fooocus: style names not checked (%s)", error)
            resolver = None
        return validate_request(parsed, resolver)
    except Exception as error:  # RecursionError on absurd nesting, or a bug here
        log.warning("Fooocus: the API argument check failed (%s: %s); the request is passed on unchecked",
                    type(error).__name__, str(error)[:200])
        return []


class FooocusRequestValidator:
    """ASGI app wrapped around the host route's own ASGI app (`route.app`), so it runs after routing,
    inside every middleware of the host (CORS, GZip, API logging, exception handling): its 422 gets
    the same headers and log lines as the host's answers.

    `resolve_style()` returns the library's `resolve(name)` (optional). `authorized(scope)`, when
    given, says whether the host's `--api-auth` would accept the request; requests it would refuse
    are passed on untouched (unread), so the host answers 401 as always and an anonymous client
    learns nothing from us."""

    fooocus_request_check = True  # marks a wrapped route (a second on_app_started wraps nothing)

    def __init__(
        self,
        app: Any,
        resolve_style: Callable[[], StyleResolver | None] | None = None,
        authorized: Authorized | None = None,
    ):
        self.app = app
        self.resolve_style = resolve_style
        self.authorized = authorized

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if not is_generation_request(scope) or not self._may_check(scope):
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
        errors = [] if pending else await self._errors(body)
        if errors:
            await _send_json(send, 422, error_body(errors))
            return
        await self.app(scope, _replay(body, pending, receive), send)

    def _may_check(self, scope: Mapping[str, Any]) -> bool:
        if self.authorized is None:
            return True
        try:
            return bool(self.authorized(scope))
        except Exception as error:
            log.warning("Fooocus: could not compare the request's credentials (%s); not checked", error)
            return False

    async def _errors(self, body: bytes) -> list[ArgError]:
        if len(body) <= INLINE_BODY_BYTES and not mentions_fooocus(body):
            return []
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(check_body, body, self.resolve_style)


def is_generation_request(scope: Mapping[str, Any]) -> bool:
    return scope.get("type") == "http" and str(scope.get("method", "")).upper() == "POST"


def generation_routes(app: Any) -> list[Any]:
    """The host's POST routes for txt2img and img2img (path matched with endswith)."""
    found = []
    for route in getattr(app, "routes", []):
        path = str(getattr(route, "path", "")).rstrip("/")
        if path.endswith(GENERATION_PATHS) and "POST" in (getattr(route, "methods", None) or ()):
            found.append(route)
    return found


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


def install_validator(
    app: Any,
    resolve_style: Callable[[], StyleResolver | None] | None = None,
    authorized: Authorized | None = None,
) -> bool:
    """Wrap the endpoints of the host's txt2img/img2img routes (once). Routes are live objects of the
    router, so this works before and after the app has started, without rebuilding the middleware
    stack. Returns True if a route was wrapped."""
    wrapped = False
    for route in generation_routes(app):
        inner = getattr(route, "app", None)
        if inner is None or getattr(inner, "fooocus_request_check", False):
            continue
        route.app = FooocusRequestValidator(inner, resolve_style, authorized)
        wrapped = True
    return wrapped
