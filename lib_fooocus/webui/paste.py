"""Infotext paste (PNG Info, "Send to", the API's `infotext` field): one lenient parse of the
pasted parameters per paste, values clamped to their ranges with a warning."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from lib_fooocus.params import FIELDS_BY_INFOTEXT, FIELDS_BY_NAME, FooocusParams

log = logging.getLogger(__name__)

ENABLED_KEY = FIELDS_BY_NAME["enabled"].infotext



class PasteCache:
    """The last parsed paste, so the per-control paste functions of one paste parse it once. The
    entry is one tuple, replaced in a single assignment, so threads never see a key with another
    paste's params; `clear()` after a style library reload."""

    def __init__(self) -> None:
        self._entry: tuple[Any, FooocusParams] | None = None

    def get(self, key: Any) -> FooocusParams | None:
        entry = self._entry
        return entry[1] if entry is not None and entry[0] == key else None

    def put(self, key: Any, params: FooocusParams) -> None:
        self._entry = (key, params)

    def clear(self) -> None:
        self._entry = None


def _paste_key(fields: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple((key, str(fields[key])) for key in FIELDS_BY_INFOTEXT if key in fields)


def pasted_params(
    fields: Mapping[str, Any],
    known_style: Callable[[str], str | None] | None = None,
    cache: PasteCache | None = None,
) -> FooocusParams | None:
    """The pasted parameters, or None when the infotext has no Fooocus keys. With a `cache`, parsed
    once per paste (every control's paste function calls this), so each warning is logged once."""
    if not any(key in fields for key in FIELDS_BY_INFOTEXT):
        return None
    key = _paste_key(fields)
    cached = cache.get(key) if cache is not None else None
    if cached is not None:
        return cached
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
    if cache is not None:
        cache.put(key, params)
    return params


def paste_function(
    name: str, known_style: Callable[[str], str | None] | None = None, cache: PasteCache | None = None
) -> Callable[[Mapping[str, Any]], Any]:
    """For `infotext_fields`: the control's value from parsed infotext. An infotext without Fooocus
    keys switches the extension off and leaves the other controls alone (None = no change)."""

    def paste(fields: Mapping[str, Any]) -> Any:
        params = pasted_params(fields, known_style, cache)
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
    from lib_fooocus.styles.assembly import restore_original_prompts

    if any(key in fields for key in FIELDS_BY_INFOTEXT):
        restore_original_prompts(fields)
