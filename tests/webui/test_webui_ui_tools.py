"""The accordion in a real WebUI page (UI mode), driven in headless Chromium over the DevTools
protocol: the "Fooocus defaults" button and the resolution dropdown set the tab's own controls, the
picker shows a text card on hover, the import group imports the host's styles file and gives a clear
line without a network, and a screenshot of the accordion is taken.

    SD_WEBUI_DIR=/path/to/webui python -m pytest tests/webui/test_webui_ui_tools.py -q

Skipped without SD_WEBUI_DIR or Chromium. Environment as for `test_webui_e2e.py` (SD_WEBUI_PYTHON,
SD_WEBUI_CKPT, SD_WEBUI_ARGS, SD_WEBUI_PORT, SD_WEBUI_TIMEOUT); FOOOCUS_SCREENSHOT=path keeps the
screenshot (PNG) there. The host runs without --api-auth (the page's own REST calls need none), with
the user styles folder in a temporary directory and the Fooocus styles "mirror" at a closed port.
"""

from __future__ import annotations

import csv
import json
import os
import socket
from pathlib import Path

import pytest
from headless_chromium import needs_chromium

httpx = pytest.importorskip("httpx")
pytest.importorskip("websockets")

from cdp_browser import Browser  # noqa: E402
from webui_host import running_webui_or_skip  # noqa: E402

from lib_fooocus.styles.library import normalize_name  # noqa: E402

pytestmark = [pytest.mark.webui, needs_chromium]

TAB, OTHER_TAB = "txt2img", "img2img"
OURS = f"script_{TAB}_fooocus_"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def page_url(tmp_path_factory):
    running = os.environ.get("SD_WEBUI_UI_URL", "").strip()  # a host already running in UI mode (iterating)
    if running:
        yield running, Path(os.environ["SD_WEBUI_DIR"]).expanduser().resolve()
        return
    webui_dir = Path(os.environ.get("SD_WEBUI_DIR", ".")).expanduser().resolve()
    user_styles = tmp_path_factory.mktemp("user_styles")
    env = {"SD_WEBUI_FOOOCUS_STYLES_DIR": str(user_styles),
           "SD_WEBUI_FOOOCUS_STYLES_BASE_URL": f"http://127.0.0.1:{closed_port()}/sdxl_styles/"}
    # no login: the page's own REST calls need none, and the Chromium driver does not log in
    with running_webui_or_skip(ui=True, auth=False, log_name="webui-ui-tools.log", env=env) as base:
        yield base + "/", webui_dir


def q(selector: str) -> str:
    return f"gradioApp().querySelector({json.dumps(selector)})"


def value_of(page: Browser, elem_id: str) -> str:
    return page.evaluate(f"(() => {{ const b = {q('#' + elem_id)}; const i = b && b.querySelector("
                         "'input[type=number], input:not([type=checkbox]):not([type=radio]), textarea'); "
                         "return i ? i.value : null; })()")


def click(page: Browser, selector: str) -> None:
    assert page.evaluate(f"(() => {{ const e = {q(selector)}; if (!e) return false; e.click(); return true; }})()"), selector


def small_png(data: bytes) -> bytes:
    """The screenshot with a 256-colour palette (a UI picture; about a third of the size), if Pillow is here."""
    try:
        import io

        from PIL import Image
    except ImportError:
        return data
    out = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").quantize(colors=256).save(out, format="PNG", optimize=True)
    return out.getvalue()


SHOWN_WEBUI_DIR = "~/webui"  # what the screenshot shows for this machine's WebUI folder


def hide_machine_paths(page: Browser, webui_dir: Path) -> None:
    """For the picture only: this machine's WebUI folder, wherever the accordion shows it (the
    expansion status and licence lines, the styles.csv placeholder), reads SHOWN_WEBUI_DIR."""
    page.evaluate(f"""(() => {{
        const root = {q('#' + OURS + 'enabled')}, from = {json.dumps(str(webui_dir))}, to = {json.dumps(SHOWN_WEBUI_DIR)};
        const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
        for (let node = walker.nextNode(); node; node = walker.nextNode()) node.nodeValue = node.nodeValue.split(from).join(to);
        root.querySelectorAll('input, textarea').forEach(box => {{
            box.value = box.value.split(from).join(to);
            if (box.placeholder) box.placeholder = box.placeholder.split(from).join(to);
        }});
    }})()""")
    shown = page.evaluate(f"(() => {{ const r = {q('#' + OURS + 'enabled')}; return r.innerText + ' ' + "
                          "Array.from(r.querySelectorAll('input, textarea')).map(b => b.value + ' ' + b.placeholder)"
                          ".join(' '); })()")
    assert str(webui_dir) not in shown


