"""Start-up: loading the Script and building its UI (fake host, fresh interpreter) imports neither
transformers nor huggingface_hub; the expansion loads them on first use. Timing is bench/startup.py's job."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("host", ["a1111-1.6", "forge-main"])
def test_start_up_imports_no_transformers_or_huggingface_hub(host):
    done = subprocess.run([sys.executable, str(REPO / "bench" / "startup.py"), "--json", "--host", host],
                          capture_output=True, text=True, timeout=600, check=False, cwd=REPO)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout)
    assert set(result["timings"]) == {"import", "callbacks", "ui"}  # the UI was really built
    assert result["heavy"] == []
