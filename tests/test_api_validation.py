"""The HTTP API check: a plain ASGI middleware in front of /sdapi/v1/txt2img and img2img refuses bad
Fooocus args with 422 before the endpoint runs, and hands every other request on unchanged. Driven
through a real FastAPI app; the whole file also runs under A1111's stack (fastapi 0.94, pydantic 1)
in the gradio 3 environment."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from lib_fooocus.params import FIELD_NAMES
from lib_fooocus.styles.library import StyleLibrary
from lib_fooocus.webui import api_validation
from lib_fooocus.webui.api_validation import (
    FooocusRequestValidator,
    infotext_pairs,
    install_validator,
    validate_request,
)

REPO = Path(__file__).resolve().parents[1]
LIBRARY = StyleLibrary.from_styles([{"name": "Warm Light", "prompt": "{prompt}, warm"}])


def make_app() -> tuple[FastAPI, list[bytes]]:
    app = FastAPI()
    seen: list[bytes] = []

    async def generate(request: Request):
        body = await request.body()
        seen.append(body)
        return {"ok": True, "length": len(body)}

    # No pydantic model: the test is about the bytes that reach the endpoint.
    generate.__annotations__["request"] = Request
    app.add_api_route("/sdapi/v1/txt2img", generate, methods=["POST"])
    app.add_api_route("/sdapi/v1/img2img", generate, methods=["POST"])
    app.add_api_route("/proxy/sdapi/v1/txt2img", generate, methods=["POST"])
    app.add_api_route("/sdapi/v1/options", generate, methods=["POST"])
    install_validator(app, lambda: LIBRARY.resolve)
    return app, seen


@pytest.fixture
def client_and_seen():
    app, seen = make_app()
    with TestClient(app) as client:
        yield client, seen


def post(client, payload, path="/sdapi/v1/txt2img"):
    raw = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    return client.post(path, content=raw, headers={"content-type": "application/json"})


def request_with(args, key="fooocus", **extra):
    return {"prompt": "a cat", "steps": 4, "alwayson_scripts": {key: {"args": args}}, **extra}


GOOD = [
    request_with([{"enabled": True, "sharpness": 3.0}]),
    request_with([{"enabled": True, "styles": ["Warm Light", "Fooocus V2"], "expansion": True}]),
    request_with([True, 3, 7.0, 1.5, 0.8, 0.3, True, False, ["warm-light"]]),
    request_with([True, 2.5]),
    request_with([]),
    request_with([{"enabled": True}], key="FOOOCUS"),
    {"prompt": "no fooocus at all", "alwayson_scripts": {"other": {"args": ["anything", 99]}}},
    {"prompt": "x", "alwayson_scripts": {"fooocus": {}}},
    {"prompt": "x", "infotext": "a cat\nSteps: 4, Sampler: Euler, Fooocus: True, Fooocus sharpness: 99"},
]


@pytest.mark.parametrize("payload", GOOD)
def test_good_requests_reach_the_endpoint_unchanged(client_and_seen, payload) -> None:
    client, seen = client_and_seen
    raw = json.dumps(payload).encode()
    response = post(client, raw)
    assert response.status_code == 200, response.text
    assert seen == [raw]


BAD = [
    (request_with([{"enabled": True, "sharpness": "very"}]), ["sharpness", "0 to 30", "'very'"]),
    (request_with([{"enabled": True, "sharpness": 31}]), ["sharpness", "0 to 30", "31"]),
    (request_with([{"enabled": "yes"}]), ["enabled", "true or false"]),
    (request_with([{"enabled": True, "sharpnes": 3}]), ["unknown field 'sharpnes'", "known fields: " + ", ".join(FIELD_NAMES)]),
    (request_with([{"adm_scaler_end": -0.1}]), ["adm_scaler_end", "0 to 1"]),
    (request_with([{"adaptive_cfg": 0.5}]), ["adaptive_cfg", "1 to 30"]),
    (request_with([{"adm_scaler_positive": True}]), ["adm_scaler_positive", "0.1 to 3"]),
    (request_with([{"styles": "Warm Light"}]), ["styles", "a list of style names"]),
    (request_with([{"styles": ["Warm Light", "No Such Style"]}]), ["unknown style name(s) 'No Such Style'"]),
    (request_with([{"enabled": True}, 2.0]), ["exactly one object"]),
    (request_with([True, "3"]), ["sharpness", "0 to 30", "'3'"]),
    (request_with([True, 2, 7, 1.5, 0.8, 0.3, True, False, [], "None", 0.8, True, "extra"]), ["too many positional values", "at most 12"]),
    (request_with([True, 2, 7, 1.5, 0.8, 0.3, True, False, [], "None", 0.8, "yes"]), ["match_fooocus", "true or false"]),
    (request_with([{"enabled": True, "match_fooocus": 1}]), ["match_fooocus", "true or false"]),
    (request_with([{"enabled": True, "refiner_switch": 0.05}]), ["refiner_switch", "0.1 to 1"]),
    (request_with([{"enabled": True, "refiner_checkpoint": 3}]), ["refiner_checkpoint", "checkpoint title"]),
    (request_with([True, 2, 7, 1.5, 0.8, 0.3, True, False, [], "None", "0.5"]), ["refiner_switch", "'0.5'"]),
    (request_with([1]), ["enabled", "true or false"]),
    (request_with([True, 2, 7, 1.5, 0.8, 0.3, True, False, ["Nope"]]), ["unknown style name(s) 'Nope'"]),
    ({"alwayson_scripts": {"Fooocus": {"args": {"enabled": True}}}}, ["args: expected a list"]),
    ({"alwayson_scripts": {"fooocus": [True]}}, ['expected an object {"args": [...]}']),
    ({"infotext": "a cat\nSteps: 4, Sampler: Euler, Fooocus: True, Fooocus sharpness: abc"}, ["sharpness", "cannot read"]),
    ({"infotext": 'a\nSteps: 4, Fooocus: True, Fooocus styles: "[\\"Gone\\"]"'}, ["unknown style name(s) 'Gone'"]),
]


@pytest.mark.parametrize(("payload", "phrases"), BAD)
def test_bad_args_are_refused_before_the_endpoint(client_and_seen, payload, phrases) -> None:
    client, seen = client_and_seen
    for path in ("/sdapi/v1/txt2img", "/sdapi/v1/img2img", "/proxy/sdapi/v1/txt2img"):
        response = post(client, payload, path)
        assert response.status_code == 422, (path, response.text)
        body = response.json()
        for phrase in phrases:
            assert phrase in body["message"], (phrase, body["message"])
        assert body["detail"] and all({"loc", "msg", "type"} <= set(entry) for entry in body["detail"])
    assert seen == []


def test_error_locations_point_at_the_field(client_and_seen) -> None:
    client, _ = client_and_seen
    named = post(client, request_with([{"enabled": True, "sharpness": 99, "bogus": 1}])).json()
    locs = sorted(tuple(entry["loc"]) for entry in named["detail"])
    assert locs == [("body", "alwayson_scripts", "fooocus", "args", 0, "bogus"),
                    ("body", "alwayson_scripts", "fooocus", "args", 0, "sharpness")]
    positional = post(client, request_with([True, 2.0, 99.0])).json()
    assert [entry["loc"] for entry in positional["detail"]] == [["body", "alwayson_scripts", "fooocus", "args", 2]]
    assert "adaptive_cfg" in positional["message"]


def test_non_finite_numbers_are_refused(client_and_seen) -> None:
    client, seen = client_and_seen
    raw = b'{"alwayson_scripts": {"fooocus": {"args": [{"enabled": true, "sharpness": NaN}]}}}'
    response = post(client, raw)
    assert response.status_code == 422
    assert "sharpness" in response.json()["message"]
    assert seen == []


def test_other_routes_and_malformed_json_pass_through(client_and_seen) -> None:
    client, seen = client_and_seen
    bad_for_us = json.dumps(request_with([{"sharpness": "very"}])).encode()
    assert post(client, bad_for_us, "/sdapi/v1/options").status_code == 200
    assert post(client, b"{not json", "/sdapi/v1/txt2img").status_code == 200  # the endpoint decides
    assert client.get("/sdapi/v1/txt2img").status_code == 405
    assert seen == [bad_for_us, b"{not json"]


def test_multi_chunk_body_is_read_whole_and_replayed_once() -> None:
    app, seen = make_app()
    good = json.dumps(request_with([{"enabled": True, "sharpness": 4.0}], padding="x" * 300_000)).encode()
    bad = json.dumps(request_with([{"enabled": True, "sharpness": 40.0}], padding="x" * 300_000)).encode()

    async def call(body: bytes, pieces: int) -> tuple[int, bytes]:
        size = len(body) // pieces + 1
        chunks = [body[i:i + size] for i in range(0, len(body), size)]
        messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
        sent: list[dict] = []

        async def receive():
            if messages:
                return messages.pop(0)
            await asyncio.sleep(10)  # nothing more: a well-behaved app never gets here
            return {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/sdapi/v1/txt2img", "raw_path": b"/sdapi/v1/txt2img",
                 "query_string": b"", "headers": [(b"content-type", b"application/json"),
                                                   (b"content-length", str(len(body)).encode())],
                 "http_version": "1.1", "scheme": "http", "server": ("testserver", 80), "client": ("t", 1),
                 "root_path": ""}
        await asyncio.wait_for(app(scope, receive, send), timeout=5)
        status = next(m["status"] for m in sent if m["type"] == "http.response.start")
        payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return status, payload

    status, _ = asyncio.run(call(good, 3))
    assert status == 200
    assert seen == [good]
    status, payload = asyncio.run(call(bad, 4))
    assert status == 422
    assert "sharpness" in json.loads(payload)["message"]
    assert seen == [good]


def test_install_after_start_wraps_the_routes_once() -> None:
    app = FastAPI()

    async def generate(request: Request):
        return {"length": len(await request.body())}

    generate.__annotations__["request"] = Request
    app.add_api_route("/sdapi/v1/txt2img", generate, methods=["POST"])
    app.add_api_route("/sdapi/v1/txt2img", generate, methods=["GET"])
    with TestClient(app) as client:
        assert post(client, request_with([{"sharpness": "x"}])).status_code == 200  # the stack is built now
        assert install_validator(app, None) is True  # UI mode: the app has started; routes are live
        assert install_validator(app, None) is False  # a second on_app_started wraps nothing
        assert post(client, request_with([{"sharpness": "x"}])).status_code == 422
        assert post(client, request_with([{"sharpness": 1.0}])).status_code == 200
    wrapped = [route for route in app.routes if isinstance(getattr(route, "app", None), FooocusRequestValidator)]
    assert [sorted(route.methods) for route in wrapped] == [["POST"]]
    assert not isinstance(wrapped[0].app.app, FooocusRequestValidator)
    assert app.user_middleware == []


def test_infotext_pairs_reads_quoted_values() -> None:
    text = 'a, b\nNegative prompt: c\nSteps: 4, Fooocus: True, Fooocus V2 expansion: "x, y: z", Fooocus sharpness: 3'
    pairs = infotext_pairs(text)
    assert pairs["Fooocus V2 expansion"] == "x, y: z"
    assert pairs["Fooocus sharpness"] == "3"
    assert pairs["Fooocus"] == "True"


def test_validate_request_without_style_library_skips_only_names() -> None:
    assert validate_request(request_with([{"styles": ["Anything"]}]), None) == []
    assert validate_request(request_with([{"styles": [3]}]), None)
    assert validate_request("not a dict") == []


@pytest.mark.skipif(os.environ.get("FOOOCUS_NESTED_RUN") == "1", reason="already inside the gradio 3 environment")
def test_the_same_checks_pass_on_the_a1111_stack() -> None:
    if os.environ.get("FOOOCUS_SKIP_GRADIO3") == "1":
        pytest.skip("FOOOCUS_SKIP_GRADIO3=1")
    from webui_fakes import gradio3_env

    python = gradio3_env.ensure_python()
    env = {**os.environ, "FOOOCUS_NESTED_RUN": "1"}
    done = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_api_validation.py"],
                          capture_output=True, text=True, timeout=300, check=False, cwd=REPO, env=env)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    versions = subprocess.run([str(python), "-c", "import fastapi, pydantic; print(fastapi.__version__, pydantic.VERSION)"],
                              capture_output=True, text=True, check=True).stdout.split()
    assert versions[0] == "0.94.0" and versions[1].startswith("1.")


# -- bounded work: linear infotext parsing, pre-filter, caps, off the event loop, never breaking ----------

# The pattern the check used before (quadratic on a long line without a colon): the scanner must
# read exactly the same pairs.
OLD_PAIR_PATTERN = re.compile(r'\s*([A-Za-z0-9_][A-Za-z0-9_ \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def old_pairs(infotext: str) -> dict[str, str]:
    pairs = {}
    for key, value in OLD_PAIR_PATTERN.findall(infotext.strip().split("\n")[-1]):
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            try:
                value = json.loads(value)
            except ValueError:
                pass
        pairs[key.strip()] = value
    return pairs


def test_infotext_parsing_is_linear_and_reads_what_the_pattern_read() -> None:
    hostile = ["Fooocus " + "a" * 40_000, "Fooocus " + "a." * 30_000, 'Fooocus: "' * 6_000,
               "Fooocus " + "ab " * 20_000 + "- x", 'k: "\\' * 10_000 + "Fooocus", "Fooocus: " + "[" * 60_000]
    started = time.perf_counter()
    for line in hostile:
        assert len(line) <= api_validation.MAX_INFOTEXT_LINE_CHARS
        validate_request({"infotext": "a cat\n" + line}, LIBRARY.resolve)
    assert time.perf_counter() - started < 1.0  # the old pattern took ~16 s for the first line alone
    rng = random.Random(7)
    alphabet = ["a", "Z", "7", "_", " ", "-", "/", ":", ",", '"', "\\", "\t", "é", ".", "\r", "\n"]
    for _ in range(30_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 16)))
        assert infotext_pairs(text) == old_pairs(text), repr(text)


def test_deep_nesting_passes_the_request_on_unchecked(client_and_seen, caplog) -> None:
    client, seen = client_and_seen
    nested_infotext = json.dumps({"infotext": "a\nSteps: 4, Fooocus: True, Fooocus styles: " + "[" * 100_000}).encode()
    nested_args = b'{"alwayson_scripts": {"fooocus": {"args": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}}"
    with caplog.at_level(logging.WARNING):
        for raw in (nested_infotext, nested_args):
            assert post(client, raw).status_code == 200
    assert seen == [nested_infotext, nested_args]
    assert "passed on unchecked" in caplog.text


def test_a_failing_check_never_breaks_the_request(client_and_seen, monkeypatch, caplog) -> None:
    client, seen = client_and_seen

    def broken(*_args, **_kwargs):
        raise KeyError("a bug in the check")

    monkeypatch.setattr(api_validation, "validate_request", broken)
    raw = json.dumps(request_with([{"enabled": True, "sharpness": "very"}])).encode()
    with caplog.at_level(logging.WARNING):
        assert post(client, raw).status_code == 200
    assert seen == [raw]
    assert "KeyError" in caplog.text and "passed on unchecked" in caplog.text


def test_bodies_that_do_not_mention_fooocus_are_not_parsed(client_and_seen, monkeypatch) -> None:
    client, seen = client_and_seen
    parsed: list[int] = []
    real_parse = api_validation.parse_body
    monkeypatch.setattr(api_validation, "parse_body", lambda body: parsed.append(len(body)) or real_parse(body))
    small = json.dumps({"prompt": "a cat", "alwayson_scripts": {"other": {"args": [1]}}}).encode()
    large = json.dumps({"prompt": "a cat", "padding": "x" * 300_000}).encode()
    assert post(client, small).status_code == 200
    assert post(client, large).status_code == 200
    assert parsed == []
    assert post(client, request_with([{"sharpness": "very"}])).status_code == 422
    assert len(parsed) == 1
    assert seen == [small, large]


def test_large_bodies_are_checked_off_the_event_loop(client_and_seen, monkeypatch) -> None:
    client, _ = client_and_seen
    threads: list[int] = []
    real_parse = api_validation.parse_body
    monkeypatch.setattr(api_validation, "parse_body",
                        lambda body: threads.append(threading.get_ident()) or real_parse(body))
    loop_threads: list[int] = []

    async def loop_thread(request: Request):
        loop_threads.append(threading.get_ident())
        return {}

    loop_thread.__annotations__["request"] = Request
    client.app.add_api_route("/loop-thread", loop_thread, methods=["GET"])
    client.get("/loop-thread")
    bad = request_with([{"sharpness": 99}], padding="x" * 300_000)
    assert post(client, bad).status_code == 422
    assert len(threads) == 1 and threads[0] != loop_threads[0]


def test_bodies_over_the_cap_are_passed_on_unchecked(client_and_seen, monkeypatch) -> None:
    client, seen = client_and_seen
    monkeypatch.setattr(api_validation, "MAX_CHECKED_BODY_BYTES", 1000)
    raw = json.dumps(request_with([{"sharpness": "very"}], padding="x" * 2000)).encode()
    assert post(client, raw).status_code == 200
    assert seen == [raw]


# -- inside the host: after its auth, inside its middlewares --------------------------------------------

ORIGIN = "https://allowed.example"
USER, PASSWORD = "api-user", "s3cret"


def host_app(*, api_auth: str | None, api_routes: bool = True, app: FastAPI | None = None,
             ) -> tuple[FastAPI, list[bytes], list[tuple[str, int]]]:
    """An app set up the way A1111/Forge set theirs up: CORS with an allowed origin, an API-logging
    middleware, and (with `--api-auth`) an HTTP Basic dependency on every /sdapi/v1 route. `app`: the
    gradio app the UI mode starts from (else a plain FastAPI app, as with `--nowebui`)."""
    from secrets import compare_digest

    from fastapi import Depends, HTTPException
    from fastapi.security import HTTPBasic, HTTPBasicCredentials
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.middleware.cors import CORSMiddleware

    app = app if app is not None else FastAPI()
    seen: list[bytes] = []
    logged: list[tuple[str, int]] = []
    users = dict(item.split(":", 1) for item in api_auth.split(",")) if api_auth else {}

    def auth(credentials: HTTPBasicCredentials = Depends(HTTPBasic())):  # noqa: B008
        if credentials.username in users and compare_digest(credentials.password, users[credentials.username]):
            return True
        raise HTTPException(status_code=401, detail="Incorrect username or password",
                            headers={"WWW-Authenticate": "Basic"})

    auth.__annotations__ = {"credentials": HTTPBasicCredentials}

    async def generate(request: Request):
        seen.append(await request.body())
        return {"ok": True}

    generate.__annotations__["request"] = Request
    if api_routes:
        dependencies = [Depends(auth)] if api_auth else []
        for path in ("/sdapi/v1/txt2img", "/sdapi/v1/img2img"):
            app.add_api_route(path, generate, methods=["POST"], dependencies=dependencies)

    async def log_api(request: Request, call_next):
        response = await call_next(request)
        if request.url.path.startswith(("/sdapi", "/fooocus")):
            logged.append((request.url.path, response.status_code))
        return response

    app.add_middleware(BaseHTTPMiddleware, dispatch=log_api)
    app.add_middleware(CORSMiddleware, allow_origins=[ORIGIN], allow_methods=["*"], allow_headers=["*"],
                       allow_credentials=True)
    return app, seen, logged


@pytest.fixture
def fake_host(monkeypatch):
    """Fake `modules.*` with `cmd_opts.api_auth` to set, and a context holding test objects."""
    import webui_fakes

    from lib_fooocus.webui.context import FooocusContext

    fakes = webui_fakes.install("forge-main", monkeypatch.setitem)
    expander = CountingExpander()
    fakes.expander = expander
    fakes.context = FooocusContext(load_style_library=lambda: LIBRARY, make_expansion_service=lambda _settings: expander)
    return fakes


class CountingExpander:
    def __init__(self):
        self.calls: list[tuple[str, int]] = []

    def expand(self, prompt: str, seed: int, wait: float | None = None) -> str:
        self.calls.append((prompt, seed))
        return prompt + ", expanded"

    def finish_generation(self) -> None:
        pass


def started(app: FastAPI, context) -> FastAPI:
    from lib_fooocus.webui.app import on_app_started

    on_app_started(None, app, context)
    return app


BAD_ARGS = request_with([{"enabled": True, "styles": ["No Such Style"]}])


def test_the_check_answers_only_requests_the_host_auth_accepts(fake_host) -> None:
    fake_host.shared.cmd_opts.api_auth = f"other:pw,{USER}:{PASSWORD}"
    app, seen, _ = host_app(api_auth=fake_host.shared.cmd_opts.api_auth)
    with TestClient(started(app, fake_host.context)) as client:
        anonymous = client.post("/sdapi/v1/txt2img", json=BAD_ARGS)
        assert anonymous.status_code == 401, anonymous.text  # the host's answer; no style names leak
        assert "No Such Style" not in anonymous.text
        assert client.post("/sdapi/v1/img2img", json=BAD_ARGS, auth=(USER, "wrong")).status_code == 401
        assert client.post("/sdapi/v1/txt2img", json=BAD_ARGS, headers={"Authorization": "Basic !!"}).status_code == 401
        refused = client.post("/sdapi/v1/txt2img", json=BAD_ARGS, auth=(USER, PASSWORD))
        assert refused.status_code == 422 and "No Such Style" in refused.json()["message"]
        good = request_with([{"enabled": True, "styles": ["Warm Light"]}])
        assert client.post("/sdapi/v1/txt2img", json=good, auth=(USER, PASSWORD)).status_code == 200
    assert [json.loads(body) for body in seen] == [good]
    fake_host.shared.cmd_opts.api_auth = None  # without --api-auth the check answers everyone
    open_app, seen, _ = host_app(api_auth=None)
    with TestClient(started(open_app, fake_host.context)) as client:
        assert client.post("/sdapi/v1/txt2img", json=BAD_ARGS).status_code == 422
    assert seen == []


def test_422_keeps_the_host_middlewares_cors_and_api_log(fake_host) -> None:
    app, _, logged = host_app(api_auth=None)
    with TestClient(started(app, fake_host.context)) as client:
        response = client.post("/sdapi/v1/txt2img", json=BAD_ARGS, headers={"Origin": ORIGIN})
    assert response.status_code == 422
    assert response.headers.get("access-control-allow-origin") == ORIGIN
    assert response.json()["error"] == "ValidationError"
    assert logged == [("/sdapi/v1/txt2img", 422)]


@pytest.mark.parametrize("api_routes", [True, False], ids=["host-dependency", "own-check"])
def test_fooocus_routes_carry_the_host_api_auth(fake_host, api_routes) -> None:
    fake_host.shared.cmd_opts.api_auth = f"{USER}:{PASSWORD}"
    app, _, _ = host_app(api_auth=fake_host.shared.cmd_opts.api_auth, api_routes=api_routes)
    calls = [
        ("get", "/fooocus/v1/styles", None),
        ("post", "/fooocus/v1/styles/apply", {"prompt": "a cat", "styles": ["Warm Light"]}),
        ("get", "/fooocus/v1/styles/preview/warm_light.jpg", None),
        ("post", "/fooocus/v1/expand", {"prompt": "a cat", "seed": 1}),
    ]
    with TestClient(started(app, fake_host.context)) as client:
        for method, path, body in calls:
            for auth in (None, (USER, "wrong"), ("nobody", PASSWORD)):
                response = client.request(method, path, json=body, auth=auth)
                assert response.status_code == 401, (path, auth, response.status_code)
                assert response.headers.get("www-authenticate") == "Basic"
        assert fake_host.expander.calls == []  # nothing loaded or downloaded for anonymous clients
        assert client.get("/fooocus/v1/styles", auth=(USER, PASSWORD)).status_code == 200
        assert client.post("/fooocus/v1/styles/apply", json=calls[1][2], auth=(USER, PASSWORD)).status_code == 200
        assert client.post("/fooocus/v1/expand", json=calls[3][2], auth=(USER, PASSWORD)).json() == {
            "expansion": "a cat, expanded"}
    assert fake_host.expander.calls == [("a cat", 1)]
    fake_host.shared.cmd_opts.api_auth = None  # without --api-auth the routes stay open, as the host's are
    open_app, _, _ = host_app(api_auth=None, api_routes=api_routes)
    with TestClient(started(open_app, fake_host.context)) as client:
        assert client.get("/fooocus/v1/styles").status_code == 200
        assert client.post("/fooocus/v1/expand", json={"prompt": "a dog", "seed": 2}).status_code == 200
    assert fake_host.expander.calls == [("a cat", 1), ("a dog", 2)]


def test_unknown_refiner_checkpoint_is_refused_naming_the_field(monkeypatch) -> None:
    """With the host's checkpoint list: unknown names get 422 naming the field and where to find names;
    titles the host resolves (and "None") pass."""
    import types

    from lib_fooocus.webui.api_validation import validate_request

    known = {"sdxl_tiny_b.safetensors [abcd1234]": "sdxl_tiny_b.safetensors [abcd1234]", "sdxl_tiny_b": "sdxl_tiny_b.safetensors [abcd1234]"}
    sd_models = types.ModuleType("modules.sd_models")
    sd_models.get_closet_checkpoint_match = lambda name: types.SimpleNamespace(title=known[name]) if name in known else None
    modules = types.ModuleType("modules")
    modules.__path__ = []
    modules.sd_models = sd_models
    monkeypatch.setitem(sys.modules, "modules", modules)
    monkeypatch.setitem(sys.modules, "modules.sd_models", sd_models)

    bad = validate_request(request_with([{"enabled": True, "refiner_checkpoint": "nope.safetensors"}]))
    assert [e["loc"][-1] for e in bad] == ["refiner_checkpoint"]
    assert "unknown checkpoint 'nope.safetensors'" in bad[0]["msg"] and "/sdapi/v1/sd-models" in bad[0]["msg"]
    positional = validate_request(request_with([True, 2, 7, 1.5, 0.8, 0.3, True, False, [], "nope"]))
    assert positional and positional[0]["loc"][-1] == 9
    infotext = validate_request({"infotext": "a\nSteps: 4, Fooocus: True, Fooocus refiner: nope"})
    assert infotext and infotext[0]["loc"] == ["body", "infotext", "Fooocus refiner"]
    for good in ("sdxl_tiny_b", "None", "", "none"):
        assert validate_request(request_with([{"enabled": True, "refiner_checkpoint": good}])) == [], good


# -- the page's previews: behind the UI's login (gradio's), not the API auth ----------------------------

UI_USER, UI_PASSWORD = "ui-user", "ui-pw"
JPEG = b"\xff\xd8\xff\xe0fake-jpeg\xff\xd9"


def gradio_host_app(*, api_auth: str | None, ui_auth: bool) -> FastAPI:
    """The host in UI mode: gradio's own app (its login and `/file=` route, gradio 4.40 here and 3.41
    in the A1111-stack run), with the host's API routes added as `host_app` adds them."""
    import gradio as gr
    from gradio.routes import App

    with gr.Blocks() as demo:
        gr.Textbox()
    demo.auth = [(UI_USER, UI_PASSWORD)] if ui_auth else None
    demo.auth_message = None
    return host_app(api_auth=api_auth, app=App.create_app(demo))[0]


