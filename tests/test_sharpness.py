from __future__ import annotations

import math

import kornia
import numpy as np
import pytest
import torch

from lib_fooocus.guidance.sharpness import (
    joint_bilateral_filter,
    sharpen_positive_eps,
    sharpness_alpha,
    standardized_guide,
)


def naive_joint_bilateral(x: np.ndarray, guide: np.ndarray, k: int = 13, ss: float = 3.0, sc: float = 3.0):
    """Fooocus's `modules/anisotropic.py` `adaptive_anisotropic_filter`, pixel by pixel in float64: 13×13 window, reflect padding, L1 colour distance."""
    r = k // 2
    offsets = np.arange(-r, r + 1)
    g = np.exp(-(offsets**2) / (2 * ss**2))
    g /= g.sum()
    spatial = np.outer(g, g)
    pad = ((0, 0), (0, 0), (r, r), (r, r))
    x_pad = np.pad(x, pad, mode="reflect")  # numpy "reflect" = mirror without the edge pixel
    g_pad = np.pad(guide, pad, mode="reflect")
    out = np.empty_like(x)
    batch, _, height, width = x.shape
    for b in range(batch):
        for i in range(height):
            for j in range(width):
                window_g = g_pad[b, :, i : i + k, j : j + k]
                distance = np.abs(window_g - guide[b, :, i, j][:, None, None]).sum(axis=0)
                weight = spatial * np.exp(-(distance**2) / (2 * sc**2))
                window_x = x_pad[b, :, i : i + k, j : j + k]
                out[b, :, i, j] = (window_x * weight).sum(axis=(1, 2)) / weight.sum()
    return out


def kornia_filter(x, guide):
    return kornia.filters.joint_bilateral_blur(x, guide, (13, 13), 3.0, (3.0, 3.0), "reflect", "l1")


def test_filter_matches_naive_loop():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 15, 14, generator=gen)
    guide = torch.randn(2, 4, 15, 14, generator=gen) * 0.7
    expected = naive_joint_bilateral(x.double().numpy(), guide.double().numpy())
    got = joint_bilateral_filter(x, guide)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("shape", [(1, 4, 128, 128), (2, 4, 40, 33), (1, 3, 7, 9), (1, 4, 64, 96)])
def test_filter_matches_kornia(shape):
    gen = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(shape, generator=gen)
    guide = standardized_guide(torch.randn(shape, generator=gen) * 2.0 + 0.5)
    torch.testing.assert_close(joint_bilateral_filter(x, guide), kornia_filter(x, guide), atol=1e-5, rtol=0)


def test_filter_weight_is_shared_by_channels():
    # Channels of x that are scaled copies of each other stay scaled copies: one weight per pixel pair.
    gen = torch.Generator().manual_seed(1)
    base = torch.randn(1, 1, 20, 20, generator=gen)
    x = torch.cat([base, 3.0 * base, -base], dim=1)
    out = joint_bilateral_filter(x, torch.randn(1, 4, 20, 20, generator=gen))
    torch.testing.assert_close(out[:, 1], 3.0 * out[:, 0])
    torch.testing.assert_close(out[:, 2], -out[:, 0])


def test_filter_preserves_constant_and_rejects_bad_shapes():
    x = torch.full((1, 4, 16, 16), 2.5)
    torch.testing.assert_close(joint_bilateral_filter(x, torch.randn(1, 4, 16, 16)), x)
    with pytest.raises(ValueError, match="share batch and spatial size"):
        joint_bilateral_filter(x, torch.randn(1, 4, 16, 15))
    with pytest.raises(ValueError, match="H and W"):
        joint_bilateral_filter(torch.randn(1, 4, 6, 16), torch.randn(1, 4, 6, 16))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_filter_low_precision_inputs(dtype):
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, 4, 24, 24, generator=gen)
    guide = torch.randn(1, 4, 24, 24, generator=gen)
    out = joint_bilateral_filter(x.to(dtype), guide.to(dtype))
    assert out.dtype == dtype
    reference = kornia_filter(x.to(dtype).float(), guide.to(dtype).float())
    torch.testing.assert_close(out.float(), reference, atol=2e-2, rtol=2e-2)


def test_standardized_guide_uses_unbiased_std_per_sample():
    gen = torch.Generator().manual_seed(3)
    x0 = torch.randn(2, 4, 8, 8, generator=gen) * torch.tensor([1.0, 5.0]).view(2, 1, 1, 1)
    guide = standardized_guide(x0)
    for b in range(2):
        values = x0[b].double().flatten().numpy()
        expected = (values - values.mean()) / (values.std(ddof=1) + 1e-5)
        np.testing.assert_allclose(guide[b].flatten().numpy(), expected, atol=1e-5)


def test_alpha_values():
    assert sharpness_alpha(2.0, 1.0).item() == pytest.approx(0.002)
    assert sharpness_alpha(30.0, 1.0).item() == pytest.approx(0.03)
    assert sharpness_alpha(2.0, torch.tensor([0.0, 0.5])).tolist() == pytest.approx([0.0, 0.001])


def test_sharpen_is_exact_identity_when_alpha_is_zero():
    eps = torch.randn(2, 4, 16, 16)
    x0 = torch.randn(2, 4, 16, 16)
    assert sharpen_positive_eps(eps, x0, 0.0, torch.tensor([0.3, 1.0])) is eps
    assert sharpen_positive_eps(eps, x0, 2.0, torch.tensor([0.0, 0.0])) is eps


def test_sharpen_blend_per_row_against_kornia():
    gen = torch.Generator().manual_seed(4)
    eps = torch.randn(2, 4, 32, 24, generator=gen)
    x0 = torch.randn(2, 4, 32, 24, generator=gen) * 3.0
    progress = torch.tensor([0.25, 1.0])
    got = sharpen_positive_eps(eps, x0, 20.0, progress)
    for b, p in enumerate(progress.tolist()):
        alpha = 0.001 * 20.0 * p
        mean, std = x0[b].mean(), x0[b].std()
        guide = ((x0[b : b + 1] - mean) / (std + 1e-5))
        expected = alpha * kornia_filter(eps[b : b + 1], guide) + (1 - alpha) * eps[b : b + 1]
        torch.testing.assert_close(got[b : b + 1], expected, atol=1e-6, rtol=1e-6)
    # Row 0 must differ from row 1's α (the per-row progress is used).
    assert not torch.allclose(got[0], sharpen_positive_eps(eps[:1], x0[:1], 20.0, 1.0)[0])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_sharpen_keeps_dtype(dtype):
    eps = torch.randn(1, 4, 16, 16).to(dtype)
    out = sharpen_positive_eps(eps, torch.randn(1, 4, 16, 16).to(dtype), 30.0, 1.0)
    assert out.dtype == dtype and out.shape == eps.shape
    assert not math.isnan(out.float().sum().item())
