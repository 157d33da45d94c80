"""Fooocus's "joint" refiner swap, the host-free maths: when to switch, and the refiner's
conditioning derived from the base's (never re-encoded).

Switch rule (Fooocus `refiner_switch`): `switch = round(steps · ratio)` with Python's round (halves
to even). The base evaluates sampling steps 0 … switch (switch + 1 evaluations, the callback of step
`switch` swaps the model); the refiner evaluates the rest. For samplers with several model
evaluations per step (Heun, DPM2, DPM++ SDE …) the same hand-over is stated by σ: the refiner takes
every evaluation at a σ strictly below σ[switch], the σ of step `switch`. switch ≥ steps: no refiner.

Conditioning of an SDXL *refiner* (ADM 2560): cross-attention = the last 1280 columns (CLIP-G) of
the base's 2048; vector = [pooled 1280 | F(h) F(w) F(crop_top) F(crop_left) F(aesthetic)], aesthetic
6.0 for the positive and 2.5 for the negative. An SDXL *base-type* refiner keeps the base's
conditioning unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lib_fooocus.guidance.adm import POOLED_DIM, fourier_embedding

REFINER_CROSSATTN_DIM = 1280  # CLIP-G
REFINER_ADM_DIM = POOLED_DIM + 5 * 256  # 2560
BASE_ADM_DIM = 2816
HIGH_AESTHETIC = 6.0  # positive prompt
LOW_AESTHETIC = 2.5  # negative prompt

KIND_SDXL_BASE = "sdxl-base"
KIND_SDXL_REFINER = "sdxl-refiner"


def switch_step(steps: int, ratio: float) -> int:
    """Fooocus: `int(round(steps · ratio))` (30 × 0.75 = 22.5 → 22; 30 × 0.8 → 24)."""
    return int(round(int(steps) * float(ratio)))


def switch_sigma(sigmas: Sequence[float] | torch.Tensor, ratio: float) -> float | None:
    """σ of step `switch` in a schedule of steps + 1 values (the last one 0): the refiner takes every
    evaluation at σ strictly below it. None when the refiner never runs (switch ≥ steps)."""
    values = [float(s) for s in (sigmas.tolist() if isinstance(sigmas, torch.Tensor) else sigmas)]
    steps = len(values) - 1
    if steps < 1:
        return None
    switch = switch_step(steps, ratio)
    if switch >= steps:
        return None
    return values[switch]


def refiner_takes(sigma: float, threshold: float | None) -> bool:
    """True when an evaluation at `sigma` belongs to the refiner."""
    return threshold is not None and float(sigma) < threshold


def schedule_tail(full: Sequence[float] | torch.Tensor, first_sigma: float, rel_tol: float = 1e-4) -> list[float] | None:
    """The part of the host's full σ schedule this run samples: the tail starting at the entry equal
    to the first evaluated σ (img2img and hires passes start inside the schedule). None when no entry
    matches (e.g. an Euler "churn" σ̂ above the schedule)."""
    values = [float(s) for s in (full.tolist() if isinstance(full, torch.Tensor) else full)]
    for index, value in enumerate(values[:-1]):
        if abs(value - float(first_sigma)) <= rel_tol * max(abs(value), 1e-12):
            return values[index:]
    return None


def refiner_crossattn(crossattn: torch.Tensor) -> torch.Tensor:
    """The CLIP-G part (last 1280 columns) of the base's 2048-wide cross-attention."""
    return crossattn[..., -REFINER_CROSSATTN_DIM:]


def refiner_vector(
    pooled: torch.Tensor, height: float, width: float, aesthetic: float, crop_top: float = 0.0, crop_left: float = 0.0
) -> torch.Tensor:
    """(B, 2560): the pooled CLIP-G vector followed by F(h) F(w) F(crop_top) F(crop_left) F(aesthetic).
    dtype and device follow `pooled`."""
    sizes = fourier_embedding([float(height), float(width), float(crop_top), float(crop_left), float(aesthetic)]).flatten()
    sizes = sizes.to(device=pooled.device, dtype=pooled.dtype).unsqueeze(0).expand(pooled.shape[0], -1)
    return torch.cat([pooled, sizes], dim=1)


def refiner_conditioning(
    crossattn: torch.Tensor,
    vector: torch.Tensor,
    kind: str,
    height: float,
    width: float,
    aesthetic: float,
    crop_top: float = 0.0,
    crop_left: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(crossattn, vector) for the refiner from the base's (B, T, 2048) and (B, 2816)."""
    if kind == KIND_SDXL_BASE:
        return crossattn, vector
    if kind != KIND_SDXL_REFINER:
        msg = f"no conditioning rule for refiner kind {kind!r}"
        raise ValueError(msg)
    pooled = vector[:, :POOLED_DIM]
    return refiner_crossattn(crossattn), refiner_vector(pooled, height, width, aesthetic, crop_top, crop_left)
