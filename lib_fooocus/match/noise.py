"""Fooocus's noise: the initial latent noise and the per-image Brownian tree of the SDE samplers.

- Initial noise (Fooocus `ldm_patched` `prepare_noise`): a CPU generator seeded with the image seed,
  `randn` in the latent's shape — whatever the device and the host's RNG setting. Fooocus renders
  one image per sampler run, so a batch is the concatenation of each seed's own noise.
- Brownian tree (Fooocus `modules/patch.py`, `BrownianTreeNoiseSamplerPatched`): one torchsde
  `BrownianTree` per image seeded with the image seed, over [σ_min, σ_max] of the run's schedule
  (smallest positive and largest σ), identity time transform, shared by every step of every SDE
  sampler and by the refiner. A step from σ to σ' draws (W(σ') − W(σ)) / √|σ' − σ|.

torchsde is imported when a tree is built (the hosts ship it for k-diffusion).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch


def initial_noise(seeds: Sequence[int], shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(len(seeds), *shape) noise on the CPU, row i from a generator seeded with seeds[i]."""
    rows = []
    for seed in seeds:
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
        rows.append(torch.randn((1, *shape), dtype=dtype, generator=generator, device="cpu"))
    return torch.cat(rows)


def schedule_range(sigmas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(σ_min, σ_max) of a schedule: its smallest positive σ and its largest."""
    positive = sigmas[sigmas > 0]
    return positive.min(), sigmas.max()


class BrownianNoise:
    """Fooocus's noise sampler for one batch: one Brownian tree per image (batch row), each seeded
    with its image seed, the trees on the CPU; `noise(σ, σ')` has the latent's shape, device, dtype."""

    def __init__(self, latent: torch.Tensor, sigma_min: Any, sigma_max: Any, seeds: Sequence[int]):
        import torchsde

        if len(seeds) != latent.shape[0]:
            msg = f"{len(seeds)} seeds for a batch of {latent.shape[0]} latents; give one seed per image"
            raise ValueError(msg)
        t0 = torch.as_tensor(sigma_min).detach().float().cpu()
        t1 = torch.as_tensor(sigma_max).detach().float().cpu()
        self.t0, self.t1 = (t0, t1) if t0 <= t1 else (t1, t0)
        self.device, self.dtype = latent.device, latent.dtype
        # Fooocus builds each tree from a (1, C, H, W) latent of zeros
        start = torch.zeros((1, *latent.shape[1:]), dtype=latent.dtype)
        self.trees = [torchsde.BrownianTree(self.t0, start, self.t1, entropy=int(seed)) for seed in seeds]

    def increment(self, sigma: Any, sigma_next: Any) -> torch.Tensor:
        """W(σ') − W(σ) of every tree, stacked along the batch."""
        a = torch.as_tensor(sigma).detach().float().cpu()
        b = torch.as_tensor(sigma_next).detach().float().cpu()
        sign = 1.0 if a <= b else -1.0
        low, high = (a, b) if a <= b else (b, a)
        with warnings.catch_warnings():  # queries at the range ends warn about float rounding (Fooocus silences them too)
            warnings.simplefilter("ignore")
            steps = [tree(low, high) for tree in self.trees]
        return torch.cat(steps).to(self.dtype).to(self.device) * sign

    def __call__(self, sigma: Any, sigma_next: Any) -> torch.Tensor:
        a = torch.as_tensor(sigma)
        b = torch.as_tensor(sigma_next)
        return self.increment(a, b) / (b - a).abs().sqrt().to(self.device)
