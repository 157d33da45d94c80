"""The "Fooocus defaults" row and the schedule plot in a real gradio page, gradio 3.41 (A1111's) and
4.x (Forge's), driven in headless Chromium: a resolution picked (or Speed/Quality chosen) while the
server's queue is busy sets the tab's width and height (steps) at once, without waiting for the
server; the plot ends on the last of quickly changing steps.

Why: gradio 3.41 drops an event while the same event's previous call still waits in the queue. With
the pick wired through the server, a second pick made while the first waited was lost (the dropdown
showed it, the size kept the first) — on a real A1111 1.7 page that happened after the dropdown had
just followed a typed size. The row's size/steps events now run in the page only. The plot is drawn
on the server: it asks again when the values changed while it was drawing (schedule_plot.py); with a
plain change → server wiring, gradio 3.41 left it on a value from the middle of a slider drag.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from headless_chromium import needs_chromium
from webui_fakes import gradio3_env

pytest.importorskip("websockets")

from cdp_browser import Browser, BrowserError  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "tests" / "webui_fakes" / "defaults_row_app.py"
OURS = "script_txt2img_fooocus_"
BUSY_DONE = "document.querySelector('#busy_done textarea, #busy_done input')"
SIZE_BOXES = ", ".join(f"document.querySelector('#txt2img_{name} input[type=number]')" for name in ("width", "height", "steps"))
BUSY_SECONDS = 6.0  # as in defaults_row_app.py

pytestmark = needs_chromium


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def interpreter(stack: str) -> str:
    if stack == "gradio 4":
        return sys.executable
    if os.environ.get("FOOOCUS_SKIP_GRADIO3") == "1":
        pytest.skip("FOOOCUS_SKIP_GRADIO3=1")
    return str(gradio3_env.ensure_python())


def served_page(stack: str, *options: str):
    """Run defaults_row_app.py under `stack` on a free port; yield its address; stop it after."""
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "no_proxy": "127.0.0.1,localhost",
           "NO_PROXY": "127.0.0.1,localhost"}
    process = subprocess.Popen([interpreter(stack), str(APP), str(port), *options], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
            lines.append(line)
            if line.startswith("READY"):
                yield f"http://127.0.0.1:{port}/"
                return
        pytest.fail("the gradio page did not start:\n" + "".join(lines[-40:]))
    finally:
        process.terminate()  # the app this fixture started
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(params=["gradio 3.41", "gradio 4"])
def page_url(request):
    yield from served_page(request.param)


@pytest.fixture(params=["gradio 3.41", "gradio 4"])
def gated_page_url(request):
    """The page with the row's events behind the test gate (defaults_row_app.py --gated)."""
    yield from served_page(request.param, "--gated")


FOOOCUS_UI_JS = (REPO / "javascript" / "fooocus_ui.js").read_text(encoding="utf-8")


def opened(page: Browser, url: str) -> None:
    """The page with javascript/fooocus_ui.js in it, as the WebUI serves it."""
    page.command("Page.addScriptToEvaluateOnNewDocument", {"source": FOOOCUS_UI_JS})
    page.open(url)
    page.wait_for(f"{q('#' + OURS + 'resolution input')} !== null && {q('#busy')} !== null "
                  f"&& {q('#' + OURS + 'schedule_plot')} !== null", timeout=60)


def q(selector: str) -> str:
    return f"document.querySelector({json.dumps(selector)})"


def sizes(page: Browser) -> list[str]:
    return page.evaluate(f"[{SIZE_BOXES}].map(b => b.value)")


def pick(page: Browser, label: str) -> None:
    """Open the dropdown with the mouse and click the entry, as a user does."""
    page.click_element(q(f"#{OURS}resolution input"))
    option = (f"Array.from(document.querySelectorAll('#{OURS}resolution li')).find(l => "
              f"(l.getAttribute('data-value') || l.getAttribute('aria-label')) === {json.dumps(label)})")
    page.wait_for(f"!!({option})", timeout=10)
    page.click_element(option)
    page.wait_for(f"{q('#' + OURS + 'resolution input')}.value === {json.dumps(label)}", timeout=10)


TYPE_1024 = """(() => { for (const [id, v] of [['txt2img_width', 1024], ['txt2img_height', 1024]]) {
    const i = document.querySelector('#' + id + ' input[type=number]');
    i.value = v; i.dispatchEvent(new Event('input', {bubbles: true}));
    i.dispatchEvent(new Event('change', {bubbles: true})); i.dispatchEvent(new Event('blur')); } })()"""


def wait_for_values(page: Browser, expected: list[str], timeout: float) -> None:
    try:
        page.wait_for(f"(() => {{ const v = {json.dumps(expected)}; const s = [{SIZE_BOXES}].map(b => b.value); "
                      "return s.every((x, i) => x === v[i]); })()", timeout=timeout)
    except BrowserError:
        pytest.fail(f"width, height, steps are {sizes(page)}, not {expected}, {timeout} s later")


