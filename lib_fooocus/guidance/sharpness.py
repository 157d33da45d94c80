"""Sharpness: Fooocus's anisotropic (joint bilateral) filter on the positive noise prediction.

A small fraction α = 0.001 · sharpness · p of the edge-preserving high-frequency part of the
positive eps is removed before CFG; CFG then amplifies the difference, so detail is sharpened in the
late steps (p → 1) and untouched at the first step (p = 0).

Shapes: eps, x0, guide (B, C, H, W); progress (B,) or a scalar.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from lib_fooocus.broadcast import per_row

KERNEL_SIZE = 13
SIGMA_SPACE = 3.0
SIGMA_COLOR = 3.0
SHARPNESS_UNIT = 0.001
GUIDE_EPS = 1e-5

FILTER_METHODS = ("auto", "shift", "batched")
# Bytes of float32 work buffers the batched path may hold at once (an estimate it plans with; see
# `batched_plan`). At (2, 4, 128, 128) the whole window fits in one chunk.
BATCHED_MEMORY_BUDGET = 48 * 2**20


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
    method: str = "auto",
) -> torch.Tensor:
    """Joint bilateral filter of `x` guided by `guide` (both (B, C, H, W)), reflect padding.

    One weight per pixel pair, shared by every channel of `x`:
    w(p, q) = g(dy)·g(dx) · exp(−(Σ_c |G_c(q) − G_c(p)|)² / (2·σ_color²)),
    out(p) = Σ_q w(p, q)·x(q) / Σ_q w(p, q).

    Instead of unfolding (B, C, H, W, k²) windows, the k² neighbour offsets are visited one at a
    time and accumulated in place: memory stays at a few (B, C, H, W) buffers, no window tensor.
    The weight is symmetric (w(p, p + d) = w(p + d, p)), so each offset pair ±d shares one
    evaluation of the range weight.

    `method` chooses between two exact formulations of the same sum:
    - "shift": the k² offsets one pair at a time (about 800 small operations at (2, 4, 128, 128));
      the least arithmetic and memory traffic. On a CPU it runs on one intra-op thread (see
      `single_intra_op_thread`): its operations are too small for a second thread to pay for the
      barrier each one ends at, and on a busy machine each barrier waits for a descheduled thread.
    - "batched": whole rows of the window per operation (`_batched_filter`; about 40 operations at
      (2, 4, 128, 128), peak extra memory bounded by `BATCHED_MEMORY_BUDGET`): few kernel launches
      on GPUs; on a CPU it uses torch's threads.
    - "auto": `choose_filter_method(x)`.
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

    if method not in FILTER_METHODS:
        msg = f"method must be one of {', '.join(FILTER_METHODS)}, got {method!r}"
        raise ValueError(msg)
    if method == "auto":
        method = choose_filter_method(x)
    if method == "batched":
        return _batched_filter(x, guide, kernel_size, sigma_space, sigma_color).to(x.dtype)

    if x.device.type != "cpu":
        return _shift_filter(x, guide, kernel_size, sigma_space, sigma_color)
    with single_intra_op_thread():
        return _shift_filter(x, guide, kernel_size, sigma_space, sigma_color)


def _shift_filter(x, guide, kernel_size, sigma_space, sigma_color):
    """The "shift" path (see `joint_bilateral_filter`), on whatever threads torch is set to use."""
    radius = kernel_size // 2
    height, width = x.shape[2:]
    x32 = x.to(torch.float32)
    # Padded index a ↔ image coordinate a − radius, for both x and the guide.
    x_pad = F.pad(x32, (radius,) * 4, mode="reflect")
    guide_pad = F.pad(guide.to(torch.float32), (radius,) * 4, mode="reflect")
    spatial = gaussian_kernel_1d(kernel_size, sigma_space)
    log_spatial = (spatial[:, None] * spatial[None, :]).log()  # (k, k), float64
    log_spatial_32 = _log_spatial_table(kernel_size, float(sigma_space), x.device)  # rows dy = 0 … r
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
        distance = (there - here).abs_().sum(dim=1, keepdim=True)
        weight = torch.addcmul(log_spatial_32[dy, dx + radius], distance, distance, value=color_coeff).exp_()
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


