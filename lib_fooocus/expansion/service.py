"""The expansion service the hosts, the REST route and the CLI share: the model is loaded lazily on
the first `expand` (downloading missing files if allowed) and dropped by `unload()`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lib_fooocus.expansion.engine import FooocusExpansion
from lib_fooocus.expansion.files import ExpansionSource, ensure_expansion_files


@dataclass
class ExpansionSettings:
    """What the host decides. `device=None` means CPU; the host passes its text-encoder device."""

    model_dir: str
    device: Any = None
    use_cpu: bool = False
    fp16_on_gpu: bool = True
    unload_after_generation: bool = False
    allow_download: bool = True
    source: ExpansionSource | None = None


class ExpansionService:
    """Lazily loaded, thread-safe expansion for the hosts, the REST route and the CLI.

    The model is loaded on the first `expand` (downloading missing files if allowed); `unload()` drops
    it. A missing model raises `MissingExpansionFilesError` with one message saying what to do.
    """

    def __init__(
        self, settings: ExpansionSettings, *, engine_factory: Callable[..., FooocusExpansion] | None = None
    ):
        self.settings = settings
        self._engine: FooocusExpansion | None = None
        self._lock = threading.RLock()
        self._engine_factory = engine_factory or FooocusExpansion

    @property
    def loaded(self) -> bool:
        return self._engine is not None

    def device_and_dtype(self) -> tuple[Any, Any]:
        import torch

        device = (
            torch.device("cpu")
            if self.settings.use_cpu or self.settings.device is None
            else torch.device(self.settings.device)
        )
        if device.type == "mps":
            device = torch.device("cpu")
        use_fp16 = device.type == "cuda" and self.settings.fp16_on_gpu
        return device, (torch.float16 if use_fp16 else torch.float32)

    def engine(self) -> FooocusExpansion:
        with self._lock:
            if self._engine is None:
                ensure_expansion_files(
                    self.settings.model_dir,
                    source=self.settings.source,
                    allow_download=self.settings.allow_download,
                )
                device, dtype = self.device_and_dtype()
                self._engine = self._engine_factory(self.settings.model_dir, device=device, dtype=dtype)
            return self._engine

    def expand(self, prompt: str, seed: int) -> str:
        if prompt == "":
            return ""
        with self._lock:
            return self.engine().expand(prompt, seed)

    def finish_generation(self) -> None:
        """Call when a generation (or a preview / API request) is over: unloads if the setting says so."""
        if self.settings.unload_after_generation:
            self.unload()

    def unload(self) -> None:
        with self._lock:
            engine, self._engine = self._engine, None
        if engine is not None:
            device = engine.device
            del engine
            if getattr(device, "type", "cpu") == "cuda":
                import torch

                torch.cuda.empty_cache()
