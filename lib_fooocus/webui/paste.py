"""Infotext paste (PNG Info, "Send to", the API's `infotext` field): one lenient parse of the
pasted parameters per paste, values clamped to their ranges with a warning."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from lib_fooocus.params import FIELDS_BY_INFOTEXT, FIELDS_BY_NAME, FooocusParams

log = logging.getLogger(__name__)

ENABLED_KEY = FIELDS_BY_NAME["enabled"].infotext

_LAST: list[Any] = [None, None]  # (key of the last parsed paste, its params)


def _paste_key(fields: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple((key, str(fields[key])) for key in FIELDS_BY_INFOTEXT if key in fields)


def pasted_params(fields: Mapping[str, Any], known_style: Callable[[str], str | None] | None = None) -> FooocusParams | None:
    """The pasted parameters, or None when the infotext has no Fooocus keys. Parsed once per paste
    (every control's paste function calls this), so each warning is logged once."""
    if not any(key in fields for key in FIELDS_BY_INFOTEXT):
        return None
    key = _paste_key(fields)
    if _LAST[0] == key:
        return _LAST[1]
    params, warnings = FooocusParams.from_infotext(fields)
    if ENABLED_KEY not in fields:
        params = params.replace(enabled=False)
    if known_style is not None and params.styles:
        kept = []
        for name in params.styles:
            resolved = known_style(name)
            if resolved is None:
                warnings.append(f"style {name!r} is not in the style library; not selected")
            else:
                kept.append(resolved)
        params = params.replace(styles=tuple(kept))
    for warning in warnings:
        log.warning("Fooocus (pasted infotext): %s", warning)
    _LAST[0], _LAST[1] = key, params
    return params


def paste_function(name: str, known_style: Callable[[str], str | None] | None = None) -> Callable[[Mapping[str, Any]], Any]:
    """For `infotext_fields`: the control's value from parsed infotext. An infotext without Fooocus
    keys switches the extension off and leaves the other controls alone (None = no change)."""

    def paste(fields: Mapping[str, Any]) -> Any:
        params = pasted_params(fields, known_style)
        if params is None:
            return False if name == "enabled" else None
        value = getattr(params, name)
        return list(value) if isinstance(value, tuple) else value

    paste.__name__ = f"paste_fooocus_{name}"
    return paste


def original_prompt_function(key: str) -> Callable[[Mapping[str, Any]], Any]:
    """For the API's `infotext` field: the user's own prompt recorded by us, so the request's prompt
    is not the already styled and expanded one."""

    def paste(fields: Mapping[str, Any]) -> Any:
        value = fields.get(key)
        return value if isinstance(value, str) else None

    return paste


def restore_prompts_on_paste(infotext: str, fields: dict[str, Any]) -> None:
    """`on_infotext_pasted` callback."""
    from lib_fooocus.prompt_assembly import restore_original_prompts

    if any(key in fields for key in FIELDS_BY_INFOTEXT):
        restore_original_prompts(fields)
