"""The one Chrome DevTools Protocol driver of the real-UI tests: Debian's headless Chromium on
127.0.0.1, one page, run JavaScript in it, wait for a condition, move and click the mouse, take a
screenshot, and read what the page itself fetched (URL, HTTP status, content type of every
response). Only `websockets` (sync client) is needed.

    with Browser(profile_dir) as page:
        page.open("http://127.0.0.1:7990/")
        page.wait_for("document.querySelector('#txt2img_prompt') !== null")
        page.evaluate("document.title")

`Browser(...)` starts Chromium at once (a plain `close()` ends it when not used as a context manager).
Tests using it carry `headless_chromium.needs_chromium`; without Chromium it raises `BrowserError`.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from headless_chromium import CHROMIUM

RESPONSE_EVENT = "Network.responseReceived"  # the only event kept (for `responses`)


class BrowserError(RuntimeError):
    pass


class Browser:
    def __init__(self, profile_dir: Path, width: int = 1400, height: int = 2400):
        from websockets.sync.client import connect

        if CHROMIUM is None:
            msg = "no chromium binary found (apt-get install chromium)"
            raise BrowserError(msg)
        self.size = (width, height)
        self.ids = itertools.count(1)
        self.responses_seen: list[dict[str, Any]] = []
        self.socket: Any = None
        self.session = ""
        self.process = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--disable-extensions", "--remote-debugging-address=127.0.0.1",
             "--remote-debugging-port=0", f"--user-data-dir={profile_dir}", f"--window-size={width},{height}",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            self.socket = connect(self._devtools_url(), max_size=64 * 1024 * 1024, open_timeout=30)
            target = self.command("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
            self.session = self.command("Target.attachToTarget", {"targetId": target, "flatten": True},
                                        session=False)["sessionId"]
            for domain in ("Page", "Network", "Runtime"):
                self.command(f"{domain}.enable")
            self.command("Emulation.setDeviceMetricsOverride",
                         {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            if self.socket is not None:
                self.socket.close()
        finally:
            self.process.terminate()  # the browser this object started, nothing else
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def _devtools_url(self) -> str:
        assert self.process.stderr is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            match = re.search(r"DevTools listening on (ws://\S+)", line or "")
            if match:
                return match.group(1)
        msg = "chromium did not report its DevTools address"
        raise BrowserError(msg)

    def command(self, method: str, params: dict | None = None, *, session: bool = True, timeout: float = 60) -> dict:
        """Send one DevTools command and return its result (events arriving meanwhile: responses kept)."""
        number = next(self.ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        self.socket.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = json.loads(self.socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") == number:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if reply.get("method") == RESPONSE_EVENT:
                response = reply["params"]["response"]
                self.responses_seen.append({"url": response["url"], "status": response["status"],
                                            "type": response.get("mimeType", "")})
        msg = f"{method}: no answer in {timeout} s"
        raise BrowserError(msg)

    def open(self, url: str) -> None:
        self.command("Page.navigate", {"url": url})

    def evaluate(self, expression: str, timeout: float = 60) -> Any:
        """The value of a JavaScript expression (a promise is awaited)."""
        result = self.command("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                   "returnByValue": True}, timeout=timeout)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 120, interval: float = 0.25) -> Any:
        """The first truthy value of `expression`, polled; BrowserError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(interval)
        msg = f"timed out waiting for: {expression[:200]}"
        raise BrowserError(msg)

    def responses(self, part: str) -> list[dict[str, Any]]:
        """(url, status, mime type) of every response whose URL holds `part`, in arrival order."""
        self.evaluate("0")  # collect the events that came in meanwhile
        return [response for response in self.responses_seen if part in response["url"]]

    def hover(self, x: float, y: float) -> None:
        self.command("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})

    def click_at(self, x: float, y: float) -> None:
        """A real left click (press and release) at page coordinates of the viewport."""
        for kind in ("mousePressed", "mouseReleased"):
            self.command("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})

    def click_element(self, expression: str) -> None:
        """Scroll the element `expression` evaluates to into view and click its centre with the mouse."""
        where = self.evaluate(f"""(() => {{ const e = {expression}; if (!e) return null;
            e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect();
            return {{x: r.x + r.width / 2, y: r.y + r.height / 2}}; }})()""")
        if where is None:
            msg = f"no element for {expression[:120]}"
            raise BrowserError(msg)
        self.click_at(where["x"], where["y"])

    def screenshot(self, clip: dict[str, float] | None = None) -> bytes:
        """A PNG of the viewport, or of `clip` (x, y, width, height in page coordinates)."""
        params: dict[str, Any] = {"format": "png"}
        if clip is not None:
            params.update(captureBeyondViewport=True, clip={**clip, "scale": 1})
        return base64.b64decode(self.command("Page.captureScreenshot", params)["data"])
