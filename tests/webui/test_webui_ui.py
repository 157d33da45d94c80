"""The UI in a real WebUI, seen by a logged-in browser (headless Chromium over the DevTools protocol):

- style-picker hover previews load under `--api-auth` + `--gradio-auth`: the page gets them through
  the routes behind the UI login (never the API routes, never a 401, so no password prompt), from a
  user styles folder outside the host and the extension ($SD_WEBUI_FOOOCUS_STYLES_DIR);
- the expansion status in the accordion follows a first-use download live: the host downloads the
  weights from a local stand-in for the hub (127.0.0.1), held part-way, and the status shows the
  bytes and a progress bar without any click, then says why the expansion is unavailable (the
  served "weights" are random bytes). This part needs the seven pinned small files of the model
  (Fooocus's `models/prompt_expansion/fooocus_expansion`), named by SD_WEBUI_EXPANSION_SMALL_FILES;
  skipped without.

Runs with the same environment as test_webui_e2e.py (SD_WEBUI_DIR, ...); the host is started in UI
mode (its own process, after the API-only one of test_webui_e2e.py has stopped).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")

from cdp_browser import Browser  # noqa: E402
from headless_chromium import CHROMIUM  # noqa: E402
from webui_host import (  # noqa: E402
    API_PASSWORD,
    API_USER,
    UI_PASSWORD,
    UI_USER,
    NotConfigured,
    running_webui_or_skip,
    webui_paths,
)

from lib_fooocus.styles.library import normalize_name, preview_key  # noqa: E402

pytestmark = pytest.mark.webui

STYLE_FILE_NAME = "e2e-preview-style"
STYLE = normalize_name(STYLE_FILE_NAME)
WEIGHTS_KEY = "lllyasviel/misc/fooocus_expansion.bin"
WEIGHTS_BYTES = 24_000_000  # over two of huggingface_hub's 10 MB write chunks
HELD_AT = 12_000_000  # one chunk is on disk while the download is held
SMALL_FILES_ENV = "SD_WEBUI_EXPANSION_SMALL_FILES"


def write_styles(folder: Path) -> Path:
    from PIL import Image

    (folder / "samples").mkdir(parents=True)
    (folder / "e2e.json").write_text(json.dumps([{"name": STYLE_FILE_NAME, "prompt": "{prompt}, e2e look",
                                                  "negative_prompt": ""}]), encoding="utf-8")
    Image.new("RGB", (64, 64), (200, 40, 40)).save(folder / "samples" / f"{preview_key(STYLE)}.jpg", "JPEG")
    return folder


@pytest.fixture(scope="module")
def hub():
    from expansion_fixtures import FakeHub

    server = FakeHub()
    server.files[WEIGHTS_KEY] = os.urandom(WEIGHTS_BYTES)
    yield server
    server.close()


@pytest.fixture(scope="module")
def host(tmp_path_factory, hub):
    """The host in UI mode with --api-auth and --gradio-auth, its user styles folder outside both
    the host and the extension, its hub cache a private copy, the hub at 127.0.0.1."""
    try:
        webui_paths()
    except NotConfigured as why:
        pytest.skip(str(why))
    root = tmp_path_factory.mktemp("ui-host")
    styles = write_styles(root / "user_styles")
    hf_home = root / "hf_home"
    if os.environ.get("HF_HOME") and Path(os.environ["HF_HOME"]).is_dir():
        shutil.copytree(os.environ["HF_HOME"], hf_home)  # offline files the host needs (CLIP tokenizer)
    env = {"SD_WEBUI_FOOOCUS_STYLES_DIR": str(styles), "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "0",
           "HF_ENDPOINT": hub.url}
    # The expansion folder and downloads are UI-only settings (API clients cannot change them), so
    # they go into a private settings file, read at start-up like a user's config.json.
    model_dir = root / "fooocus_expansion"
    model_dir.mkdir()
    small_files = os.environ.get(SMALL_FILES_ENV, "").strip()
    if small_files and Path(small_files).is_dir():
        for path in Path(small_files).iterdir():
            if path.is_file() and not path.name.endswith((".bin", ".safetensors")):
                shutil.copy(path, model_dir / path.name)
    settings = root / "config.json"
    settings.write_text(json.dumps({"fooocus_expansion_model_dir": str(model_dir),
                                    "fooocus_expansion_allow_download": True}))
    log_name = f"webui-ui-{os.environ.get('SD_WEBUI_PORT', 'default')}.log"
    with running_webui_or_skip(ui=True, log_name=log_name, env=env,
                               extra_args=["--ui-settings-file", str(settings)]) as base:
        yield {"base": base, "root": root, "styles": styles, "model_dir": model_dir}


@pytest.fixture(scope="module")
def browser(host, tmp_path_factory):
    """A browser session logged in through the page (gradio's login form), the UI loaded."""
    if CHROMIUM is None:
        pytest.skip("no chromium binary found (apt-get install chromium)")
    pytest.importorskip("websockets")
    session = Browser(tmp_path_factory.mktemp("chromium-profile"))
    try:
        session.open(host["base"] + "/")
        session.wait_for("document.readyState === 'complete'", 60)
        status = session.evaluate(
            f"fetch('login', {{method: 'POST', credentials: 'same-origin', body: new URLSearchParams("
            f"{{username: {json.dumps(UI_USER)}, password: {json.dumps(UI_PASSWORD)}}})}}).then(r => r.status)")
        assert status == 200, status
        session.open(host["base"] + "/")
        session.wait_for("!!(window.gradioApp && gradioApp().querySelector('#script_txt2img_fooocus_styles'))", 300)
        yield session
    finally:
        session.close()


def open_accordion(browser: Browser) -> None:
    """Open txt2img's Fooocus accordion (if closed) so its parts are laid out."""
    browser.evaluate("""(() => {
        const root = gradioApp();
        const picker = root.querySelector('#script_txt2img_fooocus_styles');
        if (picker && picker.getClientRects().length === 0) {
            const header = root.querySelector('#script_txt2img_fooocus_enabled .label-wrap')
                || root.querySelector('#script_txt2img_fooocus_accordion .label-wrap');
            if (header) header.click();
        }
        return true;
    })()""")
    browser.wait_for("gradioApp().querySelector('#script_txt2img_fooocus_styles').getClientRects().length > 0", 30)


def test_style_preview_loads_in_the_logged_in_page_under_api_auth(host, browser) -> None:
    open_accordion(browser)
    result = browser.evaluate(f"""(async () => {{
        const name = {json.dumps(STYLE)};
        const map = await window.fooocusStyles.loadPreviews(true);
        const url = map.get(name);
        const label = Array.from(gradioApp().querySelectorAll('#script_txt2img_fooocus_styles label'))
            .find(l => l.textContent.trim() === name);
        if (!label) return {{url: url || null, label: false}};
        label.scrollIntoView();
        const box = label.getBoundingClientRect();
        label.dispatchEvent(new MouseEvent('mouseover', {{bubbles: true, clientX: box.x + 5, clientY: box.y + 5}}));
        const image = await new Promise(resolve => {{
            const started = Date.now();
            (function check() {{
                const img = document.querySelector('#fooocus-style-preview img');
                if (img && img.complete && img.naturalWidth > 0) return resolve(img);
                if (Date.now() - started > 20000) return resolve(img || null);
                setTimeout(check, 100);
            }})();
        }});
        return {{url: url || null, label: true, count: map.size,
                 src: image ? image.src : null, width: image ? image.naturalWidth : 0,
                 shown: document.getElementById('fooocus-style-preview').classList.contains('fooocus-style-preview-visible')}};
    }})()""")
    (host["root"] / "preview.png").write_bytes(browser.screenshot())
    assert result["label"], f"{STYLE} is not in the picker: {result}"
    assert result["url"] == host["base"] + f"/fooocus/ui/v1/styles/preview/{preview_key(STYLE)}.jpg"
    assert result["src"] == result["url"] and result["width"] == 64 and result["shown"] is True
    # what the browser fetched: the UI routes, answered 200 (the image as a JPEG), no API route, no 401
    fetched = browser.responses("/fooocus/")
    image = [r for r in fetched if r["url"] == result["url"]]
    assert image and all(r["status"] == 200 and r["type"] == "image/jpeg" for r in image), fetched
    assert not [r for r in fetched if r["status"] == 401], fetched
    assert not [r for r in fetched if "/fooocus/v1/" in r["url"]], fetched
    listing = [r for r in fetched if r["url"].endswith("/fooocus/ui/v1/styles/previews")]
    assert listing and listing[-1]["status"] == 200 and str(host["styles"]) not in json.dumps(listing)


def test_preview_routes_answer_the_ui_login_only_and_the_api_its_own_auth(host) -> None:
    key = preview_key(STYLE)
    with httpx.Client(base_url=host["base"], timeout=60) as anonymous:
        for path in ("/fooocus/ui/v1/styles/previews", f"/fooocus/ui/v1/styles/preview/{key}.jpg"):
            refused = anonymous.get(path)
            assert refused.status_code == 401 and "www-authenticate" not in refused.headers
            assert anonymous.get(path, auth=(API_USER, API_PASSWORD)).status_code == 401  # API creds: not the UI
        assert anonymous.get(f"/fooocus/v1/styles/preview/{key}.jpg").status_code == 401
        api = anonymous.get(f"/fooocus/v1/styles/preview/{key}.jpg", auth=(API_USER, API_PASSWORD))
        assert api.status_code == 200 and api.headers["content-type"] == "image/jpeg"
        listing = anonymous.get("/fooocus/v1/styles", auth=(API_USER, API_PASSWORD)).json()
        assert str(host["styles"]) not in json.dumps(listing)


def test_expansion_status_follows_a_first_use_download_live(host, hub, browser) -> None:
    small_files = os.environ.get(SMALL_FILES_ENV, "").strip()
    if not small_files or not Path(small_files).is_dir():
        pytest.skip(f"{SMALL_FILES_ENV} does not name the folder with the model's seven small files")
    hold = hub.hold(WEIGHTS_KEY, HELD_AT)
    try:
        open_accordion(browser)
        status = "gradioApp().querySelector('#script_txt2img_fooocus_expansion_status .fooocus-expansion-status')"
        browser.evaluate("gradioApp().querySelector('#script_txt2img_fooocus_expansion_status_refresh').click(), true")
        browser.wait_for(f"{status} && {status}.dataset.state === 'idle'", 30)
        # the preview expands the tab's prompt: an empty one is answered without loading anything
        browser.evaluate("(() => { const t = gradioApp().querySelector('#txt2img_prompt textarea'); "
                         "t.value = 'a small robot gardener'; t.dispatchEvent(new Event('input', {bubbles: true})); "
                         "return true; })()")
        # Preview starts the download; it gives up after 15 s ("being prepared"), the download goes on
        browser.evaluate("gradioApp().querySelector('#script_txt2img_fooocus_expansion_preview').click(), true")
        assert hold.reached.wait(120), "the host never asked the local hub for the weights"
        progress = browser.wait_for(
            f"{status} && {status}.dataset.state === 'busy' && {status}.querySelector('progress') "
            f"&& {status}.textContent.includes('of 24.0 MB') && {{text: {status}.textContent, "
            f"value: {status}.querySelector('progress').value}}", 90)
        (host["root"] / "status-busy.png").write_bytes(browser.screenshot())
        assert "downloading fooocus_expansion.bin" in progress["text"] and "10.5 MB of 24.0 MB (43%)" in progress["text"]
        assert progress["value"] == 43
    finally:
        hold.released.set()
    # nothing clicked from here on: the page's own polling brings the outcome
    outcome = browser.wait_for(f"{status}.dataset.state !== 'busy' && {{state: {status}.dataset.state, "
                               f"text: {status}.textContent}}", 120)
    (host["root"] / "status-after.png").write_bytes(browser.screenshot())
    assert outcome["state"] == "unavailable", outcome
    assert "Refused to load" in outcome["text"] or "cannot be read" in outcome["text"], outcome
