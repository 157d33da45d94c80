"""Conditioning maths the adapters apply inside the host's denoiser: Fooocus's timestep from the host
model's σ table, the negative-ADM edit of the SDXL `vector`, and the AND sub-prompt weights.

Host objects are read through duck typing only; nothing here imports a host module.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from lib_fooocus.hosts.lifecycle import GenerationState

SDXL_BASE_VECTOR_WIDTH = 2816
POOLED_WIDTH = 1280


# -- σ → timestep ---------------------------------------------------------------------------------

_SIGMA_TABLE_PATHS: tuple[tuple[str, ...], ...] = (
    ("sigmas",),
    ("model_sampling", "sigmas"),  # Forge's ldm_patched line: BaseModel.model_sampling
    ("predictor", "sigmas"),  # Forge main: KModel.predictor
)


def find_sigma_table(*candidates: Any) -> torch.Tensor | None:
    """The host model's own 1-D σ table, looked up on the given objects; None when none has one."""
    for candidate in candidates:
        if candidate is None:
            continue
        for path in _SIGMA_TABLE_PATHS:
            value = candidate
            for attribute in path:
                value = getattr(value, attribute, None)
                if value is None:
                    break
            if isinstance(value, torch.Tensor) and value.ndim == 1 and value.numel() >= 2:
                return value
    return None


def sigma_table_or_default(*candidates: Any) -> torch.Tensor:
    table = find_sigma_table(*candidates)
    return table if table is not None else _default_sigmas()


@functools.cache
def _default_sigmas() -> torch.Tensor:
    """SDXL/SD1.5's table, built once (read-only use)."""
    from lib_fooocus.guidance.schedule import sdxl_sigmas

    return sdxl_sigmas()


def timesteps_and_progress(sigma: torch.Tensor, table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fooocus's integer timestep t(σ) (nearest log-σ in `table`) and progress 1 − t/999, per row."""
    from lib_fooocus.guidance.schedule import progress_from_sigma, timestep_from_sigma

    sigma = sigma.detach().to(torch.float32)
    return timestep_from_sigma(sigma, table), progress_from_sigma(sigma, table)


# -- negative ADM on the SDXL vector ---------------------------------------------------------------


def vector_of(cond: Any) -> torch.Tensor | None:
    """The SDXL `vector` of a host cond (a DictWithShape); None for SD1.x/2.x plain tensors."""
    if isinstance(cond, torch.Tensor) or not hasattr(cond, "get"):
        return None
    vector = cond.get("vector")
    return vector if isinstance(vector, torch.Tensor) and vector.ndim == 2 else None


def apply_negative_adm(
    state: GenerationState,
    text_cond: Any,
    text_uncond: Any,
    t_cond: torch.Tensor,
    t_uncond: torch.Tensor,
    width: int,
    height: int,
) -> bool:
    """Replace `text_cond['vector']` / `text_uncond['vector']` (key assignment on the host's own dict
    objects, never a new dict) by Fooocus's timed positive/negative ADM vectors. SDXL base only
    (2816 columns); anything else is left untouched with one log line per generation.
    Returns True when the vectors were replaced."""
    from lib_fooocus.guidance.adm import negative_adm, select_adm

    vectors = (vector_of(text_cond), vector_of(text_uncond))
    if vectors[0] is None or vectors[1] is None:
        state.log_once(
            "adm-no-vector",
            "negative ADM not applied: this model has no SDXL 'vector' conditioning (SD1.x/2.x); "
            "sharpness and adaptive CFG still apply.",
        )
        return False
    widths = {int(v.shape[1]) for v in vectors}
    if widths != {SDXL_BASE_VECTOR_WIDTH}:
        state.log_once(
            f"adm-width-{sorted(widths)}",
            f"negative ADM not applied to a {'/'.join(map(str, sorted(widths)))}-wide ADM vector "
            f"(only the SDXL base's {SDXL_BASE_VECTOR_WIDTH} has size conditioning to scale; "
            "the SDXL refiner's is 2560).",
        )
        return False
    params = state.params
    for cond, vector, scale, t in (
        (text_cond, vectors[0], params.adm_scaler_positive, t_cond),
        (text_uncond, vectors[1], params.adm_scaler_negative, t_uncond),
    ):
        emphasized, consistent = negative_adm(vector[:, :POOLED_WIDTH], int(width), int(height), float(scale))
        timed = select_adm(emphasized, consistent, t.to(vector.device), float(params.adm_scaler_end))
        cond["vector"] = timed.to(device=vector.device, dtype=vector.dtype)
    return True


# -- AND prompts ----------------------------------------------------------------------------------


def multicond_weights(multicond: Any) -> list[list[float]] | None:
    """Per image, the weights of its AND sub-prompts, from A1111's `MulticondLearnedConditioning`
    (`.batch[i][j].weight`); cond row indices follow in order. None when the object has no such
    structure."""
    batch = getattr(multicond, "batch", None)
    if not isinstance(batch, (list, tuple)) or not batch:
        return None
    weights: list[list[float]] = []
    for image in batch:
        if not isinstance(image, (list, tuple)) or not image:
            return None
        try:
            weights.append([float(sub.weight) for sub in image])
        except (AttributeError, TypeError, ValueError):
            return None
    return weights


def conds_list_from_weights(weights: Iterable[list[float]]) -> list[list[tuple[int, float]]]:
    """A1111's `conds_list` layout: image i → [(cond row index, weight), ...], rows numbered in order."""
    conds_list: list[list[tuple[int, float]]] = []
    row = 0
    for image_weights in weights:
        entries = []
        for weight in image_weights:
            entries.append((row, weight))
            row += 1
        conds_list.append(entries)
    return conds_list


def is_close_to_one(value: float) -> bool:
    return math.isclose(float(value), 1.0)
