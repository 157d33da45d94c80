"""The "Fooocus" accordion, built from the `FIELDS` table (labels, ranges, defaults, tooltips).

Works under gradio 3.41 (A1111, Forge's 2024 line) and 4.40 (Forge main). The enable switch is the
host's `InputAccordion` where it exists (A1111 1.7+, Forge) and a plain accordion with a checkbox
otherwise (A1111 1.6). Building is side-effect free: the host's API builds it a second time inside
a throw-away Blocks to read the defaults.
"""

from __future__ import annotations

import html
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from lib_fooocus.params import FIELD_NAMES, FIELDS_BY_NAME, FooocusParams

log = logging.getLogger(__name__)

# How the controls after the enable switch are grouped; every FIELDS name appears exactly once.
LAYOUT: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("row", "", ("sharpness", "adaptive_cfg")),
    ("group", "ADM guidance", ("adm_scaler_positive", "adm_scaler_negative", "adm_scaler_end")),
    ("row", "", ("apply_in_hires", "match_fooocus")),
    ("expansion", "", ("expansion",)),
    ("styles", "", ("styles",)),
    ("refiner", "Refiner", ("refiner_checkpoint", "refiner_switch")),
)

REFINER_REFRESH_HELP = "Read the checkpoint folders again."
REFINER_SWITCH_INFO = "0.8 for SDXL refiners, any value for two SDXL models"


LICENSE_LINE = (
    "The Fooocus V2 model and word list are CC BY-NC 4.0 (non-commercial) outside Fooocus. They are never "
    "bundled: they are downloaded by you, on first use, into {folder} (or placed there by hand)."
)

STATUS_REFRESH_HELP = "Read the expansion status again (it refreshes by itself while a download runs)."
STATUS_CLASS = "fooocus-expansion-status"

STYLE_SEARCH_HELP = "Filter the styles by words in their names; selected styles always stay in view."
STYLE_REFRESH_HELP = "Read the style folders again (after adding or editing style files)."


@dataclass
class FooocusUI:
    components: list[Any]  # the Script's inputs, in FIELDS order
    by_name: dict[str, Any]
    infotext_fields: list[Any] = field(default_factory=list)
    tooltips: dict[str, str] = field(default_factory=dict)
    preview_button: Any = None
    preview_output: Any = None
    status_output: Any = None  # HTML: the expansion's state, with a progress bar while downloading
    status_refresh: Any = None  # reads the state again; the page clicks it while a download runs
    retry_button: Any = None
    accordion: Any = None
    schedule_plot: Any = None
    defaults_row: dict[str, Any] = field(default_factory=dict)
    import_group: dict[str, Any] = field(default_factory=dict)


def gradio_major() -> int:
    import gradio as gr

    try:
        return int(str(gr.__version__).split(".")[0])
    except ValueError:
        return 4


def js_kwarg(code: str) -> dict[str, str]:
    """Event kwarg for client-side code: `_js` in gradio 3, `js` in gradio 4."""
    return {"js": code} if gradio_major() >= 4 else {"_js": code}


def input_accordion_class() -> Any:
    try:
        from modules.ui_components import InputAccordion
    except ImportError:
        return None
    return InputAccordion


def preview_text(prompt: Any, seed: Any, expand: Callable[[str, int], str], source_of: Callable[[str], str]) -> str:
    """The preview box's text for the tab's prompt and seed (-1 = a random seed, shown)."""
    prompt = str(prompt or "")
    source = source_of(prompt)
    if not source.strip():
        return "Type a prompt first: the expansion continues the first line of the prompt."
    try:
        seed_value = int(float(seed))
    except (TypeError, ValueError):
        seed_value = -1
    chosen = ""
    if seed_value < 0:
        seed_value = random.randrange(2**32)
        chosen = f" (random seed {seed_value})"
    try:
        expansion = expand(source, seed_value)
    except Exception as error:  # the missing-files message is meant for the user
        return str(error)
    return f"{expansion}{chosen}" if expansion else f"(empty expansion){chosen}"


