"""A second virtual environment with the A1111 UI stack (gradio 3.41.2, fastapi 0.94, pydantic 1)
for the tests that must also pass under gradio 3. Created on first use in `<repo>/.venv-gradio3`
(about a minute from PyPI; reused afterwards while `requirements-gradio3.txt` is unchanged).

    python tests/webui_fakes/gradio3_env.py      # create it ahead of the test run (optional)

`FOOOCUS_GRADIO3_PYTHON=/path/to/python` uses an existing interpreter instead.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
REQUIREMENTS = HERE / "requirements-gradio3.txt"
VENV = REPO / ".venv-gradio3"
MARKER = ".fooocus-requirements-sha256"


class Gradio3Unavailable(RuntimeError):
    pass


def _python_in(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _wanted_hash() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def ensure_python(venv: Path = VENV) -> Path:
    """The gradio 3 interpreter, creating the environment when missing or outdated."""
    configured = os.environ.get("FOOOCUS_GRADIO3_PYTHON", "").strip()
    if configured:
        return Path(configured)
    python = _python_in(venv)
    marker = venv / MARKER
    if python.exists() and marker.exists() and marker.read_text().strip() == _wanted_hash():
        return python
    commands = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", str(REQUIREMENTS)],
    ]
    for command in commands:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            msg = f"could not create the gradio 3 environment ({' '.join(command[:4])}…): {done.stderr[-3000:]}"
            raise Gradio3Unavailable(msg)
    marker.write_text(_wanted_hash())
    return python


if __name__ == "__main__":
    print(ensure_python())
