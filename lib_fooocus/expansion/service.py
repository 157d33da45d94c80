"""The expansion service the hosts, the REST route and the CLI share: the model is loaded lazily on
the first `expand` (downloading missing files if allowed) and dropped by `unload()`.

Locking: the lock only guards the service's fields and is never held across disk or network I/O.
The first caller starts one loader thread (check files, download, convert, load); every caller then
waits for that one load, each with its own bound: a generation waits until it is done, the preview
and the REST route give up after a few seconds with `ExpansionBusyError` ("being downloaded, try
again") while the download goes on. `unload()` (also of a service replaced by new settings) never
waits for a load. A failed download is remembered for `retry_after` seconds: until then every caller
gets the same error at once instead of waiting out the network again; `forget_failure()` (the Retry
button) or new settings (a new service) end the back-off early.

`state()` is what the UI polls while a load runs: which step, and for a download the bytes so far of
the file being fetched (read from the download's `Transfer`, no lock held across any I/O).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lib_fooocus.downloads import Transfer
from lib_fooocus.expansion.files import (
    ExpansionSource,
    ExpansionUnavailableError,
    MissingExpansionFilesError,
    ensure_expansion_files,
    missing_files,
)

if TYPE_CHECKING:  # the engine (and its decoder) is imported by the first load, not at WebUI start-up
    from lib_fooocus.expansion.engine import FooocusExpansion

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 600.0


def _default_engine_factory(*args: Any, **kwargs: Any) -> FooocusExpansion:
    from lib_fooocus.expansion.engine import FooocusExpansion

    return FooocusExpansion(*args, **kwargs)


class ExpansionBusyError(ExpansionUnavailableError):
    """The model is still being downloaded or loaded by another request; try again shortly."""


# What `ExpansionState.kind` can be; the UI keeps polling while it is BUSY.
READY, BUSY, IDLE, UNAVAILABLE = "ready", "busy", "idle", "unavailable"


@dataclass(frozen=True)
class ExpansionState:
    """The service's state for a status line: `kind` (READY, BUSY: a load or download runs, IDLE: not
    loaded yet, UNAVAILABLE: it cannot load, `text` saying why and how to fix it), the text, and the
    share of the current download done (0..1) when its size is known."""

    kind: str
    text: str
    fraction: float | None = None


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


@dataclass
class _Load:
    """One load in progress: what it is doing now, and its outcome once `done` is set."""

    epoch: int
    step: str = "starting"
    transfer: Transfer | None = None  # the file being downloaded now, if any
    done: threading.Event = field(default_factory=threading.Event)
    engine: Any = None
    error: BaseException | None = None


class ExpansionService:
    """Lazily loaded, thread-safe expansion for the hosts, the REST route and the CLI.

    The model is loaded on the first `expand` (downloading missing files if allowed); `unload()` drops
    it. A missing model raises `MissingExpansionFilesError` with one message saying what to do.
    """

    def __init__(
        self,
        settings: ExpansionSettings,
        *,
        engine_factory: Callable[..., FooocusExpansion] | None = None,
        retry_after: float = RETRY_AFTER_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.settings = settings
        self.retry_after = retry_after
        self._clock = clock
        self._engine: FooocusExpansion | None = None
        self._load: _Load | None = None
        self._epoch = 0  # bumped by unload(): a load finishing later is not kept
        self._failure: tuple[BaseException, float] | None = None  # a failed download and when
        self._last_error: BaseException | None = None  # why the last load failed otherwise (for the status)
        self._lock = threading.Lock()
        self._engine_factory = engine_factory or _default_engine_factory

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

    # -- loading -----------------------------------------------------------------------------------

    def engine(self, wait: float | None = None) -> FooocusExpansion:
        """The loaded engine, loading it if needed. `wait`: how many seconds to wait for a load in
        progress (None: until it is done); `ExpansionBusyError` when that is not enough."""
        with self._lock:
            if self._engine is not None:
                return self._engine
            remembered = self._remembered_failure()
            load = self._load
            if load is None and remembered is None:
                load = self._load = _Load(self._epoch)
                threading.Thread(
                    target=self._run_load, args=(load,), name="fooocus-expansion-load", daemon=True
                ).start()
        if remembered is not None:
            raise remembered
        if not load.done.wait(wait):
            msg = (
                f"Fooocus V2 expansion is being prepared ({load.step}); this can take a few minutes on "
                "first use. Try again in a moment."
            )
            raise ExpansionBusyError(msg)
        if load.error is not None:
            raise load.error.with_traceback(None)
        return load.engine

    def _run_load(self, load: _Load) -> None:
        def tell(step: str) -> None:
            load.step = step

        def watch(transfer: Transfer | None) -> None:
            load.transfer = transfer

        try:
            ensure_expansion_files(
                self.settings.model_dir,
                source=self.settings.source,
                allow_download=self.settings.allow_download,
                progress=tell,
                on_transfer=watch,
            )
            tell("loading the model")
            device, dtype = self.device_and_dtype()
            load.engine = self._engine_factory(self.settings.model_dir, device=device, dtype=dtype)
        except BaseException as error:  # handed to every waiting caller
            load.error = error
        with self._lock:
            if self._load is load:
                self._load = None
            if load.error is None and load.epoch == self._epoch:
                self._engine = load.engine
                self._last_error = None
            elif getattr(load.error, "download_failed", False):
                self._failure = (load.error, self._clock())
            elif isinstance(load.error, Exception) and load.epoch == self._epoch:
                self._last_error = load.error
        if load.error is not None and not isinstance(load.error, Exception):
            log.error("Fooocus V2 expansion: loading stopped: %r", load.error)
        load.done.set()

    def _remembered_failure(self) -> BaseException | None:
        """The remembered download failure while its back-off lasts (called under the lock)."""
        if self._failure is None:
            return None
        error, when = self._failure
        left = self.retry_after - (self._clock() - when)
        if left <= 0:
            self._failure = None
            return None
        note = (
            f"(Remembered: not downloaded again for {max(1, round(left / 60))} min; press Retry in the "
            "Fooocus accordion or change an expansion setting to try now.)"
        )
        if isinstance(error, MissingExpansionFilesError):
            return error.with_note(note)
        return ExpansionUnavailableError(f"{error} {note}")

    def forget_failure(self) -> None:
        """End the back-off after a failed download: the next use tries again."""
        with self._lock:
            self._failure = None
            self._last_error = None

    def status(self) -> str:
        """One line for the UI: ready, being prepared (which step), or unavailable with the reason."""
        return self.state().text

    def state(self) -> ExpansionState:
        """`status()` with its kind and the download's progress (see `ExpansionState`). Cheap enough
        to poll every second: a `stat` or two, no hashing, no lock held while they run."""
        with self._lock:
            engine, load, remembered = self._engine, self._load, self._remembered_failure()
            last_error = self._last_error
        if engine is not None:
            return ExpansionState(READY, f"Fooocus V2 expansion: ready (on {getattr(engine, 'device', 'cpu')}).")
        if load is not None:
            transfer, step = load.transfer, load.step  # read once: the loader thread moves them on
            if transfer is not None:
                return ExpansionState(BUSY, f"Fooocus V2 expansion: {step}: {transfer.describe()}…", transfer.fraction())
            return ExpansionState(BUSY, f"Fooocus V2 expansion: {step}…")
        if remembered is not None:
            return ExpansionState(UNAVAILABLE, f"{remembered}")
        if last_error is not None:  # damaged or refused files, conversion problems: said as they were
            return ExpansionState(UNAVAILABLE, f"{last_error}")
        missing = missing_files(self.settings.model_dir, (self.settings.source or ExpansionSource()).file_hashes())
        if not missing:
            return ExpansionState(IDLE, "Fooocus V2 expansion: not loaded yet; it loads on first use.")
        if self.settings.allow_download:
            return ExpansionState(IDLE, (
                f"Fooocus V2 expansion: {len(missing)} file(s) will be downloaded on first use into "
                f"{self.settings.model_dir}."
            ))
        return ExpansionState(
            UNAVAILABLE, str(MissingExpansionFilesError(self.settings.model_dir, missing, "Downloading is turned off."))
        )

    # -- use ---------------------------------------------------------------------------------------

    def expand(self, prompt: str, seed: int, *, wait: float | None = None) -> str:
        if prompt == "":
            return ""
        return self.engine(wait).expand(prompt, seed)

    def expand_batch(self, prompt: str, seeds: Sequence[int], *, wait: float | None = None) -> list[str]:
        """`[expand(prompt, s) for s in seeds]`, decoded as one batch (see `FooocusExpansion.expand_batch`)."""
        seeds = list(seeds)
        if prompt == "" or not seeds:
            return [""] * len(seeds)
        return self.engine(wait).expand_batch(prompt, seeds)

    def finish_generation(self) -> None:
        """Call when a generation (or a preview / API request) is over: unloads if the setting says so."""
        if self.settings.unload_after_generation:
            self.unload()

    def unload(self) -> None:
        """Drop the model. Never waits for a load in progress (that load's result is not kept)."""
        with self._lock:
            engine, self._engine = self._engine, None
            self._epoch += 1
        if engine is not None:
            device = engine.device
            del engine
            if getattr(device, "type", "cpu") == "cuda":
                import torch

                torch.cuda.empty_cache()
