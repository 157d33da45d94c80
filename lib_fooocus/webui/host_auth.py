"""The host's `--api-auth`, applied to the extension's routes and to the request check.

A1111 1.6 – 1.10 and Forge attach one dependency, HTTP Basic against the `user:password[,…]` pairs
of `--api-auth`, to every `/sdapi/v1/*` route they add (only when the flag is set). Routes that an
extension adds with a plain `app.add_api_route` get nothing, so:

- `route_dependencies()` hands our routes the very dependencies of the host's own
  `/sdapi/v1/txt2img` route; when that route is missing but `--api-auth` is set, an equivalent
  Basic check of our own;
- `accepts(scope)` tells the request check whether the host would let a request through, by the
  same comparison on the `Authorization` header, so requests the host refuses are left alone.

The page itself holds no API credentials. What the browser session fetches on its own (the style
picker's hover previews) goes through routes carrying the UI's login instead: `ui_route_dependencies`
copies the dependencies of gradio's own file route (`/file=…`, the `--gradio-auth` cookie check in
gradio 3.41 and 4.x), so those routes answer exactly the sessions that may load the UI.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

HOST_ROUTE = "/sdapi/v1/txt2img"
GRADIO_FILE_ROUTE = "/file={path_or_url:path}"  # gradio 3.41 and 4.x; carries gradio's login check


def configured_credentials() -> dict[str, str] | None:
    """`--api-auth` as the host reads it (`user:password` pairs separated by commas); None when unset
    or when there is no host."""
    try:
        from modules import shared
    except ImportError:
        return None
    text = getattr(getattr(shared, "cmd_opts", None), "api_auth", None)
    if not text:
        return None
    credentials: dict[str, str] = {}
    for item in str(text).split(","):
        user, colon, password = item.partition(":")
        if colon:
            credentials[user] = password
    return credentials


def host_route_dependencies(app: Any) -> list[Any] | None:
    """The dependencies of the host's own txt2img route ([] without `--api-auth`), or None when the
    app has no such route (the API is off, or this is not a WebUI app)."""
    for route in getattr(app, "routes", []):
        if str(getattr(route, "path", "")).rstrip("/").endswith(HOST_ROUTE):
            return list(getattr(route, "dependencies", None) or [])
    return None


def ui_route_dependencies(app: Any) -> list[Any] | None:
    """The dependencies of gradio's own file route (its login check), or None when the app serves no
    gradio UI (`--nowebui`) or that route carries nothing while gradio has a login configured (then
    there is no UI check to copy: no UI routes rather than open ones)."""
    for route in getattr(app, "routes", []):
        if getattr(route, "path", None) == GRADIO_FILE_ROUTE:
            dependencies = list(getattr(route, "dependencies", None) or [])
            if not dependencies and getattr(app, "auth", None):
                log.warning("Fooocus: gradio's file route carries no login check; UI preview routes not added")
                return None
            return dependencies
    return None


def basic_credentials(headers: Any) -> tuple[str, str] | None:
    """(user, password) of an `Authorization: Basic …` header in ASGI `headers`, decoded as FastAPI's
    HTTPBasic does (base64, ASCII, split at the first colon); None when absent or unreadable."""
    value = None
    for name, raw in headers or ():
        if bytes(name).lower() == b"authorization":
            value = bytes(raw).decode("latin-1")
            break
    if value is None:
        return None
    scheme, _, param = value.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(param.strip()).decode("ascii")
    except (ValueError, UnicodeDecodeError, binascii.Error):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


class HostAuth:
    def __init__(self, host_dependencies: list[Any] | None, credentials: dict[str, str] | None):
        self.host_dependencies = host_dependencies
        self.credentials = credentials

    @classmethod
    def of(cls, app: Any) -> HostAuth:
        return cls(host_route_dependencies(app), configured_credentials())

    @property
    def required(self) -> bool:
        return self.credentials is not None or bool(self.host_dependencies)

    def route_dependencies(self) -> list[Any]:
        """What to pass as `dependencies=` to `app.add_api_route` for our routes."""
        if self.host_dependencies:
            return list(self.host_dependencies)
        if self.credentials is None:
            return []
        log.info("Fooocus: no host /sdapi/v1 route to copy the auth from; checking --api-auth ourselves")
        return [_own_basic_dependency(self.credentials)]

    def accepts(self, scope: Mapping[str, Any]) -> bool:
        """Whether the host's auth would let this request through."""
        if not self.required:
            return True
        if self.credentials is None:
            return False  # the host checks something we cannot read: never answer before it
        given = basic_credentials(scope.get("headers"))
        if given is None:
            return False
        user, password = given
        expected = self.credentials.get(user)
        if expected is None:
            return False
        try:
            return hmac.compare_digest(password, expected)
        except TypeError:  # non-ASCII configured password: the host cannot compare it either
            return False


def _own_basic_dependency(credentials: dict[str, str]) -> Any:
    from fastapi import Depends, HTTPException
    from fastapi.security import HTTPBasic, HTTPBasicCredentials

    def fooocus_api_auth(given: HTTPBasicCredentials = Depends(HTTPBasic())) -> bool:  # noqa: B008
        expected = credentials.get(given.username)
        try:
            if expected is not None and hmac.compare_digest(given.password, expected):
                return True
        except TypeError:
            pass
        raise HTTPException(status_code=401, detail="Incorrect username or password",
                            headers={"WWW-Authenticate": "Basic"})

    fooocus_api_auth.__annotations__ = {"given": HTTPBasicCredentials, "return": bool}
    return Depends(fooocus_api_auth)
