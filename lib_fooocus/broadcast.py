"""Small shape helpers shared by the guidance functions."""

from __future__ import annotations

import torch


def per_row(values: torch.Tensor, batch: int) -> torch.Tensor:
    """A scalar or (B,) tensor as (B, 1, 1, 1), to broadcast one value per sample over (B, C, H, W)."""
    values = values.reshape(-1)
    if values.numel() == 1:
        values = values.expand(batch)
    if values.numel() != batch:
        msg = f"expected one value per batch row ({batch}), got {values.numel()}"
        raise ValueError(msg)
    return values.reshape(batch, 1, 1, 1)
