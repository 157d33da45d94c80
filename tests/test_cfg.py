from __future__ import annotations

import kornia
import pytest
import torch
from torch_threads import RecordThreads, torch_threads

from lib_fooocus.guidance.cfg import adaptive_cfg, effective_cfg_scale, fooocus_cfg, is_cfg_one
from lib_fooocus.params import FooocusParams


def tensors(seed: int, shape=(2, 4, 24, 20)):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=gen) for _ in range(3)]


def test_effective_scale_8_5_at_w10_m7_p05():
    assert effective_cfg_scale(10.0, 7.0, 0.5).item() == pytest.approx(8.5)
    eps_u, eps_c, _ = tensors(0)
    got = adaptive_cfg(eps_u, eps_c, 10.0, 7.0, 0.5)
    torch.testing.assert_close(got, eps_u + 8.5 * (eps_c - eps_u), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cfg_scale", [1.5, 4.0, 7.0])
def test_cfg_at_or_below_mimic_is_plain_cfg_exactly(cfg_scale):
    eps_u, eps_c, _ = tensors(1)
    assert torch.equal(adaptive_cfg(eps_u, eps_c, cfg_scale, 7.0, 0.37), eps_u + cfg_scale * (eps_c - eps_u))
    assert effective_cfg_scale(cfg_scale, 7.0, 0.9).item() == cfg_scale


def test_adaptive_cfg_per_row_progress():
    eps_u, eps_c, _ = tensors(2)
    got = adaptive_cfg(eps_u, eps_c, 12.0, 4.0, torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(got[0], eps_u[0] + 4.0 * (eps_c[0] - eps_u[0]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got[1], eps_u[1] + 12.0 * (eps_c[1] - eps_u[1]), atol=1e-5, rtol=1e-5)


def reference_fooocus_cfg(x, x0_c, x0_u, cfg, sharpness, mimic, progress):
    """Independent formulation of Fooocus's `modules/patch.py` compute_cfg + sharpness per row, with kornia's filter."""
    out = []
    for b, p in enumerate(progress.tolist()):
        xb, cb, ub = x[b : b + 1].double(), x0_c[b : b + 1].double(), x0_u[b : b + 1].double()
        e_c, e_u = xb - cb, xb - ub
        guide = (cb - cb.mean()) / (cb.std() + 1e-5)
        filtered = kornia.filters.joint_bilateral_blur(e_c, guide, (13, 13), 3.0, (3.0, 3.0), "reflect", "l1")
        alpha = 0.001 * sharpness * p
        e_c = alpha * filtered + (1 - alpha) * e_c
        scale = mimic + p * (cfg - mimic) if cfg > mimic else cfg
        out.append(xb - (e_u + scale * (e_c - e_u)))
    return torch.cat(out).float()


@pytest.mark.parametrize(("cfg", "sharpness", "mimic"), [(10.0, 2.0, 7.0), (4.0, 30.0, 7.0), (15.0, 0.0, 3.0)])
def test_fooocus_cfg_matches_reference(cfg, sharpness, mimic):
    x, x0_c, x0_u = tensors(3)
    params = FooocusParams(enabled=True, sharpness=sharpness, adaptive_cfg=mimic)
    progress = torch.tensor([0.2, 0.95])
    got = fooocus_cfg(x, x0_c, x0_u, torch.tensor([5.0, 0.1]), cfg, params, progress)
    expected = reference_fooocus_cfg(x, x0_c, x0_u, cfg, sharpness, mimic, progress)
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=2e-5)


def test_fooocus_cfg_passes_the_filter_method_and_both_paths_agree(monkeypatch):
    from lib_fooocus.guidance import sharpness

    x, x0_c, x0_u = tensors(7)
    params = FooocusParams(enabled=True, sharpness=30.0, adaptive_cfg=7.0)
    progress = torch.tensor([0.6, 1.0])
    seen, real = [], sharpness.joint_bilateral_filter
    monkeypatch.setattr(sharpness, "joint_bilateral_filter",
                        lambda *a, method="auto", **k: seen.append(method) or real(*a, method=method, **k))
    results = {m: fooocus_cfg(x, x0_c, x0_u, 1.0, 10.0, params, progress, m) for m in ("shift", "batched", "auto")}
    assert seen == ["shift", "batched", "auto"]
    expected = reference_fooocus_cfg(x, x0_c, x0_u, 10.0, 30.0, 7.0, progress)
    for result in results.values():
        torch.testing.assert_close(result, expected, atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize(("method", "threads"), [("auto", {1}), ("shift", {1}), ("batched", {2})])
def test_fooocus_cfg_on_cpu_runs_on_one_thread_unless_batched(method, threads):
    x, x0_c, x0_u = tensors(8)
    params = FooocusParams(enabled=True, sharpness=2.0, adaptive_cfg=7.0)
    progress = torch.tensor([0.5, 1.0])
    with torch_threads(2):
        with RecordThreads() as recorded:
            fooocus_cfg(x, x0_c, x0_u, 1.0, 10.0, params, progress, method)
        assert recorded.threads == threads
        assert torch.get_num_threads() == 2


def test_fooocus_cfg_one_returns_positive_untouched():
    x, x0_c, x0_u = tensors(4)
    params = FooocusParams(enabled=True, sharpness=30.0)
    assert is_cfg_one(1.0) and is_cfg_one(1.0 + 1e-12) and not is_cfg_one(1.01)
    assert torch.equal(fooocus_cfg(x, x0_c, x0_u, 1.0, 1.0, params, 1.0), x0_c)
    assert torch.equal(fooocus_cfg(x, x0_c, None, 1.0, 7.0, params, 1.0), x0_c)


def test_sharpness_zero_and_low_cfg_equal_plain_cfg():
    x, x0_c, x0_u = tensors(5)
    params = FooocusParams(enabled=True, sharpness=0.0, adaptive_cfg=7.0)
    got = fooocus_cfg(x, x0_c, x0_u, 1.0, 5.0, params, torch.tensor([0.3, 0.8]))
    torch.testing.assert_close(got, x0_u + 5.0 * (x0_c - x0_u), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_fooocus_cfg_low_precision(dtype):
    x, x0_c, x0_u = tensors(6)
    params = FooocusParams(enabled=True, sharpness=10.0)
    progress = torch.tensor([0.5, 0.9])
    got = fooocus_cfg(x.to(dtype), x0_c.to(dtype), x0_u.to(dtype), 1.0, 9.0, params, progress)
    assert got.dtype == dtype
    expected = fooocus_cfg(x.to(dtype).float(), x0_c.to(dtype).float(), x0_u.to(dtype).float(), 1.0, 9.0, params, progress)
    torch.testing.assert_close(got.float(), expected, atol=0.1, rtol=0.02)
