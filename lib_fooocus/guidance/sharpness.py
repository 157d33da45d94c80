"""Sharpness: Fooocus's anisotropic (joint bilateral) filter on the positive noise prediction.

A small fraction α = 0.001 · sharpness · p of the edge-preserving high-frequency part of the
positive eps is removed before CFG; CFG then amplifies the difference, so detail is sharpened in the
late steps (p → 1) and untouched at the first step (p = 0).

Shapes: eps, x0, guide (B, C, H, W); progress (B,) or a scalar.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lib_fooocus.broadcast import per_row

KERNEL_SIZE = 13
SIGMA_SPACE = 3.0
SIGMA_COLOR = 3.0
SHARPNESS_UNIT = 0.001
GUIDE_EPS = 1e-5


def gaussian_kernel_1d(kernel_size: int, sigma: float) -> torch.Tensor:
    """Normalised Gaussian weights at offsets −r..r (r = kernel_size // 2), float64."""
    offsets = torch.arange(kernel_size, dtype=torch.float64) - kernel_size // 2
    weights = torch.exp(-(offsets**2) / (2.0 * sigma**2))
    return weights / weights.sum()


def joint_bilateral_filter(
    x: torch.Tensor,
    guide: torch.Tensor,
    kernel_size: int = KERNEL_SIZE,
    sigma_space: float = SIGMA_SPACE,
    sigma_color: float = SIGMA_COLOR,
) -> torch.Tensor:
    """Joint bilateral filter of `x` guided by `guide` (both (B, C, H, W)), reflect padding.

    One weight per pixel pair, shared by every channel of `x`:
    w(p, q) = g(dy)·g(dx) · exp(−(Σ_c |G_c(q) − G_c(p)|)² / (2·σ_color²)),
    out(p) = Σ_q w(p, q)·x(q) / Σ_q w(p, q).

    Instead of unfolding (B, C, H, W, k²) windows, the k² neighbour offsets are visited one at a
    time and accumulated in place: memory stays at a few (B, C, H, W) buffers, no window tensor.
    The weight is symmetric (w(p, p + d) = w(p + d, p)), so each offset pair ±d shares one
    evaluation of the range weight.
    Computes in float32; returns `x`'s dtype.
    """
    if x.shape[0] != guide.shape[0] or x.shape[2:] != guide.shape[2:]:
        msg = f"x {tuple(x.shape)} and guide {tuple(guide.shape)} must share batch and spatial size"
        raise ValueError(msg)
    if kernel_size % 2 != 1:
        msg = f"kernel_size must be odd, got {kernel_size}"
        raise ValueError(msg)
    radius = kernel_size // 2
    height, width = x.shape[2:]
    if radius >= height or radius >= width:
        msg = f"reflect padding by {radius} needs H and W > {radius}, got {height}x{width}"
        raise ValueError(msg)

    x32 = x.to(torch.float32)
    # Padded index a ↔ image coordinate a − radius, for both x and the guide.
    x_pad = F.pad(x32, (radius,) * 4, mode="reflect")
    guide_pad = F.pad(guide.to(torch.float32), (radius,) * 4, mode="reflect")
    spatial = gaussian_kernel_1d(kernel_size, sigma_space)
    log_spatial = (spatial[:, None] * spatial[None, :]).log()  # (k, k), float64
    color_coeff = -0.5 / (sigma_color**2)

    centre = math.exp(float(log_spatial[radius, radius]))  # w(p, p) = w_s(0, 0)
    numerator = x32 * centre
    denominator = torch.full_like(x32[:, :1], centre)
    for dy, dx in _half_offsets(radius):
        # r_d(a) = w_s(d)·exp(c·(Σ_c |G(a + d) − G(a)|)²) on the padded rows/cols a that either
        # offset reads below: rows [r − dy, H + r), cols [r − max(dx, 0), W + r − min(dx, 0)).
        rows = slice(radius - dy, height + radius)
        cols = slice(radius - max(dx, 0), width + radius - min(dx, 0))
        here = guide_pad[:, :, rows, cols]
        there = guide_pad[:, :, rows.start + dy : rows.stop + dy, cols.start + dx : cols.stop + dx]
        weight = (there - here).abs_().sum(dim=1, keepdim=True).square_()
        weight.mul_(color_coeff).add_(float(log_spatial[radius + dy, radius + dx])).exp_()
        # Offset +d at pixel p: w(p, p + d) = r_d(p + r)  → weight index (p + dy, p + max(dx, 0)).
        _accumulate(numerator, denominator, weight, x_pad, (dy, dx), (dy, max(dx, 0)))
        # Offset −d at pixel p: w(p, p − d) = r_d(p − d + r)  → weight index (p, p + max(−dx, 0)).
        _accumulate(numerator, denominator, weight, x_pad, (-dy, -dx), (0, max(-dx, 0)))
    return (numerator / denominator).to(x.dtype)


def _half_offsets(radius: int):
    """One offset d = (dy, dx) of each ±d pair, dy ≥ 0, excluding the centre."""
    for dy in range(radius + 1):
        for dx in range(-radius, radius + 1):
            if dy > 0 or dx > 0:
                yield dy, dx


def _accumulate(numerator, denominator, weight, x_pad, offset, weight_origin):
    """numerator += w·x(p + offset), denominator += w, for every image pixel p."""
    height, width = numerator.shape[2:]
    radius = (x_pad.shape[2] - height) // 2
    (dy, dx), (top, left) = offset, weight_origin
    w = weight[:, :, top : top + height, left : left + width]
    denominator.add_(w)
    numerator.addcmul_(x_pad[:, :, radius + dy : radius + dy + height, radius + dx : radius + dx + width], w)


def standardized_guide(x0: torch.Tensor) -> torch.Tensor:
    """x0 standardised per sample over (C, H, W): (x0 − μ)/(s + 1e-5), s the unbiased std. float32."""
    x0 = x0.to(torch.float32)
    std, mean = torch.std_mean(x0, dim=(1, 2, 3), keepdim=True, correction=1)
    return (x0 - mean) / (std + GUIDE_EPS)


def sharpness_alpha(sharpness: float, progress: torch.Tensor | float) -> torch.Tensor:
    """α = 0.001 · sharpness · p, float32, same shape as `progress`."""
    return SHARPNESS_UNIT * float(sharpness) * torch.as_tensor(progress, dtype=torch.float32)


def sharpen_positive_eps(
    eps_cond: torch.Tensor, x0_cond: torch.Tensor, sharpness: float, progress: torch.Tensor | float
) -> torch.Tensor:
    """The positive eps with a fraction α of its filtered version blended in: α·ẽ + (1 − α)·e.

    Returns `eps_cond` itself when α = 0 for every row (sharpness 0 or p = 0), so those cases are
    exact identities and cost nothing.
    """
    alpha = sharpness_alpha(sharpness, progress).to(eps_cond.device)
    if not bool(torch.any(alpha != 0)):
        return eps_cond
    alpha = per_row(alpha, eps_cond.shape[0])
    eps32 = eps_cond.to(torch.float32)
    filtered = joint_bilateral_filter(eps32, standardized_guide(x0_cond))
    # e' = α·ẽ + (1 − α)·e
    return (filtered * alpha + eps32 * (1.0 - alpha)).to(eps_cond.dtype)