def choose_filter_method(x: torch.Tensor) -> str:
    """The filter path `method="auto"` takes: "batched" on accelerators (CUDA, MPS, XPU, …), where
    every operation is a kernel launch; "shift" on a CPU, where it runs on one thread and is the
    fastest path idle and under contention alike (bench/guidance.py: with torch's two threads on a
    busy 2-core machine, every one of the shift path's ~800 barriers can wait for a descheduled
    thread, and even the batched path's ~40 are slower than one thread doing the least work)."""
    return "shift" if x.device.type == "cpu" else "batched"


@contextmanager
def single_intra_op_thread():
    """Runs the block on one torch intra-op thread; restores the caller's count afterwards.

    `torch.set_num_threads` sets the calling thread's OpenMP/MKL thread count (the filter runs in the
    sampling thread; other threads keep their own), so this only changes how the filter's operations
    are split, never their results."""
    before = torch.get_num_threads()
    if before <= 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def batched_plan(x_shape: tuple[int, ...], guide_channels: int, kernel_size: int,
                 budget: int = BATCHED_MEMORY_BUDGET) -> tuple[int, int, int]:
    """(window rows per chunk, channels per operation, batch rows per pass) for `_batched_filter`.

    A chunk of n window rows holds the weights R (B, n, k, H + n − 1, W + 2r) and, at a time, one
    of: a guide difference of g channels, or the flipped weights plus a product of g channels of x;
    about (2 + g)·|R| bytes. Fewest chunks first (one per call when it fits), then the widest g.
    """
    batch, channels, height, width = x_shape
    radius = kernel_size // 2

    def weight_bytes(rows: int, batch_rows: int) -> int:
        return 4 * batch_rows * rows * kernel_size * (height + rows - 1) * (width + 2 * radius)

    batch_rows = batch
    while batch_rows > 1 and 3 * weight_bytes(1, batch_rows) > budget:
        batch_rows = (batch_rows + 1) // 2
    rows = radius + 1
    while rows > 1 and 3 * weight_bytes(rows, batch_rows) > budget:
        rows -= 1
    group = max(channels, guide_channels)
    while group > 1 and (2 + group) * weight_bytes(rows, batch_rows) > budget:
        group -= 1
    return rows, group, batch_rows


def _batched_filter(x, guide, kernel_size, sigma_space, sigma_color, plan=None):
    """The same filter as the shift path, a chunk of window rows per operation.

    Offsets d = (dy, dx) with dy ≥ 0 (all dx, the centre included) are evaluated as
    R_d(a) = w_s(d)·exp(c·(Σ_c |G(a + d) − G(a)|)²) on padded positions a; then
    w(p, p + d) = R_d(p + r) gives the offsets with dy ≥ 0 and, by symmetry, w(p, p − d) =
    R_d(p − d + r) those with dy < 0 (dy ≥ 1 rows only, so nothing is counted twice). All windows
    are strided views of the padded tensors; the weights are flipped once per chunk so that the
    "p − d" views have positive strides.
    """
    radius = kernel_size // 2
    rows, group, batch_rows = plan or batched_plan(tuple(x.shape), guide.shape[1], kernel_size)
    if batch_rows < x.shape[0]:
        return torch.cat([
            _batched_filter(x[i : i + batch_rows], guide[i : i + batch_rows], kernel_size, sigma_space, sigma_color,
                            (rows, group, batch_rows))
            for i in range(0, x.shape[0], batch_rows)
        ])
    x_pad = F.pad(x.to(torch.float32), (radius,) * 4, mode="reflect").contiguous()
    guide_pad = F.pad(guide.to(torch.float32), (radius,) * 4, mode="reflect")
    # G(a + d) for every dx on one column range needs r more columns each side; what is read from
    # these zeros lands only in weights no term uses.
    guide_wide = F.pad(guide_pad, (radius, radius, 0, 0)).contiguous()
    log_spatial = _log_spatial_table(kernel_size, float(sigma_space), x.device)
    color_coeff = -0.5 / (sigma_color**2)
    numerator = denominator = None
    for first in range(0, radius + 1, rows):
        last = min(first + rows, radius + 1)
        weight = _chunk_weights(guide_pad, guide_wide, log_spatial[first:last], color_coeff, first, group,
                                x.shape[2])
        for num, den in _chunk_terms(x_pad, weight, first, group, radius):
            numerator = num if numerator is None else numerator.add_(num)
            denominator = den if denominator is None else denominator.add_(den)
    return numerator / denominator


