"""Run a test page in Debian's headless Chromium and read back the JSON it prints.

A page signals the end of its checks by writing `RESULTS:<json>` into a `<pre>`; `--dump-dom`
then returns the DOM, from which the JSON is read (HTML-unescaped). Tests using it are skipped
when no Chromium binary is installed (`apt-get install chromium`).
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

# The page functions the WebUI gives extensions' scripts, as the page tests stand them in (inside a
# <script>): the app root is the document, and `onUiLoaded` callbacks are collected in `__loaded`
# for the test page to run when it is ready.
WEBUI_PAGE_FUNCTIONS = """  window.gradioApp = function () { return document; };
  window.__loaded = [];
  window.onUiLoaded = function (callback) { window.__loaded.push(callback); };
"""

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary found (apt-get install chromium)")


def page_results(url: str, profile_dir: Path, *, budget_ms: int, extra_flags: tuple[str, ...] = ()) -> Any:
    command = [
        CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--disable-extensions", f"--user-data-dir={profile_dir}", *extra_flags,
        f"--virtual-time-budget={budget_ms}", "--dump-dom", url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    marker = done.stdout.find("RESULTS:")
    assert marker != -1, f"page did not finish: {done.stderr[-2000:]}"
    text = done.stdout[marker + len("RESULTS:"):].split("</pre>", 1)[0]
    return json.loads(html.unescape(text))
