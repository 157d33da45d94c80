""""Match Fooocus" on a real WebUI against Fooocus's own images (tests/data/fooocus_parity).

    SD_WEBUI_DIR=/path/to/webui SD_WEBUI_PYTHON=... SD_WEBUI_CKPT=/root/hosts/models/sdxl_tiny.safetensors \
        SD_WEBUI_ARGS="--ckpt-dir /root/hosts/models" python -m pytest tests/webui/test_parity.py -q

The host is started by the tests' launcher (tests/webui/webui_host.py: SD_WEBUI_PORT, SD_WEBUI_TIMEOUT;
SD_WEBUI_PARITY_PORT, when set, overrides the port). Skipped when SD_WEBUI_DIR is unset. The references were made from `sdxl_tiny` (and `sdxl_tiny_b` as the
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
from dataclasses import replace
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
from webui_host import HostSetup, NotConfigured  # noqa: E402

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
    try:
        setup = HostSetup.from_env()
    except NotConfigured as why:
        pytest.skip(str(why))
    if not (DATA_DIR / "metadata.json").is_file():
        pytest.skip("no Fooocus reference data (tests/parity/make_fooocus_reference.py makes it)")
    if os.environ.get("SD_WEBUI_PARITY_PORT"):
        setup = replace(setup, port=int(os.environ["SD_WEBUI_PARITY_PORT"]))
    try:
        with running_host(setup, expansion_dir=expansion_folder["folder"]) as running:
            yield running
    except NotConfigured as why:  # e.g. the host folder links another checkout
        pytest.skip(str(why))


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
