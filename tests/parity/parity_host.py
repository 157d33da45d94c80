"""Host side of the Fooocus-parity check: run the parity cases through a real WebUI and compare with Fooocus.

Used by `bench/parity.py` (a table) and `tests/webui/test_parity.py` (assertions). Needs `httpx`, `numpy`,
`PIL` and `safetensors` (the project's test requirements); a host is started from its folder by the tests'
launcher (tests/webui/webui_host.py) with this checkout linked as an extension, plus the small probe
extension `bench/parity_probe` that saves the sampler's output latent of each generation (`post_sample`)
so latents can be compared too.

Host settings chosen to be Fooocus's: sampler DPM++ 2M SDE with the Karras schedule, the CPU random
source (`randn_source`), eta-noise-seed delta 0, our parity styles as the user style folder
(`SD_WEBUI_FOOOCUS_STYLES_DIR`), and the tricks' values of each case.

The expansion folder: the `expansion` reference was made with Fooocus's own small expansion files (the ones
the extension pins) plus seeded random weights, and records their sha256. Those files are not in this
repository (CC BY-NC word list): `SD_WEBUI_EXPANSION_SMALL_FILES` names a folder holding them (Fooocus's
`models/prompt_expansion/fooocus_expansion`), `prepare_expansion_folder` copies them next to the same seeded
weights into a scratch folder, checks every sha256 against the record, and the host is started with that
folder as its expansion folder, downloads off. Both are UI-only settings (the host ignores them in an API
request's `override_settings`), so they go into a private copy of the host's settings file
(`--ui-settings-file`), as a user's config.json would hold them.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cases import DATA_DIR, STYLES_DIR, ParityCase
from expansion_model import write_model_with_given_files

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "webui"))  # the one WebUI launcher (not a package)

from webui_host import API_PASSWORD, API_USER, HostSetup, is_forge, running_webui  # noqa: E402

PROBE = REPO / "bench" / "parity_probe"
PROBE_LINK = "fooocus-parity-probe"
LATENT_DIR_ENV = "FOOOCUS_PARITY_LATENT_DIR"
SMALL_FILES_ENV = "SD_WEBUI_EXPANSION_SMALL_FILES"
INFOTEXT_EXPANSION_KEY = "Fooocus V2 expansion"  # lib_fooocus.styles.assembly (not imported: no lib here)


# -- reference ----------------------------------------------------------------------------------------


def reference_metadata(data_dir: Path = DATA_DIR) -> dict[str, Any]:
    return json.loads((data_dir / "metadata.json").read_text(encoding="utf-8"))


def reference_image(case: ParityCase, data_dir: Path = DATA_DIR) -> Any:
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(data_dir / f"{case.name}.png").convert("RGB"))


def reference_latent(case: ParityCase, data_dir: Path = DATA_DIR) -> Any:
    from safetensors.numpy import load_file

    return load_file(str(data_dir / f"{case.name}.safetensors"))["sampler_latent"]


def psnr(a: Any, b: Any) -> float:
    """Peak signal-to-noise ratio of two uint8 images in dB (inf when identical)."""
    import numpy as np

    diff = a.astype(np.float64) - b.astype(np.float64)
    mse = float(np.mean(diff * diff))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


# -- expansion folder -------------------------------------------------------------------------------


class ExpansionFolderUnavailable(Exception):
    """No expansion folder can be made here (a reason to skip the expansion case, not a failure)."""


def recorded_expansion_model(case: ParityCase, data_dir: Path = DATA_DIR) -> dict[str, Any] | None:
    """The expansion model a case's reference was made with ({'sha256': {file: sha256}, ...}), or None."""
    if not case.expansion:
        return None
    return reference_metadata(data_dir)["cases"].get(case.name, {}).get("expansion_model")


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _differing(folder: Path, wanted: dict[str, str]) -> list[str]:
    return [name for name, sha in wanted.items() if not (folder / name).is_file() or _sha256(folder / name) != sha]


def prepare_expansion_folder(recorded: dict[str, Any] | None, small_files: str | None, scratch: Path) -> Path:
    """The expansion folder for a host: the small files from `small_files` (a folder; the value of
    SD_WEBUI_EXPANSION_SMALL_FILES) + the seeded weights, under `scratch`, every file's sha256 equal to
    the `recorded` one (made once, reused while it still matches). Raises `ExpansionFolderUnavailable`
    when there is nothing to make it from, and ValueError when the files differ from the reference's."""
    if not recorded or not recorded.get("sha256"):
        msg = "the expansion reference records no model files (remake it with --expansion-small-files)"
        raise ExpansionFolderUnavailable(msg)
    if not (small_files or "").strip():
        msg = (f"{SMALL_FILES_ENV} is not set: it names the folder with Fooocus's seven small expansion files "
               "(Fooocus's models/prompt_expansion/fooocus_expansion), which this repository does not hold")
        raise ExpansionFolderUnavailable(msg)
    source = Path(small_files.strip()).expanduser()
    if not source.is_dir():
        msg = f"{SMALL_FILES_ENV}={source} is not a folder"
        raise ExpansionFolderUnavailable(msg)
    wanted: dict[str, str] = dict(recorded["sha256"])
    folder = scratch / f"fooocus-parity-expansion-{wanted.get('model.safetensors', 'none')[:12]}"
    if folder.is_dir() and not _differing(folder, wanted):
        return folder
    given = {name: sha for name, sha in wanted.items() if name != "model.safetensors"}
    other = _differing(source, given)
    if other:
        msg = (f"{source} holds other expansion files than the reference was made with ({', '.join(other)} "
               "differ or are missing): it must be Fooocus's own, the ones the extension pins")
        raise ValueError(msg)
    write_model_with_given_files(folder, source)
    other = _differing(folder, wanted)
    if other:
        msg = (f"the seeded expansion weights written here differ from the reference's ({', '.join(other)}): "
               "numpy's PCG64 normal draws changed? See tests/parity/expansion_model.py")
        raise ValueError(msg)
    return folder


