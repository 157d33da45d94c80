"""The "Fooocus" settings section: option specs, registration, and reading with defaults.

Settings are registered only when the host builds its UI (and in A1111 1.6/1.7 API mode only at
the first request), so every read goes through `read(key)`, which falls back to the default.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lib_fooocus.params import FIELDS, FooocusParams

log = logging.getLogger(__name__)

SECTION = ("fooocus", "Fooocus")

KEY_ACCORDION_OPEN = "fooocus_accordion_open"
KEY_DEFAULT_STYLES = "fooocus_default_styles"
KEY_EXPANSION_DIR = "fooocus_expansion_model_dir"
KEY_EXPANSION_REPO = "fooocus_expansion_hub_repo"
KEY_EXPANSION_REVISION = "fooocus_expansion_hub_revision"
KEY_EXPANSION_DEVICE = "fooocus_expansion_device"
KEY_EXPANSION_UNLOAD = "fooocus_expansion_unload"
KEY_EXPANSION_DOWNLOAD = "fooocus_expansion_allow_download"
KEY_STYLES_FOOOCUS_DIR = "fooocus_styles_fooocus_dir"
KEY_STYLES_EXTRA = "fooocus_styles_extra"
KEY_FILTER_METHOD = "fooocus_sharpness_filter"

# The sharpness filter's two exact paths (`lib_fooocus.guidance.sharpness.joint_bilateral_filter`).
FILTER_METHOD_CHOICES = ("auto", "shift", "batched")

KEY_REFINER_PLACEMENT = "fooocus_refiner_placement"
KEY_REFINER_KEEP_CACHED = "fooocus_refiner_keep_cached"
REFINER_PLACEMENTS = ("CPU RAM", "Compute device")

DEVICE_TEXT_ENCODER = "Text encoder device"
DEVICE_CPU = "CPU"
DEVICE_CHOICES = (DEVICE_TEXT_ENCODER, DEVICE_CPU)

# The enable switch has no default setting: a default of "on" would switch the extension on for
# every API request that does not mention it. "Accordion starts open" covers the UI side.
DEFAULTED_FIELDS = tuple(spec for spec in FIELDS if spec.name not in ("enabled", "styles", "refiner_checkpoint"))

# Typed as a bare string so "no styles" ("none") and "the library's default" ("") differ.
NO_STYLES = "none"


def default_key(name: str) -> str:
    return f"fooocus_default_{name}"


@dataclass(frozen=True)
class OptionSpec:
    key: str
    default: Any
    label: str
    component: str  # "checkbox", "slider", "textbox", "radio"
    component_args: dict[str, Any] = field(default_factory=dict)
    info: str = ""
    ui_only: bool = False  # registered with restrict_api=True: API clients cannot change it


# What is downloaded, from where, and which folders are read: changed only from the UI or config.json,
# never by `override_settings` or POST /sdapi/v1/options.
UI_ONLY_KEYS = frozenset({
    KEY_EXPANSION_DIR, KEY_EXPANSION_DOWNLOAD, KEY_EXPANSION_REPO, KEY_EXPANSION_REVISION,
    KEY_STYLES_FOOOCUS_DIR, KEY_STYLES_EXTRA, KEY_FILTER_METHOD,
})


def option_specs() -> list[OptionSpec]:
    """Every option of the section, in display order; parameter defaults come from `FIELDS`."""
    specs = [
        OptionSpec(KEY_ACCORDION_OPEN, False, "Fooocus accordion starts open (and therefore enabled) in the UI",
                   "checkbox", info="API requests that do not mention Fooocus stay unaffected"),
    ]
    for spec in DEFAULTED_FIELDS:
        if spec.kind is bool:
            specs.append(OptionSpec(default_key(spec.name), spec.default, f"Default: {spec.label}", "checkbox",
                                    info=spec.help))
        else:
            specs.append(OptionSpec(
                default_key(spec.name), spec.default, f"Default: {spec.label}", "slider",
                {"minimum": spec.minimum, "maximum": spec.maximum, "step": spec.step}, info=spec.help,
            ))
    specs += [
        OptionSpec(KEY_DEFAULT_STYLES, "", "Default styles (comma-separated names)", "textbox",
                   info="empty = the library's default (Fooocus Enhance + Sharp when Fooocus's styles are present, "
                        f"else our quality + cinematic pair); '{NO_STYLES}' = no styles"),
        OptionSpec(KEY_STYLES_FOOOCUS_DIR, "", "Fooocus styles folder: a Fooocus install or its sdxl_styles folder",
                   "textbox", info="its styles are added after ours; empty = not used"),
        OptionSpec(KEY_STYLES_EXTRA, "", "More style folders or A1111 styles.csv files (separated by ';')",
                   "textbox"),
        OptionSpec(KEY_EXPANSION_DIR, "", "Fooocus V2 expansion model folder", "textbox",
                   info="empty = models/prompt_expansion/fooocus_expansion inside the WebUI; files placed there by "
                        "hand work offline"),
        OptionSpec(KEY_EXPANSION_DOWNLOAD, True, "Download missing Fooocus V2 expansion files on first use",
                   "checkbox", info="the model and word list are CC BY-NC 4.0 outside Fooocus"),
        OptionSpec(KEY_EXPANSION_REPO, "lllyasviel/misc", "Hugging Face repo of the expansion weights", "textbox"),
        OptionSpec(KEY_EXPANSION_REVISION, "main", "Revision (branch, tag or commit) of that repo", "textbox"),
        OptionSpec(KEY_EXPANSION_DEVICE, DEVICE_TEXT_ENCODER, "Run the expansion on", "radio",
                   {"choices": list(DEVICE_CHOICES)}, info="the text encoder's device uses fp16 on a GPU"),
        OptionSpec(KEY_EXPANSION_UNLOAD, False, "Unload the expansion model after each generation", "checkbox"),
        OptionSpec(KEY_FILTER_METHOD, "auto", "Sharpness filter path", "radio",
                   {"choices": list(FILTER_METHOD_CHOICES)},
                   info="same result either way; auto = batched on GPUs, shift on CPUs; batched = few large "
                        "operations on torch's threads; shift = least work, ~800 small operations on one CPU thread"),
        OptionSpec(KEY_REFINER_PLACEMENT, REFINER_PLACEMENTS[0], "Keep the Fooocus refiner's UNet in", "radio",
                   {"choices": list(REFINER_PLACEMENTS)},
                   info="CPU RAM: moved to the compute device for each generation; compute device: stays there "
                        "(faster on a GPU, costs its memory all the time)"),
        OptionSpec(KEY_REFINER_KEEP_CACHED, True, "Keep the Fooocus refiner's UNet loaded between generations",
                   "checkbox", info="off = read it from disk for every generation that uses it"),
    ]
    return [replace(spec, ui_only=True) if spec.key in UI_ONLY_KEYS else spec for spec in specs]


OPTION_DEFAULTS: dict[str, Any] = {spec.key: spec.default for spec in option_specs()}


def read(key: str, default: Any = None) -> Any:
    """A setting's value, or its default when the host has not registered it (yet) or is absent."""
    fallback = OPTION_DEFAULTS.get(key) if default is None else default
    try:
        from modules import shared
    except ImportError:
        return fallback
    opts = getattr(shared, "opts", None)
    if opts is None:
        return fallback
    try:
        value = getattr(opts, key, fallback)
    except Exception:  # an Options object mid-initialisation
        return fallback
    return fallback if value is None else value


