"""Start a real WebUI (A1111 1.6-1.10 or Forge) from this checkout: the one launcher of the tests in
tests/webui, of bench/refiner.py and of the parity harness (tests/parity/parity_host.py, bench/parity.py).
`running_webui` raises; `running_webui_or_skip` is the tests' form.

Which host: a `HostSetup` (folder, interpreter, port, checkpoint, extra arguments, start-up limit), given
by the caller or read from the environment (see test_webui_e2e.py): SD_WEBUI_DIR (tests are skipped
without it), SD_WEBUI_PYTHON, SD_WEBUI_CKPT, SD_WEBUI_ARGS, SD_WEBUI_PORT, SD_WEBUI_TIMEOUT. The extension
(this checkout, or another one given) is linked into `<webui>/extensions/sd-webui-fooocus` for the run,
with any further extensions asked for (the parity probe); the links made here are removed afterwards.
Settings given are written into a private copy of the host's settings file (`--ui-settings-file`).
The host runs on the CPU with the host's own `--api-auth` (and in UI mode `--gradio-auth`), so the
tests see what an anonymous client, an API client and a logged-in browser get.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
LINK_NAME = "sd-webui-fooocus"
API_USER, API_PASSWORD = "fooocus-e2e", "not-a-secret"
UI_USER, UI_PASSWORD = "fooocus-ui", "also-not-a-secret"
ALLOWED_ORIGIN = "http://allowed.example"
STARTED_MARKER = "Startup time:"  # A1111 and Forge print it once everything, API included, is set up
DEFAULT_PORT = 7871
DEFAULT_TIMEOUT_S = 900.0


class LaunchError(RuntimeError):
    """The WebUI could not be started (the message says why and where its log is)."""


class NotConfigured(LaunchError):
    """SD_WEBUI_DIR (or the interpreter) is missing, or the host folder links another checkout: tests skip."""


@dataclass(frozen=True)
class HostSetup:
    """Which WebUI to start and how: its folder and interpreter, the port, the checkpoint to load, extra
    host arguments and how long start-up may take."""

    webui_dir: Path
    python: Path
    port: int = DEFAULT_PORT
    ckpt: str | None = None
    args: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT_S

    @classmethod
    def from_env(cls) -> HostSetup:
        webui_dir, python = webui_paths()
        return cls(webui_dir, python, port=int(os.environ.get("SD_WEBUI_PORT", str(DEFAULT_PORT))),
                   ckpt=os.environ.get("SD_WEBUI_CKPT") or None,
                   args=tuple(shlex.split(os.environ.get("SD_WEBUI_ARGS", ""))),
                   timeout=float(os.environ.get("SD_WEBUI_TIMEOUT", str(DEFAULT_TIMEOUT_S))))

    def checked(self) -> HostSetup:
        """This setup with its folder resolved; NotConfigured when it is no WebUI or has no interpreter."""
        webui_dir = Path(self.webui_dir).expanduser().resolve()
        if not (webui_dir / "launch.py").is_file() or not Path(self.python).exists():
            msg = f"no launch.py in {webui_dir} or no interpreter at {self.python} (set SD_WEBUI_PYTHON)"
            raise NotConfigured(msg)
        return HostSetup(webui_dir, Path(self.python), self.port, self.ckpt, tuple(self.args), self.timeout)


def is_forge(webui: Path) -> bool:
    return (webui / "modules_forge").is_dir()


def launch_args(setup: HostSetup, *, ui: bool, auth: bool = True, extra: list[str] | None = None) -> list[str]:
    args = ["--api", "--port", str(setup.port), "--server-name", "127.0.0.1",
            "--skip-prepare-environment", "--skip-install", "--skip-torch-cuda-test", "--skip-version-check",
            "--skip-python-version-check", "--no-half", "--no-half-vae", "--no-hashing", "--disable-nan-check",
            "--do-not-download-clip", "--no-download-sd-model", "--cors-allow-origins", ALLOWED_ORIGIN,
            "--loglevel", "INFO"]  # the extension's info lines (refiner loads, the refiner UNet's inputs) are read
    if auth:
        args += ["--api-auth", f"{API_USER}:{API_PASSWORD}"]
        args += ["--gradio-auth", f"{UI_USER}:{UI_PASSWORD}"] if ui else []
    args += [] if ui else ["--nowebui"]
    if is_forge(setup.webui_dir):
        args += ["--always-cpu", "--all-in-fp32"]  # Forge's memory manager ignores --use-cpu
    else:
        args += ["--use-cpu", "all", "--precision", "full", "--opt-sdp-attention"]
    if setup.ckpt:
        args += ["--ckpt", setup.ckpt]
    return args + list(extra or []) + list(setup.args)


def webui_paths() -> tuple[Path, Path]:
    root = os.environ.get("SD_WEBUI_DIR", "").strip()
    if not root:
        raise NotConfigured("SD_WEBUI_DIR is not set (path to an A1111 or Forge checkout)")
    webui_dir = Path(root).expanduser().resolve()
    python = Path(os.environ.get("SD_WEBUI_PYTHON") or webui_dir / "venv" / "bin" / "python")
    if not (webui_dir / "launch.py").is_file() or not python.exists():
        raise NotConfigured(f"no launch.py in {webui_dir} or no interpreter at {python} (set SD_WEBUI_PYTHON)")
    return webui_dir, python


def link_extension(link: Path, target: Path) -> bool:
    """Link `target` as `link`; True when this call made it (False: the same link was there already).
    A link or folder of that name pointing elsewhere is NotConfigured: the run would test other code."""
    if link.is_symlink() or link.exists():
        if link.resolve() != target.resolve():
            raise NotConfigured(f"{link} exists and is not {target}; use a host folder of your own")
        return False
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(target, target_is_directory=True)
    return True


def host_settings_file(webui: Path, target: Path, settings: Mapping[str, Any]) -> Path:
    """A copy of the host's settings (its config.json, if any) with `settings` set, for `--ui-settings-file`
    (how UI-only settings, which an API request cannot set, reach the host)."""
    own = webui / "config.json"
    data = json.loads(own.read_text(encoding="utf-8")) if own.is_file() else {}
    data.update(settings)
    target.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return target


@contextlib.contextmanager
def running_webui(*, ui: bool, setup: HostSetup | None = None, log_name: str = "webui.log",
                  log_path: Path | None = None, env: Mapping[str, str] | None = None, auth: bool = True,
                  extra_args: list[str] | None = None, extension: Path = REPO,
                  more_extensions: Mapping[str, Path] | None = None,
                  settings: Mapping[str, Any] | None = None) -> Iterator[str]:
    """Start the host (`setup`, default: from the SD_WEBUI_* variables) with `extension` linked as
    sd-webui-fooocus and `more_extensions` ({link name: folder}) beside it, `settings` in a private copy of
    its settings file; wait until it has started and its API answers, yield its base URL; stop it (its own
    process group only) and remove the links made here afterwards."""
    setup = (setup or HostSetup.from_env()).checked()
    log_path = log_path or REPO / ".pytest_cache" / log_name
    log_path.parent.mkdir(parents=True, exist_ok=True)
    links = {LINK_NAME: extension, **(more_extensions or {})}
    made: list[Path] = []
    try:
        for name, target in links.items():
            link = setup.webui_dir / "extensions" / name
            if link_extension(link, target):
                made.append(link)
        extra = list(extra_args or [])
        if settings:
            written = host_settings_file(setup.webui_dir, log_path.with_suffix(".ui-config.json"), settings)
            extra += ["--ui-settings-file", str(written)]
        command = [str(setup.python), "launch.py", *launch_args(setup, ui=ui, auth=auth, extra=extra)]
        with log_path.open("w") as log:
            process = subprocess.Popen(command, cwd=setup.webui_dir, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True,
                                       env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
            try:
                base = f"http://127.0.0.1:{setup.port}"
                wait_until_started(process, base, log_path, setup.timeout, auth)
                yield base
            finally:
                stop(process)
    finally:
        for link in made:
            link.unlink()


def wait_until_started(process: subprocess.Popen, base: str, log_path: Path, timeout: float, auth: bool) -> None:
    """Return once the host has printed its start-up line and its API answers; LaunchError when it exits
    or `timeout` seconds pass first."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise LaunchError(f"the WebUI exited with {process.returncode}; see {log_path}")
        if time.monotonic() > deadline:
            raise LaunchError(f"the WebUI did not answer in {timeout:.0f} s; see {log_path}")
        # No request before the host says it is up: in UI mode the server already listens while
        # the host still adds its API middleware, which a first request would make it refuse
        # ("Cannot add middleware after an application has started"), and the host exits.
        if STARTED_MARKER in log_path.read_text(errors="replace"):
            try:
                if httpx.get(f"{base}/sdapi/v1/options", timeout=5,
                             auth=(API_USER, API_PASSWORD) if auth else None).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
        time.sleep(2)


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
