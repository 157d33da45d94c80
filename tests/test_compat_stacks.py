"""The host-free features also pass on the library versions the other hosts pin.

The main test environment has Forge main's pins (transformers 4.46, gradio 4.40, fastapi 0.104,
pydantic 2). Here the expansion, styles, prompt-assembly and parameter tests run again in two side
environments (see `webui_fakes/gradio3_env.py`): A1111's stack (transformers 4.30.2, gradio 3.41.2,
fastapi 0.94, pydantic 1) and the newest transformers release.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HOST_FREE_TESTS = [
    "tests/test_expansion.py",
    "tests/test_expansion_files.py",
    "tests/test_expansion_api.py",
    "tests/test_params.py",
    "tests/test_prompt_assembly.py",
    "tests/test_styles.py",
    "tests/test_styles_library.py",
    "tests/test_styles_import.py",
    "tests/test_styles_rest_cli.py",
]
EXPECTED_TRANSFORMERS = {"a1111": "4.30.2", "transformers-latest": "5."}

pytestmark = pytest.mark.skipif(
    os.environ.get("FOOOCUS_NESTED_RUN") == "1", reason="already inside a side environment"
)


@pytest.mark.parametrize("stack", ["a1111", "transformers-latest"])
def test_host_free_features_on_other_hosts_library_versions(stack):
    if os.environ.get("FOOOCUS_SKIP_GRADIO3") == "1":
        pytest.skip("FOOOCUS_SKIP_GRADIO3=1")
    from webui_fakes import gradio3_env

    python = gradio3_env.ensure_python(stack)
    version = subprocess.run(
        [str(python), "-c", "import transformers; print(transformers.__version__)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert version.startswith(EXPECTED_TRANSFORMERS[stack])
    env = {**os.environ, "FOOOCUS_NESTED_RUN": "1"}
    tests = HOST_FREE_TESTS if stack == "a1111" else HOST_FREE_TESTS[:3]
    done = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        capture_output=True, text=True, timeout=900, check=False, cwd=REPO, env=env,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
