from __future__ import annotations

import math

import pytest
import torch
from harness import toy

from lib_fooocus.guidance.adm import (
    ADM_DIM,
    fourier_embedding,
    negative_adm,
    round_to_64,
    select_adm,
    size_embedding,
)
from lib_fooocus.guidance.schedule import sdxl_sigmas, timestep_from_sigma


def naive_fourier(value: float, dim: int = 256) -> torch.Tensor:
    """One frequency at a time, with the float32 arithmetic SDXL's embedder uses (ω_k in float32)."""
    half = dim // 2
    cosines, sines = [], []
    for k in range(half):
        exponent = torch.tensor(-math.log(10000.0), dtype=torch.float32) * k / half
        frequency = torch.exp(exponent)
        angle = float(torch.tensor(value, dtype=torch.float32) * frequency)
        cosines.append(math.cos(angle))
        sines.append(math.sin(angle))
    return torch.tensor(cosines + sines, dtype=torch.float32)


def float64_fourier(value: float, dim: int = 256) -> torch.Tensor:
    half = dim // 2
    angles = [value * math.exp(-math.log(10000.0) * k / half) for k in range(half)]
    return torch.tensor([math.cos(a) for a in angles] + [math.sin(a) for a in angles], dtype=torch.float64)


@pytest.mark.parametrize("value", [0.0, 1.0, 716.0, 921.0, 1344.0, 1728.0])
def test_fourier_embedding_closed_form(value):
    got = fourier_embedding([value])[0]
    assert got.dtype == torch.float32 and got.shape == (256,)
    torch.testing.assert_close(got, naive_fourier(value), atol=2e-6, rtol=0)
    # Exact math up to float32 rounding of ω·v (≈ v·2⁻²⁴), cosines first.
    torch.testing.assert_close(got.double(), float64_fourier(value), atol=2e-7 * max(value, 1.0) + 1e-6, rtol=0)


def test_size_embedding_order_height_first():
    emb = size_embedding(1, 2, 3, 4, 5, 6)
    assert emb.shape == (1536,)
    for i, value in enumerate([1, 2, 3, 4, 5, 6]):
        torch.testing.assert_close(emb[i * 256 : (i + 1) * 256], naive_fourier(value), atol=2e-6, rtol=0)


def test_round_to_64_uses_bankers_rounding():
    assert [round_to_64(v) for v in (896, 1152, 900, 96, 160, 1000)] == [896, 1152, 896, 128, 128, 1024]


def test_negative_adm_scalars_for_1152x896():
    pooled = torch.randn(1, 1280)
    pos_emph, pos_cons = negative_adm(pooled, width=1152, height=896, scale=1.5)
    neg_emph, neg_cons = negative_adm(pooled, width=1152, height=896, scale=0.8)
    assert pos_emph.shape == (1, ADM_DIM)
    for vector in (pos_emph, pos_cons, neg_emph, neg_cons):
        assert torch.equal(vector[:, :1280], pooled)
    torch.testing.assert_close(pos_emph[0, 1280:], size_embedding(1344, 1728, 0, 0, 896, 1152), atol=0, rtol=0)
    torch.testing.assert_close(neg_emph[0, 1280:], size_embedding(716, 921, 0, 0, 896, 1152), atol=0, rtol=0)
    consistent = size_embedding(896, 1152, 0, 0, 896, 1152)
    torch.testing.assert_close(pos_cons[0, 1280:], consistent, atol=0, rtol=0)
    torch.testing.assert_close(neg_cons[0, 1280:], consistent, atol=0, rtol=0)
    # A one-pixel change in the truncated size must show up (the test can fail).
    assert not torch.equal(neg_emph[0, 1280:], size_embedding(717, 921, 0, 0, 896, 1152))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_negative_adm_keeps_pooled_dtype_and_batch(dtype):
    pooled = torch.randn(3, 1280).to(dtype)
    emphasized, consistent = negative_adm(pooled, width=1024, height=1024, scale=1.5)
    assert emphasized.dtype == dtype and consistent.dtype == dtype
    assert emphasized.shape == (3, ADM_DIM)
    expected = size_embedding(1536, 1536, 0, 0, 1024, 1024).to(dtype)
    assert torch.equal(emphasized[2, 1280:], expected)


def test_select_adm_switches_at_30_step_karras_step_10():
    sigmas = sdxl_sigmas()
    t = timestep_from_sigma(toy.karras(30, float(sigmas[0]), float(sigmas[-1]))[:-1], sigmas)
    emphasized = torch.zeros(1, ADM_DIM)
    consistent = torch.ones(1, ADM_DIM)
    chosen = [select_adm(emphasized, consistent, t[i : i + 1], 0.3)[0, 0].item() for i in range(30)]
    assert chosen == [0.0] * 10 + [1.0] * 20


def test_select_adm_per_row_and_edges():
    emphasized = torch.zeros(3, ADM_DIM)
    consistent = torch.ones(3, ADM_DIM)
    t = torch.tensor([999.0, 700.0, 699.0])
    assert select_adm(emphasized, consistent, t, 0.3)[:, 0].tolist() == [0.0, 0.0, 1.0]
    assert select_adm(emphasized, consistent, t, 0.0)[:, 0].tolist() == [1.0, 1.0, 1.0]
    t_edge = torch.tensor([0.0, 1.0, 999.0])
    assert select_adm(emphasized, consistent, t_edge, 1.0)[:, 0].tolist() == [1.0, 0.0, 0.0]


def test_two_rows_with_different_sizes_and_sigmas():
    sigmas = sdxl_sigmas()
    pooled = torch.randn(2, 1280)
    rows = []
    for i, (w, h, sigma) in enumerate([(1152, 896, 14.0), (832, 1216, 0.5)]):
        emphasized, consistent = negative_adm(pooled[i : i + 1], width=w, height=h, scale=1.5)
        t = timestep_from_sigma(torch.tensor([sigma]), sigmas)
        rows.append(select_adm(emphasized, consistent, t, 0.3))
    assert torch.equal(rows[0][0, 1280:], size_embedding(1344, 1728, 0, 0, 896, 1152))
    assert torch.equal(rows[1][0, 1280:], size_embedding(1216, 832, 0, 0, 1216, 832))