@pytest.fixture
def previews_host(fake_host, tmp_path):
    """fake_host with a style library that has a preview image."""
    from lib_fooocus.webui.context import FooocusContext

    folder = tmp_path / "styles"
    (folder / "samples").mkdir(parents=True)
    (folder / "mine.json").write_text(json.dumps([{"name": "Warm Light", "prompt": "{prompt}, warm"}]), encoding="utf-8")
    (folder / "samples" / "warm_light.jpg").write_bytes(JPEG)
    library = StyleLibrary.load([folder])
    fake_host.context = FooocusContext(load_style_library=lambda: library,
                                       make_expansion_service=lambda _settings: fake_host.expander)
    fake_host.style_folder = folder
    fake_host.shared.cmd_opts.api_auth = f"{USER}:{PASSWORD}"
    return fake_host


UI_LISTING = "/fooocus/ui/v1/styles/previews"
UI_IMAGE = "/fooocus/ui/v1/styles/preview/warm_light.jpg"


def test_page_previews_need_the_ui_login_not_the_api_auth(previews_host) -> None:
    """--api-auth and --gradio-auth: the page's preview routes answer the logged-in browser session
    (its cookie), never an anonymous client nor the API credentials alone, and the API routes stay
    behind the API auth. No 401 here asks the browser for a password (no `WWW-Authenticate`)."""
    app = started(gradio_host_app(api_auth=previews_host.shared.cmd_opts.api_auth, ui_auth=True),
                  previews_host.context)
    with TestClient(app) as client:
        for auth in (None, (USER, PASSWORD)):
            for path in (UI_LISTING, UI_IMAGE):
                refused = client.get(path, auth=auth)
                assert refused.status_code == 401, (path, auth)
                assert "www-authenticate" not in refused.headers
                assert b"Warm Light" not in refused.content and JPEG not in refused.content
        assert client.post("/login", data={"username": UI_USER, "password": UI_PASSWORD}).status_code == 200
        listing = client.get(UI_LISTING)
        assert listing.status_code == 200
        assert listing.json() == {"previews": {"Warm Light": UI_IMAGE}}
        assert str(previews_host.style_folder) not in listing.text  # keys only, no server paths
        image = client.get(UI_IMAGE)
        assert (image.status_code, image.headers["content-type"], image.content) == (200, "image/jpeg", JPEG)
        # the UI session does not open the API
        assert client.get("/fooocus/v1/styles/preview/warm_light.jpg").status_code == 401
        assert client.get("/fooocus/v1/styles").status_code == 401


