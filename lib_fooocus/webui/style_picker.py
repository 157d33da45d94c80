"""The style picker's gradio components, built inside the caller's Blocks context.

Works under gradio 3.41 (A1111) and 4.40 (Forge): only APIs both have (no `.style()`, `gr.update`
instead of `gr.X.update`). The filter-as-you-type, "selected first" ordering and hover previews run
in the browser (`javascript/fooocus_styles.js`), which finds the parts by these elem_ids:

    <prefix>_styles_picker   the wrapper            <prefix>_styles          the CheckboxGroup
    <prefix>_styles_search   the search Textbox     <prefix>_styles_count    the "N selected" text
    <prefix>_styles_refresh  the refresh button     <prefix>_styles_notes    load warnings
    <prefix>_styles_cards    the text cards' data (hover card of styles without a preview image)
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lib_fooocus.styles.library import FOOOCUS_V2, RANDOM_STYLE, StyleLibrary

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
    cards: Any = None


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


# The hover card of the two special entries (they have no templates).
SPECIAL_CARD_TEXT = {
    FOOOCUS_V2: "Turns on the Fooocus V2 prompt expansion: words from Fooocus's GPT-2 model appended to each "
                "image's prompt, seeded by the image seed.",
    RANDOM_STYLE: "Replaced, per image, by one style picked from the image seed (the infotext names it).",
}


def card_data(library: StyleLibrary) -> dict[str, dict[str, str]]:
    """The text cards for every style without a preview image: {name: {"prompt", "negative"}} (the
    special entries: {"about"}). Styles with an image keep the image; the browser shows the card
    only when it has no image URL for the name, whatever channel the images come from."""
    cards: dict[str, dict[str, str]] = {}
    for name, about in SPECIAL_CARD_TEXT.items():
        if not library.preview_path(name):
            cards[name] = {"about": about}
    for style in library.styles.values():
        if not style.preview_path:
            cards[style.name] = {"prompt": style.prompt, "negative": style.negative_prompt}
    return cards


def cards_html(library: StyleLibrary) -> str:
    """A hidden carrier of `card_data` as escaped JSON (style texts come from user files); the page
    builds the card from it with text nodes only."""
    payload = html.escape(json.dumps(card_data(library), ensure_ascii=False, separators=(",", ":")), quote=True)
    return f'<div class="fooocus-style-cards" data-cards="{payload}" hidden></div>'


def kept_selection(selected: Sequence[str] | None, library: StyleLibrary) -> list[str]:
    """The selection restricted to names the (reloaded) library still offers, order kept."""
    offered = set(library.selectable_names)
    return [name for name in (selected or []) if name in offered]


def refresh_outputs(
    selected: Sequence[str] | None, reload_library: Callable[[], StyleLibrary], update: Callable[..., Any]
) -> tuple[Any, str, str, str]:
    """The refresh button's outputs: new choices with the surviving selection, the count, the notes,
    the cards."""
    return library_outputs(selected, reload_library(), update)


def library_outputs(
    selected: Sequence[str] | None, library: StyleLibrary, update: Callable[..., Any]
) -> tuple[Any, str, str, str]:
    """The picker's outputs for a (new) library: choices with the surviving selection, the count, the
    notes, the cards."""
    keep = kept_selection(selected, library)
    return (update(choices=library.selectable_names, value=keep), count_html(keep), notes_html(library.warnings),
            cards_html(library))


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
        cards = gr.HTML(value=cards_html(library), elem_id=f"{elem_prefix}_styles_cards")

    def on_refresh(selected: list[str] | None):
        return refresh_outputs(selected, reload_library, gr.update)

    styles.change(fn=count_html, inputs=[styles], outputs=[count], show_progress="hidden")
    refresh.click(fn=on_refresh, inputs=[styles], outputs=[styles, count, notes, cards])
    return StylePicker(root=root, search=search, styles=styles, count=count, refresh=refresh, notes=notes,
                       cards=cards)
