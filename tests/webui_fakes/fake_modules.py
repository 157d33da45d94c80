"""The fake `modules.*` (see `__init__`). Built fresh per test so no state leaks between tests."""

from __future__ import annotations

import types
from typing import Any


def build(host: str, models_path: str) -> dict[str, types.ModuleType]:
    new = host != "a1111-1.6"
    modules = {name: types.ModuleType(name) for name in (
        "modules", "modules.scripts", "modules.script_callbacks", "modules.shared", "modules.ui_components",
        "modules.processing", "modules.infotext_utils", "modules.paths", "modules.devices",
    )}
    root = modules["modules"]
    root.__path__ = []  # a package, so `from modules import x` works
    for name, module in modules.items():
        if name != "modules":
            setattr(root, name.split(".")[-1], module)

    _scripts(modules["modules.scripts"])
    _callbacks(modules["modules.script_callbacks"], with_name=new)
    _shared(modules["modules.shared"])
    _processing(modules["modules.processing"], per_image_lists=new)
    modules["modules.paths"].models_path = models_path
    modules["modules.devices"].device = "cpu"
    if new:
        _ui_components(modules["modules.ui_components"], factory=host == "forge-main")
        _infotext_utils(modules["modules.infotext_utils"])
    else:
        del modules["modules.infotext_utils"]  # A1111 1.6 has generation_parameters_copypaste only
        modules["modules.infotext_utils"] = None  # type: ignore[assignment]
    return modules


# -- modules.scripts ---------------------------------------------------------------------------------


def _scripts(module: types.ModuleType) -> None:
    class AlwaysVisible:
        pass

    class Script:
        """The parts of A1111's Script base the extension relies on."""

        name = None
        section = None
        filename = None
        args_from = None
        args_to = None
        alwayson = False
        is_txt2img = False
        is_img2img = False
        tabname = None
        infotext_fields = None
        paste_field_names = None

        def title(self):
            raise NotImplementedError

        def elem_id(self, item_id):
            # "script_{tab_}{title}_{item_id}", title lower-cased with spaces as underscores
            title = "_".join(self.title().lower().split())
            tab = f"{'img2img' if self.is_img2img else 'txt2img'}_"
            return f"script_{tab}{title}_{item_id}"

    class ScriptClassData:
        def __init__(self, script_class, path, basedir, module):
            self.script_class, self.path, self.basedir, self.module = script_class, path, basedir, module

    module.AlwaysVisible = AlwaysVisible
    module.Script = Script
    module.ScriptClassData = ScriptClassData
    module.scripts_data = []


# -- modules.script_callbacks ---------------------------------------------------------------------------


def _callbacks(module: types.ModuleType, *, with_name: bool) -> None:
    registry: dict[str, list[Any]] = {}
    module.callbacks = registry

    def make(category: str):
        if with_name:
            def register(callback, *, name=None):
                registry.setdefault(category, []).append(callback)
        else:
            def register(callback):
                registry.setdefault(category, []).append(callback)
        register.__name__ = f"on_{category}"
        return register

    for category in ("ui_settings", "app_started", "infotext_pasted", "before_ui", "cfg_denoiser",
                     "cfg_denoised", "cfg_after_cfg", "model_loaded", "script_unloaded"):
        setattr(module, f"on_{category}", make(category))


# -- modules.shared -------------------------------------------------------------------------------------


def _shared(module: types.ModuleType) -> None:
    class OptionInfo:
        def __init__(self, default=None, label="", component=None, component_args=None, onchange=None,
                     section=None, refresh=None, comment_before="", comment_after="", infotext=None,
                     restrict_api=False):
            self.default, self.label, self.component = default, label, component
            self.component_args, self.section, self.infotext = component_args, section, infotext
            self.comment_after = comment_after
            self.restrict_api = restrict_api

        def info(self, info):
            self.comment_after += f"<span class='info'>({info})</span>"
            return self

    class Options:
        """A1111's semantics: a registered key reads its stored value or its default; an unknown key
        raises AttributeError (so `getattr(opts, key, default)` falls back)."""

        def __init__(self):
            object.__setattr__(self, "data", {})
            object.__setattr__(self, "data_labels", {})

        def add_option(self, key, info):
            self.data_labels[key] = info
            self.data.setdefault(key, info.default)

        def __getattr__(self, item):
            data = object.__getattribute__(self, "data")
            labels = object.__getattribute__(self, "data_labels")
            if item in data:
                return data[item]
            if item in labels:
                return labels[item].default
            raise AttributeError(item)

        def __setattr__(self, key, value):
            self.data[key] = value

        def set(self, key, value, is_api=False, run_callbacks=True):
            """A1111 1.6+: `override_settings` and POST /sdapi/v1/options come in with is_api=True, and
            an option registered with restrict_api=True is then left unchanged (returns False)."""
            if self.data.get(key) == value:
                return False
            if is_api and getattr(self.data_labels[key], "restrict_api", False):
                return False
            setattr(self, key, value)
            return True

    class State:
        """`shared.state` (A1111 `modules/shared_state.py`, Forge the same): the Interrupt/Skip flags
        the buttons set while a job runs."""

        def __init__(self):
            self.interrupted = False
            self.skipped = False
            self.stopping_generation = False  # "stop after the current image" (A1111 1.8+, Forge)
            self.job = ""
            self.textinfo = None

        def interrupt(self):
            self.interrupted = True

        def skip(self):
            self.skipped = True

    module.OptionInfo = OptionInfo
    module.Options = Options
    module.State = State
    module.state = State()
    module.opts = Options()
    module.cmd_opts = types.SimpleNamespace(api=True, nowebui=False)