def status_html(state: Any) -> str:
    """The accordion's expansion status: its text (escaped: it quotes paths and server messages), a
    progress bar while a download of known size runs, and the state's kind in `data-state`, which
    tells `javascript/fooocus_ui.js` to keep refreshing while it is "busy". `state` is an
    `ExpansionState` (kind, text, fraction) or a plain status line."""
    if isinstance(state, str):
        kind, text, fraction = "idle", state, None
    else:
        kind, text, fraction = getattr(state, "kind", "idle"), getattr(state, "text", ""), getattr(state, "fraction", None)
    bar = ""
    if fraction is not None:
        percent = max(0, min(100, int(float(fraction) * 100)))
        bar = f'<progress class="{STATUS_CLASS}-bar" max="100" value="{percent}">{percent}%</progress>'
    return (
        f'<div class="{STATUS_CLASS}" data-state="{html.escape(str(kind), quote=True)}" role="status">'
        f'{bar}<span class="{STATUS_CLASS}-text">{html.escape(str(text))}</span></div>'
    )


def _slider(gr: Any, name: str, value: float, elem_id: str) -> Any:
    spec = FIELDS_BY_NAME[name]
    return gr.Slider(
        minimum=spec.minimum, maximum=spec.maximum, step=spec.step, value=value, label=spec.label, elem_id=elem_id
    )


def _control(gr: Any, name: str, defaults: FooocusParams, elem_id: Callable[[str], str]) -> Any:
    spec = FIELDS_BY_NAME[name]
    if spec.kind is bool:
        return gr.Checkbox(value=bool(getattr(defaults, name)), label=spec.label, elem_id=elem_id(name))
    return _slider(gr, name, float(getattr(defaults, name)), elem_id(name))


def tooltip_html(tooltips: dict[str, str], tabname: str, open_on_load: bool = False, accordion_id: str = "") -> str:
    """A hidden element carrying the one-line help per control; `javascript/fooocus_ui.js` turns it
    into `title` attributes (the same text the FIELDS table holds). `data-open` asks the script to
    open the accordion on page load (the "starts open" setting; an InputAccordion opened is on)."""
    payload = html.escape(json.dumps(tooltips, ensure_ascii=False), quote=True)
    return (
        f'<div class="fooocus-tooltips" data-tab="{html.escape(tabname)}" data-open="{int(open_on_load)}" '
        f'data-accordion="{html.escape(accordion_id)}" '
        f'data-tooltips="{payload}" hidden></div>'
    )


def _render_open(gr: Any, input_accordion: Any) -> None:
    """The "starts open" setting for an InputAccordion whose input value stays False (the API
    default): the page configuration renders its accordion open, and a page-load event sets the
    input to True through gradio, which tells the host's accordion script (`inputAccordionChecked`).

    Opening it by a click in the page does not last under gradio 4 (Forge main): a moment after
    load gradio re-applies the components' configured props, the accordion's `open` (False) and the
    input's value (False, whose change event makes the host close the accordion again). With both
    the configured `open` and gradio's own value saying "on", nothing is put back."""
    inner = getattr(input_accordion, "accordion", None)
    if inner is not None and hasattr(inner, "open"):
        inner.open = True
    try:
        from gradio.context import Context

        root = Context.root_block
    except ImportError:
        root = None
    if root is None or not hasattr(root, "load"):
        return
    major = int(str(getattr(gr, "__version__", "4")).split(".", 1)[0] or 4)
    js_argument = {"js": "() => true"} if major >= 4 else {"_js": "() => true"}
    root.load(fn=None, inputs=None, outputs=[input_accordion], **js_argument)