def filter_method() -> str:
    """The sharpness filter path from the settings; an unknown value (a hand-edited config.json)
    falls back to "auto" with a warning."""
    value = str(read(KEY_FILTER_METHOD) or "auto").strip().lower()
    if value not in FILTER_METHOD_CHOICES:
        log.warning("Fooocus: setting %s=%r is not one of %s; using auto", KEY_FILTER_METHOD, value,
                    ", ".join(FILTER_METHOD_CHOICES))
        return "auto"
    return value


def parse_style_list(text: Any) -> list[str]:
    if isinstance(text, (list, tuple)):
        return [str(s).strip() for s in text if str(s).strip()]
    return [part.strip() for part in str(text or "").split(",") if part.strip()]


def default_styles(library: Any) -> list[str]:
    """The picker's initial selection. The "Fooocus V2" entry of the library's default is left out:
    the expansion has its own switch (and its own default), and its model is non-commercial."""
    from lib_fooocus.styles.library import FOOOCUS_V2

    configured = str(read(KEY_DEFAULT_STYLES) or "").strip()
    if configured.lower() == NO_STYLES:
        return []
    names = parse_style_list(configured) if configured else library.default_selection()
    kept = []
    for name in names:
        resolved = library.resolve(name)
        if resolved is None:
            log.warning("Fooocus: default style %r (Settings > Fooocus) is not in the style library; skipped", name)
        elif resolved != FOOOCUS_V2 or configured:
            kept.append(resolved)
    return kept


