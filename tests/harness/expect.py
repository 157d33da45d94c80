"""Expected results, computed from the harness's records with an independent progress/ADM formulation."""

from __future__ import annotations

from typing import Any

import torch

from . import toy


def plain_combine(x_out: torch.Tensor, conds_list, scale: float) -> torch.Tensor:
    """A1111's combine_denoised on untouched predictions."""
    b = len(conds_list)
    u = x_out[-b:]
    out = u.clone()
    for i, entries in enumerate(conds_list):
        for index, weight in entries:
            out[i] += (x_out[index] - u[i]) * (weight * scale)
    return out


def a1111_expected(record: dict[str, Any], params: Any, table: torch.Tensor, mask=None, init_latent=None) -> torch.Tensor:
    """Fooocus's denoised result for one A1111 denoiser call: the AND sub-prompts folded into one
    effective positive per image, then `fooocus_cfg`; mask blend applied like the host."""
    from lib_fooocus.guidance.cfg import fooocus_cfg

    x_out, conds_list = record["x_out"].to(torch.float32), record["conds_list"]
    b = len(conds_list)
    u = x_out[-b:]
    effective = torch.stack([u[i] + sum(w * (x_out[j] - u[i]) for j, w in entries) for i, entries in enumerate(conds_list)])
    progress = toy.reference_progress(record["sigma"], table)
    result = fooocus_cfg(record["x"], effective, u, record["sigma"], record["scale"], params, progress)
    if mask is not None:
        result = result * (1 - mask) + init_latent * mask
    return result


def forge_expected(record: dict[str, Any], params: Any, table: torch.Tensor) -> torch.Tensor:
    from lib_fooocus.guidance.cfg import fooocus_cfg

    progress = toy.reference_progress(record["sigma"], table)
    return fooocus_cfg(record["x"], record["cond_pred"], record["uncond_pred"], record["sigma"], record["scale"], params, progress)


def emphasized(sigma: float, table: torch.Tensor, end: float) -> bool:
    return toy.reference_timestep(sigma, table) > 999 * (1 - end)
