"""X/Y/Z plot axes for the Fooocus parameters, added to the host's built-in `xyz_grid.py` script.

Each axis stores its value on the cell's `p` (see `script_args.set_xyz_override`); `process()`
merges them over the accordion's values, clamped to range with a warning. Plotting any Fooocus axis
switches Fooocus on for the cells unless the "Enabled" axis is plotted too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from lib_fooocus.params import FIELDS
from lib_fooocus.webui.script_args import set_xyz_override

log = logging.getLogger(__name__)

LABEL_PREFIX = "[Fooocus] "
STYLE_AXIS_LABEL = f"{LABEL_PREFIX}Style"
BOOL_CHOICES = ("True", "False")


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


def _apply_style(p: Any, value: Any, _values: Any) -> None:
    set_xyz_override(p, "styles", [str(value)] if str(value).strip() else [])


def _bool_choices() -> list[str]:
    return list(BOOL_CHOICES)


def axis_options(
    xyz: Any, style_names: Callable[[], list[str]] | None = None, checkpoint_names: Callable[[], list[str]] | None = None
) -> list[Any]:
    """One AxisOption per parameter: floats for the numbers, True/False for the switches, the
    refiner checkpoint as a choice list (like the host's own checkpoint axis), and a single-style
    axis (each cell uses that one style) when style names are available."""
    options = []
    for spec in FIELDS:
        if spec.kind is float:
            options.append(xyz.AxisOption(axis_label(spec.name), float, _apply(spec.name)))
        elif spec.kind is bool:
            options.append(xyz.AxisOption(axis_label(spec.name), str, _apply(spec.name), choices=_bool_choices))
        elif spec.kind is str and checkpoint_names is not None:
            options.append(xyz.AxisOption(axis_label(spec.name), str, _apply(spec.name), choices=checkpoint_names))
    if style_names is not None:
        options.append(xyz.AxisOption(STYLE_AXIS_LABEL, str, _apply_style, choices=style_names))
    return options


def register_axes(
    scripts_data: Iterable[Any],
    style_names: Callable[[], list[str]] | None = None,
    checkpoint_names: Callable[[], list[str]] | None = None,
) -> int:
    """`on_before_ui` callback body: add the axes once. Returns how many were added."""
    xyz = find_xyz_module(scripts_data)
    if xyz is None:
        return 0
    present = {getattr(option, "label", None) for option in xyz.axis_options}
    added = [option for option in axis_options(xyz, style_names, checkpoint_names) if option.label not in present]
    xyz.axis_options.extend(added)
    return len(added)
