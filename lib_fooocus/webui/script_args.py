"""From what the host hands the Script to one `FooocusParams`.

Script args arrive positionally in `FIELDS` order (the UI, or the API's list form, whose missing
trailing values the host fills with the UI defaults), or as ONE object with named fields in
`args[0]` (the API's named form; omitted fields take the Settings defaults). X/Y/Z values are kept on
`p` under `XYZ_ATTRIBUTE` and merged on top, clamped to their ranges with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from lib_fooocus.params import FIELD_NAMES, FIELDS_BY_NAME, FooocusParams, ParamsError

log = logging.getLogger(__name__)

XYZ_ATTRIBUTE = "fooocus_xyz_overrides"


def params_from_script_args(args: Sequence[Any], defaults: FooocusParams | None = None) -> FooocusParams:
    """Strict: raises `ParamsError` naming every bad field and its allowed range."""
    defaults = defaults or FooocusParams()
    if args and isinstance(args[0], Mapping):
        named = dict(args[0])
        base = {k: v for k, v in defaults.to_dict().items() if k != "enabled"}
        return FooocusParams.from_dict({**base, **named})
    values = list(args[: len(FIELD_NAMES)])
    return FooocusParams.from_args([_plain(value) for value in values])


def _plain(value: Any) -> Any:
    """gradio hands ints for integral slider values and sometimes tuples for groups; both are fine."""
    if isinstance(value, tuple):
        return list(value)
    return value


def xyz_overrides(p: Any) -> dict[str, Any]:
    overrides = getattr(p, XYZ_ATTRIBUTE, None)
    return dict(overrides) if isinstance(overrides, Mapping) else {}


def set_xyz_override(p: Any, name: str, value: Any) -> None:
    """Copy-on-write: X/Y/Z shallow-copies `p` per cell, so a shared dict must never be mutated."""
    overrides = xyz_overrides(p)
    overrides[name] = value
    setattr(p, XYZ_ATTRIBUTE, overrides)


def merge_overrides(params: FooocusParams, overrides: Mapping[str, Any]) -> tuple[FooocusParams, list[str]]:
    """Lenient: values are parsed like pasted infotext and clamped, with one warning per change.
    Any Fooocus axis switches the extension on unless the "Enabled" axis itself is plotted."""
    if not overrides:
        return params, []
    warnings: list[str] = []
    fields: dict[str, Any] = {FIELDS_BY_NAME[name].infotext: value for name, value in params.to_dict().items()}
    for name, value in overrides.items():
        spec = FIELDS_BY_NAME.get(name)
        if spec is None:
            warnings.append(f"unknown X/Y/Z parameter {name!r} ignored")
            continue
        fields[spec.infotext] = value
    if "enabled" not in overrides:
        fields[FIELDS_BY_NAME["enabled"].infotext] = True
    merged, more = FooocusParams.from_infotext(fields)
    return merged, warnings + more


def resolve_params(p: Any, args: Sequence[Any], defaults: FooocusParams | None = None) -> FooocusParams | None:
    """The generation's parameters, or None when the args are invalid (logged; the host then
    generates as if the extension were off, which is all it can do this late)."""
    try:
        params = params_from_script_args(args, defaults)
    except ParamsError as error:
        log.error("Fooocus: %s. Generating without Fooocus.", error)
        return None
    params, warnings = merge_overrides(params, xyz_overrides(p))
    for warning in warnings:
        log.warning("Fooocus (X/Y/Z): %s", warning)
    return params
