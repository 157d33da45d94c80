"""X/Y/Z plot axes for the Fooocus parameters, added to the host's built-in `xyz_grid.py` script.

Each axis stores its value on the cell's `p` (see `script_args.set_xyz_override`); `process()`
merges them over the accordion's values, clamped to range with a warning. Plotting any Fooocus axis
switches Fooocus on for the cells unless the "Enabled" axis is plotted too.

The Styles axis: a cell is one style or a combination joined with `+` (`Fooocus Sharp + Cinematic`;
the host splits the axis text at commas with CSV quoting, so a name holding a comma is quoted). An
empty cell or `None` = no style. `Random Style` is pinned per cell to one style picked from a seed
the label shows: the plot's seed for the first plain `Random Style` of the axis, +1 for the next
and so on (so several of them give different styles), or the seed written in the cell,
`Random Style (seed 42)`. Before the plot runs, the axis's `confirm` checks every name and rewrites
such entries in place to `Random Style (seed 1234: Cinematic)`, which becomes the grid label; every
image of that cell uses that style, and the infotext's `Fooocus styles` names it.
"""

from __future__ import annotations

import logging
import os
import random
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from lib_fooocus.params import FIELDS
from lib_fooocus.webui.script_args import set_xyz_override

log = logging.getLogger(__name__)

LABEL_PREFIX = "[Fooocus] "
STYLE_AXIS_LABEL = f"{LABEL_PREFIX}Styles"
BOOL_CHOICES = ("True", "False")
COMBINE = "+"
NO_STYLE = "None"
RANDOM_ENTRY = re.compile(r"random\s+style(?:\s*\(\s*seed\s+(-?\d+)\s*(?::[^()]*)?\))?", re.IGNORECASE)
SEED_RANGE = 2**32


def axis_label(name: str) -> str:
    spec = next(f for f in FIELDS if f.name == name)
    return f"{LABEL_PREFIX}{'Enabled' if name == 'enabled' else spec.label}"


def find_xyz_module(scripts_data: Iterable[Any]) -> Any | None:
    """The loaded built-in X/Y/Z script's module (the host names modules by file name)."""
    for data in scripts_data:
        module = getattr(data, "module", None)
        path = str(getattr(data, "path", "") or "")
        module_name = getattr(getattr(data, "script_class", None), "__module__", "")
        is_xyz = os.path.basename(path) == "xyz_grid.py" or module_name in ("xyz_grid.py", "xyz_grid")
        if is_xyz and hasattr(module, "AxisOption") and hasattr(module, "axis_options"):
            return module
    return None


def _apply(name: str) -> Callable[[Any, Any, Any], None]:
    def apply(p: Any, value: Any, _values: Any) -> None:
        set_xyz_override(p, name, value)

    return apply


class StyleCellError(ValueError):
    pass


def split_cell(cell: str, resolve: Callable[[str], str | None]) -> list[str]:
    """A Styles cell's entries as written: the whole cell when it is one name (names may hold a
    `+`), else its `+`-separated parts. Empty or `None` = no entries."""
    text = str(cell).strip()
    if not text or text.lower() == NO_STYLE.lower():
        return []
    if resolve(text) is not None:
        return [text]
    return [part.strip() for part in _split_outside_parentheses(text) if part.strip()]


def _split_outside_parentheses(text: str) -> list[str]:
    """`text` split at each `+` that is not inside parentheses: `Random Style (seed 1: Pen + Ink)` is
    one entry whatever the picked style is called."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        elif char == COMBINE and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


def random_entry_seed(entry: str) -> tuple[bool, int | None]:
    """(is a Random Style entry, the seed written in it or None)."""
    match = RANDOM_ENTRY.fullmatch(entry.strip())
    if match is None:
        return False, None
    return True, int(match.group(1)) if match.group(1) is not None else None


def random_label(seed: int, picked: str) -> str:
    return f"Random Style (seed {seed}: {picked})"


def plot_seed(p: Any) -> int | None:
    """The plot's seed when it is fixed (X/Y/Z fixes it unless "Keep -1 for seeds" is on)."""
    try:
        seed = int(getattr(p, "seed", -1))
    except (TypeError, ValueError):
        return None
    return seed if seed >= 0 else None


