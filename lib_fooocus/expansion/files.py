"""The Fooocus V2 expansion model folder: what it must hold, checking it, downloading it, converting it.

Folder layout (the same names Fooocus uses in models/prompt_expansion/fooocus_expansion/):
    config.json, tokenizer.json, vocab.json, merges.txt, tokenizer_config.json,
    special_tokens_map.json, positive.txt              -- small files, pinned by sha256
    model.safetensors                                  -- the weights, written by us
    pytorch_model.bin or fooocus_expansion.bin         -- the original pickle (optional once converted)

Where the files come from (`ExpansionSource`):
- small files: Fooocus's GitHub repository at a pinned commit (`files_url`), or any Hugging Face repo
  holding the same seven files (`files_repo` + `files_revision`, through `huggingface_hub`); either
  way each file must match its pinned sha256;
- weights: `fooocus_expansion.bin` in the Hugging Face repo `lllyasviel/misc` (repo, revision and file
  name are settings), through `hf_hub_download` (its cache, resume, progress bar, `HF_ENDPOINT`,
  `HF_HUB_OFFLINE`), checked against the sha256 the hub reports for the file (its LFS etag).
A pickle is only ever opened with `torch.load(..., weights_only=True)`, then kept as safetensors (in the
folder, or once in a per-user cache folder when the folder is read-only).
Nothing half-downloaded or unverified ever lands in the folder: files are verified first, then moved.
A present small file whose sha256 is not the pinned one, and weights that cannot be read (truncated,
damaged), count as damaged: they are downloaded again when downloading is allowed, and otherwise
refused with one message naming them. Files placed by hand in the folder work fully offline.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib_fooocus.downloads import (
    FOOOCUS_COMMIT,
    FOOOCUS_RAW_URL,
    Transfer,
    copy_verified,
    download_verified,
    sha256_of_file,
)

log = logging.getLogger(__name__)

LICENSE_NOTICE = (
    "Fooocus V2 expansion model, vocabulary and word list: if used outside Fooocus, only non-commercial "
    "use is permitted (CC BY-NC 4.0), per their author (lllyasviel)."
)

FOOOCUS_FOLDER = "models/prompt_expansion/fooocus_expansion"
DEFAULT_FILES_URL = f"{FOOOCUS_RAW_URL}{FOOOCUS_FOLDER}/"

# sha256 of the small files in Fooocus's repository at FOOOCUS_COMMIT.
SMALL_FILES: dict[str, str] = {
    "config.json": "55a78bf7ce753eafb57a7d0b3a8f9680fa6d2530535d32b6296a0735a6922fb3",
    "tokenizer.json": "86f12f9648802a0c45c4b87ef2ab235e9bfdf1a43cc40571291507c81e35c4c3",
    "vocab.json": "3ba3c3109ff33976c4bd966589c11ee14fcaa1f4c9e5e154c2ed7f99d80709e7",
    "merges.txt": "fe36cab26d4f4421ed725e10a2e9ddb7f799449c603a96e7f29b5a3c82a95862",
    "tokenizer_config.json": "0f7123cb7e1be4e9c2e8770bd3c00f73d75364fb71680d0412d6263e7af2654c",
    "special_tokens_map.json": "6f50ab5a5a509a1c309d6171f339b196a900dc9c99ad0408ff23bb615fdae7ad",
    "positive.txt": "ac571555cce32ad1b693d9405a0c613be13a79aba798a96455060cd8b53b910e",
}
MAX_SMALL_FILE_BYTES = 8 << 20  # tokenizer.json, the largest, is 2.1 MB
SAFETENSORS_NAME = "model.safetensors"
PICKLE_NAMES = ("pytorch_model.bin", "fooocus_expansion.bin")  # Fooocus's name, the hub's name
WEIGHTS_LABEL = f"{SAFETENSORS_NAME} (or the original pickle as {' or '.join(PICKLE_NAMES)})"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_BUFFER_SUFFIXES = (".attn.bias", ".attn.masked_bias")  # causal-mask buffers, rebuilt by the model


@dataclass(frozen=True)
class ExpansionSource:
    """Where missing files are downloaded from."""

    weights_repo: str = "lllyasviel/misc"
    weights_revision: str = "main"
    weights_filename: str = "fooocus_expansion.bin"
    # Optional pin on top of the hub's own sha256. Not pinned by default: a third-party manifest says
    # dd54cc90d95d2c72b97830e4b38f44a6521847284d5b9dbcfd16ba82779cdeb3, but no independent public
    # source confirmed it, so the sha256 the hub reports (the LFS etag) is the check.
    weights_sha256: str | None = None
    files_url: str = DEFAULT_FILES_URL
    files_repo: str | None = None
    files_revision: str = "main"
    endpoint: str | None = None  # None: huggingface_hub's own (HF_ENDPOINT or huggingface.co)
    cache_dir: str | None = None  # None: huggingface_hub's cache (HF_HOME / HF_HUB_CACHE)
    hashes: tuple[tuple[str, str], ...] | None = None  # None: SMALL_FILES

    def file_hashes(self) -> dict[str, str]:
        return dict(SMALL_FILES if self.hashes is None else self.hashes)


class ExpansionUnavailableError(RuntimeError):
    """The expansion cannot run; the message says why and what to do (the host keeps generating)."""


class MissingExpansionFilesError(ExpansionUnavailableError):
    """The model folder lacks files (or holds damaged ones) and they could not be downloaded. The
    message lists exactly which files, where to put them and the licence."""

    def __init__(
        self,
        model_dir: str | Path,
        missing: Iterable[str],
        reason: str = "",
        *,
        damaged: dict[str, str] | None = None,
        download_failed: bool = False,
    ):
        self.model_dir = str(model_dir)
        self.missing = list(missing)
        self.reason = reason
        self.damaged = dict(damaged or {})
        self.download_failed = download_failed  # a download was tried and failed (worth a back-off)
        super().__init__(self._message())

    def with_note(self, note: str) -> MissingExpansionFilesError:
        """The same error with `note` added to the reason."""
        reason = f"{self.reason} {note}".strip()
        return MissingExpansionFilesError(
            self.model_dir, self.missing, reason, damaged=self.damaged, download_failed=self.download_failed
        )

    def _message(self) -> str:
        parts = ["Fooocus V2 expansion is unavailable:"]
        if self.missing:
            parts.append(f"missing in {self.model_dir}: {', '.join(self.missing)}.")
        if self.damaged:
            listed = "; ".join(f"{name} ({why})" for name, why in self.damaged.items())
            parts.append(f"Damaged in {self.model_dir}: {listed}.")
        if self.reason:
            parts.append(self.reason)
        parts.append(
            f"Allow the download (weights: fooocus_expansion.bin from the Hugging Face repo lllyasviel/misc; "
            f"small files: github.com/lllyasviel/Fooocus at commit {FOOOCUS_COMMIT[:8]}, folder {FOOOCUS_FOLDER}), "
            f"or put those files into {self.model_dir} by hand (the weights as {WEIGHTS_LABEL})."
        )
        parts.append(LICENSE_NOTICE)
        return " ".join(parts)


class ExpansionDownloadError(RuntimeError):
    """A download failed or did not verify; nothing of it was put into the model folder."""


class UnsafeWeightsError(ExpansionUnavailableError):
    """The weights pickle holds something other than plain tensors and was refused."""


class BrokenWeightsError(ExpansionUnavailableError):
    """A weights file cannot be read (truncated, damaged, not a model); the message names it."""

    def __init__(self, path: str | Path, why: str):
        self.path = Path(path)
        self.why = why
        super().__init__(
            f"Fooocus V2 expansion is unavailable: the weights file {self.path} cannot be read ({why}). "
            "It is damaged or incomplete: delete it and allow the download (setting "
            "fooocus_expansion_allow_download), or put a good copy there by hand."
        )


# ---- checking ---------------------------------------------------------------------------------------


def weights_candidates(model_dir: str | Path) -> list[Path]:
    """Present weights files in the order they are tried: our safetensors copy in the folder, our copy
    in the per-user cache (read-only folders), then an original pickle (converted on first use)."""
    model_dir = Path(model_dir)
    ordered = [model_dir / SAFETENSORS_NAME, _fallback_safetensors_path(model_dir)]
    ordered += [model_dir / name for name in PICKLE_NAMES]
    return [path for path in ordered if path.is_file()]


def find_weights(model_dir: str | Path) -> Path | None:
    """The first weights file present (see `weights_candidates`), not yet checked."""
    candidates = weights_candidates(model_dir)
    return candidates[0] if candidates else None


def missing_files(model_dir: str | Path, names: Iterable[str] | None = None) -> list[str]:
    """Names of the files the folder lacks (the weights count as one entry)."""
    model_dir = Path(model_dir)
    missing = [name for name in (SMALL_FILES if names is None else names) if not (model_dir / name).is_file()]
    if find_weights(model_dir) is None:
        missing.append(WEIGHTS_LABEL)
    return missing


def _matches(path: Path, expected: str) -> bool:
    """sha256 equal to the pinned one; a text file checked out with Windows line ends counts too."""
    if sha256_of_file(path) == expected:
        return True
    data = path.read_bytes()
    return b"\r\n" in data and hashlib.sha256(data.replace(b"\r\n", b"\n")).hexdigest() == expected


def files_with_other_content(model_dir: str | Path, hashes: dict[str, str] | None = None) -> list[str]:
    """Present small files whose sha256 differs from the pinned one (damaged, or from elsewhere)."""
    model_dir = Path(model_dir)
    hashes = SMALL_FILES if hashes is None else hashes
    return [
        name
        for name, expected in hashes.items()
        if (model_dir / name).is_file() and not _matches(model_dir / name, expected)
    ]


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as set now (huggingface_hub reads it once at import)."""
    value = os.environ.get("HF_HUB_OFFLINE")
    if value is None:
        try:
            from huggingface_hub import constants

            return bool(constants.HF_HUB_OFFLINE)
        except (ImportError, AttributeError):
            return False
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def ensure_expansion_files(
    model_dir: str | Path,
    source: ExpansionSource | None = None,
    *,
    allow_download: bool = True,
    progress: Callable[[str], None] | None = None,
    on_transfer: Callable[[Transfer | None], None] | None = None,
) -> Path:
    """Make the folder complete and sound, downloading what is missing or damaged if allowed and
    online, or raise `MissingExpansionFilesError` naming every missing or damaged file. Returns the
    weights (safetensors) to load. `progress(text)` is told each step (for a status line), and
    `on_transfer(transfer)` is handed each download as it starts (None when the downloads are over),
    whose bytes so far a status line can read while it runs."""
    model_dir = Path(model_dir)
    source = source or ExpansionSource()
    hashes = source.file_hashes()
    tell = progress or (lambda _text: None)
    watch = on_transfer or (lambda _transfer: None)
    tell("checking the model files")
    missing = missing_files(model_dir, hashes)
    damaged = {name: "sha256 differs from the pinned one" for name in files_with_other_content(model_dir, hashes)}
    if WEIGHTS_LABEL not in missing:
        tell("checking the weights")
        try:
            weights = prepare_weights(model_dir)
        except BrokenWeightsError as error:
            damaged[error.path.name] = error.why
        else:
            if not missing and not damaged:
                return weights
    if not allow_download:
        raise MissingExpansionFilesError(model_dir, missing, "Downloading is turned off.", damaged=damaged)
    if hub_offline():
        raise MissingExpansionFilesError(
            model_dir, missing, "HF_HUB_OFFLINE is set, so nothing is downloaded.", damaged=damaged
        )
    weights_needed = WEIGHTS_LABEL in missing or any(name not in hashes for name in damaged)
    small = [name for name in hashes if name in missing or name in damaged]
    try:
        _download(model_dir, small, weights_needed, hashes, source, tell, watch, damaged)
    finally:
        watch(None)
    tell("checking the weights")
    return prepare_weights(model_dir)


