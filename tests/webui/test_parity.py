""""Match Fooocus" on a real WebUI against Fooocus's own images (tests/data/fooocus_parity).

    SD_WEBUI_DIR=/path/to/webui SD_WEBUI_PYTHON=... SD_WEBUI_CKPT=/root/hosts/models/sdxl_tiny.safetensors \
        SD_WEBUI_ARGS="--ckpt-dir /root/hosts/models" python -m pytest tests/webui/test_parity.py -q

Skipped when SD_WEBUI_DIR is unset. The references were made from `sdxl_tiny` (and `sdxl_tiny_b` as the
refiner), so the host must load that checkpoint and list the second one (`--ckpt-dir`). Every case runs
with `match_fooocus` on and must reach PSNR >= 50 dB against Fooocus's decoded image; an extension
without the `match_fooocus` field skips (the harness's `bench/parity.py --match off` measures that state).

The `expansion` case needs Fooocus's own small expansion files, which this repository does not hold:
SD_WEBUI_EXPANSION_SMALL_FILES names their folder (Fooocus's models/prompt_expansion/fooocus_expansion);
without it that case skips, saying so. With it, the host's expansion text must also be the one Fooocus
made (same sha256) before the image is compared.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("httpx")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "parity"))

from cases import CASES, CASES_BY_NAME, DATA_DIR  # noqa: E402
from expansion_model import expansion_digest  # noqa: E402
from parity_host import (  # noqa: E402
    SMALL_FILES_ENV,
    ExpansionFolderUnavailable,
    prepare_expansion_folder,
    psnr,
    recorded_expansion_model,
    reference_image,
    reference_metadata,
    running_host,
)

pytestmark = pytest.mark.webui
MIN_PSNR_DB = 50.0


@pytest.fixture(scope="module")
def expansion_folder(tmp_path_factory) -> dict:
    """{'folder': Path or None, 'reason': why there is none}."""
    if not (DATA_DIR / "metadata.json").is_file():
        return {"folder": None, "reason": "no reference data"}
    recorded = recorded_expansion_model(CASES_BY_NAME["expansion"])
    scratch = Path(os.environ.get("SD_WEBUI_PARITY_SCRATCH") or tmp_path_factory.getbasetemp())
    try:
        return {"folder": prepare_expansion_folder(recorded, os.environ.get(SMALL_FILES_ENV), scratch), "reason": ""}
    except ExpansionFolderUnavailable as error:
        return {"folder": None, "reason": str(error)}


@pytest.fixture(scope="module")
def host(expansion_folder):
    root = os.environ.get("SD_WEBUI_DIR", "").strip()
    if not root:
        pytest.skip("SD_WEBUI_DIR is not set (path to an A1111 or Forge checkout)")
    webui = Path(root).expanduser()
    python = Path(os.environ.get("SD_WEBUI_PYTHON") or webui / "venv" / "bin" / "python")
    if not (webui / "launch.py").is_file() or not python.exists():
        pytest.skip(f"no launch.py in {webui} or no interpreter at {python}")
    if not (DATA_DIR / "metadata.json").is_file():
        pytest.skip("no Fooocus reference data (tests/parity/make_fooocus_reference.py makes it)")
    port = int(os.environ.get("SD_WEBUI_PARITY_PORT", os.environ.get("SD_WEBUI_PORT", "7951")))
    with running_host(webui, python, port, ckpt=os.environ.get("SD_WEBUI_CKPT"),
                      extra_args=os.environ.get("SD_WEBUI_ARGS", ""),
                      expansion_dir=expansion_folder["folder"]) as running:
        yield running


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_match_fooocus_gives_fooocus_image(host, expansion_folder, case) -> None:
    if not (DATA_DIR / f"{case.name}.png").is_file():
        pytest.skip(f"no reference data for {case.name}")
    if case.expansion and expansion_folder["folder"] is None:
        pytest.skip(f"{case.name}: {expansion_folder['reason']}")
    result = host.generate(case, match=True)
    if result["status"] == 422 and "match_fooocus" in result["error"]:
        pytest.skip("this extension has no match_fooocus field yet")
    assert result["status"] == 200, result["error"]
    if case.expansion:
        wanted = reference_metadata()["cases"][case.name]["expansion_sha256"]
        assert result["expansion"], f"the host expanded nothing (info: {result['info'][:300]})"
        assert expansion_digest(result["expansion"]) == wanted, "the host's expansion text is not Fooocus's"
    value = psnr(result["image"], reference_image(case))
    assert value >= MIN_PSNR_DB, f"{case.name}: PSNR {value:.2f} dB vs Fooocus (info: {result['info'][:300]})"