def canonical_cells(cells: Sequence[Any], library: Any, base_seed: int | None) -> list[str]:
    """Every cell with its names as the library spells them and each Random Style pinned to a
    seed and the style it picks (see the module docstring). `base_seed` None: a random seed, shown.
    Raises StyleCellError naming every unknown name."""
    if base_seed is None:
        base_seed = random.randrange(SEED_RANGE)
    unnamed = 0
    unknown = []
    out = []
    for cell in cells:
        entries = []
        for entry in split_cell(str(cell), library.resolve):
            is_random, seed = random_entry_seed(entry)
            if is_random:
                if seed is None:
                    seed = (base_seed + unnamed) % SEED_RANGE
                    unnamed += 1
                entries.append(random_label(seed, library.random_style(seed)))
                continue
            resolved = library.resolve(entry)
            if resolved is None:
                unknown.append(entry)
            entries.append(resolved or entry)
        out.append(f" {COMBINE} ".join(entries) if entries else NO_STYLE)
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        msg = (f"{STYLE_AXIS_LABEL}: unknown style name(s) {names}. Join several styles in one cell with "
               f"'{COMBINE}'; quote a cell that holds a comma.")
        raise StyleCellError(msg)
    return out


def cell_styles(cell: Any, library: Any, seed: int | None) -> list[str]:
    """The style names a cell applies: Random Style entries become the style picked from their
    seed (written in the cell, else `seed`; without either, Random Style is left to the image seed)."""
    names = []
    for entry in split_cell(str(cell), library.resolve):
        is_random, written = random_entry_seed(entry)
        chosen = written if written is not None else seed
        if is_random:
            names.append(library.random_style(chosen) if chosen is not None else "Random Style")
        else:
            names.append(library.resolve(entry) or entry)
    return names


def style_axis_functions(get_library: Callable[[], Any]) -> tuple[Callable, Callable, Callable]:
    """(apply, format_value, confirm) of the Styles axis."""

    def confirm(p: Any, cells: list[Any]) -> None:
        try:
            cells[:] = canonical_cells(cells, get_library(), plot_seed(p))  # in place: the host keeps the list
        except ValueError as error:  # unknown names; Random Style with an empty library
            raise RuntimeError(str(error)) from error

    def format_value(p: Any, _option: Any, cell: Any) -> str:
        text = str(cell)
        if any(random_entry_seed(e) == (True, None) for e in split_cell(text, get_library().resolve)):
            try:  # not rewritten by confirm (another caller): label it as it will be applied
                return canonical_cells([text], get_library(), plot_seed(p))[0]
            except ValueError:
                return text
        return text

    def apply(p: Any, cell: Any, _cells: Any) -> None:
        set_xyz_override(p, "styles", cell_styles(cell, get_library(), plot_seed(p)))

    return apply, format_value, confirm


def _bool_choices() -> list[str]:
    return list(BOOL_CHOICES)


def axis_options(
    xyz: Any, get_library: Callable[[], Any] | None = None, checkpoint_names: Callable[[], list[str]] | None = None
) -> list[Any]:
    """One AxisOption per parameter: floats for the numbers, True/False for the switches, the
    refiner checkpoint as a choice list (like the host's own checkpoint axis), and the Styles axis
    (style combinations per cell, see the module docstring) when a style library is available."""
    options = []
    for spec in FIELDS:
        if spec.kind is float:
            options.append(xyz.AxisOption(axis_label(spec.name), float, _apply(spec.name)))
        elif spec.kind is bool:
            options.append(xyz.AxisOption(axis_label(spec.name), str, _apply(spec.name), choices=_bool_choices))
        elif spec.kind is str and checkpoint_names is not None:
            options.append(xyz.AxisOption(axis_label(spec.name), str, _apply(spec.name), choices=checkpoint_names))
    if get_library is not None:
        apply, format_value, confirm = style_axis_functions(get_library)

        def choices() -> list[str]:
            return list(get_library().selectable_names)

        options.append(xyz.AxisOption(STYLE_AXIS_LABEL, str, apply, format_value=format_value, confirm=confirm,
                                      choices=choices))
    return options


def register_axes(
    scripts_data: Iterable[Any],
    get_library: Callable[[], Any] | None = None,
    checkpoint_names: Callable[[], list[str]] | None = None,
) -> int:
    """`on_before_ui` callback body: add the axes once. Returns how many were added."""
    xyz = find_xyz_module(scripts_data)
    if xyz is None:
        return 0
    present = {getattr(option, "label", None) for option in xyz.axis_options}
    added = [option for option in axis_options(xyz, get_library, checkpoint_names) if option.label not in present]
    xyz.axis_options.extend(added)
    return len(added)
