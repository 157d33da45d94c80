"""What the Script's hooks do, host-free enough to test: one `FooocusParams` per generation, the
prompt rewriting, the infotext, and the adapter calls. A disabled generation touches nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from lib_fooocus.params import FooocusParams
from lib_fooocus.webui import generation, settings
from lib_fooocus.webui.context import FooocusContext
from lib_fooocus.webui.script_args import resolve_params

log = logging.getLogger(__name__)

PARAMS_ATTRIBUTE = "fooocus_params"


class Runtime:
    def __init__(self, context: FooocusContext):
        self.context = context
        self.get_adapter: Callable[[], Any] = context.adapter
        self.get_library: Callable[[], Any] = context.style_library
        self.get_expander: Callable[[], Any] = context.expansion_service

    @staticmethod
    def params_of(p: Any) -> FooocusParams | None:
        params = getattr(p, PARAMS_ATTRIBUTE, None)
        return params if isinstance(params, FooocusParams) and params.enabled else None

    def defaults(self) -> FooocusParams:
        try:
            library = self.get_library()
        except Exception as error:
            log.warning("Fooocus: style library unavailable (%s)", error)
            library = None
        return settings.default_params(library)

    def process(self, p: Any, args: Sequence[Any]) -> FooocusParams | None:
        if PARAMS_ATTRIBUTE in getattr(p, "__dict__", {}):
            delattr(p, PARAMS_ATTRIBUTE)  # a `p` reused by another script keeps nothing of ours
        if not _may_be_enabled(args, p):
            return None
        params = resolve_params(p, args, self.defaults())
        if params is None or not params.enabled:
            return None
        # The hooks first: when they cannot be put in place, the generation runs as without the
        # extension (prompts and infotext untouched), never with an infotext claiming "Fooocus: True".
        if not self._begin(p, params):
            return None
        setattr(p, PARAMS_ATTRIBUTE, params)
        rewrite = None
        if params.styles or generation.wants_expansion(params) or params.match_fooocus:
            try:
                expander = self.get_expander() if generation.wants_expansion(params) else None
                rewrite = generation.rewrite_prompts(
                    p,
                    params,
                    self.get_library(),
                    expander.expand if expander else None,
                    host_stop_requested,
                    expand_batch=getattr(expander, "expand_batch", None),
                )
            except Exception:  # styles/expansion must never stop the host from generating
                log.exception("Fooocus: styles and expansion skipped for this generation")
            finally:
                # The expansion is done with for this generation. Unloading here, not in postprocess,
                # also covers generations that fail or are interrupted (the hosts then skip postprocess).
                self.context.unload_expansion_if_configured()
        generation.write_infotext(p, generation.infotext_entries(params, rewrite))
        if params.match_fooocus:
            self._begin_match(p, rewrite)
        return params

    def _begin_match(self, p: Any, rewrite: generation.Rewrite | None) -> None:
        """Match Fooocus's prompt encoding, from the parts the rewrite planned (never raises)."""
        from lib_fooocus.hosts.match_encoding import MatchPrompts

        prompts = MatchPrompts()
        for text, parts, negative in rewrite.match_parts if rewrite is not None else []:
            prompts.add(text, parts, negative)
        # the user's own prompts decide whether Fooocus's encoder can take them (the assembled ones
        # join the parts with BREAK for the WebUI's own encoder)
        if rewrite is not None:
            raw_texts = [*rewrite.original_prompts, *rewrite.original_negatives]
        else:
            raw_texts = [*(getattr(p, "all_prompts", None) or []), *(getattr(p, "all_negative_prompts", None) or [])]
        try:
            begin_match = getattr(self.get_adapter(), "begin_match", None)
            if begin_match is not None:
                begin_match(p, prompts, [str(text) for text in raw_texts])
        except Exception:
            log.exception("Fooocus: Match Fooocus prompt encoding not installed; the WebUI encodes the prompts")

    def _begin(self, p: Any, params: FooocusParams) -> bool:
        adapter = None
        try:
            adapter = self.get_adapter()
            adapter.begin_generation(p, params, filter_method=settings.filter_method())
            return True
        except Exception:
            log.exception("Fooocus: could not install the sampling hooks; this generation runs without Fooocus")
        if adapter is not None:
            try:
                adapter.end_generation(p)  # take off whatever part of the hooks got in place
            except Exception:
                log.debug("Fooocus: cleanup after the failed start failed too", exc_info=True)
        return False

    def before_sampling(self, p: Any) -> None:
        params = self.params_of(p)
        if params is not None:
            self.get_adapter().before_sampling(p, params)

    def postprocess_image(self, p: Any) -> None:
        if self.params_of(p) is not None:
            generation.select_image_infotext(p)

    def postprocess(self, p: Any) -> None:
        if self.params_of(p) is None:
            return
        self.get_adapter().end_generation(p)


def host_stop_requested() -> bool:
    """Whether the user pressed Interrupt (or "stop after the current image") in the WebUI: A1111 and
    Forge keep it in `modules.shared.state`. Skip is not a stop: the host goes on with the next
    images, which still need their expansion."""
    try:
        from modules import shared
    except ImportError:
        return False
    state = getattr(shared, "state", None)
    return bool(getattr(state, "interrupted", False) or getattr(state, "stopping_generation", False))


def _may_be_enabled(args: Sequence[Any], p: Any) -> bool:
    """Cheap pre-check so a disabled generation does no work at all (not even reading settings)."""
    from lib_fooocus.webui.script_args import xyz_overrides

    if xyz_overrides(p):
        return True
    if not args:
        return False
    first = args[0]
    if isinstance(first, dict):
        return first.get("enabled") is not False and bool(first.get("enabled"))
    return first is not False and first is not None and first != 0
