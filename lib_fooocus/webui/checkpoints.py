"""The host's checkpoint list for the refiner dropdown, the X/Y/Z axis and the API check
(`modules.sd_models`, feature-detected: `checkpoint_tiles()` where it exists, else `checkpoints_list`)."""

from __future__ import annotations

import logging
from typing import Any

from lib_fooocus.params import REFINER_OFF, refiner_is_on

log = logging.getLogger(__name__)


def _sd_models() -> Any:
    try:
        from modules import sd_models
    except ImportError:
        return None
    return sd_models


def checkpoint_titles() -> list[str]:
    sd_models = _sd_models()
    if sd_models is None:
        return []
    tiles = getattr(sd_models, "checkpoint_tiles", None)
    try:
        if callable(tiles):
            return [str(title) for title in tiles()]
        return [str(title) for title in getattr(sd_models, "checkpoints_list", {})]
    except Exception as error:
        log.warning("Fooocus: the checkpoint list is not readable (%s)", error)
        return []


def refiner_choices() -> list[str]:
    """"None" first, then the host's checkpoints."""
    return [REFINER_OFF, *[title for title in checkpoint_titles() if title != REFINER_OFF]]


def refresh_checkpoints() -> list[str]:
    """Re-scan the checkpoint folders (the host's own refresh), then the choices."""
    sd_models = _sd_models()
    refresh = getattr(sd_models, "list_models", None)
    if callable(refresh):
        try:
            refresh()
        except Exception as error:
            log.warning("Fooocus: checkpoint refresh failed (%s)", error)
    return refiner_choices()


def resolve_checkpoint(name: str) -> str | None:
    """The host's title for `name` (title, file name or short hash, as its own `refiner_checkpoint`
    resolves it); "None" for off; None when unknown. Without the host, every name is accepted."""
    if not refiner_is_on(name):
        return REFINER_OFF
    sd_models = _sd_models()
    match = getattr(sd_models, "get_closet_checkpoint_match", None)
    if not callable(match):
        return name
    try:
        info = match(name.strip())
    except Exception:
        return None
    return None if info is None else str(getattr(info, "title", name))
