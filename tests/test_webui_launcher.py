"""The one WebUI launcher (tests/webui/webui_host.py) without a real host: a stand-in `launch.py` plays the
host. It checks what the real-host tests and the parity harness rely on: no request before the host's
start-up line, the extensions asked for linked in and unlinked afterwards (also when the start fails), a
foreign link refused, settings reaching the host as a private copy of its settings file, and the given
setup's arguments used instead of the SD_WEBUI_* variables."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "webui"))

from webui_host import (
    LINK_NAME,
    STARTED_MARKER,
    HostSetup,
    LaunchError,
    NotConfigured,
    launch_args,
    running_webui,
)

httpx = pytest.importorskip("httpx")

# Answers /sdapi/v1/options; notes in early.txt any request that came before it printed the start-up line,
# and writes its arguments to args.json.
FAKE_LAUNCH = f"STARTED = {STARTED_MARKER!r}\n" + """
import http.server, json, pathlib, sys, threading, time
here = pathlib.Path.cwd()
(here / "args.json").write_text(json.dumps(sys.argv[1:]))
if "--exit-early" in sys.argv:
    sys.exit(3)
port = int(sys.argv[sys.argv.index("--port") + 1])
started = threading.Event()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if not started.is_set():
            (here / "early.txt").write_text(self.path)
        self.send_response(200); self.end_headers(); self.wfile.write(b"{}")
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", port), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
time.sleep(3)  # listening, not yet started, past the launcher's first polls: it must not ask yet
started.set()
print(STARTED, "3.0s", flush=True)
time.sleep(600)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def fake_webui(tmp_path) -> HostSetup:
    webui = tmp_path / "webui"
    (webui / "extensions").mkdir(parents=True)
    (webui / "launch.py").write_text(FAKE_LAUNCH, encoding="utf-8")
    (webui / "config.json").write_text(json.dumps({"kept": 1}), encoding="utf-8")
    return HostSetup(webui, Path(sys.executable), port=free_port(), ckpt="given.safetensors",
                     args=("--given-arg",), timeout=60)


def test_starts_after_the_startup_line_links_and_unlinks(fake_webui, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SD_WEBUI_ARGS", "--from-env")
    probe = tmp_path / "probe"
    probe.mkdir()
    extensions = fake_webui.webui_dir / "extensions"
    with running_webui(ui=False, setup=fake_webui, log_path=tmp_path / "host.log", auth=False,
                       more_extensions={"probe": probe}, settings={"added": 2}) as base:
        assert httpx.get(f"{base}/sdapi/v1/options").status_code == 200
        assert (extensions / LINK_NAME).resolve() == Path(__file__).resolve().parents[1]
        assert (extensions / "probe").resolve() == probe.resolve()
    assert not (fake_webui.webui_dir / "early.txt").exists(), "a request reached the host before it had started"
    assert sorted(p.name for p in extensions.iterdir()) == []
    args = json.loads((fake_webui.webui_dir / "args.json").read_text())
    assert args[args.index("--ckpt") + 1] == "given.safetensors" and "--given-arg" in args
    assert "--from-env" not in args
    settings = Path(args[args.index("--ui-settings-file") + 1])
    assert json.loads(settings.read_text()) == {"kept": 1, "added": 2}


def test_a_host_that_exits_is_a_launch_error_and_leaves_no_link(fake_webui, tmp_path) -> None:
    setup = HostSetup(fake_webui.webui_dir, fake_webui.python, fake_webui.port, args=("--exit-early",), timeout=60)
    with pytest.raises(LaunchError, match=r"exited with 3; see .*host\.log"), \
            running_webui(ui=False, setup=setup, log_path=tmp_path / "host.log",
                          more_extensions={"probe": tmp_path}):
        pass
    assert list((fake_webui.webui_dir / "extensions").iterdir()) == []


def test_a_foreign_link_is_refused_and_the_links_made_are_removed(fake_webui, tmp_path) -> None:
    extensions = fake_webui.webui_dir / "extensions"
    (extensions / "probe").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(NotConfigured, match="probe exists and is not"), \
            running_webui(ui=False, setup=fake_webui, log_path=tmp_path / "host.log",
                          more_extensions={"probe": tmp_path / "webui"}):
        pass
    assert [p.name for p in extensions.iterdir()] == ["probe"]


def test_no_webui_is_not_configured(tmp_path) -> None:
    with pytest.raises(NotConfigured, match="no launch.py"):
        HostSetup(tmp_path, Path(sys.executable)).checked()


def test_forge_gets_its_cpu_flags(fake_webui) -> None:
    assert "--use-cpu" in launch_args(fake_webui, ui=False)
    (fake_webui.webui_dir / "modules_forge").mkdir()
    forge = launch_args(fake_webui, ui=False)
    assert "--always-cpu" in forge and "--use-cpu" not in forge