def build_ui(
    *,
    tabname: str,
    elem_id: Callable[[str], str],
    defaults: FooocusParams,
    accordion_open: bool = False,
    build_style_picker: Callable[[str, Any], Any] | None = None,
    expand: Callable[[str, int], str] | None = None,
    expansion_source: Callable[[str], str] | None = None,
    expansion_status: Callable[[], Any] | None = None,
    retry_expansion: Callable[[], Any] | None = None,
    license_folder: str = "the expansion model folder",
    prompt_component: Any = None,
    seed_component: Any = None,
    known_style: Callable[[str], str | None] | None = None,
    paste_field_class: Any = None,
    paste_cache: Any = None,
    schedule_inputs: dict[str, Any] | None = None,
    refiner_choices: Callable[[], list[str]] | None = None,
    refresh_refiner_choices: Callable[[], list[str]] | None = None,
    host_controls: dict[str, Any] | None = None,
    current_library: Callable[[], Any] | None = None,
    style_imports: Any = None,
    host_style_files: Callable[[], list[str]] | None = None,
) -> FooocusUI:
    """Create the accordion in the current Blocks context. `build_style_picker(elem_prefix, value)`
    returns an object whose `.styles` is the CheckboxGroup (a plain CheckboxGroup when None).
    `expansion_status()` and `retry_expansion()` return the expansion's state (see `status_html`).
    `host_controls`: the tab's sampler/scheduler/steps/cfg_scale/width/height that were found, for
    the defaults row (built when `current_library` is given); `style_imports` (a `StyleImports`)
    adds the "Import styles" group under the picker."""
    import gradio as gr

    from lib_fooocus.webui import ui_tools
    from lib_fooocus.webui.paste import original_prompt_function, paste_function

    by_name: dict[str, Any] = {}
    tooltips: dict[str, str] = {}
    result = FooocusUI(components=[], by_name=by_name)
    accordion_class = input_accordion_class()
    enabled_spec = FIELDS_BY_NAME["enabled"]

    if accordion_class is not None:
        accordion = accordion_class(False, label=enabled_spec.label, elem_id=elem_id("enabled"))
        by_name["enabled"] = accordion
        if accordion_open:
            _render_open(gr, accordion)
    else:
        accordion = gr.Accordion(enabled_spec.label, open=accordion_open, elem_id=elem_id("accordion"))
    result.accordion = accordion
    tooltips[elem_id("enabled")] = enabled_spec.help

    with accordion:
        if accordion_class is None:
            by_name["enabled"] = gr.Checkbox(value=False, label=f"Enable {enabled_spec.label}", elem_id=elem_id("enabled"))
        if current_library is not None:
            result.defaults_row = ui_tools.build_defaults_row(
                gr, elem_id, dict(host_controls or {}), by_name, lambda: current_library().selectable_names,
                js_kwarg, tooltips,
            )
        for kind, title, names in LAYOUT:
            if kind == "row":
                with gr.Row():
                    for name in names:
                        by_name[name] = _control(gr, name, defaults, elem_id)
            elif kind == "group":
                with gr.Group(elem_id=elem_id("adm_group")):
                    gr.HTML(f'<div class="fooocus-group-title">{html.escape(title)}</div>')
                    with gr.Row():
                        for name in names:
                            by_name[name] = _control(gr, name, defaults, elem_id)
            elif kind == "expansion":
                with gr.Row():
                    by_name["expansion"] = _control(gr, "expansion", defaults, elem_id)
                    result.preview_button = gr.Button(
                        value="Preview expansion", size="sm", elem_id=elem_id("expansion_preview")
                    )
                result.preview_output = gr.Textbox(
                    label="Expansion preview (current prompt and seed)",
                    interactive=False,
                    lines=2,
                    elem_id=elem_id("expansion_preview_text"),
                )
                if expansion_status is not None:
                    with gr.Row():
                        result.status_output = gr.HTML(
                            value=status_html(expansion_status()), elem_id=elem_id("expansion_status")
                        )
                        result.status_refresh = gr.Button(
                            value="\U0001f504", size="sm", min_width=40, elem_id=elem_id("expansion_status_refresh")
                        )
                        result.retry_button = gr.Button(
                            value="Retry download", size="sm", elem_id=elem_id("expansion_retry")
                        )
                    tooltips[elem_id("expansion_retry")] = (
                        "Try a failed download again now (otherwise it is retried after 10 minutes)."
                    )
                    tooltips[elem_id("expansion_status_refresh")] = STATUS_REFRESH_HELP
                gr.HTML(
                    f'<div class="fooocus-license">{html.escape(LICENSE_LINE.format(folder=license_folder))}</div>',
                    elem_id=elem_id("expansion_license"),
                )
                tooltips[elem_id("expansion_preview")] = "Show the expansion for the current prompt and seed without generating."
            elif kind == "styles":
                if build_style_picker is not None:
                    picker = build_style_picker(elem_id("styles").removesuffix("_styles"), list(defaults.styles))
                    by_name["styles"] = picker.styles
                else:
                    by_name["styles"] = gr.CheckboxGroup(
                        choices=list(defaults.styles), value=list(defaults.styles), label=FIELDS_BY_NAME["styles"].label,
                        elem_id=elem_id("styles"),
                    )
                    picker = SimpleNamespace(styles=by_name["styles"])  # no count/notes/cards to refresh
                if style_imports is not None and current_library is not None:
                    result.import_group = ui_tools.build_import_group(
                        gr, elem_id, style_imports, current_library, host_style_files or list, picker, tooltips,
                        js_kwarg,
                    )
                tooltips[elem_id("styles_search")] = STYLE_SEARCH_HELP
                tooltips[elem_id("styles_refresh")] = STYLE_REFRESH_HELP
            elif kind == "refiner":
                _build_refiner(gr, by_name, defaults, elem_id, title, refiner_choices, refresh_refiner_choices)
                tooltips[elem_id("refiner_refresh")] = REFINER_REFRESH_HELP
            for name in names:
                tooltips[elem_id(name)] = FIELDS_BY_NAME[name].help
        result.schedule_plot = _build_schedule_plot(gr, by_name, schedule_inputs, elem_id)
        # Hidden carriers for the API's `infotext` field (see `original_prompt_function`).
        original_prompt = gr.Textbox(value="", visible=False, elem_id=elem_id("original_prompt"))
        original_negative = gr.Textbox(value="", visible=False, elem_id=elem_id("original_negative"))
        opens_on_load = accordion_open and accordion_class is not None
        gr.HTML(tooltip_html(tooltips, tabname, opens_on_load, elem_id("enabled")), elem_id=elem_id("tooltips"))

    result.components = [by_name[name] for name in FIELD_NAMES]
    result.tooltips = tooltips
    if result.defaults_row:
        ui_tools.wire_defaults(gr, result.defaults_row)

    if expand is not None and result.preview_button is not None:
        _wire_preview(gr, result, tabname, expand, expansion_source or (lambda text: text), prompt_component,
                      seed_component, expansion_status)
    if retry_expansion is not None and result.retry_button is not None:
        def on_retry() -> str:
            return status_html(retry_expansion())

        result.retry_button.click(fn=on_retry, inputs=[], outputs=[result.status_output])
    if expansion_status is not None and result.status_refresh is not None:
        # The page's script clicks this every second or so while the state is "busy" (a download or
        # load runs) and a while after Generate/Preview/Retry, and never otherwise: each click is
        # one short event that only reads the state (a stat or two).
        result.status_refresh.click(fn=_status_reader(expansion_status), inputs=[], outputs=[result.status_output],
                                    show_progress="hidden")

    result.infotext_fields = [(by_name[name], paste_function(name, known_style, paste_cache)) for name in FIELD_NAMES]
    if paste_field_class is not None:
        from lib_fooocus.styles.assembly import INFOTEXT_NEGATIVE_KEY, INFOTEXT_PROMPT_KEY

        result.infotext_fields += [
            paste_field_class(original_prompt, original_prompt_function(INFOTEXT_PROMPT_KEY), api="prompt"),
            paste_field_class(original_negative, original_prompt_function(INFOTEXT_NEGATIVE_KEY), api="negative_prompt"),
        ]
    return result


