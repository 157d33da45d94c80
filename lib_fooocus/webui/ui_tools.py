"""Two small groups of the accordion: the "Fooocus defaults" row (button, Speed/Quality, resolution
dropdown) and the "Import styles" accordion. Built inside the caller's Blocks context; works under
gradio 3.41 and 4.40 (only `gr.update`, no `.style()`).

The callbacks are plain functions of plain values (`defaults_updates`, `import_*_outputs`) so tests
call them without a browser. Speed/Quality → steps and the resolution dropdown ↔ width/height run in
the page only (`*_js`): gradio 3.41 (A1111) drops an event while the same event's previous call is
still waiting in the queue, so with a server round trip a pick made while the WebUI was busy (its own
width/height events, a generation) was lost — the dropdown showed the pick, the size stayed. The
dropdown following a typed size caused such a waiting call itself (its `change` echoed to the server).

The dropdown sets the size on the user's pick only (its `input` event: gradio fires it for a change
the user made, not for a value an event wrote), and follows every size change (`change` of width and
height). A page-only event's result lands a few frames after it was computed (gradio 4: animation
frames), so the dropdown's entry for the first of two quick picks could land after the second pick:
wired to the dropdown's `change`, that late entry set the first pick's size again, whose own late
entry undid the second pick... a loop between the two sizes. Now a late entry only shows the wrong
label for a moment: the second pick's size lands after it and the dropdown follows it (page events
land in the order they fired).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from lib_fooocus.webui.presets import (
    FOOOCUS_RESOLUTIONS,
    PERFORMANCE_STEPS,
    SPEED,
    fooocus_defaults,
    label_for_size,
)

HOST_CONTROL_NAMES = ("sampler", "scheduler", "steps", "cfg_scale", "width", "height")
# The accordion's own controls the defaults button sets, in this order after the host's.
OWN_CONTROL_NAMES = ("enabled", "sharpness", "adaptive_cfg", "adm_scaler_positive", "adm_scaler_negative",
                     "adm_scaler_end", "styles", "refiner_checkpoint")

DEFAULTS_HELP = ("Set this tab to Fooocus's default preset: DPM++ 2M SDE Karras, 30 steps (Quality: 60), CFG 4, "
                 "1152×896, the styles Fooocus V2 + Enhance + Sharp (those you have), the sampling tricks' defaults, "
                 "no refiner. Only the controls you see change (no checkpoint, LoRA or setting).")
PERFORMANCE_HELP = "Fooocus's Speed (30 steps) or Quality (60 steps); changing it sets the tab's steps."
RESOLUTION_HELP = "Fooocus's 26 SDXL sizes (about 1 megapixel each); picking one sets the tab's width and height."
IMPORT_FOOOCUS_HELP = ("Download Fooocus's 277 styles and their 279 preview images (about 8 MB, sha256-checked) "
                       "into the user styles folder.")
IMPORT_CSV_HELP = "Convert an A1111 styles.csv (empty box: the WebUI's own) into a style file of the user folder."


# -- the defaults row -----------------------------------------------------------------------------


def defaults_updates(
    update: Callable[..., Any],
    host_controls: dict[str, Any],
    own_names: Sequence[str],
    selectable_styles: Sequence[str],
    performance: Any,
) -> list[Any]:
    """The defaults button's outputs: one update per host control (in `host_controls` order), per
    own control (in `own_names` order), then the resolution dropdown and the note."""
    plan = fooocus_defaults(list(host_controls), _choices_of(host_controls.get("sampler")),
                            _choices_of(host_controls.get("scheduler")), selectable_styles, performance)
    out = []
    for name in host_controls:
        out.append(update(value=plan.values[name]) if name in plan.values else update())
    for name in own_names:
        if name == "styles":
            out.append(update(choices=list(selectable_styles), value=plan.values["styles"]))
        else:
            out.append(update(value=plan.values[name]) if name in plan.values else update())
    resolution = label_for_size(plan.values.get("width"), plan.values.get("height"))
    out.append(update(value=resolution) if resolution else update())
    out.append(plan.summary())
    return out


def _choices_of(component: Any) -> Any:
    return getattr(component, "choices", None) if component is not None else None


def resolution_apply_js() -> str:
    """Client-side, on a pick: the entry's width and height; for none or an unknown entry, no change
    (an empty update, not the values read when the event fired: those may be old when it lands)."""
    table = {r.label: [r.width, r.height] for r in FOOOCUS_RESOLUTIONS}
    keep = '[{"__type__": "update"}, {"__type__": "update"}]'
    return f"(label) => ({json.dumps(table, ensure_ascii=False)})[label] || {keep}"


def resolution_sync_js() -> str:
    """Client-side: the dropdown shows the table's entry for the tab's width and height, or nothing.
    Written on every size change, even when the dropdown shows it already: the entry for the last
    size must land last, after any late one (an entry written never sets the size: see the wiring)."""
    table = {f"{r.width}x{r.height}": r.label for r in FOOOCUS_RESOLUTIONS}
    return f"(width, height) => ({json.dumps(table, ensure_ascii=False)})[Math.round(width) + 'x' + Math.round(height)] || null"


def performance_steps_js() -> str:
    """Client-side: Speed/Quality's steps (an unknown choice: Speed's)."""
    return f"(choice) => ({json.dumps(PERFORMANCE_STEPS)})[choice] || {PERFORMANCE_STEPS[SPEED]}"


def build_defaults_row(
    gr: Any,
    elem_id: Callable[[str], str],
    host_controls: dict[str, Any],
    own_controls: dict[str, Any],
    selectable_styles: Callable[[], Sequence[str]],
    js_kwarg: Callable[[str], dict[str, str]],
    tooltips: dict[str, str],
) -> dict[str, Any]:
    """The row, wired. `host_controls`: the tab's controls that were found (HOST_CONTROL_NAMES);
    `own_controls`: the accordion's, by FIELDS name (those built before the row may be missing and
    are wired later by `wire_defaults`)."""
    width, height = host_controls.get("width"), host_controls.get("height")
    with gr.Row(elem_id=elem_id("defaults_row")):
        button = gr.Button(value="Fooocus defaults", size="sm", elem_id=elem_id("defaults"))
        performance = gr.Radio(choices=list(PERFORMANCE_STEPS), value=SPEED, label="Performance",
                               elem_id=elem_id("performance"))
        resolution = gr.Dropdown(
            choices=[r.label for r in FOOOCUS_RESOLUTIONS],
            value=label_for_size(getattr(width, "value", None), getattr(height, "value", None)),
            label="Fooocus resolution", elem_id=elem_id("resolution"), interactive=True,
        )
    note = gr.HTML(value="", elem_id=elem_id("defaults_note"))
    tooltips[elem_id("defaults")] = DEFAULTS_HELP
    tooltips[elem_id("performance")] = PERFORMANCE_HELP
    tooltips[elem_id("resolution")] = RESOLUTION_HELP
    steps = host_controls.get("steps")
    # No server round trip for these (see the module's docstring): page-only events. The size is
    # set on the user's pick only (`input`), never on a value the size sync (below) or the defaults
    # button wrote: a late sync can no longer set an old pick's size again. (Not `select`: gradio
    # 4.40 can hand a select event's code the value from before the pick; `input` fires with `change`.)
    if steps is not None:
        performance.change(fn=None, inputs=[performance], outputs=[steps], **js_kwarg(performance_steps_js()))
    if width is not None and height is not None:
        resolution.input(fn=None, inputs=[resolution], outputs=[width, height], **js_kwarg(resolution_apply_js()))
        for size in (width, height):
            size.change(fn=None, inputs=[width, height], outputs=[resolution], **js_kwarg(resolution_sync_js()))
    return {"button": button, "performance": performance, "resolution": resolution, "note": note,
            "host_controls": host_controls, "own_controls": own_controls, "selectable_styles": selectable_styles}


def wire_defaults(gr: Any, row: dict[str, Any]) -> None:
    """Connect the button once every own control exists."""
    host_controls, own = row["host_controls"], row["own_controls"]
    own_names = [name for name in OWN_CONTROL_NAMES if name in own]

    def on_defaults(performance: Any) -> list[Any]:
        return defaults_updates(gr.update, host_controls, own_names, list(row["selectable_styles"]()), performance)

    outputs = [*host_controls.values(), *(own[name] for name in own_names), row["resolution"], row["note"]]
    row["button"].click(fn=on_defaults, inputs=[row["performance"]], outputs=outputs)


# -- the import group -----------------------------------------------------------------------------


def import_outputs(
    line: str, selected: Sequence[str] | None, library: Any, update: Callable[..., Any], with_picker: bool
) -> list[Any]:
    """The result line, then the picker's updates (choices with the kept selection, count, notes, cards)."""
    from lib_fooocus.webui.style_picker import library_outputs

    picker = library_outputs(selected, library, update)
    return [line, *(picker if with_picker else picker[:1])]


