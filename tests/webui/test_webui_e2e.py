"""End-to-end against a real WebUI (A1111 1.6-1.10 or Forge), started here on the CPU.

    SD_WEBUI_DIR=/path/to/stable-diffusion-webui python -m pytest tests/webui -q

Skipped when SD_WEBUI_DIR is unset. Optional environment:
- SD_WEBUI_PYTHON   the host's interpreter (default: $SD_WEBUI_DIR/venv/bin/python)
- SD_WEBUI_CKPT     a checkpoint file for --ckpt (an SDXL one to see the ADM effects; any works)
- SD_WEBUI_ARGS     extra launch arguments, split on spaces
- SD_WEBUI_PORT     port (default 7871); SD_WEBUI_TIMEOUT start-up seconds (default 900)
- SD_WEBUI_REFINER_CKPT  an SDXL *refiner*-shaped checkpoint (ADM 2560) the host lists (put its folder in
                    `--ckpt-dir` via SD_WEBUI_ARGS): runs the SDXL-refiner checks (skipped when unset). The
                    same-shape refiner checks need a second SDXL base-type checkpoint in the list.
The extension is linked into `$SD_WEBUI_DIR/extensions/sd-webui-fooocus` for the run (and the link
removed afterwards when this test made it; see webui_host.py). The host runs with --api --nowebui and CPU flags:
A1111 `--use-cpu all --precision full --no-half`, Forge `--always-cpu --all-in-fp32`, and with the
host's own `--api-auth` and `--cors-allow-origins`, so the tests see what an anonymous client and a
browser origin get.
"""

from __future__ import annotations

import base64
import io
import os
import re
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")

from webui_host import ALLOWED_ORIGIN, API_PASSWORD, API_USER, REPO, running_webui_or_skip  # noqa: E402

pytestmark = pytest.mark.webui

LOG_PATH = REPO / ".pytest_cache" / "webui-e2e.log"
BASE_REQUEST = {
    "prompt": "a photo of a cat", "negative_prompt": "blurry", "steps": 4, "width": 256, "height": 256,
    "cfg_scale": 7, "sampler_name": "Euler", "seed": 1234, "batch_size": 1, "send_images": True,
    "save_images": False,
}


@pytest.fixture(scope="module")
def webui():
    with running_webui_or_skip(ui=False, log_path=LOG_PATH) as base, \
            httpx.Client(base_url=base, timeout=900, auth=(API_USER, API_PASSWORD)) as client:
        yield client


def generate(client, **changes):
    return client.post("/sdapi/v1/txt2img", json={**BASE_REQUEST, **changes})


def pixels(response) -> bytes:
    from PIL import Image

    data = response.json()["images"][0]
    return Image.open(io.BytesIO(base64.b64decode(data.split(",", 1)[-1]))).convert("RGB").tobytes()


def infotext(response) -> str:
    import json

    return json.loads(response.json()["info"])["infotexts"][0]


@pytest.fixture(scope="module")
def baseline(webui):
    response = generate(webui)
    assert response.status_code == 200, response.text
    return response


def test_the_script_is_registered(webui) -> None:
    scripts = webui.get("/sdapi/v1/scripts").json()
    assert "fooocus" in [name.lower() for name in scripts["txt2img"]]
    assert webui.get("/fooocus/v1/styles").status_code == 200


def test_disabled_is_identical_to_not_mentioned(webui, baseline) -> None:
    off_object = generate(webui, alwayson_scripts={"fooocus": {"args": [{"enabled": False}]}})
    off_list = generate(webui, alwayson_scripts={"Fooocus": {"args": [False]}})
    for response in (off_object, off_list):
        assert response.status_code == 200
        assert pixels(response) == pixels(baseline)
        assert "Fooocus" not in infotext(response)


def test_enabled_changes_the_image_and_writes_infotext(webui, baseline) -> None:
    named = generate(webui, alwayson_scripts={"fooocus": {"args": [{"enabled": True, "sharpness": 10.0,
                                                                    "adaptive_cfg": 3.0}]}})
    positional = generate(webui, alwayson_scripts={"fooocus": {"args": [True, 10.0, 3.0]}})
    assert named.status_code == 200 and positional.status_code == 200
    text = infotext(named)
    for key in ("Fooocus: True", "Fooocus sharpness: 10", "Fooocus adaptive CFG: 3"):
        assert key in text
    assert pixels(named) != pixels(baseline)
    assert pixels(named) == pixels(positional)


