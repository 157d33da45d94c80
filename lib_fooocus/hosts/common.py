"""Pieces shared by the A1111 and Forge adapters: per-generation state, the job guard, callback
registration, the `p.sample` bracket, and the negative-ADM edit of the SDXL `vector`.

Nothing here imports a host module at import time; host modules are handed in by the adapters,
which import them lazily at first use.

Lifetime of one generation (both hosts):
1. `begin_generation(p, params)` (from `Script.process`) attaches a `GenerationState` to `p` and
   replaces `p.sample` by an instance-level wrapper. Nothing global is touched yet.
2. The wrapper registers the cfg callbacks when sampling starts and removes them in a `finally`
   when it ends (normal end, interrupt, exception). On an exception it also takes itself off `p`.
3. `end_generation(p)` (from `Script.postprocess`) removes the callbacks (if still there), restores
   `p.sample` and forgets the state. It is idempotent.

Job guard ("active-job token"): callbacks are global, so each one first asks
`GenerationState.owns(denoiser)`. With a `denoiser` (A1111 ≥ 1.8, both Forge lines) the callback
acts only when `denoiser.p is` this generation's `p`; otherwise (A1111 1.6/1.7) only while this
generation's `p.sample` is running on the calling thread. A callback fired for another job (an
ADetailer inner pass, a second API request) does nothing.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from lib_fooocus.params import FooocusParams

logger = logging.getLogger("sd_webui_fooocus")

STATE_ATTRIBUTE = "_fooocus_generation"
WRAPPER_MARK = "__fooocus_generation__"
SDXL_BASE_VECTOR_WIDTH = 2816
POOLED_WIDTH = 1280
INFOTEXT_NOTE_KEY = "Fooocus note"


# -- per-generation state ---------------------------------------------------------------------------


@dataclass
class GenerationState:
    """Everything one enabled generation needs between `begin_generation` and `end_generation`."""

    p: Any
    params: FooocusParams
    host: str
    token: str = field(default_factory=lambda: f"fooocus-{uuid.uuid4().hex}")
    finished: bool = False
    sampling_depth: int = 0
    sampling_thread: int | None = None
    logged: set[str] = field(default_factory=set)
    registered: list[Callable[..., Any]] = field(default_factory=list)
    # A1111: what `on_cfg_denoiser` saw, consumed by `on_cfg_denoised` of the same forward.
    stash: Any = None
    # Forge: the CFG scale of the current sampling-function call (from a conditioning modifier),
    # and how many UNet clones got the hooks so far.
    forge_cond_scale: float | None = None
    forge_installs: int = 0

    def owns(self, denoiser: Any = None) -> bool:
        """True when a callback firing now belongs to this generation (see the module docstring)."""
        if self.finished or self.sampling_depth <= 0:
            return False
        owner = getattr(denoiser, "p", None) if denoiser is not None else None
        if owner is not None:
            return owner is self.p
        return threading.get_ident() == self.sampling_thread

    def pass_enabled(self) -> bool:
        """False in the hires-fix second pass when the user turned "apply in hires pass" off."""
        return bool(self.params.apply_in_hires) or not is_hires_pass(self.p)

    def log_once(self, key: str, message: str) -> None:
        """One log line per generation for each kind of event."""
        if key in self.logged:
            return
        self.logged.add(key)
        logger.warning("[Fooocus] %s", message)

    def note_infotext(self, text: str, key: str = INFOTEXT_NOTE_KEY) -> None:
        """Add a short note to the image's infotext (scalar string: portable to every host)."""
        extra = getattr(self.p, "extra_generation_params", None)
        if not isinstance(extra, dict):
            return
        previous = extra.get(key)
        if previous is None:
            extra[key] = text
        elif text not in str(previous).split("; "):
            extra[key] = f"{previous}; {text}"


def is_hires_pass(p: Any) -> bool:
    return bool(getattr(p, "is_hr_pass", False))


def state_of(p: Any) -> GenerationState | None:
    state = vars(p).get(STATE_ATTRIBUTE) if hasattr(p, "__dict__") else None
    return state if isinstance(state, GenerationState) and not state.finished else None


# -- callback registration ------------------------------------------------------------------------


def accepts_name_keyword(register: Callable[..., Any]) -> bool:
    """A1111 ≥ 1.9 and Forge main take `on_xxx(callback, *, name=None)`; A1111 ≤ 1.8 and early Forge don't."""
    try:
        parameters = inspect.signature(register).parameters
    except (TypeError, ValueError):
        return False
    return "name" in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def register_callback(script_callbacks: Any, category: str, callback: Callable[..., Any], state: GenerationState) -> None:
    """Register `callback` for `on_<category>` for this generation only (removed by `remove_callbacks`)."""
    register = getattr(script_callbacks, f"on_{category}")
    if accepts_name_keyword(register):
        register(callback, name=f"fooocus_{category}")
    else:
        register(callback)
    state.registered.append(callback)


