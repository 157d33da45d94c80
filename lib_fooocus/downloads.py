"""The one verified downloader of the extension, and the Fooocus commit its downloads are pinned to.

Every file the extension fetches (Fooocus's style files and previews, the expansion model's small
files) goes through `download_verified`: it streams into a temporary file *in the target folder*,
checks size and sha256, flushes it to disk, and only then renames it over the target with
`os.replace` (atomic on one filesystem). A failed, truncated or wrong download therefore never
appears under the target's name, and a kill or a full disk leaves at most a hidden `.part` file.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

# Fooocus 2.5.5 as of lllyasviel/Fooocus commit 59f183ab: the style files, their previews and the
# expansion model's small files are pinned to this commit (and to their sha256 at it).
FOOOCUS_COMMIT = "59f183ab9b8e4a4bbf0fb8bc43886e19e8dfdfae"
FOOOCUS_RAW_URL = f"https://raw.githubusercontent.com/lllyasviel/Fooocus/{FOOOCUS_COMMIT}/"

CHUNK_BYTES = 1 << 16
USER_AGENT = "sd-webui-fooocus"


def sha256_of_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _temporary_beside(target: Path) -> tuple[int, Path]:
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    return handle, Path(name)


def download_verified(url: str, target: Path, sha256: str, *, limit: int, timeout: float = 60.0) -> None:
    """Stream `url` into a temporary file next to `target`, check size and sha256, then rename it
    into place. On any problem the temporary file is removed and `target` is left untouched.
    Raises OSError (network, HTTP, disk) or ValueError (too big, truncated, wrong hash)."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    handle, temp = _temporary_beside(target)
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as response:
            declared = response.headers.get("Content-Length")
            for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                size += len(chunk)
                if size > limit:
                    msg = f"{url} is larger than {limit} bytes; refusing it"
                    raise ValueError(msg)
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if declared is not None and declared.isdigit() and int(declared) != size:
            msg = f"{url}: download truncated ({size} of {declared} bytes)"
            raise ValueError(msg)
        if digest.hexdigest() != sha256:
            msg = (f"{url}: sha256 {digest.hexdigest()} does not match the expected {sha256} "
                   "(truncated download or a changed file; check the base URL)")
            raise ValueError(msg)
        os.replace(temp, target)
    except urllib.error.HTTPError as exc:
        msg = f"{url}: HTTP {exc.code} {exc.reason}"
        raise OSError(msg) from exc
    except urllib.error.URLError as exc:
        msg = f"{url}: cannot connect ({exc.reason})"
        raise OSError(msg) from exc
    except http.client.HTTPException as exc:  # IncompleteRead, RemoteDisconnected, BadStatusLine, ...
        msg = f"{url}: download broken off ({type(exc).__name__}: {exc})"
        raise OSError(msg) from exc
    finally:
        if temp.exists():
            temp.unlink()


def copy_verified(source: str | os.PathLike[str], target: Path, sha256: str) -> None:
    """Install a file fetched elsewhere (e.g. into the Hugging Face cache) under `target` the same way:
    copy beside the target, check sha256, flush, rename. Raises ValueError on a wrong hash, OSError
    on a disk problem; `target` is left untouched either way."""
    handle, temp = _temporary_beside(target)
    try:
        with os.fdopen(handle, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, CHUNK_BYTES)
            out.flush()
            os.fsync(out.fileno())
        actual = sha256_of_file(temp)
        if actual != sha256:
            msg = f"{Path(source).name} has sha256 {actual}, expected {sha256}"
            raise ValueError(msg)
        os.replace(temp, target)
    finally:
        if temp.exists():
            temp.unlink()


def write_text_atomic(target: Path, text: str) -> None:
    handle, temp = _temporary_beside(target)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temp, target)
    finally:
        if temp.exists():
            temp.unlink()
