"""Fooocus's classifier-free guidance: sharpness on the positive eps, then adaptive CFG.

Conventions (k-diffusion): x is the noisy latent, x0_* the model's denoised predictions, and
Fooocus's "eps" is e = x − x0 (σ-scaled noise). Every step below is linear in e except the filter's
weights, which depend only on the guide image, so working on e or on x0 is equivalent.

Shapes: x, x0_cond, x0_uncond (B, C, H, W); sigma and progress (B,) or scalars.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch

from lib_fooocus.broadcast import per_row

from .sharpness import sharpen_positive_eps, single_intra_op_thread


class GuidanceSettings(Protocol):
    """What `fooocus_cfg` reads from the parameters (a `FooocusParams` satisfies it)."""

    sharpness: float
    adaptive_cfg: float


def is_cfg_one(cfg_scale: float) -> bool:
    """Fooocus's fast path test: CFG 1 means "positive only" (no uncond, no tricks)."""
    return math.isclose(float(cfg_scale), 1.0)


def effective_cfg_scale(cfg_scale: float, mimic_scale: float, progress: torch.Tensor | float) -> torch.Tensor:
    """The per-call scale adaptive CFG amounts to: m + p·(w − m) when w > m, else w. float32."""
    progress = torch.as_tensor(progress, dtype=torch.float32)
    if cfg_scale > mimic_scale:
        return mimic_scale + progress * (cfg_scale - mimic_scale)
    return torch.full_like(progress, float(cfg_scale))


def adaptive_cfg(
    eps_uncond: torch.Tensor,
    eps_cond: torch.Tensor,
    cfg_scale: float,
    mimic_scale: float,
    progress: torch.Tensor | float,
) -> torch.Tensor:
    """CFG mimicking: blend the real-scale CFG with a milder mimic-scale one by progress p.

    e_real = e_u + w·(e_c − e_u); when w > m (strict): e_mimic = e_u + m·(e_c − e_u) and the result
    is p·e_real + (1 − p)·e_mimic; otherwise e_real exactly. Output dtype follows `eps_cond`.
    """
    eps_u = eps_uncond.to(torch.float32)
    difference = eps_cond.to(torch.float32) - eps_u
    real = eps_u + float(cfg_scale) * difference
    if not cfg_scale > mimic_scale:
        return real.to(eps_cond.dtype)
    mimic = eps_u + float(mimic_scale) * difference
    p = per_row(torch.as_tensor(progress, dtype=torch.float32, device=real.device), real.shape[0])
    return (real * p + mimic * (1.0 - p)).to(eps_cond.dtype)


def fooocus_cfg(
    x: torch.Tensor,
    x0_cond: torch.Tensor,
    x0_uncond: torch.Tensor | None,
    sigma: torch.Tensor | float,
    cfg_scale: float,
    params: GuidanceSettings,
    progress: torch.Tensor | float,
    filter_method: str = "auto",
) -> torch.Tensor:
    """The denoised prediction Fooocus's sampling function returns for one model call.

    Order of operations (Fooocus 2.5.5): CFG ≈ 1 → the positive prediction, untouched; otherwise
    e_c = x − x0_c, e_u = x − x0_u → sharpness on e_c (guide: x0_c) → adaptive CFG → x − e_final.
    `sigma` is accepted for symmetry with the hosts' hooks; the math needs only the progress.
    `filter_method` chooses the sharpness filter's path ("auto", "shift", "batched"; the same result).
    Computes in float32 and returns `x`'s dtype and device. On a CPU, unless the batched filter path is
    asked for, it all runs on one intra-op thread (`single_intra_op_thread`): a latent's elementwise
    operations are too small for a second thread to pay for the barrier each ends at, which on a busy
    machine waits for a descheduled thread (bench/guidance.py).
    """
    del sigma  # Fooocus uses σ only to record eps for its "vae" refiner swap.
    if is_cfg_one(cfg_scale) or x0_uncond is None:
        return x0_cond.to(x.dtype)
    if x.device.type == "cpu" and filter_method != "batched":
        with single_intra_op_thread():
            return _guided(x, x0_cond, x0_uncond, cfg_scale, params, progress, filter_method)
    return _guided(x, x0_cond, x0_uncond, cfg_scale, params, progress, filter_method)


def _guided(x, x0_cond, x0_uncond, cfg_scale, params, progress, filter_method):
    """`fooocus_cfg` past the CFG-1 check."""
    x32 = x.to(torch.float32)
    x0_cond32 = x0_cond.to(torch.float32)
    eps_cond = x32 - x0_cond32
    eps_uncond = x32 - x0_uncond.to(torch.float32)
    eps_cond = sharpen_positive_eps(eps_cond, x0_cond32, params.sharpness, progress, filter_method)
    eps_final = adaptive_cfg(eps_uncond, eps_cond, cfg_scale, params.adaptive_cfg, progress)
    return (x32 - eps_final).to(x.dtype)