def expansion_settings(expansion_dir: Path | None) -> dict[str, Any]:
    """The UI-only settings that make the host use `expansion_dir`, offline; none without a folder."""
    if expansion_dir is None:
        return {}
    return {"fooocus_expansion_model_dir": str(expansion_dir), "fooocus_expansion_allow_download": False}


# -- request ------------------------------------------------------------------------------------------


def fooocus_args(case: ParityCase, refiner_title: str | None, match: bool | None) -> dict[str, Any]:
    args: dict[str, Any] = {
        "enabled": True, "sharpness": case.sharpness, "adaptive_cfg": case.adaptive_cfg,
        "adm_scaler_positive": case.adm_scaler_positive, "adm_scaler_negative": case.adm_scaler_negative,
        "adm_scaler_end": case.adm_scaler_end, "expansion": case.expansion, "styles": list(case.plain_styles),
    }
    if case.refiner:
        args["refiner_checkpoint"] = refiner_title or "None"
        args["refiner_switch"] = case.switch_step / case.steps
    if match is not None:
        args["match_fooocus"] = match
    return args


def txt2img_request(case: ParityCase, *, forge: bool, refiner_title: str | None, match: bool | None) -> dict[str, Any]:
    request: dict[str, Any] = {
        "prompt": case.prompt, "negative_prompt": case.negative, "seed": case.seed, "steps": case.steps,
        "width": case.width, "height": case.height, "cfg_scale": case.cfg, "batch_size": 1, "n_iter": 1,
        "send_images": True, "save_images": False,
        "override_settings": {"randn_source": "CPU", "eta_noise_seed_delta": 0, "fooocus_expansion_device": "CPU"},
        "override_settings_restore_afterwards": True,
        "alwayson_scripts": {"fooocus": {"args": [fooocus_args(case, refiner_title, match)]}},
    }
    if forge:
        request.update(sampler_name="DPM++ 2M SDE", scheduler="Karras")
    else:  # A1111 before 1.9 has the schedule in the sampler's name
        request["sampler_name"] = "DPM++ 2M SDE Karras"
    return request


def decode_image(response_json: dict[str, Any]) -> Any:
    import numpy as np
    from PIL import Image

    data = response_json["images"][0]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data.split(",", 1)[-1]))).convert("RGB"))


# -- host process -------------------------------------------------------------------------------------


@dataclass
class Host:
    client: Any
    webui: Path
    latent_dir: Path
    log_path: Path

    @property
    def forge(self) -> bool:
        return is_forge(self.webui)

    def refiner_title(self, file_name: str) -> str | None:
        for model in self.client.get("/sdapi/v1/sd-models").json():
            if model["title"].startswith(file_name) or Path(model.get("filename", "")).name == file_name:
                return model["title"]
        return None

    def generate(self, case: ParityCase, match: bool | None,
                 refiner_file: str = "sdxl_tiny_b.safetensors") -> dict[str, Any]:
        """One case: {'status', 'image', 'latent', 'info', 'expansion', 'error'} ('expansion': the text
        the host's infotext records, '' when none)."""
        latent_file = self.latent_dir / "last.safetensors"
        latent_file.unlink(missing_ok=True)
        title = self.refiner_title(refiner_file) if case.refiner else None
        body = txt2img_request(case, forge=self.forge, refiner_title=title, match=match)
        response = self.client.post("/sdapi/v1/txt2img", json=body)
        result: dict[str, Any] = {"status": response.status_code, "image": None, "latent": None, "info": "",
                                  "expansion": "", "error": ""}
        if response.status_code != 200:
            result["error"] = response.text[:500]
            return result
        payload = response.json()
        result["image"] = decode_image(payload)
        info = json.loads(payload.get("info") or "{}")
        result["info"] = info.get("infotexts", [""])[0]
        expansion = (info.get("extra_generation_params") or {}).get(INFOTEXT_EXPANSION_KEY, "")
        result["expansion"] = expansion[0] if isinstance(expansion, list) else str(expansion)
        if latent_file.exists():
            from safetensors.numpy import load_file

            result["latent"] = load_file(str(latent_file))["samples"]
        return result


@contextmanager
def running_host(setup: HostSetup, *, log_path: Path | None = None, extension: Path = REPO,
                 expansion_dir: Path | None = None) -> Iterator[Host]:
    """Start the host of `setup` through the tests' launcher (tests/webui/webui_host.py) with `extension`
    (default: this checkout) and the latent probe linked in, our parity styles as its user styles and
    `expansion_dir` (see `prepare_expansion_folder`) as its expansion folder; stop it (and unlink) afterwards."""
    import httpx

    latent_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"fooocus-parity-latents-{setup.port}"
    latent_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_path or latent_dir / "host.log"
    env = {"SD_WEBUI_FOOOCUS_STYLES_DIR": str(STYLES_DIR), LATENT_DIR_ENV: str(latent_dir)}
    with running_webui(ui=False, setup=setup, log_path=log_path, env=env, extension=extension,
                       more_extensions={PROBE_LINK: PROBE}, settings=expansion_settings(expansion_dir)) as base, \
            httpx.Client(base_url=base, timeout=1800, auth=(API_USER, API_PASSWORD)) as client:
        yield Host(client, setup.webui_dir.resolve(), latent_dir, log_path)
