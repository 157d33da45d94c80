"""The style picker's gradio components, built inside the caller's Blocks context.

Works under gradio 3.41 (A1111) and 4.40 (Forge): only APIs both have (no `.style()`, `gr.update`
instead of `gr.X.update`). The filter-as-you-type, "selected first" ordering and hover previews run
in the browser (`javascript/fooocus_styles.js`), which finds the parts by these elem_ids:

    <prefix>_styles_picker   the wrapper            <prefix>_styles          the CheckboxGroup
    <prefix>_styles_search   the search Textbox     <prefix>_styles_count    the "N selected" text
    <prefix>_styles_refresh  the refresh button     <prefix>_styles_notes    load warnings
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lib_fooocus.styles.library import StyleLibrary

PICKER_CLASS = "fooocus-styles-picker"
GROUP_CLASS = "fooocus-styles-group"
SEARCH_CLASS = "fooocus-styles-search"


@dataclass
class StylePicker:
    root: Any
    search: Any
    styles: Any  # CheckboxGroup; its value (the API value) is the list of selected names
    count: Any
    refresh: Any
    notes: Any


def count_html(selected: Sequence[str] | None) -> str:
    """The "N selected" text. It also carries the selection in its real order (`data-order`): the
    page only shows which boxes are checked, and after a paste or refresh the order the styles are
    applied in is the value's, which the browser cannot see otherwise."""
    names = [str(name) for name in (selected or [])]
    count = len(names)
    word = "style" if count == 1 else "styles"
    order = html.escape(json.dumps(names, ensure_ascii=False), quote=True)
    title = html.escape(f"Applied in this order: {', '.join(names)}" if names else "No style selected", quote=True)
    return f'<span class="fooocus-styles-count-text" data-order="{order}" title="{title}">{count} {word} selected</span>'


def notes_html(warnings: Sequence[str]) -> str:
    """Load warnings as escaped HTML (they quote user files)."""
    if not warnings:
        return ""
    items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
    return f'<details class="fooocus-styles-notes-list"><summary>{len(warnings)} style warning(s)</summary><ul>{items}</ul></details>'


def kept_selection(selected: Sequence[str] | None, library: StyleLibrary) -> list[str]:
    """The selection restricted to names the (reloaded) library still offers, order kept."""
    offered = set(library.selectable_names)
    return [name for name in (selected or []) if name in offered]


def refresh_outputs(
    selected: Sequence[str] | None, reload_library: Callable[[], StyleLibrary], update: Callable[..., Any]
) -> tuple[Any, str, str]:
    """The refresh button's outputs: new choices with the surviving selection, the count, the notes."""
    library = reload_library()
    keep = kept_selection(selected, library)
    return update(choices=library.selectable_names, value=keep), count_html(keep), notes_html(library.warnings)


def build_style_picker(
    elem_prefix: str,
    get_library: Callable[[], StyleLibrary],
    reload_library: Callable[[], StyleLibrary],
    value: Sequence[str] | None = None,
    label: str = "Styles",
) -> StylePicker:
    """Create the picker's components in the current gradio Blocks context and wire the count and
    the refresh button. `reload_library()` re-reads the style folders and returns the new library
    (the caller stores it so the REST routes and generation see it too)."""
    import gradio as gr

    library = get_library()
    initial = kept_selection(library.default_selection() if value is None else value, library)
    with gr.Column(elem_id=f"{elem_prefix}_styles_picker", elem_classes=[PICKER_CLASS]) as root:
        with gr.Row():
            search = gr.Textbox(
                label="Search styles",
                show_label=False,
                placeholder="Search styles…",
                lines=1,
                max_lines=1,
                elem_id=f"{elem_prefix}_styles_search",
                elem_classes=[SEARCH_CLASS],
            )
            count = gr.HTML(value=count_html(initial), elem_id=f"{elem_prefix}_styles_count")
            refresh = gr.Button(
                value="Refresh", size="sm", elem_id=f"{elem_prefix}_styles_refresh", min_width=80
            )
        styles = gr.CheckboxGroup(
            choices=library.selectable_names,
            value=initial,
            label=label,
            elem_id=f"{elem_prefix}_styles",
            elem_classes=[GROUP_CLASS],
        )
        notes = gr.HTML(value=notes_html(library.warnings), elem_id=f"{elem_prefix}_styles_notes")

    def on_refresh(selected: list[str] | None):
        return refresh_outputs(selected, reload_library, gr.update)

    styles.change(fn=count_html, inputs=[styles], outputs=[count], show_progress="hidden")
    refresh.click(fn=on_refresh, inputs=[styles], outputs=[styles, count, notes])
    return StylePicker(root=root, search=search, styles=styles, count=count, refresh=refresh, notes=notes)
