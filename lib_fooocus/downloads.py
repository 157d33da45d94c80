"""The one verified downloader of the extension, and the Fooocus commit its downloads are pinned to.

Every file the extension fetches (Fooocus's style files and previews, the expansion model's small
files) goes through `download_verified`: it streams into a temporary file *in the target folder*,
checks size and sha256, flushes it to disk, and only then renames it over the target with
`os.replace` (atomic on one filesystem). A failed, truncated or wrong download therefore never
appears under the target's name, and a kill or a full disk leaves at most a hidden `.part` file.

`Transfer` is how a download in progress is shown (a status line polled by the UI): the downloader
counts the bytes it has received, or, for a download done by another library (the hub's), a
`measure` function reads the size of its partial file when the status is asked for.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Fooocus 2.5.5 as of lllyasviel/Fooocus commit 59f183ab: the style files, their previews and the
# expansion model's small files are pinned to this commit (and to their sha256 at it).
FOOOCUS_COMMIT = "59f183ab9b8e4a4bbf0fb8bc43886e19e8dfdfae"
FOOOCUS_RAW_URL = f"https://raw.githubusercontent.com/lllyasviel/Fooocus/{FOOOCUS_COMMIT}/"

CHUNK_BYTES = 1 << 16
USER_AGENT = "sd-webui-fooocus"


def human_size(count: int) -> str:
    """Bytes as a status line shows them: 512 B, 12.3 kB, 351.2 MB, 1.4 GB (decimal units)."""
    if count < 1000:
        return f"{count} B"
    value = float(count)
    for unit in ("kB", "MB", "GB"):
        value /= 1000
        if value < 1000 or unit == "GB":
            break
    return f"{value:.1f} {unit}"


@dataclass
class Transfer:
    """One file being downloaded, as a status line shows it. `received` is counted by our downloader;
    `measure()` (when set) reads the bytes so far from elsewhere, e.g. another library's partial file,
    and wins when it can tell. Written by the download thread, read by the status: plain int fields,
    so a reader sees an old or a new value, never a torn one."""

    name: str
    total: int | None = None
    received: int = 0
    measure: Callable[[], int | None] | None = None

    def bytes_so_far(self) -> int:
        if self.measure is not None:
            try:
                measured = self.measure()
            except OSError:
                measured = None
            if measured is not None:
                return measured
        return self.received

    def fraction(self) -> float | None:
        """Share done (0..1) when the size is known."""
        if not self.total:
            return None
        return min(1.0, self.bytes_so_far() / self.total)

    def describe(self) -> str:
        """"1.2 MB of 351.2 MB (0%)", or "1.2 MB" when the size is unknown."""
        done = self.bytes_so_far()
        fraction = self.fraction()
        if fraction is None or self.total is None:
            return human_size(done)
        return f"{human_size(done)} of {human_size(self.total)} ({int(fraction * 100)}%)"


def sha256_of_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _temporary_beside(target: Path) -> tuple[int, Path]:
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    return handle, Path(name)


def download_verified(
    url: str, target: Path, sha256: str, *, limit: int, timeout: float = 60.0, transfer: Transfer | None = None
) -> None:
    """Stream `url` into a temporary file next to `target`, check size and sha256, then rename it
    into place. On any problem the temporary file is removed and `target` is left untouched.
    Raises OSError (network, HTTP, disk) or ValueError (too big, truncated, wrong hash).
    `transfer`, when given, is kept up to date (size announced, bytes received) as data arrives."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    handle, temp = _temporary_beside(target)
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as response:
            declared = response.headers.get("Content-Length")
            if transfer is not None and declared is not None and declared.isdigit():
                transfer.total = int(declared)
            # read1: what has arrived (up to a chunk), so the count moves while a slow download runs
            for chunk in iter(lambda: response.read1(CHUNK_BYTES), b""):
                size += len(chunk)
                if transfer is not None:
                    transfer.received = size
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