def _download(
    model_dir: Path,
    small: list[str],
    weights_needed: bool,
    hashes: dict[str, str],
    source: ExpansionSource,
    tell: Callable[[str], None],
    watch: Callable[[Transfer | None], None],
    damaged: dict[str, str],
) -> None:
    log.warning("%s", LICENSE_NOTICE)
    wanted = list(small)
    if weights_needed:
        wanted.append(f"the weights ({source.weights_filename} from the hub repo {source.weights_repo})")
    log.warning("Fooocus V2 expansion: downloading %s into %s", ", ".join(wanted), model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    total = len(wanted)
    try:
        for number, name in enumerate(small, 1):
            tell(f"downloading {name} ({number}/{total})")
            transfer = Transfer(name)
            watch(transfer)
            download_small_file(name, hashes[name], model_dir, source, transfer)
        if weights_needed:
            tell(f"downloading {source.weights_filename} ({total}/{total}, the large one)")
            transfer = Transfer(source.weights_filename)
            watch(transfer)
            download_weights(model_dir, source, transfer)
    except ExpansionDownloadError as error:
        still_missing = missing_files(model_dir, hashes)
        still_damaged = {name: why for name, why in damaged.items() if name not in hashes}  # the weights
        still_damaged.update({name: "sha256 differs" for name in files_with_other_content(model_dir, hashes)})
        raise MissingExpansionFilesError(
            model_dir,
            still_missing,
            f"The download failed: {error}",
            damaged=still_damaged,
            download_failed=True,
        ) from error


# ---- downloading ------------------------------------------------------------------------------------


def download_small_file(
    name: str, expected_sha256: str, model_dir: Path, source: ExpansionSource, transfer: Transfer | None = None
) -> Path:
    """Fetch one small file into the folder through the verified downloader (never a partial file).
    `transfer` follows the bytes received (direct downloads; a hub download is shown by name only)."""
    target = model_dir / name
    try:
        if source.files_repo:
            fetched = _hub_download(source.files_repo, name, source.files_revision, source)
            copy_verified(fetched, target, expected_sha256)
        else:
            url = source.files_url.rstrip("/") + "/" + name
            download_verified(url, target, expected_sha256, limit=MAX_SMALL_FILE_BYTES, timeout=30,
                              transfer=transfer)
    except (OSError, ValueError) as error:
        msg = f"could not install {name}: {error}"
        raise ExpansionDownloadError(msg) from error
    return target


def _accepts(function: Any, name: str) -> bool:
    import inspect

    return name in inspect.signature(function).parameters


def _hub_version() -> tuple[int, int]:
    import huggingface_hub

    major, minor = huggingface_hub.__version__.split(".")[:2]
    return int(major), int(re.sub(r"\D.*", "", minor) or 0)


def _endpoint_kwargs(function: Any, source: ExpansionSource) -> dict[str, Any]:
    """`endpoint=` where this huggingface_hub takes it (0.17+); older ones read HF_ENDPOINT only."""
    if not source.endpoint:
        return {}
    if not _accepts(function, "endpoint"):
        import huggingface_hub

        msg = (
            f"huggingface_hub {huggingface_hub.__version__} cannot take a hub address setting; set the "
            "HF_ENDPOINT environment variable before starting instead"
        )
        raise ExpansionDownloadError(msg)
    return {"endpoint": source.endpoint}


def _hub_download(repo: str, filename: str, revision: str, source: ExpansionSource) -> str:
    from huggingface_hub import hf_hub_download

    kwargs = _endpoint_kwargs(hf_hub_download, source)
    if source.cache_dir:
        kwargs["cache_dir"] = source.cache_dir
    if _hub_version() < (0, 23) and _accepts(hf_hub_download, "resume_download"):
        kwargs["resume_download"] = True  # the default (and deprecated) from 0.23 on
    try:
        return hf_hub_download(repo_id=repo, filename=filename, revision=revision, **kwargs)
    except Exception as error:  # network, HTTP, consistency and cache errors all mean "not downloaded"
        msg = f"could not download {filename} from the hub repo {repo} (revision {revision}): {error}"
        raise ExpansionDownloadError(msg) from error


def hub_sha256(repo: str, filename: str, revision: str, source: ExpansionSource) -> str:
    """The sha256 the hub reports for a file: an LFS file's etag (`X-Linked-Etag`) is its sha256."""
    return hub_file_facts(repo, filename, revision, source)[0]


def hub_file_facts(repo: str, filename: str, revision: str, source: ExpansionSource) -> tuple[str, int | None]:
    """(sha256, size in bytes or None) the hub reports for a file; see `hub_sha256`."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(
        repo_id=repo, filename=filename, revision=revision, **_endpoint_kwargs(hf_hub_url, source)
    )
    try:
        metadata = get_hf_file_metadata(url)
    except Exception as error:
        msg = f"could not ask the hub about {filename} in {repo} (revision {revision}): {error}"
        raise ExpansionDownloadError(msg) from error
    etag = (metadata.etag or "").strip('"').lower()
    if not _SHA256.match(etag):
        msg = f"the hub reports no sha256 for {filename} in {repo} (etag {metadata.etag!r}), so it cannot be verified"
        raise ExpansionDownloadError(msg)
    size = getattr(metadata, "size", None)
    return etag, size if isinstance(size, int) and size > 0 else None


def hub_partial_file_size(repo: str, etag: str, source: ExpansionSource) -> int | None:
    """Bytes the hub library has written so far for the blob `etag` of `repo`: the size of its
    partial file (`<cache>/models--owner--name/blobs/<etag>.incomplete`, the layout of
    huggingface_hub 0.14 - 0.36), the full size once it is complete, None when neither is there (an
    unknown layout shows the size announced only). Only a `stat`: cheap enough for each status poll."""
    try:
        from huggingface_hub import constants
        from huggingface_hub.file_download import repo_folder_name
    except ImportError:
        return None
    cache = source.cache_dir or getattr(constants, "HF_HUB_CACHE", None) or getattr(constants, "HUGGINGFACE_HUB_CACHE", None)
    if not cache:
        return None
    blob = Path(cache) / repo_folder_name(repo_id=repo, repo_type="model") / "blobs" / etag
    for path in (blob.with_name(f"{etag}.incomplete"), blob):
        try:
            return path.stat().st_size
        except OSError:
            continue
    return None


def download_weights(model_dir: Path, source: ExpansionSource, transfer: Transfer | None = None) -> Path:
    """Download the weights pickle into the hub cache, verify it, convert it into the folder.
    `transfer` is given the size the hub announces and reads the hub's partial file for the bytes."""
    repo, filename, revision = source.weights_repo, source.weights_filename, source.weights_revision
    expected, size = hub_file_facts(repo, filename, revision, source)
    if transfer is not None:
        transfer.total = size
        transfer.measure = lambda: hub_partial_file_size(repo, expected, source)
    if source.weights_sha256 and source.weights_sha256.lower() != expected:
        msg = (
            f"the hub reports sha256 {expected} for {filename}, but the setting pins {source.weights_sha256}"
        )
        raise ExpansionDownloadError(msg)
    pickle_path = Path(_hub_download(repo, filename, revision, source))
    actual = sha256_of_file(pickle_path)
    if actual != expected:
        _forget_cached_file(pickle_path)
        msg = f"{filename} has sha256 {actual} but the hub reports {expected}; the file was removed from the cache"
        raise ExpansionDownloadError(msg)
    log.info("Fooocus V2 expansion: %s verified (sha256 %s)", filename, actual)
    return convert_pickle_to_safetensors(pickle_path, model_dir / SAFETENSORS_NAME)


def _forget_cached_file(path: Path) -> None:
    """Remove a bad download from the hub cache (the snapshot link and the blob it points to)."""
    blob = path.resolve()
    for item in {path, blob}:
        try:
            item.unlink()
        except FileNotFoundError:
            pass


# ---- converting ------------------------------------------------------------------------------------


def load_pickle_state_dict(path: str | Path) -> dict[str, Any]:
    """Tensors of a weights pickle, opened with `weights_only=True` only (no code can run)."""
    import pickle

    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except (EOFError, OSError) as error:
        raise BrokenWeightsError(path, f"{type(error).__name__}: {error}".rstrip(": ")) from error
    except RuntimeError as error:
        if "PytorchStreamReader" in str(error) or "zip archive" in str(error):  # truncated or damaged
            raise BrokenWeightsError(path, str(error).split(". ")[0]) from error
        msg = (
            f"Refused to load {path}: it is not a plain tensor checkpoint ({error}). "
            "Use the original fooocus_expansion.bin or a safetensors file."
        )
        raise UnsafeWeightsError(msg) from error
    except (pickle.UnpicklingError, AttributeError, TypeError, ValueError) as error:
        msg = (
            f"Refused to load {path}: it is not a plain tensor checkpoint ({error}). "
            "Use the original fooocus_expansion.bin or a safetensors file."
        )
        raise UnsafeWeightsError(msg) from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        msg = f"Refused to load {path}: expected a mapping of parameter names to tensors."
        raise UnsafeWeightsError(msg)
    return state


def state_dict_for_safetensors(state: dict[str, Any]) -> dict[str, Any]:
    """Own, contiguous tensors without the causal-mask buffers and without a tied LM head copy."""
    import torch

    tensors = {
        name: tensor.detach().clone().contiguous()
        for name, tensor in state.items()
        if not name.endswith(_BUFFER_SUFFIXES)
    }
    embedding = tensors.get("transformer.wte.weight", tensors.get("wte.weight"))
    head = tensors.get("lm_head.weight")
    if (
        head is not None
        and embedding is not None
        and head.shape == embedding.shape
        and torch.equal(head, embedding)
    ):
        del tensors["lm_head.weight"]  # the model ties it to the embedding again on load
    return tensors


def _temporary_in(directory: Path) -> str:
    """A new empty temporary file in `directory` (raises OSError where it cannot be written)."""
    directory.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=directory)
    os.close(handle)
    return temporary


