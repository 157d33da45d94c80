"""The per-generation lifecycle shared by the A1111 and Forge adapters: per-generation state, the job
guard, callback registration, the `p.sample` bracket and the adapter skeleton.

Nothing here imports a host module at import time; host modules are handed in by the adapters,
which import them lazily at first use.

Lifetime of one generation (both hosts):
1. `begin_generation(p, params)` (from `Script.process`) attaches a `GenerationState` to `p` and
   replaces `p.sample` by an instance-level wrapper. Nothing global is touched yet.
2. The wrapper registers the cfg callbacks when sampling starts and removes them in a `finally`
   when it ends (normal end, interrupt, exception). On an exception it also takes itself off `p`.
3. `end_generation(p)` (from `Script.postprocess`) removes the callbacks (if still there), restores
   `p.sample` and forgets the state. It is idempotent.
4. Either way the state is then `finish()`ed: every hook left anywhere (e.g. in a UNet clone another
   extension made from ours) is inert, and the state lets go of `p`, so nothing of ours keeps the
   generation's images and latents alive.

Job guard ("active-job token"): callbacks are global, so each one first asks
`GenerationState.owns(denoiser)`. With a `denoiser` (A1111 ≥ 1.8, both Forge lines) the callback
acts only when `denoiser.p is` this generation's `p`; otherwise (A1111 1.6/1.7) only while this
generation's `p.sample` is running on the calling thread. A callback fired for another job (an
ADetailer inner pass, a second API request) does nothing.
"""

from __future__ import annotations

import inspect
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lib_fooocus.params import FooocusParams

logger = logging.getLogger("sd_webui_fooocus")

STATE_ATTRIBUTE = "_fooocus_generation"
WRAPPER_MARK = "__fooocus_generation__"
INFOTEXT_NOTE_KEY = "Fooocus note"


# -- per-generation state ---------------------------------------------------------------------------


def run_undo_stack(stack: list[Callable[[], None]], what: str) -> None:
    """Call and remove `stack`'s entries, last added first; one failing step is logged and the rest
    still run (the generation's host state must be put back whatever happened)."""
    while stack:
        step = stack.pop()
        try:
            step()
        except Exception:
            logger.debug("Fooocus: %s failed", what, exc_info=True)


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
    # how many UNet clones got the hooks so far, and (holder, the UNet our clone replaced) for each
    # clone of the current sampling, to put back when it ends.
    forge_cond_scale: float | None = None
    forge_installs: int = 0
    forge_replaced: list[tuple[Any, Any]] = field(default_factory=list)
    # The sharpness filter's path ("auto", "shift", "batched"), from the WebUI setting; passed to
    # the guidance functions as a plain argument.
    filter_method: str = "auto"
    # The Fooocus refiner swap of this generation (`hosts.refiner_swap.RefinerSwap`), or None.
    refiner: Any = None
    # Match Fooocus: the prompt-encoding hook (`hosts.match_encoding.PromptEncodingHook`) or None,
    # the undo steps of the noise changes of the current sampling, and what `finish` must undo
    # (hooks that live for the whole generation, also when it fails).
    match_hook: Any = None
    match_noise_undo: list[Callable[[], None]] = field(default_factory=list)
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def owns(self, denoiser: Any = None) -> bool:
        """True when a callback firing now belongs to this generation (see the module docstring)."""
        if self.finished or self.sampling_depth <= 0:
            return False
        owner = getattr(denoiser, "p", None) if denoiser is not None else None
        if owner is not None:
            return owner is self.p
        return threading.get_ident() == self.sampling_thread

    def finish(self) -> None:
        """The generation is over: hooks still referenced anywhere do nothing from now on, and `p`
        (its images, latents, sampler) is no longer referenced by the state."""
        self.finished = True
        run_undo_stack(self.cleanups, "a cleanup step")
        self.match_hook = None
        self.p = None
        self.stash = None

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
                    state.finish()

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

    def begin_generation(self, p: Any, params: FooocusParams, *, filter_method: str = "auto") -> None:
        if state_of(p) is not None or STATE_ATTRIBUTE in getattr(p, "__dict__", {}):
            self.end_generation(p)
        if not params.enabled:
            return
        state = GenerationState(p=p, params=params, host=self.name, filter_method=filter_method)
        attach_state(p, state)
        wrap_sample(p, state, lambda: self._install(state), lambda: self._uninstall(state))
        self._prepare_refiner(state)

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
        try:
            self._uninstall(state)
            if state.refiner is not None:
                from .refiner_swap import finish_generation

                finish_generation(state.refiner)
        finally:
            state.finish()

    # -- hooks for subclasses ---------------------------------------------------------------------

    def _callbacks(self, state: GenerationState) -> dict[str, Callable[[Any], None]]:
        raise NotImplementedError

    def _before_sampling(self, state: GenerationState) -> None:
        """Per sampling pass; must be idempotent."""

    def begin_match(self, p: Any, prompts: Any, raw_texts: Any) -> bool:
        """Match Fooocus: Fooocus's prompt encoding for this generation (after the prompts are
        final). False when the host's encoder stays in charge (the reason is logged and noted)."""
        from .match_encoding import install_prompt_encoding

        state = state_of(p)
        if state is None or not getattr(state.params, "match_fooocus", False):
            return False
        state.match_hook = install_prompt_encoding(state, p, prompts, raw_texts)
        return state.match_hook is not None

    def _install(self, state: GenerationState) -> None:
        if getattr(state.params, "match_fooocus", False):
            from .match_encoding import install_noise

            state.match_noise_undo = install_noise(state, state.p)
        for category, callback in self._callbacks(state).items():
            register_callback(self.script_callbacks, category, callback, state)

    def _uninstall(self, state: GenerationState) -> None:
        try:
            if state.refiner is not None:
                state.refiner.restore()  # the base UNet back in place, whatever happened
        finally:
            remove_callbacks(self.script_callbacks, state)
            state.stash = None
            state.forge_cond_scale = None
            run_undo_stack(state.match_noise_undo, "undoing a Match Fooocus noise change")

    def _prepare_refiner(self, state: GenerationState) -> None:
        """Resolve and load the Fooocus refiner before sampling (never raises)."""
        from .refiner_swap import prepare_refiner, refiner_requested

        if refiner_requested(getattr(state.params, "refiner_checkpoint", "")):
            state.refiner = prepare_refiner(state)


def refiner_step(state: GenerationState, sampler: Any, holder: Any, params: Any) -> None:
    """From `on_cfg_denoiser`: base or refiner UNet for this call. A failure turns the refiner off
    for the rest of the generation (base UNet restored), never the generation itself."""
    swap = state.refiner
    if swap is None:
        return
    try:
        swap.on_denoiser(state.p, sampler, holder, params, hires=is_hires_pass(state.p))
    except Exception as exc:
        state.refiner = None
        try:
            swap.restore()
        finally:
            state.log_once("refiner-failed", f"refiner swap failed ({exc!r}); the rest is sampled with the base model.")
            state.note_infotext("refiner stopped after an error")