def refresh_others_js(own_refresh_id: str) -> str:
    """Client-side, after an import: the other tabs' pickers refresh (javascript/fooocus_styles.js)."""
    return (f"() => {{ if (window.fooocusStyles) window.fooocusStyles.refreshOtherPickers("
            f"{json.dumps(own_refresh_id)}); return []; }}")


def build_import_group(
    gr: Any,
    elem_id: Callable[[str], str],
    imports: Any,
    current_library: Callable[[], Any],
    host_files: Callable[[], list[str]],
    picker: Any,
    tooltips: dict[str, str],
    js_kwarg: Callable[[str], dict[str, str]],
) -> dict[str, Any]:
    """The "Import styles" accordion. `imports`: a `StyleImports`; `picker`: the StylePicker (or an
    object with only `.styles`), whose choices, count, notes and cards are refreshed after an import;
    the other tabs' pickers then refresh in the page (their Refresh buttons)."""
    files = host_files()
    with gr.Accordion("Import styles", open=False, elem_id=elem_id("import")):
        fooocus_button = gr.Button(value="Import Fooocus's 277 styles (with previews)", size="sm",
                                   elem_id=elem_id("import_fooocus"))
        with gr.Row():
            csv_path = gr.Textbox(
                label="A1111 styles.csv", lines=1, max_lines=1, elem_id=elem_id("import_csv_path"),
                placeholder="empty = the WebUI's own: " + (", ".join(files) if files else "styles.csv (none yet)"),
            )
            csv_button = gr.Button(value="Import A1111 styles.csv", size="sm", elem_id=elem_id("import_csv"))
        result = gr.Textbox(label="Import result", interactive=False, lines=2, elem_id=elem_id("import_result"))
    tooltips[elem_id("import_fooocus")] = IMPORT_FOOOCUS_HELP
    tooltips[elem_id("import_csv")] = IMPORT_CSV_HELP
    with_picker = all(getattr(picker, part, None) is not None for part in ("count", "notes", "cards"))
    outputs = [result, picker.styles] + ([picker.count, picker.notes, picker.cards] if with_picker else [])

    tracker = gr.Progress()  # gradio hands the event's own tracker to a parameter defaulting to one

    def on_import_fooocus(selected: Any, progress: Any = tracker) -> list[Any]:
        def report(done: int, total: int, text: str) -> None:
            progress(done / total if total else 0.0, desc=text)

        line = imports.import_fooocus(report)
        return import_outputs(line, selected, current_library(), gr.update, with_picker)

    def on_import_csv(path: Any, selected: Any) -> list[Any]:
        line = imports.import_csv(path, host_files())
        return import_outputs(line, selected, current_library(), gr.update, with_picker)

    imported = [fooocus_button.click(fn=on_import_fooocus, inputs=[picker.styles], outputs=outputs),
                csv_button.click(fn=on_import_csv, inputs=[csv_path, picker.styles], outputs=outputs)]
    refresh_id = getattr(getattr(picker, "refresh", None), "elem_id", None)
    if refresh_id:  # then the other tabs' pickers (in the page: their own Refresh buttons)
        for event in imported:
            event.then(fn=None, inputs=None, outputs=None, **js_kwarg(refresh_others_js(refresh_id)))
    return {"fooocus_button": fooocus_button, "csv_path": csv_path, "csv_button": csv_button, "result": result}