def test_styles_rewrite_the_prompt_and_record_the_original(webui) -> None:
    styles = webui.get("/fooocus/v1/styles").json()["styles"]
    name = next(style["name"] for style in styles if "{prompt}" in style["prompt"])
    styled = generate(webui, alwayson_scripts={"fooocus": {"args": [{"enabled": True, "styles": [name]}]}})
    assert styled.status_code == 200
    text = infotext(styled)
    assert "Fooocus styles:" in text and name in text
    assert "Fooocus prompt: a photo of a cat" in text
    assert not text.startswith("a photo of a cat\n")  # the prompt line is the styled one


@pytest.mark.parametrize("args", [[{"enabled": True, "sharpness": "very"}], [{"enabled": True, "nope": 1}],
                                  [True, 99.0], [{"styles": ["No Such Style"]}]])
def test_bad_args_are_refused_with_422(webui, args) -> None:
    started = time.monotonic()
    response = generate(webui, alwayson_scripts={"fooocus": {"args": args}})
    assert response.status_code == 422, response.text
    assert time.monotonic() - started < 5  # refused before anything was generated
    assert "Invalid Fooocus arguments" in response.json()["message"]


def test_anonymous_clients_get_the_hosts_401_everywhere(webui) -> None:
    with httpx.Client(base_url=str(webui.base_url), timeout=60) as anonymous:
        bad = anonymous.post("/sdapi/v1/txt2img", json={**BASE_REQUEST, "alwayson_scripts": {
            "fooocus": {"args": [{"styles": ["No Such Style"]}]}}})
        assert bad.status_code == 401 and "No Such Style" not in bad.text  # not our 422: no name leaks
        assert anonymous.get("/fooocus/v1/styles").status_code == 401
        assert anonymous.post("/fooocus/v1/expand", json={"prompt": "a cat", "seed": 1}).status_code == 401
        assert anonymous.post("/fooocus/v1/styles/apply", json={"prompt": "a cat", "styles": []}).status_code == 401


def test_the_422_keeps_the_hosts_cors_header(webui) -> None:
    response = webui.post("/sdapi/v1/txt2img", headers={"Origin": ALLOWED_ORIGIN}, json={
        **BASE_REQUEST, "alwayson_scripts": {"fooocus": {"args": [{"enabled": True, "sharpness": "very"}]}}})
    assert response.status_code == 422, response.text
    assert response.headers.get("access-control-allow-origin") == ALLOWED_ORIGIN


def test_styles_listing_shows_no_server_paths(webui) -> None:
    listing = webui.get("/fooocus/v1/styles").json()
    sources = {style["source"] for style in listing["styles"]}
    assert sources and not any(source.startswith("/") for source in sources), sorted(sources)[:3]


# -- the Fooocus refiner (needs a second checkpoint of the same SDXL shape in the host's list) -------------

CHECKPOINT_LOADS = ("Model loaded in", "Loading weights [")


def checkpoint_loads() -> int:
    text = log_text()
    return sum(text.count(marker) for marker in CHECKPOINT_LOADS)


def log_text() -> str:
    return LOG_PATH.read_text(errors="replace") if LOG_PATH.exists() else ""


def unet_kind(filename: str) -> str:
    from lib_fooocus.refiner.unet_file import RefinerFileError, inspect_checkpoint

    try:
        return inspect_checkpoint(filename)
    except RefinerFileError:
        return "unreadable"


@pytest.fixture(scope="module")
def checkpoints(webui):
    """(base title, other title): the loaded checkpoint and another SDXL base-type one from the host's list."""
    options = webui.get("/sdapi/v1/options").json()
    loaded = str(options.get("sd_model_checkpoint") or "")
    models = webui.get("/sdapi/v1/sd-models").json()
    base = next((m["title"] for m in models if m["title"] == loaded or m["model_name"] in loaded), None)
    other = next((m["title"] for m in models if m["title"] != base and unet_kind(m["filename"]) == "sdxl-base"), None)
    if base is None or other is None:
        pytest.skip("the host lists no second SDXL base-type checkpoint to use as refiner")
    return base, other