# -- modules.processing ---------------------------------------------------------------------------------


def _processing(module: types.ModuleType, *, per_image_lists: bool) -> None:
    class StableDiffusionProcessing:
        """The fields `process()` reads and writes (after `setup_prompts`, before `process()`)."""

        def __init__(self, prompt="a cat", negative_prompt="", batch_size=1, n_iter=1, seed=1000,
                     enable_hr=False, hr_prompt="", hr_negative_prompt=""):
            self.prompt, self.negative_prompt = prompt, negative_prompt
            self.batch_size, self.n_iter, self.seed = batch_size, n_iter, seed
            self.extra_generation_params = {}
            self.enable_hr = enable_hr
            self.is_hr_pass = False
            self.script_args = ()
            self.iteration = 0
            self.batch_index = 0
            self.setup_prompts(hr_prompt, hr_negative_prompt)

        def setup_prompts(self, hr_prompt, hr_negative_prompt):
            total = self.batch_size * self.n_iter
            self.all_prompts = [self.prompt] * total
            self.all_negative_prompts = [self.negative_prompt] * total
            self.all_seeds = [self.seed + i for i in range(total)]
            self.main_prompt, self.main_negative_prompt = self.all_prompts[0], self.all_negative_prompts[0]
            if self.enable_hr:
                self.all_hr_prompts = [hr_prompt or self.prompt] * total
                self.all_hr_negative_prompts = [hr_negative_prompt or self.negative_prompt] * total

    if per_image_lists:
        def create_infotext(p, all_prompts, all_seeds, all_subseeds, comments=None, iteration=0, position_in_batch=0):
            index = position_in_batch + iteration * p.batch_size
            generation_params = {"Steps": 4, **p.extra_generation_params}
            for key, value in generation_params.items():
                if isinstance(value, list):
                    generation_params[key] = value[index]
            text = ", ".join(f"{k}: {v}" for k, v in generation_params.items() if v is not None)
            return f"{all_prompts[index]}\n{text}"
    else:
        def create_infotext(p, all_prompts, all_seeds, all_subseeds, comments=None, iteration=0, position_in_batch=0):
            index = position_in_batch + iteration * p.batch_size
            generation_params = {"Steps": 4, **p.extra_generation_params}
            text = ", ".join(f"{k}: {v}" for k, v in generation_params.items() if v is not None)
            return f"{all_prompts[index]}\n{text}"

    module.StableDiffusionProcessing = StableDiffusionProcessing
    module.StableDiffusionProcessingTxt2Img = StableDiffusionProcessing
    module.create_infotext = create_infotext


# -- modules.ui_components / modules.infotext_utils -----------------------------------------------------


def _ui_components(module: types.ModuleType, *, factory: bool) -> None:
    import gradio as gr

    # gradio 4 writes a .pyi stub beside the source of every Component subclass; the hosts switch
    # that off too (it cannot parse a class defined inside a function anyway).
    meta = getattr(gr, "component_meta", None)
    saved = getattr(meta, "create_or_modify_pyi", None)
    if saved is not None:
        meta.create_or_modify_pyi = lambda *args, **kwargs: None
    try:
        impl = _input_accordion_class(gr)
    finally:
        if saved is not None:
            meta.create_or_modify_pyi = saved
    if factory:
        def InputAccordion(value=None, **kwargs):  # the host's own name
            return impl(value=value, **kwargs)

        module.InputAccordion = InputAccordion
        module.InputAccordionImpl = impl
    else:
        module.InputAccordion = impl


def _input_accordion_class(gr: Any) -> type:
    class InputAccordionImpl(gr.Checkbox):
        """A hidden checkbox (the input value) plus an accordion whose open state follows it."""

        def __init__(self, value=None, **kwargs):
            self.accordion_id = kwargs.get("elem_id") or "input-accordion"
            checkbox_kwargs = {**kwargs, "elem_id": f"{self.accordion_id}-checkbox", "visible": False}
            super().__init__(value=value, **checkbox_kwargs)
            self.accordion = gr.Accordion(
                label=kwargs.get("label", "Accordion"), open=bool(value), elem_id=self.accordion_id,
                elem_classes=["input-accordion"],
            )

        def __enter__(self):
            self.accordion.__enter__()
            return self

        def __exit__(self, *args):
            self.accordion.__exit__(*args)

        def get_block_name(self):
            return "checkbox"

    return InputAccordionImpl


def _infotext_utils(module: types.ModuleType) -> None:
    class PasteField(tuple):
        def __new__(cls, component, target, *, api=None):
            return super().__new__(cls, (component, target))

        def __init__(self, component, target, *, api=None):
            super().__init__()
            self.api = api
            self.component = component
            self.label = target if isinstance(target, str) else None
            self.function = target if callable(target) else None

    module.PasteField = PasteField
