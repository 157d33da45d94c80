"""Negative ADM guidance: Fooocus's timed size conditioning of the SDXL base "vector" (ADM input).

The SDXL base UNet's vector is `[pooled (1280) | F(h_orig) F(w_orig) F(crop_top) F(crop_left)
F(h_target) F(w_target)]` = 2816 values, F a 256-d sinusoidal embedding of one scalar. Fooocus
conditions the positive prompt as "a downscale of a larger image" (original = 1.5 × size) and the
negative as "an upscale of a smaller one" (0.8 × size) during the early, high-noise steps, and uses
the standard original = target vector afterwards.

Shapes: pooled (B, 1280); every vector (B, 2816); t (B,).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

FOURIER_DIM = 256
POOLED_DIM = 1280
SIZE_EMBEDDING_DIM = 6 * FOURIER_DIM  # 1536
ADM_DIM = POOLED_DIM + SIZE_EMBEDDING_DIM  # 2816
MAX_TIMESTEP = 999


def fourier_embedding(values: torch.Tensor | Sequence[float] | float, dim: int = FOURIER_DIM) -> torch.Tensor:
    """Sinusoidal embedding of each scalar, cosines first: shape (*values.shape, dim), float32."""
    values = torch.as_tensor(values, dtype=torch.float32)
    half = dim // 2
    # ω_k = exp(−ln(10000)·k/half),  F(v) = [cos(v·ω_0..half−1), sin(v·ω_0..half−1)]
    frequencies = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = values.unsqueeze(-1) * frequencies.to(values.device)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


def size_embedding(
    orig_h: float, orig_w: float, crop_top: float, crop_left: float, target_h: float, target_w: float
) -> torch.Tensor:
    """The 1536 size/crop values of the SDXL base vector, height before width in every pair."""
    scalars = torch.tensor([orig_h, orig_w, crop_top, crop_left, target_h, target_w], dtype=torch.float32)
    return fourier_embedding(scalars).flatten()


def round_to_64(value: float) -> int:
    """Nearest multiple of 64 (Python's round: halves go to the even multiple)."""
    return int(round(float(value) / 64.0)) * 64


def negative_adm(
    pooled: torch.Tensor, width: int, height: int, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fooocus's (emphasized, consistent) vectors for one prompt type, each (B, 2816).

    `width`/`height` are the pixel size of the image being sampled (latent size × 8); `scale` is
    `adm_scaler_positive` for the cond and `adm_scaler_negative` for the uncond. Crops are always 0.
    Output dtype and device follow `pooled`.
    """
    target_h, target_w = round_to_64(height), round_to_64(width)
    scaled_h, scaled_w = int(height * scale), int(width * scale)  # truncation, as Fooocus
    emphasized = size_embedding(scaled_h, scaled_w, 0, 0, target_h, target_w)
    consistent = size_embedding(target_h, target_w, 0, 0, target_h, target_w)
    return _with_pooled(pooled, emphasized), _with_pooled(pooled, consistent)


def _with_pooled(pooled: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    sizes = sizes.to(device=pooled.device, dtype=pooled.dtype).unsqueeze(0).expand(pooled.shape[0], -1)
    return torch.cat([pooled, sizes], dim=1)


def emphasized_mask(t: torch.Tensor, adm_scaler_end: float) -> torch.Tensor:
    """True for the rows whose timestep is still in the emphasized window (p < adm_scaler_end)."""
    return torch.as_tensor(t).reshape(-1) > MAX_TIMESTEP * (1.0 - adm_scaler_end)


def select_adm(
    emphasized: torch.Tensor, consistent: torch.Tensor, t: torch.Tensor, adm_scaler_end: float
) -> torch.Tensor:
    """Per batch row: the emphasized vector while t > 999·(1 − adm_scaler_end), else the consistent one."""
    mask = emphasized_mask(t, adm_scaler_end).to(emphasized.device)
    if mask.numel() == 1 and emphasized.shape[0] != 1:
        mask = mask.expand(emphasized.shape[0])
    return torch.where(mask.unsqueeze(1), emphasized, consistent)