def remove_callbacks(script_callbacks: Any, state: GenerationState) -> None:
    """Remove exactly the callbacks this generation registered (never other files' callbacks)."""
    remove = getattr(script_callbacks, "remove_callbacks_for_function", None)
    while state.registered:
        callback = state.registered.pop()
        if remove is not None:
            remove(callback)


# -- the p.sample bracket --------------------------------------------------------------------------


def wrap_sample(p: Any, state: GenerationState, install: Callable[[], None], uninstall: Callable[[], None]) -> None:
    """Replace `p.sample` (per instance) by a wrapper that installs the hooks for the duration of the
    sampling and removes them in a `finally`. Nested calls (hires pass inside txt2img's `sample`)
    install once. An exception escaping the sampling also takes the wrapper off `p`."""
    instance_attributes = vars(p)
    had_instance_sample = "sample" in instance_attributes
    previous_instance_sample = instance_attributes.get("sample")
    original = p.sample

    def sample_with_fooocus(*args: Any, **kwargs: Any) -> Any:
        if state.finished:
            return original(*args, **kwargs)
        if state.sampling_depth == 0:
            state.sampling_thread = threading.get_ident()
            install()
        state.sampling_depth += 1
        failed = False
        try:
            return original(*args, **kwargs)
        except BaseException:
            failed = True
            raise
        finally:
            state.sampling_depth -= 1
            if state.sampling_depth == 0:
                uninstall()
                state.sampling_thread = None
                if failed:  # the generation is over: Script.postprocess will not run
                    unwrap_sample(p)
                    if vars(p).get(STATE_ATTRIBUTE) is state:
                        detach_state(p)
                    state.finished = True

    setattr(sample_with_fooocus, WRAPPER_MARK, (state, had_instance_sample, previous_instance_sample))
    p.sample = sample_with_fooocus


def unwrap_sample(p: Any) -> None:
    """Undo `wrap_sample` if our wrapper is still the one on `p` (idempotent)."""
    current = vars(p).get("sample")
    mark = getattr(current, WRAPPER_MARK, None)
    if mark is None:
        return
    _state, had_instance_sample, previous_instance_sample = mark
    if had_instance_sample:
        p.sample = previous_instance_sample
    else:
        del p.sample


def attach_state(p: Any, state: GenerationState) -> None:
    setattr(p, STATE_ATTRIBUTE, state)


def detach_state(p: Any) -> GenerationState | None:
    state = vars(p).pop(STATE_ATTRIBUTE, None) if hasattr(p, "__dict__") else None
    return state if isinstance(state, GenerationState) else None


# -- σ → timestep ---------------------------------------------------------------------------------

_SIGMA_TABLE_PATHS: tuple[tuple[str, ...], ...] = (
    ("sigmas",),
    ("model_sampling", "sigmas"),  # Forge's ldm_patched line: BaseModel.model_sampling
    ("predictor", "sigmas"),  # Forge main: KModel.predictor
)


def find_sigma_table(*candidates: Any) -> torch.Tensor | None:
    """The host model's own 1-D σ table, looked up on the given objects; None when none has one."""
    for candidate in candidates:
        if candidate is None:
            continue
        for path in _SIGMA_TABLE_PATHS:
            value = candidate
            for attribute in path:
                value = getattr(value, attribute, None)
                if value is None:
                    break
            if isinstance(value, torch.Tensor) and value.ndim == 1 and value.numel() >= 2:
                return value
    return None


def sigma_table_or_default(*candidates: Any) -> torch.Tensor:
    table = find_sigma_table(*candidates)
    return table if table is not None else _default_sigmas()


@functools.cache
def _default_sigmas() -> torch.Tensor:
    """SDXL/SD1.5's table, built once (read-only use)."""
    from lib_fooocus.schedule import sdxl_sigmas

    return sdxl_sigmas()


