"""The SDXL/SD1.5 discrete noise schedule and Fooocus's σ → timestep → progress mapping.

Fooocus measures "how far along" a model call is by the model's discrete timestep, not by the
step index: t(σ) is the index of the nearest σ of the 1000-entry training schedule in log space,
and the progress p = 1 − t/999 drives sharpness, adaptive CFG and the ADM switch.
"""

from __future__ import annotations

import torch

NUM_TIMESTEPS = 1000
LINEAR_START = 0.00085
LINEAR_END = 0.012


def sdxl_sigmas(linear_start: float = LINEAR_START, linear_end: float = LINEAR_END) -> torch.Tensor:
    """The 1000 "scaled linear" σ of SDXL and SD1.5, shape (1000,), float32, ascending.

    ᾱ is accumulated in float64 and σ cast to float32 at the end, as Fooocus does for
    Kohya-consistent precision.
    """
    # β_i = (linspace(√β_start, √β_end, 1000)_i)²,  ᾱ_i = ∏_{j≤i} (1 − β_j),  σ_i = √((1 − ᾱ_i)/ᾱ_i)
    betas = torch.linspace(linear_start**0.5, linear_end**0.5, NUM_TIMESTEPS, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    return ((1.0 - alphas_cumprod) / alphas_cumprod).sqrt().to(torch.float32)


def timestep_from_sigma(sigma: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Nearest training timestep of each σ in log space; same shape as `sigma`, integer-valued.

    The result keeps `sigma`'s device and floating dtype, except bfloat16 (which cannot hold the
    integers 257…999) and integer input, which give float32.
    """
    sigma = torch.as_tensor(sigma)
    out_dtype = sigma.dtype if sigma.dtype in (torch.float16, torch.float32, torch.float64) else torch.float32
    log_sigmas = sigmas.to(device=sigma.device, dtype=torch.float32).log()
    # t(σ) = argmin_i |ln σ − ln σ_i|   (first index on ties)
    distances = (sigma.to(torch.float32).log().reshape(-1, 1) - log_sigmas.reshape(1, -1)).abs()
    return distances.argmin(dim=1).reshape(sigma.shape).to(out_dtype)


def progress_from_sigma(sigma: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Fooocus's diffusion progress p = 1 − t(σ)/999: 0 at σ_max, 1 at σ_min.

    Same shape, device and dtype rule as `timestep_from_sigma`.
    """
    t = timestep_from_sigma(sigma, sigmas)
    return (1.0 - t.to(torch.float32) / (NUM_TIMESTEPS - 1)).to(t.dtype)


def karras_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022) schedule of `steps` σ followed by a final 0 (as k-diffusion builds it)."""
    # σ_i = (σ_max^(1/ρ) + i/(n−1)·(σ_min^(1/ρ) − σ_max^(1/ρ)))^ρ
    ramp = torch.linspace(0, 1, steps)
    min_inv_rho = sigma_min ** (1 / rho)
    max_inv_rho = sigma_max ** (1 / rho)
    sigmas = (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)])
