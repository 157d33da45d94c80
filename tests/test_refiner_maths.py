"""The refiner's switch rule and conditioning derivation, against independently computed numbers."""

from __future__ import annotations

import math

import pytest
import torch

from lib_fooocus.guidance import refiner


@pytest.mark.parametrize(
    ("steps", "ratio", "expected"),
    [(30, 0.75, 22), (30, 0.8, 24), (30, 0.667, 20), (30, 0.4, 12), (60, 0.8, 48), (4, 0.625, 2), (4, 0.875, 4), (6, 0.5, 3)],
)
def test_switch_step_is_pythons_round_half_to_even(steps: int, ratio: float, expected: int) -> None:
    # 4 × 0.625 = 2.5 → 2 and 30 × 0.75 = 22.5 → 22 (halves to even, not up)
    assert refiner.switch_step(steps, ratio) == expected


def test_switch_sigma_is_the_sigma_of_step_switch_and_none_when_the_refiner_never_runs() -> None:
    sigmas = [14.6, 7.0, 3.0, 1.0, 0.0]  # 4 steps
    assert refiner.switch_sigma(sigmas, 0.25) == 7.0  # switch 1: base steps 0, 1
    assert refiner.switch_sigma(sigmas, 0.5) == 3.0
    assert refiner.switch_sigma(sigmas, 0.875) is None  # round(3.5) = 4 ≥ steps
    assert refiner.switch_sigma(sigmas, 1.0) is None
    assert refiner.refiner_takes(2.99, 3.0) and not refiner.refiner_takes(3.0, 3.0)  # strictly below
    assert not refiner.refiner_takes(0.1, None)


def test_schedule_tail_starts_at_the_first_evaluated_sigma() -> None:
    full = [14.6, 7.0, 3.0, 1.0, 0.0]
    assert refiner.schedule_tail(full, 3.0) == [3.0, 1.0, 0.0]
    assert refiner.schedule_tail(full, 14.6) == full
    assert refiner.schedule_tail(full, 5.0) is None


def _fourier(value: float) -> list[float]:
    """Independent: F(v)_k = cos(v·10000^(−k/128)) for k < 128, then the sines (float64)."""
    freqs = [10000.0 ** (-k / 128) for k in range(128)]
    return [math.cos(value * f) for f in freqs] + [math.sin(value * f) for f in freqs]


@pytest.mark.parametrize(("aesthetic", "cos0", "sin0"), [(6.0, 0.960170286650366, -0.279415498198926),
                                                          (2.5, -0.801143615546934, 0.598472144103957)])
def test_refiner_vector_layout_and_aesthetic_numbers(aesthetic: float, cos0: float, sin0: float) -> None:
    pooled = torch.randn(2, 1280, dtype=torch.float64)
    vector = refiner.refiner_vector(pooled, height=1024, width=768, aesthetic=aesthetic, crop_top=16, crop_left=32)
    assert vector.shape == (2, 2560) and vector.dtype == torch.float64
    assert torch.equal(vector[:, :1280], pooled)
    expected = [v for value in (1024, 768, 16, 32, aesthetic) for v in _fourier(value)]
    assert torch.allclose(vector[0, 1280:], torch.tensor(expected, dtype=torch.float64), atol=2e-4)  # float32 angles, as the hosts
    assert torch.equal(vector[0, 1280:], vector[1, 1280:])
    # the aesthetic block starts at column 2304: cos(a·1), …, then sin(a·1) at 2304 + 128
    assert vector[0, 2304].item() == pytest.approx(cos0, abs=1e-6)
    assert vector[0, 2304 + 128].item() == pytest.approx(sin0, abs=1e-6)


def test_refiner_conditioning_slices_clip_g_and_keeps_pooled() -> None:
    crossattn = torch.randn(1, 154, 2048)
    vector = torch.randn(1, 2816)
    c, v = refiner.refiner_conditioning(crossattn, vector, refiner.KIND_SDXL_REFINER, 512, 640, 6.0)
    assert torch.equal(c, crossattn[..., 768:]) and c.shape == (1, 154, 1280)
    assert torch.equal(v[:, :1280], vector[:, :1280])
    assert torch.allclose(v[0, 1280:1536], torch.tensor(_fourier(512), dtype=torch.float32), atol=2e-4)
    assert torch.allclose(v[0, 1536:1792], torch.tensor(_fourier(640), dtype=torch.float32), atol=2e-4)
    # SDXL base-type refiner: the base's conditioning, unchanged (same objects)
    c2, v2 = refiner.refiner_conditioning(crossattn, vector, refiner.KIND_SDXL_BASE, 512, 640, 6.0)
    assert c2 is crossattn and v2 is vector