def _build_schedule_plot(
    gr: Any, by_name: dict[str, Any], schedule_inputs: dict[str, Any] | None, elem_id: Callable[[str], str]
) -> Any:
    """The schedule plot (see `schedule_plot.py`), under the controls it depends on."""
    from lib_fooocus.webui.schedule_plot import build_schedule_plot

    return build_schedule_plot(gr, by_name, schedule_inputs, elem_id("schedule_plot"), js_kwarg)
def _build_refiner(
    gr: Any,
    by_name: dict[str, Any],
    defaults: FooocusParams,
    elem_id: Callable[[str], str],
    title: str,
    choices: Callable[[], list[str]] | None,
    refresh: Callable[[], list[str]] | None,
) -> None:
    """Checkpoint dropdown ("None" first) with a refresh button, and the switch slider."""
    from lib_fooocus.params import REFINER_OFF

    listed = list(choices()) if choices is not None else [REFINER_OFF]
    if REFINER_OFF not in listed:
        listed.insert(0, REFINER_OFF)
    value = defaults.refiner_checkpoint if defaults.refiner_checkpoint in listed else REFINER_OFF
    spec = FIELDS_BY_NAME["refiner_switch"]
    with gr.Group(elem_id=elem_id("refiner_group")):
        gr.HTML(f'<div class="fooocus-group-title">{html.escape(title)}</div>')
        with gr.Row():
            by_name["refiner_checkpoint"] = gr.Dropdown(
                choices=listed, value=value, label=FIELDS_BY_NAME["refiner_checkpoint"].label,
                elem_id=elem_id("refiner_checkpoint"), allow_custom_value=True,
            )
            button = gr.Button(value="\U0001f504", size="sm", elem_id=elem_id("refiner_refresh"))
            by_name["refiner_switch"] = gr.Slider(
                minimum=spec.minimum, maximum=spec.maximum, step=spec.step, value=float(defaults.refiner_switch),
                label=spec.label, info=REFINER_SWITCH_INFO, elem_id=elem_id("refiner_switch"),
            )
    if refresh is not None:
        def on_refresh() -> Any:
            return gr.update(choices=list(refresh()))

        button.click(fn=on_refresh, inputs=[], outputs=[by_name["refiner_checkpoint"]])