def convert_pickle_to_safetensors(pickle_path: str | Path, target: str | Path) -> Path:
    """Safe-load the pickle and write it as safetensors (atomically) to `target`, or to a per-user cache
    folder when the model folder is read-only. Returns the written path."""
    from safetensors.torch import save_file

    tensors = state_dict_for_safetensors(load_pickle_state_dict(pickle_path))
    target = Path(target)
    for destination in (target, _fallback_safetensors_path(target.parent)):
        try:
            temporary = _temporary_in(destination.parent)
        except OSError:
            continue
        try:
            save_file(tensors, temporary, metadata={"format": "pt"})
            os.replace(temporary, destination)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
        log.info("Fooocus V2 expansion: converted %s to %s", pickle_path, destination)
        return destination
    msg = (
        f"Fooocus V2 expansion is unavailable: cannot write the converted weights {target.name} into "
        f"{target.parent} or the user cache folder {_fallback_safetensors_path(target.parent).parent}; make "
        "one of them writable, or put model.safetensors into the model folder by hand."
    )
    raise ExpansionUnavailableError(msg)


def _fallback_safetensors_path(model_dir: Path) -> Path:
    """Where the converted weights of a read-only folder go: a cache folder the extension owns."""
    cache_root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha256(str(Path(model_dir).resolve()).encode()).hexdigest()[:16]
    return cache_root / "sd-webui-fooocus" / "expansion" / key / SAFETENSORS_NAME


def safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file cannot be used (its header does not fit the file, no tensors), or None.
    Reads the header only."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            if not list(handle.keys()):
                return "it holds no tensors"
    except Exception as error:  # SafetensorError (truncated, not safetensors), OSError
        return f"{type(error).__name__}: {error}"
    return None


def prepare_weights(model_dir: str | Path) -> Path:
    """The safetensors file to load. Our safetensors copies come first (so a read-only folder converts
    only once); a pickle is converted on first use. Unreadable files are skipped; when none is usable,
    `BrokenWeightsError` names the first one, and `MissingExpansionFilesError` says none is there."""
    model_dir = Path(model_dir)
    candidates = weights_candidates(model_dir)
    if not candidates:
        raise MissingExpansionFilesError(model_dir, [WEIGHTS_LABEL])
    first_problem: BrokenWeightsError | None = None
    for path in candidates:
        if path.suffix == ".safetensors":
            why = safetensors_problem(path)
            if why is None:
                return path
            log.warning("Fooocus V2 expansion: skipping %s: %s", path, why)
            first_problem = first_problem or BrokenWeightsError(path, why)
            continue
        try:
            return convert_pickle_to_safetensors(path, model_dir / SAFETENSORS_NAME)
        except BrokenWeightsError as error:
            log.warning("Fooocus V2 expansion: skipping %s: %s", path, error.why)
            first_problem = first_problem or error
    assert first_problem is not None
    raise first_problem