@pytest.fixture(scope="module")
def sdxl_refiner(webui):
    """The host's title of the SDXL refiner-shaped checkpoint named by SD_WEBUI_REFINER_CKPT."""
    path = os.environ.get("SD_WEBUI_REFINER_CKPT", "").strip()
    if not path:
        pytest.skip("SD_WEBUI_REFINER_CKPT is not set (an SDXL refiner checkpoint the host lists)")
    assert unet_kind(path) == "sdxl-refiner", f"{path} is not an SDXL refiner-shaped checkpoint (ADM 2560)"
    models = webui.get("/sdapi/v1/sd-models").json()
    title = next((m["title"] for m in models if Path(m["filename"]).exists() and os.path.samefile(m["filename"], path)), None)
    assert title is not None, f"the host does not list {path}: add its folder with --ckpt-dir in SD_WEBUI_ARGS"
    return title


def fooocus(**fields):
    return {"fooocus": {"args": [{"enabled": True, **fields}]}}


@pytest.fixture(scope="module")
def enabled_plain(webui):
    response = generate(webui, alwayson_scripts=fooocus())
    assert response.status_code == 200
    return response


def test_refiner_changes_the_image_and_second_request_loads_no_checkpoint(webui, checkpoints, enabled_plain) -> None:
    _base, other = checkpoints
    first = generate(webui, alwayson_scripts=fooocus(refiner_checkpoint=other, refiner_switch=0.5))
    assert first.status_code == 200, first.text
    text = infotext(first)
    assert f"Fooocus refiner: {other}" in text and "Fooocus refiner switch: 0.5" in text, text
    assert "refiner off" not in text
    assert pixels(first) != pixels(enabled_plain)
    loads = checkpoint_loads()
    second = generate(webui, alwayson_scripts=fooocus(refiner_checkpoint=other, refiner_switch=0.5))
    assert second.status_code == 200
    assert pixels(second) == pixels(first)
    assert checkpoint_loads() == loads  # no checkpoint was (re)loaded by the second request


def test_refiner_equal_to_the_base_gives_the_plain_image(webui, checkpoints, enabled_plain) -> None:
    base, _other = checkpoints
    response = generate(webui, alwayson_scripts=fooocus(refiner_checkpoint=base))
    assert response.status_code == 200
    assert pixels(response) == pixels(enabled_plain)
    assert "refiner equals the base model" in infotext(response)


def test_request_without_refiner_after_one_with_is_bit_identical_to_a_fresh_host(webui, checkpoints, baseline) -> None:
    _base, other = checkpoints
    assert generate(webui, alwayson_scripts=fooocus(refiner_checkpoint=other)).status_code == 200
    after = generate(webui)
    assert pixels(after) == pixels(baseline)  # `baseline` was the host's first request


def test_unknown_refiner_is_refused_with_422(webui) -> None:
    response = generate(webui, alwayson_scripts=fooocus(refiner_checkpoint="no_such_model.safetensors"))
    assert response.status_code == 422
    assert "refiner_checkpoint" in response.json()["message"]


# -- an SDXL refiner (other architecture, conditioning derived from the base's) --------------------------------

REFINER_INPUTS = re.compile(r"refiner (?P<title>.+?): its UNet's first call got context \[(?P<context>[\d, ]+)\], y \[(?P<y>[\d, ]+)\]")


def test_sdxl_refiner_runs_with_derived_conditioning_and_leaves_no_trace(webui, sdxl_refiner, enabled_plain, baseline) -> None:
    request = fooocus(refiner_checkpoint=sdxl_refiner, refiner_switch=0.5)
    log_before = len(log_text())
    first = generate(webui, alwayson_scripts=request)
    assert first.status_code == 200, first.text
    text = infotext(first)
    assert f"Fooocus refiner: {sdxl_refiner}" in text and "refiner off" not in text, text
    assert pixels(first) != pixels(enabled_plain)
    new_log = log_text()[log_before:]
    seen = [m for m in REFINER_INPUTS.finditer(new_log) if m["title"] == sdxl_refiner]
    assert seen, new_log[-2000:]
    context = [int(n) for n in seen[0]["context"].split(",")]
    vector = [int(n) for n in seen[0]["y"].split(",")]
    assert context[-1] == 1280 and vector[-1] == 2560  # CLIP-G slice and the refiner's 2560 ADM vector
    assert "negative ADM not applied to a 2560-wide ADM vector" in new_log  # base-only trick skipped on refiner steps
    loads = checkpoint_loads()
    second = generate(webui, alwayson_scripts=request)
    assert second.status_code == 200
    assert pixels(second) == pixels(first)
    assert checkpoint_loads() == loads  # the host loaded no checkpoint; ours came from the cache
    assert "(sdxl-refiner) from the cache" in log_text()
    after = generate(webui)
    assert pixels(after) == pixels(baseline)  # a fresh host's plain image
