"""One-click import of Fooocus's own styles (not bundled: they are part of a GPL repository).

Downloads the six `sdxl_styles/*.json` files of Fooocus at a pinned commit (and, on request, the 279
preview JPEGs) into the user styles folder. Every file is checked against its sha256 and written
atomically: it is streamed into a temporary file in the destination folder and renamed into place
only when complete and correct, so a failed, truncated or wrong file never appears under its name.

The base URL is configurable (argument, or $SD_WEBUI_FOOOCUS_STYLES_BASE_URL) for mirrors and tests.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from lib_fooocus.downloads import (
    FOOOCUS_RAW_URL,
    download_verified,
    sha256_of_file,
    write_text_atomic,
)
from lib_fooocus.styles.library import PREVIEW_FOLDER, StyleLibrary, default_user_styles_dir

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = f"{FOOOCUS_RAW_URL}sdxl_styles/"
BASE_URL_ENV = "SD_WEBUI_FOOOCUS_STYLES_BASE_URL"

FOOOCUS_STYLE_SHA256: dict[str, str] = {
    "sdxl_styles_fooocus.json": "1251fd16ac0862e99a6ecb1969e10cef13af43b9a1ddd715013cd6d7c856e0f9",
    "sdxl_styles_sai.json": "a70cfade8c71bc697a188a5f7f9eed531c2ac7446fcb6044114dbabaef5103fb",
    "sdxl_styles_mre.json": "150db608f01912ea68a8f6f2c1f946dd1f123c68eb7ece61965dda978385210e",
    "sdxl_styles_twri.json": "3296a6a0b0572924e792dd330b374e12900f18deae05bf9158b9295ec2a96761",
    "sdxl_styles_diva.json": "6a0d06f876628c85f7aec07e1aeb841dd2b34e4aff0e6eda61ec74e96fab5150",
    "sdxl_styles_marc_k3nt3l.json": "8381c538d3ed15b99d4bfab5229c73466cab92cd5a458264f91098fe2f72fcdd",
}
PREVIEW_HASHES_FILE = Path(__file__).with_name("fooocus_preview_sha256.txt")

MAX_STYLE_FILE_BYTES = 1 << 20  # the real files are 4-25 KB
MAX_PREVIEW_BYTES = 1 << 20  # the real previews are at most 49 KB


@dataclass
class ImportResult:
    folder: Path
    downloaded: list[str] = field(default_factory=list)
    already_present: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        text = f"{len(self.downloaded)} downloaded, {len(self.already_present)} already present"
        if self.failures:
            text += f", {len(self.failures)} failed"
        return f"{text} (in {self.folder})"


def preview_hashes() -> dict[str, str]:
    """File name → sha256 of Fooocus's preview images at the pinned commit."""
    table: dict[str, str] = {}
    for line in PREVIEW_HASHES_FILE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            digest, name = line.split(maxsplit=1)
            table[name.strip()] = digest
    return table


def resolve_base_url(base_url: str | None = None) -> str:
    url = base_url or os.environ.get(BASE_URL_ENV, "").strip() or DEFAULT_BASE_URL
    return url if url.endswith("/") else url + "/"


def import_fooocus_styles(
    dest: str | os.PathLike[str] | None = None,
    *,
    base_url: str | None = None,
    expected: Mapping[str, str] = FOOOCUS_STYLE_SHA256,
    previews: bool = False,
    expected_previews: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    workers: int = 4,
    progress: Callable[[str], None] | None = None,
) -> ImportResult:
    """Download Fooocus's style files (and previews) into `dest` (default: the user styles folder).

    Files already present with the right hash are left alone. Failures are collected, not raised:
    check `result.ok` / `result.failures`."""
    folder = Path(dest).expanduser() if dest else default_user_styles_dir()
    folder.mkdir(parents=True, exist_ok=True)
    url = resolve_base_url(base_url)
    result = ImportResult(folder)
    jobs = [(name, digest, folder / name, url + name, MAX_STYLE_FILE_BYTES) for name, digest in expected.items()]
    if previews:
        samples = folder / PREVIEW_FOLDER
        samples.mkdir(exist_ok=True)
        table = preview_hashes() if expected_previews is None else expected_previews
        jobs += [
            (f"{PREVIEW_FOLDER}/{name}", digest, samples / name, f"{url}{PREVIEW_FOLDER}/{name}", MAX_PREVIEW_BYTES)
            for name, digest in table.items()
        ]

    def run(job: tuple[str, str, Path, str, int]) -> tuple[str, str | None, bool]:
        label, digest, target, source, limit = job
        if target.is_file() and sha256_of_file(target) == digest:
            return label, None, False
        try:
            download_verified(source, target, digest, limit=limit, timeout=timeout)
        except (OSError, ValueError) as exc:
            return label, str(exc), False
        return label, None, True

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for label, error, fetched in pool.map(run, jobs):
            if error:
                result.failures[label] = error
                logger.warning("Fooocus styles import: %s: %s", label, error)
            elif fetched:
                result.downloaded.append(label)
            else:
                result.already_present.append(label)
            if progress:
                progress(f"{label}: {'failed: ' + error if error else 'ok'}")
    return result


def import_a1111_csv(
    csv_path: str | os.PathLike[str], dest: str | os.PathLike[str] | None = None
) -> tuple[Path, int, list[str]]:
    """Convert an A1111 `styles.csv` into a Fooocus-format file `a1111_<name>.json` in `dest` (default:
    the user styles folder). A1111's rule for styles without `{prompt}` becomes a '{prompt}, ...'
    template. Returns the written path, the number of styles and the warnings about skipped rows.
    (A CSV placed in a styles folder is also read directly; converting makes it editable as JSON.)"""
    source = Path(csv_path).expanduser()
    if not source.is_file():
        msg = f"{source} does not exist or is not a file; give the path of an A1111 styles.csv"
        raise ValueError(msg)
    library = StyleLibrary.load([source])
    if library.warnings and not library.styles:
        raise ValueError("; ".join(library.warnings))
    folder = Path(dest).expanduser() if dest else default_user_styles_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"a1111_{source.stem}.json"
    entries = [{"name": s.name, "prompt": s.prompt, "negative_prompt": s.negative_prompt}
               for s in library.styles.values()]
    write_text_atomic(target, json.dumps(entries, indent=2, ensure_ascii=False) + "\n")
    return target, len(entries), list(library.warnings)
