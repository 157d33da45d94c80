from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from harness import toy

from lib_fooocus.guidance.schedule import progress_from_sigma, sdxl_sigmas, timestep_from_sigma

# Fooocus's default schedule (`ldm_patched/k_diffusion/sampling.py` get_sigmas_karras): SDXL, Karras, 30 steps, σ ∈ [σ_min, σ_max], ρ = 7.
KARRAS_30_T = [999, 975, 949, 923, 894, 863, 830, 795, 757, 716, 672, 624, 572, 517, 458, 397, 334, 273,
               214, 162, 117, 80, 53, 33, 20, 11, 6, 3, 1, 0]
KARRAS_30_P = [0.000, 0.024, 0.050, 0.076, 0.105, 0.136, 0.169, 0.204, 0.242, 0.283, 0.327, 0.375, 0.427,
               0.482, 0.542, 0.603, 0.666, 0.727, 0.786, 0.838, 0.883, 0.920, 0.947, 0.967, 0.980, 0.989,
               0.994, 0.997, 0.999, 1.000]


def numpy_sigmas() -> np.ndarray:
    """Independent formulation: numpy float64 ᾱ, σ cast to float32."""
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2
    alphas_cumprod = np.cumprod(1.0 - betas)
    return np.sqrt((1.0 - alphas_cumprod) / alphas_cumprod).astype(np.float32)


def test_sdxl_sigmas_match_float64_schedule():
    sigmas = sdxl_sigmas()
    assert sigmas.shape == (1000,)
    assert sigmas.dtype == torch.float32
    np.testing.assert_array_equal(sigmas.numpy(), numpy_sigmas())
    assert sigmas[0].item() == pytest.approx(0.029167, abs=1e-6)
    assert sigmas[-1].item() == pytest.approx(14.614641, abs=1e-5)
    assert bool(torch.all(sigmas[1:] > sigmas[:-1]))


def naive_timestep(sigma: float, sigmas: np.ndarray) -> int:
    log_sigmas = np.log(sigmas.astype(np.float32))
    log_sigma = np.float32(math.log(np.float32(sigma)))
    best, best_distance = 0, None
    for i, value in enumerate(log_sigmas):
        distance = abs(log_sigma - value)
        if best_distance is None or distance < best_distance:
            best, best_distance = i, distance
    return best


def test_timestep_is_nearest_log_sigma_against_naive_loop():
    sigmas = sdxl_sigmas()
    generator = torch.Generator().manual_seed(3)
    queries = torch.exp(torch.empty(50).uniform_(math.log(0.02), math.log(20.0), generator=generator))
    got = timestep_from_sigma(queries, sigmas)
    expected = [naive_timestep(float(q), sigmas.numpy()) for q in queries]
    assert got.tolist() == [float(e) for e in expected]
    # The training σ map back to their own index.
    assert timestep_from_sigma(sigmas, sigmas).tolist() == [float(i) for i in range(1000)]


def test_karras_30_steps_timesteps_and_progress_table():
    sigmas = sdxl_sigmas()
    schedule = toy.karras(30, float(sigmas[0]), float(sigmas[-1]))[:-1]
    t = timestep_from_sigma(schedule, sigmas)
    assert t.tolist() == [float(v) for v in KARRAS_30_T]
    p = progress_from_sigma(schedule, sigmas)
    assert [round(v, 3) for v in p.tolist()] == KARRAS_30_P


def test_karras_60_steps_first_timestep_below_700():
    sigmas = sdxl_sigmas()
    t = timestep_from_sigma(toy.karras(60, float(sigmas[0]), float(sigmas[-1]))[:-1], sigmas)
    first = next(i for i, v in enumerate(t.tolist()) if v < 700)
    assert (first, t[first].item()) == (20, 680.0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_batch_shape_and_dtype_kept(dtype):
    sigmas = sdxl_sigmas()
    sigma = torch.tensor([[14.6, 1.0], [0.03, 3.0]], dtype=dtype)
    t = timestep_from_sigma(sigma, sigmas)
    p = progress_from_sigma(sigma, sigmas)
    assert t.shape == sigma.shape and p.shape == sigma.shape
    expected_dtype = torch.float32 if dtype == torch.bfloat16 else dtype  # bf16 can't hold 999
    assert t.dtype == expected_dtype and p.dtype == expected_dtype
    assert t[0, 0].item() == 999 and t[1, 0].item() == 0
    assert p[0, 0].item() == 0 and p[1, 0].item() == 1


def test_scalar_sigma():
    t = timestep_from_sigma(torch.tensor(14.614641), sdxl_sigmas())
    assert t.shape == () and t.item() == 999
