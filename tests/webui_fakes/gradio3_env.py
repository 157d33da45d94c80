"""Side virtual environments for the tests that must also pass on other hosts' library versions:

- `a1111` (`<repo>/.venv-gradio3`): A1111's stack — gradio 3.41.2, fastapi 0.94, pydantic 1,
  transformers 4.30.2 (`requirements-a1111-stack.txt`);
- `transformers-latest` (`<repo>/.venv-tf-latest`): the newest transformers release.

Each is created on first use from the package index (about a minute) and reused while its
requirements file is unchanged. torch and the other main-environment packages are reached through a
`.pth` file that appends the main environment's site-packages after the side environment's own.

    python tests/webui_fakes/gradio3_env.py [a1111|transformers-latest]   # create ahead (optional)

`FOOOCUS_GRADIO3_PYTHON=/path/to/python` uses an existing interpreter for the `a1111` stack.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ENVIRONMENTS = {
    "a1111": (REPO / ".venv-gradio3", HERE / "requirements-a1111-stack.txt"),
    "transformers-latest": (REPO / ".venv-tf-latest", HERE / "requirements-transformers-latest.txt"),
}
MARKER = ".fooocus-requirements-sha256"


class Gradio3Unavailable(RuntimeError):
    pass


def _python_in(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _wanted_hash(requirements: Path) -> str:
    return hashlib.sha256(requirements.read_bytes()).hexdigest()


def _site_packages(python: Path | str) -> str:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def ensure_python(name: str = "a1111") -> Path:
    """The interpreter of side environment `name`, creating it when missing or outdated."""
    configured = os.environ.get("FOOOCUS_GRADIO3_PYTHON", "").strip()
    if configured and name == "a1111":
        return Path(configured)
    venv, requirements = ENVIRONMENTS[name]
    python = _python_in(venv)
    marker = venv / MARKER
    wanted = _wanted_hash(requirements)
    if python.exists() and marker.exists() and marker.read_text().strip() == wanted:
        return python
    commands = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", str(requirements)],
    ]
    for command in commands:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            msg = f"could not create the {name} environment ({' '.join(command[:4])}…): {done.stderr[-3000:]}"
            raise Gradio3Unavailable(msg)
    # Written after pip ran, so pip never saw (or changed) the main environment's packages.
    main_site = _site_packages(sys.executable)
    Path(_site_packages(python), "zz_fooocus_main_env.pth").write_text(main_site + "\n")
    marker.write_text(wanted)
    return python


if __name__ == "__main__":
    print(ensure_python(*sys.argv[1:2]))