def _chunk_weights(guide_pad, guide_wide, log_spatial, color_coeff, first, group, height):
    """R (B, n, k, H + dmax, W + 2r) for window rows dy = first … first + n − 1 (dmax the last):
    entry [b, m, l, i, j] is R_(first + m, l − r) at padded position (i + r − dmax, j)."""
    rows, kernel_size = log_spatial.shape
    radius = kernel_size // 2
    dmax = first + rows - 1
    batch, channels, _, width_pad = guide_pad.shape
    here = guide_pad[:, :, radius - dmax : height + radius, :]  # G(a), (B, C, H + dmax, W + 2r)
    s_b, s_c, s_h, _ = guide_wide.stride()
    there = guide_wide.as_strided(  # G(a + d): row a_y + first + m, wide column j + l
        (batch, channels, rows, kernel_size, *here.shape[2:]), (s_b, s_c, s_h, 1, s_h, 1),
        guide_wide.storage_offset() + (radius - dmax + first) * s_h,
    )
    # Written into contiguous buffers: an elementwise result would take the windows' layout (the
    # offset axis innermost), which every later operation would then read slowly.
    shape = there[:, 0].shape
    distance = there.new_empty(shape)
    scratch = there.new_empty((batch, group, *shape[1:]) if group > 1 else shape) if channels > 1 else None
    for c in range(0, channels, group):
        width = min(group, channels - c)
        if width == 1:
            target = distance if c == 0 else scratch[:, 0] if group > 1 else scratch
            torch.sub(here[:, c, None, None], there[:, c], out=target).abs_()
            if c > 0:
                distance.add_(target)
            continue
        part = scratch[:, :width]
        torch.sub(here[:, c : c + width, None, None], there[:, c : c + width], out=part).abs_()
        if c == 0:
            torch.sum(part, dim=1, out=distance)
        else:
            distance.add_(part.sum(dim=1))
    weight = distance.square_().mul_(color_coeff).add_(log_spatial[None, :, :, None, None])
    return weight.exp_()


