"""The HTTP API check: a plain ASGI middleware in front of /sdapi/v1/txt2img and img2img refuses bad
Fooocus args with 422 before the endpoint runs, and hands every other request on unchanged. Driven
through a real FastAPI app; the whole file also runs under A1111's stack (fastapi 0.94, pydantic 1)
in the gradio 3 environment."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from lib_fooocus.params import FIELD_NAMES
from lib_fooocus.styles.library import StyleLibrary
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
    (request_with([True, 2, 7, 1.5, 0.8, 0.3, True, False, [], "extra"]), ["too many positional values", "at most 9"]),
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


def test_install_after_start_rebuilds_the_stack_once() -> None:
    app = FastAPI()

    async def generate(request: Request):
        return {"length": len(await request.body())}

    generate.__annotations__["request"] = Request
    app.add_api_route("/sdapi/v1/txt2img", generate, methods=["POST"])
    with TestClient(app) as client:
        assert post(client, request_with([{"sharpness": "x"}])).status_code == 200  # the stack is built now
        assert app.middleware_stack is not None
        assert install_validator(app, None) is True  # UI mode: add_middleware would raise; reset + add
        assert install_validator(app, None) is False  # a second on_app_started adds nothing
        assert post(client, request_with([{"sharpness": "x"}])).status_code == 422
        assert post(client, request_with([{"sharpness": 1.0}])).status_code == 200
    names = [getattr(m.cls, "__name__", "") for m in app.user_middleware]
    assert names.count(FooocusRequestValidator.__name__) == 1


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