def timesteps_and_progress(sigma: torch.Tensor, table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fooocus's integer timestep t(σ) (nearest log-σ in `table`) and progress 1 − t/999, per row."""
    from lib_fooocus.schedule import progress_from_sigma, timestep_from_sigma

    sigma = sigma.detach().to(torch.float32)
    return timestep_from_sigma(sigma, table), progress_from_sigma(sigma, table)


# -- negative ADM on the SDXL vector ---------------------------------------------------------------


def vector_of(cond: Any) -> torch.Tensor | None:
    """The SDXL `vector` of a host cond (a DictWithShape); None for SD1.x/2.x plain tensors."""
    if isinstance(cond, torch.Tensor) or not hasattr(cond, "get"):
        return None
    vector = cond.get("vector")
    return vector if isinstance(vector, torch.Tensor) and vector.ndim == 2 else None


def apply_negative_adm(
    state: GenerationState,
    text_cond: Any,
    text_uncond: Any,
    t_cond: torch.Tensor,
    t_uncond: torch.Tensor,
    width: int,
    height: int,
) -> bool:
    """Replace `text_cond['vector']` / `text_uncond['vector']` (key assignment on the host's own dict
    objects, never a new dict) by Fooocus's timed positive/negative ADM vectors. SDXL base only
    (2816 columns); anything else is left untouched with one log line per generation.
    Returns True when the vectors were replaced."""
    from lib_fooocus.adm import negative_adm, select_adm

    vectors = (vector_of(text_cond), vector_of(text_uncond))
    if vectors[0] is None or vectors[1] is None:
        state.log_once(
            "adm-no-vector",
            "negative ADM not applied: this model has no SDXL 'vector' conditioning (SD1.x/2.x); "
            "sharpness and adaptive CFG still apply.",
        )
        return False
    widths = {int(v.shape[1]) for v in vectors}
    if widths != {SDXL_BASE_VECTOR_WIDTH}:
        state.log_once(
            f"adm-width-{sorted(widths)}",
            f"negative ADM not applied to a {'/'.join(map(str, sorted(widths)))}-wide ADM vector "
            f"(only the SDXL base's {SDXL_BASE_VECTOR_WIDTH} has size conditioning to scale; "
            "the SDXL refiner's is 2560).",
        )
        return False
    params = state.params
    for cond, vector, scale, t in (
        (text_cond, vectors[0], params.adm_scaler_positive, t_cond),
        (text_uncond, vectors[1], params.adm_scaler_negative, t_uncond),
    ):
        emphasized, consistent = negative_adm(vector[:, :POOLED_WIDTH], int(width), int(height), float(scale))
        timed = select_adm(emphasized, consistent, t.to(vector.device), float(params.adm_scaler_end))
        cond["vector"] = timed.to(device=vector.device, dtype=vector.dtype)
    return True


# -- AND prompts ----------------------------------------------------------------------------------


def multicond_weights(multicond: Any) -> list[list[float]] | None:
    """Per image, the weights of its AND sub-prompts, from A1111's `MulticondLearnedConditioning`
    (`.batch[i][j].weight`); cond row indices follow in order. None when the object has no such
    structure."""
    batch = getattr(multicond, "batch", None)
    if not isinstance(batch, (list, tuple)) or not batch:
        return None
    weights: list[list[float]] = []
    for image in batch:
        if not isinstance(image, (list, tuple)) or not image:
            return None
        try:
            weights.append([float(sub.weight) for sub in image])
        except (AttributeError, TypeError, ValueError):
            return None
    return weights


def conds_list_from_weights(weights: Iterable[list[float]]) -> list[list[tuple[int, float]]]:
    """A1111's `conds_list` layout: image i → [(cond row index, weight), ...], rows numbered in order."""
    conds_list: list[list[tuple[int, float]]] = []
    row = 0
    for image_weights in weights:
        entries = []
        for weight in image_weights:
            entries.append((row, weight))
            row += 1
        conds_list.append(entries)
    return conds_list


def is_close_to_one(value: float) -> bool:
    return math.isclose(float(value), 1.0)


# -- the adapter skeleton shared by both hosts ----------------------------------------------------


def import_host_module(name: str) -> Any:
    """Import a host module (`modules.script_callbacks`, …) at call time, never at import time."""
    import importlib

    return importlib.import_module(name)


class CallbackAdapter:
    """begin/before/end lifecycle shared by the hosts; subclasses say which callbacks to register
    (`_callbacks`) and what to do at the start of each sampling pass (`_before_sampling`)."""

    name = "base"

    def __init__(self, script_callbacks: Any = None):
        self._script_callbacks = script_callbacks

    @property
    def script_callbacks(self) -> Any:
        if self._script_callbacks is None:
            self._script_callbacks = import_host_module("modules.script_callbacks")
        return self._script_callbacks

    # -- HostAdapter interface --------------------------------------------------------------------

    def begin_generation(self, p: Any, params: FooocusParams) -> None:
        if state_of(p) is not None or STATE_ATTRIBUTE in getattr(p, "__dict__", {}):
            self.end_generation(p)
        if not params.enabled:
            return
        state = GenerationState(p=p, params=params, host=self.name)
        attach_state(p, state)
        wrap_sample(p, state, lambda: self._install(state), lambda: self._uninstall(state))

    def before_sampling(self, p: Any, params: FooocusParams) -> None:
        state = state_of(p)
        if state is None or not params.enabled:
            return
        state.params = params
        self._before_sampling(state)

    def end_generation(self, p: Any) -> None:
        unwrap_sample(p)
        state = detach_state(p)
        if state is None:
            return
        state.finished = True
        self._uninstall(state)

    # -- hooks for subclasses ---------------------------------------------------------------------

    def _callbacks(self, state: GenerationState) -> dict[str, Callable[[Any], None]]:
        raise NotImplementedError

    def _before_sampling(self, state: GenerationState) -> None:
        """Per sampling pass; must be idempotent."""

    def _install(self, state: GenerationState) -> None:
        for category, callback in self._callbacks(state).items():
            register_callback(self.script_callbacks, category, callback, state)

    def _uninstall(self, state: GenerationState) -> None:
        remove_callbacks(self.script_callbacks, state)
        state.stash = None
        state.forge_cond_scale = None