def _chunk_terms(x_pad, weight, first, group, radius):
    """(Σ w·x, Σ w) over the chunk's offsets d (dy ≥ 0) and, for dy ≥ 1, −d; each (B, ·, H, W)."""
    batch, rows, kernel_size, rows_r, _ = weight.shape
    dmax = first + rows - 1
    height = rows_r - dmax
    width = x_pad.shape[3] - 2 * radius
    s_xb, s_xc, s_xh, _ = x_pad.stride()
    x_shape = (batch, x_pad.shape[1])

    def x_windows(n_rows, top):  # x_pad[b, c, top + m + i, l + j]
        return x_pad.as_strided((*x_shape, n_rows, kernel_size, height, width), (s_xb, s_xc, s_xh, 1, s_xh, 1),
                                x_pad.storage_offset() + top * s_xh)

    # One contiguous product buffer per chunk (an elementwise result would take the windows' layout,
    # offset axis innermost, which makes both the product and its sum several times slower).
    product = weight.new_empty((batch, min(group, x_shape[1]), rows, kernel_size, height, width))

    def weighted_sum(windows, w):
        parts = []
        for c in range(0, x_shape[1], group):
            part = product[:, : min(group, x_shape[1] - c), : w.shape[1]]
            parts.append(torch.mul(windows[:, c : c + group], w[:, None], out=part).sum(dim=(2, 3)))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    # +d: w(p, p + d) = R_d(p + r) → weight[.., dmax + i, r + j]; x(p + d) = x_pad[r + dy + i, dx + r + j].
    w_plus = weight[:, :, :, dmax : dmax + height, radius : radius + width]
    yield weighted_sum(x_windows(rows, radius + first), w_plus), w_plus.sum(dim=(1, 2)).unsqueeze(1)
    skip = 1 if first == 0 else 0  # the dy = 0 row is complete in the +d term
    if rows - skip <= 0:
        return
    # −d: w(p, p − d) = R_d(p − d + r). With m' = dmax − dy and l' = r − dx (the flipped order) that is
    # flipped[m', l', i + m', j + l'], and x(p − d) = x_pad[r − dmax + m' + i, l' + j]: positive strides.
    flipped = weight[:, skip:].flip(1, 2)
    s_fb, s_fm, s_fl, s_fh, s_fw = flipped.stride()
    w_minus = flipped.as_strided((batch, rows - skip, kernel_size, height, width),
                                 (s_fb, s_fm + s_fh, s_fl + s_fw, s_fh, s_fw), flipped.storage_offset())
    yield weighted_sum(x_windows(rows - skip, radius - dmax), w_minus), w_minus.sum(dim=(1, 2)).unsqueeze(1)


_LOG_SPATIAL: dict[tuple[int, float, str], torch.Tensor] = {}


def _log_spatial_table(kernel_size: int, sigma_space: float, device: torch.device) -> torch.Tensor:
    """log(g(dy)·g(dx)) for dy = 0 … r (rows) and dx = −r … r (columns), float32 on `device`; cached,
    so a call does not rebuild (and on an accelerator, upload) it."""
    key = (kernel_size, sigma_space, str(device))
    table = _LOG_SPATIAL.get(key)
    if table is None:
        spatial = gaussian_kernel_1d(kernel_size, sigma_space)
        log_2d = (spatial[:, None] * spatial[None, :]).log()[kernel_size // 2 :]
        table = _LOG_SPATIAL[key] = log_2d.to(device=device, dtype=torch.float32)
    return table


def standardized_guide(x0: torch.Tensor) -> torch.Tensor:
    """x0 standardised per sample over (C, H, W): (x0 − μ)/(s + 1e-5), s the unbiased std. float32."""
    x0 = x0.to(torch.float32)
    std, mean = torch.std_mean(x0, dim=(1, 2, 3), keepdim=True, correction=1)
    return (x0 - mean) / (std + GUIDE_EPS)


def sharpness_alpha(sharpness: float, progress: torch.Tensor | float) -> torch.Tensor:
    """α = 0.001 · sharpness · p, float32, same shape as `progress`."""
    return SHARPNESS_UNIT * float(sharpness) * torch.as_tensor(progress, dtype=torch.float32)


def sharpen_positive_eps(
    eps_cond: torch.Tensor,
    x0_cond: torch.Tensor,
    sharpness: float,
    progress: torch.Tensor | float,
    method: str = "auto",
) -> torch.Tensor:
    """The positive eps with a fraction α of its filtered version blended in: α·ẽ + (1 − α)·e.

    Returns `eps_cond` itself when α = 0 for every row (sharpness 0 or p = 0), so those cases are
    exact identities and cost nothing. `method` is the filter path (`joint_bilateral_filter`).
    """
    alpha = sharpness_alpha(sharpness, progress).to(eps_cond.device)
    if not bool(torch.any(alpha != 0)):
        return eps_cond
    alpha = per_row(alpha, eps_cond.shape[0])
    eps32 = eps_cond.to(torch.float32)
    filtered = joint_bilateral_filter(eps32, standardized_guide(x0_cond), method=method)
    # e' = α·ẽ + (1 − α)·e
    return (filtered * alpha + eps32 * (1.0 - alpha)).to(eps_cond.dtype)
