"""Read a refiner UNet from a checkpoint file, safely and only the UNet part.

- Only `.safetensors` files are read (a header check, not just the name): a pickle checkpoint
  (`.ckpt`, `.pt`, `.bin`) is refused, never unpickled.
- Only the tensors under `model.diffusion_model.` are loaded (prefix stripped); CLIP and VAE stay on
  disk.
- The architecture is recognised from tensor *shapes* in the header, before any tensor is read:
  the ADM input width of `label_emb.0.0.weight` (2816 = SDXL base type, 2560 = SDXL refiner), and
  for models without ADM the cross-attention width (768 = SD1.x, 1024 = SD2.x).
- `UnetCache` keeps the built UNet keyed by (real path, size, mtime); one entry at a time.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

UNET_PREFIX = "model.diffusion_model."
LABEL_EMB_KEY = "label_emb.0.0.weight"
MAX_HEADER_BYTES = 100 * 1024 * 1024

logger = logging.getLogger("sd_webui_fooocus")

KIND_SDXL_BASE = "sdxl-base"
KIND_SDXL_REFINER = "sdxl-refiner"
KIND_SD1 = "sd1"
KIND_SD2 = "sd2"
KIND_UNKNOWN = "unknown"
USABLE_KINDS = (KIND_SDXL_BASE, KIND_SDXL_REFINER)


class RefinerFileError(ValueError):
    """The file cannot be used as a refiner; the message is meant for the user."""


@dataclass(frozen=True)
class FileKey:
    path: str
    size: int
    mtime_ns: int


def file_key(path: str | os.PathLike[str]) -> FileKey:
    real = os.path.realpath(os.fspath(path))
    try:
        info = os.stat(real)
    except OSError as error:
        msg = f"refiner checkpoint {os.fspath(path)!r} cannot be read ({error.strerror or error})"
        raise RefinerFileError(msg) from error
    return FileKey(real, int(info.st_size), int(info.st_mtime_ns))


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The safetensors JSON header (tensor name → dtype, shape, offsets). Refuses anything else."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            head = handle.read(8)
            if len(head) != 8:
                msg = f"refiner checkpoint {name!r} is not a safetensors file (too short)"
                raise RefinerFileError(msg)
            (length,) = struct.unpack("<Q", head)
            if length <= 1 or length > MAX_HEADER_BYTES:
                msg = (f"refiner checkpoint {name!r} is not a safetensors file (pickle checkpoints such as .ckpt are "
                       "never loaded; convert it to .safetensors)")
                raise RefinerFileError(msg)
            raw = handle.read(length)
    except OSError as error:
        msg = f"refiner checkpoint {name!r} cannot be read ({error.strerror or error})"
        raise RefinerFileError(msg) from error
    try:
        header = json.loads(raw)
    except ValueError as error:
        msg = f"refiner checkpoint {name!r} is not a safetensors file (unreadable header)"
        raise RefinerFileError(msg) from error
    if not isinstance(header, dict) or raw[:1] != b"{":
        msg = f"refiner checkpoint {name!r} is not a safetensors file"
        raise RefinerFileError(msg)
    return header


def unet_shapes(header: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for key, entry in header.items():
        if key.startswith(UNET_PREFIX) and isinstance(entry, dict):
            shapes[key[len(UNET_PREFIX):]] = tuple(int(n) for n in entry.get("shape", ()))
    return shapes


def classify_unet(shapes: dict[str, tuple[int, ...]]) -> str:
    """The architecture from the UNet's tensor shapes (prefix already stripped)."""
    if not shapes:
        return KIND_UNKNOWN
    label = shapes.get(LABEL_EMB_KEY)
    if label is not None and len(label) == 2:
        return {2816: KIND_SDXL_BASE, 2560: KIND_SDXL_REFINER}.get(label[1], KIND_UNKNOWN)
    context = {shape[1] for key, shape in shapes.items() if key.endswith("attn2.to_k.weight") and len(shape) == 2}
    if context == {768}:
        return KIND_SD1
    if context == {1024}:
        return KIND_SD2
    return KIND_UNKNOWN


def inspect_checkpoint(path: str | os.PathLike[str]) -> str:
    """The kind of UNet in a checkpoint, from its header only (nothing loaded)."""
    return classify_unet(unet_shapes(read_header(path)))


def load_unet_state_dict(path: str | os.PathLike[str], device: str = "cpu") -> dict[str, Any]:
    """The UNet tensors (prefix stripped), read with safetensors; nothing else is loaded."""
    from safetensors import safe_open

    read_header(path)  # refuses non-safetensors files before the library sees them
    state: dict[str, Any] = {}
    try:
        with safe_open(os.fspath(path), framework="pt", device=device) as handle:
            for key in handle.keys():  # noqa: SIM118 (safe_open is not a Mapping)
                if key.startswith(UNET_PREFIX):
                    state[key[len(UNET_PREFIX):]] = handle.get_tensor(key)
    except RefinerFileError:
        raise
    except Exception as error:  # a truncated or corrupt file
        msg = f"refiner checkpoint {os.fspath(path)!r} cannot be read ({type(error).__name__}: {error})"
        raise RefinerFileError(msg) from error
    if not state:
        msg = f"refiner checkpoint {os.fspath(path)!r} has no UNet tensors ({UNET_PREFIX}*)"
        raise RefinerFileError(msg)
    return state


