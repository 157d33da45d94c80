"""Start a real WebUI (A1111 1.6-1.10 or Forge) from this checkout: the one launcher of the tests in
tests/webui and of bench/refiner.py (`running_webui` raises; `running_webui_or_skip` is the tests' form).

Environment (see test_webui_e2e.py): SD_WEBUI_DIR (tests are skipped without it), SD_WEBUI_PYTHON,
SD_WEBUI_CKPT, SD_WEBUI_ARGS, SD_WEBUI_PORT, SD_WEBUI_TIMEOUT. The extension is linked into
`$SD_WEBUI_DIR/extensions/sd-webui-fooocus` for the run (the link removed afterwards when made here).
The host runs on the CPU with the host's own `--api-auth` (and in UI mode `--gradio-auth`), so the
tests see what an anonymous client, an API client and a logged-in browser get.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINK_NAME = "sd-webui-fooocus"
API_USER, API_PASSWORD = "fooocus-e2e", "not-a-secret"
UI_USER, UI_PASSWORD = "fooocus-ui", "also-not-a-secret"
ALLOWED_ORIGIN = "http://allowed.example"
STARTED_MARKER = "Startup time:"  # A1111 and Forge print it once everything, API included, is set up


class LaunchError(RuntimeError):
    """The WebUI could not be started (the message says why and where its log is)."""


class NotConfigured(LaunchError):
    """SD_WEBUI_DIR (or the interpreter) is missing: tests skip."""


def launch_args(webui: Path, port: int, *, ui: bool, auth: bool = True, extra: list[str] | None = None) -> list[str]:
    args = ["--api", "--port", str(port), "--server-name", "127.0.0.1",
            "--skip-prepare-environment", "--skip-install", "--skip-torch-cuda-test", "--skip-version-check",
            "--skip-python-version-check", "--no-half", "--no-half-vae", "--no-hashing", "--disable-nan-check",
            "--do-not-download-clip", "--no-download-sd-model", "--cors-allow-origins", ALLOWED_ORIGIN,
            "--loglevel", "INFO"]  # the extension's info lines (refiner loads, the refiner UNet's inputs) are read
    if auth:
        args += ["--api-auth", f"{API_USER}:{API_PASSWORD}"]
        args += ["--gradio-auth", f"{UI_USER}:{UI_PASSWORD}"] if ui else []
    args += [] if ui else ["--nowebui"]
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


@contextlib.contextmanager
def running_webui(*, ui: bool, log_name: str = "webui.log", log_path: Path | None = None,
                  env: Mapping[str, str] | None = None, auth: bool = True,
                  extra_args: list[str] | None = None) -> Iterator[str]:
    """Start the host, wait until its API answers, yield its base URL; stop it (its own process
    group only) and remove the extension link made here afterwards."""
    import httpx

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
    log_path = log_path or REPO / ".pytest_cache" / log_name
    log_path.parent.mkdir(exist_ok=True)
    log = log_path.open("w")
    process = subprocess.Popen([str(python), "launch.py", *launch_args(webui_dir, port, ui=ui, auth=auth, extra=extra_args)],
                               cwd=webui_dir,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + float(os.environ.get("SD_WEBUI_TIMEOUT", "900"))
        while True:
            if process.poll() is not None:
                raise LaunchError(f"the WebUI exited with {process.returncode}; see {log_path}")
            if time.monotonic() > deadline:
                raise LaunchError(f"the WebUI did not answer in time; see {log_path}")
            # No request before the host says it is up: in UI mode the server already listens while
            # the host still adds its API middleware, which a first request would make it refuse
            # ("Cannot add middleware after an application has started"), and the host exits.
            if STARTED_MARKER not in log_path.read_text(errors="replace"):
                time.sleep(2)
                continue
            try:
                if httpx.get(f"{base}/sdapi/v1/options", timeout=5,
                             auth=(API_USER, API_PASSWORD) if auth else None).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise LaunchError(f"the WebUI did not answer in time; see {log_path}")
            time.sleep(2)
        yield base
    finally:
        stop(process)
        log.close()
        if made_link:
            link.unlink()


@contextlib.contextmanager
def running_webui_or_skip(**kwargs) -> Iterator[str]:
    """`running_webui` for tests: not configured -> skip, failed start -> fail."""
    import pytest

    try:
        with running_webui(**kwargs) as base:
            yield base
    except NotConfigured as why:
        pytest.skip(str(why))
    except LaunchError as error:
        pytest.fail(str(error))


def stop(process: subprocess.Popen) -> None:
    """End the process group this helper started (nothing else); quietly if it is gone already."""
    for sig, wait in ((signal.SIGTERM, 60), (signal.SIGKILL, 30)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
