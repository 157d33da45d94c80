"""Start a real WebUI (A1111 or Forge) on the CPU with this checkout linked in as an extension; shared by
the end-to-end tests (tests/webui) and bench/refiner.py. Environment (all optional but the first):
SD_WEBUI_DIR, SD_WEBUI_PYTHON, SD_WEBUI_CKPT, SD_WEBUI_ARGS, SD_WEBUI_PORT, SD_WEBUI_TIMEOUT."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINK_NAME = "sd-webui-fooocus"


class LaunchError(RuntimeError):
    """The WebUI could not be started (the message says why and where its log is)."""


class NotConfigured(LaunchError):
    """SD_WEBUI_DIR (or the interpreter) is missing: the caller skips."""


def launch_args(webui: Path, port: int, extra: list[str] | None = None) -> list[str]:
    args = ["--api", "--nowebui", "--port", str(port), "--server-name", "127.0.0.1",
            "--skip-prepare-environment", "--skip-install", "--skip-torch-cuda-test", "--skip-version-check",
            "--skip-python-version-check", "--no-half", "--no-half-vae", "--no-hashing", "--disable-nan-check",
            "--do-not-download-clip", "--no-download-sd-model",
            "--loglevel", "INFO"]  # the extension's info lines (refiner loads, the refiner UNet's inputs) are read
    if (webui / "modules_forge").is_dir():
        args += ["--always-cpu", "--all-in-fp32"]  # Forge's memory manager ignores --use-cpu
    else:
        args += ["--use-cpu", "all", "--precision", "full", "--opt-sdp-attention"]
    if os.environ.get("SD_WEBUI_CKPT"):
        args += ["--ckpt", os.environ["SD_WEBUI_CKPT"]]
    return args + list(extra or []) + shlex.split(os.environ.get("SD_WEBUI_ARGS", ""))


def webui_paths() -> tuple[Path, Path]:
    root = os.environ.get("SD_WEBUI_DIR", "").strip()
    if not root:
        raise NotConfigured("SD_WEBUI_DIR is not set (path to an A1111 or Forge checkout)")
    webui_dir = Path(root).expanduser().resolve()
    python = Path(os.environ.get("SD_WEBUI_PYTHON") or webui_dir / "venv" / "bin" / "python")
    if not (webui_dir / "launch.py").is_file() or not python.exists():
        raise NotConfigured(f"no launch.py in {webui_dir} or no interpreter at {python} (set SD_WEBUI_PYTHON)")
    return webui_dir, python


def _answers(url: str, auth: tuple[str, str] | None) -> bool:
    request = urllib.request.Request(url)
    if auth is not None:
        request.add_header("Authorization", "Basic " + b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def running_webui(log_path: Path, extra_args: list[str] | None = None,
                  auth: tuple[str, str] | None = None) -> Iterator[str]:
    """The base URL of a WebUI started for the block, stopped (its process group) afterwards."""
    webui_dir, python = webui_paths()
    link = webui_dir / "extensions" / LINK_NAME
    made_link = False
    if not link.exists():
        link.parent.mkdir(exist_ok=True)
        link.symlink_to(REPO, target_is_directory=True)
        made_link = True
    elif link.resolve() != REPO:
        raise NotConfigured(f"{link} exists and is not this checkout")
    port = int(os.environ.get("SD_WEBUI_PORT", "7871"))
    args = launch_args(webui_dir, port, extra_args)
    if auth is not None:
        args += ["--api-auth", f"{auth[0]}:{auth[1]}"]
    log_path.parent.mkdir(exist_ok=True)
    log = log_path.open("w")
    process = subprocess.Popen([str(python), "launch.py", *args], cwd=webui_dir, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + float(os.environ.get("SD_WEBUI_TIMEOUT", "900"))
        while not _answers(f"{base}/sdapi/v1/options", auth):
            if process.poll() is not None:
                raise LaunchError(f"the WebUI exited with {process.returncode}; see {log_path}")
            if time.monotonic() > deadline:
                raise LaunchError(f"the WebUI did not answer in time; see {log_path}")
            time.sleep(2)
        yield base
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)  # the group started here, nothing else
            process.wait(timeout=60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
        if made_link:
            link.unlink()