def test_picks_while_the_queue_is_busy_set_the_size_at_once(page_url, tmp_path: Path) -> None:
    with Browser(tmp_path / "profile", width=1200, height=900) as page:
        opened(page, page_url)
        # the dropdown follows a size typed into the tab's boxes (its change fires: no effect on the size)
        page.evaluate(TYPE_1024)
        page.wait_for(f"{q('#' + OURS + 'resolution input')}.value === '1024×1024 (1:1)'", timeout=10)
        page.evaluate(f"{q('#busy')}.click()")  # holds the one queue worker for BUSY_SECONDS
        started = time.monotonic()
        pick(page, "1344×768 (7:4)")
        wait_for_values(page, ["1344", "768", "20"], timeout=2)
        pick(page, "832×1216 (13:19)")
        wait_for_values(page, ["832", "1216", "20"], timeout=2)
        page.evaluate(f"{q('#' + OURS + 'performance input[value=Quality]')}.click()")
        wait_for_values(page, ["832", "1216", "60"], timeout=2)
        # all of it while the busy event still held the queue: nothing waited for the server
        assert page.evaluate(f"{BUSY_DONE}.value") == "" and time.monotonic() - started < BUSY_SECONDS
        assert page.evaluate(f"{q('#' + OURS + 'resolution input')}.value") == "832×1216 (13:19)"


GATE = "window.fooocusTestGate"
DROPDOWN = q(f"#{OURS}resolution input")


def held(page: Browser, count: int) -> None:
    """Wait until `count` of the row's events have computed their result and wait at the gate."""
    try:
        page.wait_for(f"{GATE}.held.length === {count}", timeout=10)
    except BrowserError:
        pytest.fail(f"{page.evaluate(GATE + '.held.length')} event(s) at the gate, not {count}")


def release(page: Browser, keep_holding: bool) -> None:
    """Hand the held results to gradio, oldest first."""
    page.evaluate(f"(() => {{ const gate = {GATE}; gate.holding = {json.dumps(keep_holding)}; "
                  "gate.held.splice(0).forEach(event => event.resume()); })()")


def test_late_dropdown_entries_do_not_undo_a_pick(gated_page_url, tmp_path: Path) -> None:
    """The dropdown's follow-the-size event, fired when the first pick set the size, lands after the
    second pick (as on a busy page; it failed once under load in the busy-queue test above): the size
    ends as the second pick's and the dropdown shows its entry — before the fix the late entry set the
    first pick's size again and the two sizes took turns for ever. Then the same with the entry of a
    typed size landing after a pick."""
    with Browser(tmp_path / "profile", width=1200, height=900) as page:
        opened(page, gated_page_url)
        page.evaluate(f"{GATE} = {{holding: true, held: []}}")
        pick(page, "1344×768 (7:4)")
        held(page, 1)  # the pick's size, computed
        release(page, keep_holding=True)
        wait_for_values(page, ["1344", "768", "20"], timeout=5)
        held(page, 2)  # width and height changed: the dropdown's entry for 1344×768, twice, computed
        assert page.evaluate(f"{GATE}.held.map(event => event.result)") == ["1344×768 (7:4)"] * 2
        pick(page, "832×1216 (13:19)")
        held(page, 3)  # the second pick's size, computed
        release(page, keep_holding=False)  # the two late 1344×768 entries land first, then the second pick's size
        wait_for_values(page, ["832", "1216", "20"], timeout=5)
        page.wait_for(f"{DROPDOWN}.value === '832×1216 (13:19)'", timeout=5)
        time.sleep(1.5)  # settled: nothing left bouncing between the dropdown and the size
        assert sizes(page) == ["832", "1216", "20"]
        assert page.evaluate(f"{DROPDOWN}.value") == "832×1216 (13:19)"

        # a typed size's entry (a real change of the dropdown) landing after a pick: the pick wins too
        page.evaluate(f"{GATE}.holding = true")
        page.evaluate(TYPE_1024)
        page.wait_for(f"{GATE}.held.length >= 2 && {GATE}.held[{GATE}.held.length - 1].result === '1024×1024 (1:1)'",
                      timeout=10)
        pick(page, "1344×768 (7:4)")
        page.wait_for(f"JSON.stringify({GATE}.held[{GATE}.held.length - 1].result) === '[1344,768]'", timeout=10)
        release(page, keep_holding=False)
        wait_for_values(page, ["1344", "768", "20"], timeout=5)
        page.wait_for(f"{DROPDOWN}.value === '1344×768 (7:4)'", timeout=5)
        time.sleep(1.5)
        assert sizes(page) == ["1344", "768", "20"]
        assert page.evaluate(f"{DROPDOWN}.value") == "1344×768 (7:4)"


def test_the_plot_ends_on_the_last_of_quickly_changing_steps(page_url, tmp_path: Path) -> None:
    plot = q(f"#{OURS}schedule_plot")
    with Browser(tmp_path / "profile", width=1200, height=900) as page:
        opened(page, page_url)
        page.wait_for(f"{plot}.textContent.includes('20 steps (')", timeout=10)
        for last in (45, 60, 33):  # typed or dragged: one change per value, a few ms apart
            page.evaluate(f"""(async () => {{ const box = {q('#txt2img_steps input[type=number]')};
                const first = Number(box.value), step = {last} > first ? 1 : -1;
                for (let v = first + step; v !== {last} + step; v += step) {{
                    box.value = v; box.dispatchEvent(new Event('input', {{bubbles: true}}));
                    await new Promise(done => setTimeout(done, 3));
                }} }})()""")
            try:
                page.wait_for(f"{plot}.textContent.includes('{last} steps (')", timeout=5)
            except BrowserError:
                caption = page.evaluate(f"{plot}.querySelector('.fooocus-schedule-caption').textContent")
                pytest.fail(f"steps {last}, the plot stayed at: {caption}")