def test_page_previews_without_ui_login_are_as_open_as_the_page(previews_host) -> None:
    """--api-auth alone: the UI (and so its previews) is open, the API is not."""
    app = started(gradio_host_app(api_auth=previews_host.shared.cmd_opts.api_auth, ui_auth=False),
                  previews_host.context)
    with TestClient(app) as client:
        assert client.get(UI_LISTING).json() == {"previews": {"Warm Light": UI_IMAGE}}
        image = client.get(UI_IMAGE)
        assert (image.status_code, image.headers["content-type"], image.content) == (200, "image/jpeg", JPEG)
        assert client.get("/fooocus/v1/styles/preview/warm_light.jpg").status_code == 401
        assert client.get("/fooocus/v1/styles/preview/warm_light.jpg", auth=(USER, PASSWORD)).content == JPEG


def test_no_page_preview_routes_without_a_gradio_ui(previews_host) -> None:
    """--nowebui (no gradio app, so no UI login to copy): the routes are not added at all."""
    from lib_fooocus.webui.host_auth import ui_route_dependencies

    app = started(host_app(api_auth=previews_host.shared.cmd_opts.api_auth)[0], previews_host.context)
    with TestClient(app) as client:
        assert client.get(UI_LISTING).status_code == 404
        assert client.get(UI_IMAGE).status_code == 404
    # a gradio file route without its login check while a login is configured: nothing to copy
    bare = FastAPI()
    bare.auth = {UI_USER: UI_PASSWORD}

    async def file_route(path_or_url: str):
        return {}

    bare.add_api_route("/file={path_or_url:path}", file_route, methods=["GET"])
    assert ui_route_dependencies(bare) is None
