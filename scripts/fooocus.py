"""The "Fooocus" accordion in txt2img and img2img: Fooocus's sampling tricks, V2 prompt expansion
and styles for A1111 (1.6-1.10) and Forge. Only the Script class lives here; the work is done in
`lib_fooocus` (`webui/` for the host glue, `hosts/` for the sampling adapters)."""

from __future__ import annotations

import logging
from typing import Any

import modules.scripts as scripts
from modules import script_callbacks

from lib_fooocus.webui import hooks
from lib_fooocus.webui.context import FooocusContext

log = logging.getLogger(__name__)

# One per WebUI process: the txt2img, img2img and API instances of the Script and the callbacks
# registered below share the style library, the expansion service and the host adapter.
CONTEXT = FooocusContext()

PROMPT_ELEM_IDS = {"txt2img_prompt": ("txt2img", "prompt"), "img2img_prompt": ("img2img", "prompt"),
                   "txt2img_seed": ("txt2img", "seed"), "img2img_seed": ("img2img", "seed")}
# The tab's steps, CFG, sampler and scheduler (A1111 1.9+ / Forge), for the schedule plot; and its
# width and height, which the "Fooocus defaults" row sets too.
SCHEDULE_ELEM_IDS = {
    f"{tab}_{elem}": (tab, name)
    for tab in ("txt2img", "img2img")
    for elem, name in (("steps", "steps"), ("cfg_scale", "cfg_scale"), ("sampling", "sampler"),
                       ("scheduler", "scheduler"), ("width", "width"), ("height", "height"))
}


class FooocusScript(scripts.Script):
    sorting_priority = 12  # Forge only: near the other sampling extensions

    def __init__(self):
        super().__init__()
        self.context = CONTEXT
        self._runtime: Any = None
        self.seen_components: dict[tuple[str, str], object] = {}

    @property
    def runtime(self) -> Any:
        """What the generation hooks below do (`lib_fooocus.webui.runtime.Runtime`), made at the first
        generation: its modules are not imported at WebUI start-up. The host runs one generation at
        a time, so two are never made at once."""
        if self._runtime is None:
            from lib_fooocus.webui.runtime import Runtime

            self._runtime = Runtime(self.context)
        return self._runtime

    @runtime.setter
    def runtime(self, runtime: Any) -> None:
        self._runtime = runtime

    def title(self):
        return "Fooocus"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def after_component(self, component, **kwargs):
        # The tab's prompt and seed boxes ("Preview expansion"), steps/CFG/sampler/scheduler (the plot
        # and the defaults row), width/height (the defaults row).
        elem = kwargs.get("elem_id") or ""
        where = PROMPT_ELEM_IDS.get(elem) or SCHEDULE_ELEM_IDS.get(elem)
        if where is not None:
            self.seen_components[where] = component

    def ui(self, is_img2img):
        built = hooks.build_script_ui(self, is_img2img, self.context)
        self.infotext_fields = built.infotext_fields
        self.paste_field_names = []
        return built.components

    def process(self, p, *args):
        self.runtime.process(p, args)

    def process_before_every_sampling(self, p, *args, **kwargs):
        self.runtime.before_sampling(p)

    def process_batch(self, p, *args, **kwargs):
        self.runtime.before_sampling(p)

    def before_hr(self, p, *args):
        self.runtime.before_sampling(p)

    def postprocess_image(self, p, pp, *args):
        self.runtime.postprocess_image(p)

    def postprocess(self, p, processed, *args):
        self.runtime.postprocess(p)


hooks.register_callbacks(script_callbacks, scripts, CONTEXT)
