"""A logged-in browser session for the real-UI tests: Debian's headless Chromium driven over the
DevTools protocol (a websocket on 127.0.0.1), so a test can log in through the page, click, hover
and read what the page itself fetched (URL, HTTP status, content type of every response)."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


class Browser:
    def __init__(self, profile: Path):
        if CHROMIUM is None:
            pytest.skip("no chromium binary found (apt-get install chromium)")
        sync_client = pytest.importorskip("websockets.sync.client")
        self.process = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--disable-extensions", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             f"--user-data-dir={profile}", "--window-size=1400,1000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        port = self._devtools_port()
        pages = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(p for p in pages if p.get("type") == "page")
        self.socket = sync_client.connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        self.call("Page.enable")
        self.call("Network.enable")
        self.call("Runtime.enable")

    def _devtools_port(self) -> int:
        deadline = time.monotonic() + 30
        assert self.process.stderr is not None
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            found = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if found:
                return int(found.group(1))
        pytest.fail("chromium did not open its DevTools port")

    def call(self, method: str, timeout: float = 60.0, **params: Any) -> dict[str, Any]:
        number = next(self.ids)
        self.socket.send(json.dumps({"id": number, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == number:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def evaluate(self, expression: str, timeout: float = 60.0) -> Any:
        """The value of a JavaScript expression (a promise is awaited)."""
        result = self.call("Runtime.evaluate", timeout=timeout, expression=expression, awaitPromise=True,
                           returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page error: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def wait_for(self, expression: str, seconds: float = 180.0) -> Any:
        deadline = time.monotonic() + seconds
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"the page never satisfied: {expression}")
            time.sleep(0.5)

    def responses(self, part: str) -> list[dict[str, Any]]:
        """(url, status, mime type) of every response whose URL holds `part`, in arrival order."""
        self.evaluate("0")  # collect the events that came in meanwhile
        return [
            {"url": e["params"]["response"]["url"], "status": e["params"]["response"]["status"],
             "type": e["params"]["response"].get("mimeType", "")}
            for e in self.events
            if e.get("method") == "Network.responseReceived" and part in e["params"]["response"]["url"]
        ]

    def screenshot(self, path: Path) -> None:
        import base64

        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot")["data"]))

    def close(self) -> None:
        try:
            self.socket.close()
        finally:
            self.process.terminate()  # the browser this helper started
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