def _wire_preview(
    gr: Any,
    result: FooocusUI,
    tabname: str,
    expand: Callable[[str, int], str],
    source_of: Callable[[str], str],
    prompt_component: Any,
    seed_component: Any,
    expansion_status: Callable[[], str] | None = None,
) -> None:
    def on_preview(prompt: Any, seed: Any) -> str:
        return preview_text(prompt, seed, expand, source_of)

    if prompt_component is not None and seed_component is not None:
        event = result.preview_button.click(
            fn=on_preview, inputs=[prompt_component, seed_component], outputs=[result.preview_output]
        )
    else:
        # The tab's prompt/seed boxes were not seen (unknown layout): read them from the page instead.
        prompt_box = gr.Textbox(visible=False)
        seed_box = gr.Number(value=-1, visible=False)
        event = result.preview_button.click(
            fn=on_preview,
            inputs=[prompt_box, seed_box],
            outputs=[result.preview_output],
            **js_kwarg(f"(prompt, seed) => fooocusPreviewInputs('{tabname}', prompt, seed)"),
        )
    if expansion_status is not None and result.status_output is not None:
        event.then(fn=_status_reader(expansion_status), inputs=[], outputs=[result.status_output],
                   show_progress="hidden")


def _status_reader(expansion_status: Callable[[], Any]) -> Callable[[], str]:
    def read_status() -> str:
        return status_html(expansion_status())

    return read_status
