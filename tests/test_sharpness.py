from __future__ import annotations

import math

import kornia
import numpy as np
import pytest
import torch
from torch_threads import RecordThreads, torch_threads

from lib_fooocus.guidance import sharpness
from lib_fooocus.guidance.sharpness import (
    batched_plan,
    choose_filter_method,
    joint_bilateral_filter,
    sharpen_positive_eps,
    sharpness_alpha,
    standardized_guide,
)

METHODS = ["shift", "batched"]


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


@pytest.mark.parametrize("method", [*METHODS, "auto"])
def test_filter_matches_naive_loop(method):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 15, 14, generator=gen)
    guide = torch.randn(2, 4, 15, 14, generator=gen) * 0.7
    expected = naive_joint_bilateral(x.double().numpy(), guide.double().numpy())
    got = joint_bilateral_filter(x, guide, method=method)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5, rtol=0)


# (window rows per chunk, channels per operation, batch rows per pass): one chunk, every row alone,
# chunks that do not divide the 7 rows, channel groups that do not divide 4 channels, batch passes.
PLANS = [(7, 4, 2), (1, 1, 2), (2, 3, 2), (3, 2, 1), (5, 1, 1), (4, 4, 1), (6, 3, 2)]


@pytest.mark.parametrize("plan", PLANS)
def test_batched_path_matches_naive_loop_for_every_chunking(plan):
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 4, 16, 13, generator=gen)
    guide = torch.randn(2, 3, 16, 13, generator=gen) * 0.8  # guide channels differ from x's
    expected = naive_joint_bilateral(x.double().numpy(), guide.double().numpy())
    got = sharpness._batched_filter(x, guide, 13, 3.0, 3.0, plan)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape", [(1, 4, 128, 128), (2, 4, 40, 33), (1, 3, 7, 9), (1, 4, 64, 96)])
def test_filter_matches_kornia(shape, method):
    gen = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(shape, generator=gen)
    guide = standardized_guide(torch.randn(shape, generator=gen) * 2.0 + 0.5)
    got = joint_bilateral_filter(x, guide, method=method)
    torch.testing.assert_close(got, kornia_filter(x, guide), atol=1e-5, rtol=0)


def test_batched_plan_fits_the_budget_and_is_one_chunk_at_the_sdxl_shape():
    assert batched_plan((2, 4, 128, 128), 4, 13) == (7, 1, 2)
    for shape in [(4, 4, 128, 128), (1, 4, 256, 256), (8, 4, 192, 192), (2, 16, 64, 64)]:
        rows, group, batch_rows = batched_plan(shape, shape[1], 13)
        weights = 4 * batch_rows * rows * 13 * (shape[2] + rows - 1) * (shape[3] + 12)
        assert 1 <= rows <= 7 and 1 <= group <= shape[1] and 1 <= batch_rows <= shape[0]
        assert (2 + group) * weights <= sharpness.BATCHED_MEMORY_BUDGET or (rows, group, batch_rows) == (1, 1, 1)
    # a small input gets everything in one operation per step
    assert batched_plan((1, 4, 16, 16), 4, 13) == (7, 4, 1)


class _CountOps(torch.utils._python_dispatch.TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 0 if func.is_view else 1
        return func(*args, **(kwargs or {}))


def test_batched_path_is_a_few_dozen_operations_at_the_sdxl_shape():
    # A proxy for kernel launches on an accelerator (issue target: at most 60 per call).
    x, guide = torch.randn(2, 4, 128, 128), torch.randn(2, 4, 128, 128)
    joint_bilateral_filter(x, guide, method="batched")  # builds the cached spatial table
    counts = {}
    for method in METHODS:
        with _CountOps() as counter:
            joint_bilateral_filter(x, guide, method=method)
        counts[method] = counter.count
    assert counts["batched"] <= 60
    assert counts["shift"] > 10 * counts["batched"]  # the shift path: one small operation at a time


def test_auto_chooses_batched_on_accelerators_and_shift_on_cpu(monkeypatch):
    big, small = torch.empty(2, 4, 128, 128), torch.empty(1, 4, 64, 64)
    assert choose_filter_method(torch.empty(2, 4, 128, 128, device="meta")) == "batched"  # any accelerator
    for threads in (1, 2, 8):
        monkeypatch.setattr(torch, "get_num_threads", lambda threads=threads: threads)
        assert choose_filter_method(big) == "shift"
        assert choose_filter_method(small) == "shift"
    monkeypatch.undo()

    calls = []
    monkeypatch.setattr(sharpness, "_batched_filter", lambda x, *args, **kwargs: calls.append("batched") or x)
    joint_bilateral_filter(big, big, method="auto")
    joint_bilateral_filter(small, small, method="batched")
    assert calls == ["batched"]


@pytest.fixture
def _two_torch_threads():
    with torch_threads(2):
        yield


@pytest.mark.usefixtures("_two_torch_threads")
def test_cpu_shift_path_runs_on_one_thread_and_restores_the_count():
    gen = torch.Generator().manual_seed(6)
    x, guide = torch.randn(1, 4, 24, 20, generator=gen), torch.randn(1, 4, 24, 20, generator=gen)
    with RecordThreads() as shift_ops:
        shifted = joint_bilateral_filter(x, guide, method="auto")
    assert shift_ops.threads == {1}
    assert torch.get_num_threads() == 2
    with RecordThreads() as batched_ops:
        batched = joint_bilateral_filter(x, guide, method="batched")
    assert batched_ops.threads == {2}  # the batched path keeps torch's threads
    torch.testing.assert_close(shifted, batched, atol=1e-5, rtol=0)
    # restored after an error inside the block too
    inside = []

    def fail_on_one_thread():
        with sharpness.single_intra_op_thread():
            inside.append(torch.get_num_threads())
            raise RuntimeError("inside")

    with pytest.raises(RuntimeError, match="inside"):
        fail_on_one_thread()
    assert inside == [1]
    assert torch.get_num_threads() == 2


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="method must be one of auto, shift, batched"):
        joint_bilateral_filter(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8), method="fast")


@pytest.mark.parametrize("method", METHODS)
def test_filter_weight_is_shared_by_channels(method):
    # Channels of x that are scaled copies of each other stay scaled copies: one weight per pixel pair.
    gen = torch.Generator().manual_seed(1)
    base = torch.randn(1, 1, 20, 20, generator=gen)
    x = torch.cat([base, 3.0 * base, -base], dim=1)
    out = joint_bilateral_filter(x, torch.randn(1, 4, 20, 20, generator=gen), method=method)
    torch.testing.assert_close(out[:, 1], 3.0 * out[:, 0])
    torch.testing.assert_close(out[:, 2], -out[:, 0])


@pytest.mark.parametrize("method", METHODS)
def test_filter_preserves_constant_and_rejects_bad_shapes(method):
    x = torch.full((1, 4, 16, 16), 2.5)
    torch.testing.assert_close(joint_bilateral_filter(x, torch.randn(1, 4, 16, 16), method=method), x)
    with pytest.raises(ValueError, match="share batch and spatial size"):
        joint_bilateral_filter(x, torch.randn(1, 4, 16, 15))
    with pytest.raises(ValueError, match="H and W"):
        joint_bilateral_filter(torch.randn(1, 4, 6, 16), torch.randn(1, 4, 6, 16))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_filter_low_precision_inputs(dtype, method):
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 4, 24, 24, generator=gen)
    guide = torch.randn(2, 4, 24, 24, generator=gen)
    out = joint_bilateral_filter(x.to(dtype), guide.to(dtype), method=method)
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