def default_params(library: Any | None = None) -> FooocusParams:
    """The parameters the UI starts with and API requests fall back to: FIELDS defaults overridden by
    the settings (out-of-range settings are clamped with a warning). Always disabled."""
    values: dict[str, Any] = {}
    for spec in DEFAULTED_FIELDS:
        raw = read(default_key(spec.name), spec.default)
        if spec.kind is bool:
            values[spec.name] = bool(raw)
            continue
        try:
            values[spec.name] = float(raw)
        except (TypeError, ValueError):
            log.warning("Fooocus: setting %s=%r is not a number; using %g", default_key(spec.name), raw, spec.default)
    if library is not None:
        values["styles"] = tuple(default_styles(library))
    params, warnings = FooocusParams(**values).clamped()
    for warning in warnings:
        log.warning("Fooocus: settings default %s", warning)
    return params


def register_settings() -> None:
    """`on_ui_settings` callback: add the section's options to `shared.opts`."""
    import gradio as gr
    from modules import shared

    components: dict[str, Callable[..., Any]] = {
        "checkbox": gr.Checkbox, "slider": gr.Slider, "textbox": gr.Textbox, "radio": gr.Radio,
    }
    restrict = accepts_keyword(shared.OptionInfo, "restrict_api")  # A1111 1.6+, Forge
    if not restrict:
        log.warning("Fooocus: this WebUI cannot protect settings from API clients (no OptionInfo restrict_api); "
                    "%s can be changed through the API", ", ".join(sorted(UI_ONLY_KEYS)))
    for spec in option_specs():
        extra = {"restrict_api": True} if spec.ui_only and restrict else {}
        option = shared.OptionInfo(
            spec.default, spec.label, components[spec.component], dict(spec.component_args), section=SECTION, **extra
        )
        if spec.info and hasattr(option, "info"):
            option = option.info(spec.info)
        shared.opts.add_option(spec.key, option)


def accepts_keyword(factory: Any, name: str) -> bool:
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def expansion_model_dir() -> Path:
    configured = str(read(KEY_EXPANSION_DIR) or "").strip()
    if configured:
        return Path(configured).expanduser()
    return host_models_dir() / "prompt_expansion" / "fooocus_expansion"


def host_models_dir() -> Path:
    try:
        from modules import paths

        return Path(paths.models_path)
    except (ImportError, AttributeError):
        return Path(__file__).resolve().parents[2] / "models"


def extra_style_sources() -> list[str]:
    text = str(read(KEY_STYLES_EXTRA) or "")
    return [part.strip() for part in text.replace("\n", ";").split(";") if part.strip()]