def host_style_names(webui_dir: Path) -> list[str]:
    names = []
    for path in (webui_dir / "styles.csv", webui_dir / "styles_integrated.csv"):
        if path.is_file():
            with path.open(encoding="utf-8-sig", newline="") as file:
                names += [row["name"] for row in csv.DictReader(file) if row.get("name")]
    return names


def test_accordion_tools_in_the_real_page(page_url, tmp_path: Path) -> None:
    base, webui_dir = page_url
    forge = (webui_dir / "modules_forge").is_dir()
    with Browser(tmp_path / "profile", width=1500, height=2600) as page:
        page.open(base)
        page.wait_for(f"typeof gradioApp === 'function' && {q('#' + OURS + 'defaults')} !== null", timeout=180)
        # open the accordion (an InputAccordion: opening it turns Fooocus on) unless it starts open
        if not page.evaluate(f"{q('#' + OURS + 'defaults')}.offsetParent !== null"):
            click(page, f"#{OURS}enabled .label-wrap")
            page.wait_for(f"{q('#' + OURS + 'defaults')}.offsetParent !== null")

        # 1. Fooocus defaults: the tab's own controls
        click(page, f"#{OURS}defaults")
        page.wait_for(f"{q('#' + OURS + 'defaults_note')}.textContent.includes('Fooocus defaults set')")
        page.wait_for(f"{json.dumps(value_of(page, TAB + '_steps'))} !== null")
        assert value_of(page, f"{TAB}_steps") == "30"
        assert float(value_of(page, f"{TAB}_cfg_scale")) == 4.0
        assert (value_of(page, f"{TAB}_width"), value_of(page, f"{TAB}_height")) == ("1152", "896")
        if forge:
            assert value_of(page, f"{TAB}_sampling") == "DPM++ 2M SDE"
            assert value_of(page, f"{TAB}_scheduler") == "Karras"
        else:
            assert value_of(page, f"{TAB}_sampling") in ("DPM++ 2M SDE Karras", "DPM++ 2M SDE")
        assert value_of(page, OURS + "resolution") == "1152×896 (9:7)"
        note = page.evaluate(f"{q('#' + OURS + 'defaults_note')}.textContent")
        # 2. Quality: 60 steps
        click(page, f"#{OURS}performance input[value='Quality']")
        page.wait_for(f"(() => {{ const i = {q('#' + TAB + '_steps input[type=number]')}; return i && i.value === '60'; }})()")
        # the schedule plot follows the tab's steps and CFG (redrawn by the server)
        page.wait_for(f"{q('#' + OURS + 'schedule_plot')}.textContent.includes('60 steps (Karras): CFG 4;')", timeout=30)

        # 3. hover a style without a preview image: the text card
        box = page.evaluate(f"""(() => {{
            const label = Array.from(gradioApp().querySelectorAll('#{OURS}styles label'))
                .find(l => l.textContent.trim() === 'Crisp Cinematic Still');
            label.scrollIntoView({{block: 'center'}});
            const r = label.getBoundingClientRect();
            return {{x: r.x + r.width / 2, y: r.y + r.height / 2}};
        }})()""")
        page.hover(box["x"], box["y"])
        page.wait_for("(() => { const b = document.getElementById('fooocus-style-preview'); return b && "
                      "b.classList.contains('fooocus-style-preview-visible') && "
                      "b.classList.contains('fooocus-style-preview-card'); })()")
        card = page.evaluate("document.querySelector('#fooocus-style-preview .fooocus-style-card').innerText")
        marks = page.evaluate("Array.from(document.querySelectorAll('#fooocus-style-preview mark'))"
                              ".map(m => m.textContent)")
        assert card.startswith("Crisp Cinematic Still") and "negative" in card.lower() and marks == ["{prompt}"]

        # 4. import group: Fooocus's styles without a network, then the host's styles file
        click(page, f"#{OURS}import .label-wrap")
        page.wait_for(f"{q('#' + OURS + 'import_csv')}.offsetParent !== null")
        click(page, f"#{OURS}import_fooocus")
        page.wait_for(f"(() => {{ const t = {q('#' + OURS + 'import_result textarea')}; "
                      "return t && t.value.startsWith(\"Fooocus's styles not imported\"); })()", timeout=120)
        fooocus_line = value_of(page, OURS + "import_result")
        assert "cannot connect" in fooocus_line and "Check the network connection" in fooocus_line

        names = host_style_names(webui_dir)
        expected = "style(s) imported" if names else "has no styles.csv to import yet"  # A1111 ships none
        click(page, f"#{OURS}import_csv")
        page.wait_for(f"(() => {{ const t = {q('#' + OURS + 'import_result textarea')}; "
                      f"return t && t.value.includes({json.dumps(expected)}); }})()", timeout=60)
        csv_line = value_of(page, OURS + "import_result")
        if names:
            imported = page.evaluate(f"Array.from(gradioApp().querySelectorAll('#{OURS}styles label'))"
                                     ".map(l => l.textContent.trim())")
            assert any(normalize_name(name) in imported for name in names), csv_line
            # the other tab's picker too (refreshed by the page after the import)
            other = f"script_{OTHER_TAB}_fooocus_styles"
            wanted = json.dumps([normalize_name(name) for name in names])
            page.wait_for(f"(() => {{ const seen = Array.from(gradioApp().querySelectorAll('#{other} label'))"
                          f".map(l => l.textContent.trim()); return {wanted}.some(n => seen.includes(n)); }})()",
                          timeout=30)

        # 5. the dropdown follows a size typed into the tab's number boxes, and picking an entry sets the size
        set_size = f"""(() => {{
            for (const [id, v] of [['{TAB}_width', 1024], ['{TAB}_height', 1024]]) {{
                const i = gradioApp().querySelector('#' + id + ' input[type=number]');
                i.value = v; i.dispatchEvent(new Event('input', {{bubbles: true}}));
                i.dispatchEvent(new Event('change', {{bubbles: true}})); i.dispatchEvent(new Event('blur'));
            }}
        }})()"""
        page.evaluate(set_size)
        page.wait_for(f"{q('#' + OURS + 'resolution input')}.value === '1024×1024 (1:1)'", timeout=30)
        page.click_element(q(f"#{OURS}resolution input"))
        option = ("Array.from(gradioApp().querySelectorAll('#" + OURS + "resolution li')).find(l => "
                  "(l.getAttribute('aria-label') || l.getAttribute('data-value') || l.textContent.trim()) === "
                  "'1344×768 (7:4)')")
        page.wait_for(f"!!({option})", timeout=10)
        page.click_element(option)
        page.wait_for(f"(() => {{ const w = {q('#' + TAB + '_width input[type=number]')}, "
                      f"h = {q('#' + TAB + '_height input[type=number]')}; "
                      "return w.value === '1344' && h.value === '768'; })()", timeout=30)
        click(page, f"#{OURS}defaults")
        page.wait_for(f"{q('#' + OURS + 'resolution input')}.value === '1152×896 (9:7)'")

        # 6. the screenshot: the accordion with the defaults row, the plot and the open import group
        rect = page.evaluate(f"""(() => {{
            const a = {q('#' + OURS + 'enabled')};
            a.scrollIntoView({{block: 'start'}});
            const r = a.getBoundingClientRect();
            return {{x: r.x + window.scrollX, y: r.y + window.scrollY, width: r.width, height: r.height}};
        }})()""")
        page.hover(rect["x"] + rect["width"] + 40, 5)  # the mouse off the picker: no card in the picture
        hide_machine_paths(page, webui_dir)
        page.wait_for("!document.getElementById('fooocus-style-preview').classList"
                      ".contains('fooocus-style-preview-visible')")
        image = page.screenshot(rect)
        target = Path(os.environ.get("FOOOCUS_SCREENSHOT") or tmp_path / "accordion.png")
        target.write_bytes(small_png(image))
        print(f"\nnote: {note}\ncsv: {csv_line}\nfooocus: {fooocus_line}\n"
              f"screenshot: {target} ({target.stat().st_size} bytes)")
        assert image[:8] == b"\x89PNG\r\n\x1a\n"