def unet_shape_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The UNet's tensors as shape-only ("meta") tensors, from the header: what a constructor needs to
    pick the architecture (channel counts, context width), without reading any weight."""
    import torch
    from safetensors.torch import _getdtype

    header = read_header(path)
    state = {}
    for key, entry in header.items():
        if key.startswith(UNET_PREFIX) and isinstance(entry, dict):
            shape = [int(n) for n in entry.get("shape", ())]
            state[key[len(UNET_PREFIX):]] = torch.empty(shape, dtype=_getdtype(entry.get("dtype", "F32")), device="meta")
    if not state:
        msg = f"refiner checkpoint {os.fspath(path)!r} has no UNet tensors ({UNET_PREFIX}*)"
        raise RefinerFileError(msg)
    return state


def load_unet_into(module: Any, path: str | os.PathLike[str]) -> None:
    """Copy the file's UNet tensors into `module`'s parameters and buffers one at a time, converting to
    their dtype: the peak memory is the module plus one tensor (a whole state dict would double it).
    Strict: the names and shapes must match the module's exactly."""
    import torch
    from safetensors import safe_open

    read_header(path)  # refuses non-safetensors files before the library sees them
    name = os.path.basename(os.fspath(path))
    targets = module.state_dict(keep_vars=True)
    try:
        with safe_open(os.fspath(path), framework="pt", device="cpu") as handle:
            keys = {key[len(UNET_PREFIX):]: key for key in handle.keys() if key.startswith(UNET_PREFIX)}  # noqa: SIM118
            if set(keys) != set(targets):
                # Names differ: a module whose layers create their tensors while loading (Forge main's
                # operations hold a placeholder until `load_state_dict`), or a file that does not fit.
                # The module's own strict `load_state_dict` decides (whole UNet read at once here).
                state = {name_: handle.get_tensor(key) for name_, key in keys.items()}
                try:
                    module.load_state_dict(state, strict=True)
                except RuntimeError as error:
                    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
                    detail = lines[1] if len(lines) > 1 else (lines[0] if lines else type(error).__name__)
                    msg = f"{name}: its UNet does not fit this architecture ({detail[:300]})"
                    raise RefinerFileError(msg) from error
                return
            with torch.no_grad():
                for target_name, target in targets.items():
                    tensor = handle.get_tensor(keys[target_name])
                    if tuple(tensor.shape) != tuple(target.shape):
                        msg = (f"{name}: its UNet does not fit this architecture (size mismatch for {target_name}: "
                               f"{tuple(tensor.shape)} in the file, {tuple(target.shape)} in the model)")
                        raise RefinerFileError(msg)
                    target.copy_(tensor)
    except RefinerFileError:
        raise
    except Exception as error:  # a truncated or corrupt file
        msg = f"refiner checkpoint {os.fspath(path)!r} cannot be read ({type(error).__name__}: {error})"
        raise RefinerFileError(msg) from error


class UnetCache:
    """The last built refiner UNet, keyed by (real path, size, mtime): a changed file is read again.
    One entry: a new refiner replaces the old one (memory is released when nothing else holds it).

    Attachments are objects kept with the entry (e.g. the host memory manager's handle for the UNet),
    created once per entry; when the entry is replaced or cleared, each attachment's `release()` (if it
    has one) is called, so a host never keeps a handle on a UNet the cache has dropped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entry: tuple[FileKey, str, Any] | None = None
        self._attachments: dict[str, Any] = {}
        self.loads = 0

    def get(self, path: str | os.PathLike[str], build: Callable[[str, str], Any]) -> tuple[Any, str, bool]:
        """(unet, kind, was_cached). `build(path, kind)` creates the UNet when not cached (it may raise
        RefinerFileError). The lock is held while building, so two requests never load twice."""
        key = file_key(path)
        with self._lock:
            entry = self._entry
            if entry is not None and entry[0] == key:
                return entry[2], entry[1], True
            kind = inspect_checkpoint(key.path)
            self._drop_entry()  # drop the old UNet before building the new one
            unet = build(key.path, kind)
            self._entry = (key, kind, unet)
            self.loads += 1
            return unet, kind, False

    def attachment(self, unet: Any, name: str, create: Callable[[], Any]) -> Any:
        """The object called `name` kept with the cached `unet`, made by `create()` the first time.
        When `unet` is not the cached one (nothing to keep it with), a fresh object that is not kept."""
        with self._lock:
            if self._entry is None or self._entry[2] is not unet:
                return create()
            if name not in self._attachments:
                self._attachments[name] = create()
            return self._attachments[name]

    def peek(self) -> tuple[FileKey, str, Any] | None:
        return self._entry

    def clear(self) -> bool:
        with self._lock:
            had = self._entry is not None
            self._drop_entry()
            return had

    def _drop_entry(self) -> None:
        attachments, self._attachments, self._entry = self._attachments, {}, None
        for name, attached in attachments.items():
            release = getattr(attached, "release", None)
            if not callable(release):
                continue
            try:
                release()
            except Exception as error:  # a host's unload failing must not keep the cache locked up
                logger.warning("[Fooocus] refiner: releasing %s failed (%r)", name, error)


CACHE = UnetCache()
