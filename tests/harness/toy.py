"""Host-independent pieces of the contract harness: a toy ε-prediction UNet that reads the SDXL
`vector`, a fake text encoder producing SDXL / SD1.5 / refiner-shaped conds, the k-diffusion-style
samplers (Euler, DPM++ 2M, DDIM over timesteps), and an independent σ-table / ADM reference.

Everything here is written from the published formulas, independently of `lib_fooocus`, so tests
can compare the adapter's results against a second formulation.
"""

from __future__ import annotations

import hashlib
import math

import torch
import torch.nn.functional as F

CHANNELS = 4
TOKENS = 4
CROSSATTN_SDXL = 16  # stands in for 2048 (width is irrelevant to the adapter)
CROSSATTN_SD15 = 12
CROSSATTN_REFINER = 10
VECTOR_BASE = 2816
VECTOR_REFINER = 2560
POOLED = 1280


# -- schedule (independent formulation, float64) ---------------------------------------------------


def training_sigmas(scale: float = 1.0) -> torch.Tensor:
    """SD "scaled linear" σ table (1000,), float32, optionally scaled to make a distinct host table."""
    betas = [(math.sqrt(0.00085) + (math.sqrt(0.012) - math.sqrt(0.00085)) * i / 999) ** 2 for i in range(1000)]
    sigmas, product = [], 1.0
    for beta in betas:
        product *= 1.0 - beta
        sigmas.append(math.sqrt((1.0 - product) / product) * scale)
    return torch.tensor(sigmas, dtype=torch.float32)


def alphas_cumprod() -> torch.Tensor:
    sig = training_sigmas().to(torch.float64)
    return (1.0 / (1.0 + sig**2)).to(torch.float32)


def reference_timestep(sigma: float, table: torch.Tensor) -> int:
    logs = [math.log(float(s)) for s in table]
    target = math.log(float(sigma))
    return min(range(len(logs)), key=lambda i: (abs(target - logs[i]), i))


def reference_progress(sigma: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    return torch.tensor([1.0 - reference_timestep(float(s), table) / 999.0 for s in sigma.reshape(-1)])


def karras(steps: int, sigma_min: float = 0.0292, sigma_max: float = 14.6146, rho: float = 7.0) -> torch.Tensor:
    ramp = torch.linspace(0, 1, steps)
    min_inv, max_inv = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return torch.cat([(max_inv + ramp * (min_inv - max_inv)) ** rho, torch.zeros(1)])


# -- ADM reference ---------------------------------------------------------------------------------


def sinusoid(value: float) -> torch.Tensor:
    k = torch.arange(128, dtype=torch.float64)
    freqs = torch.exp(-math.log(10000.0) * k / 128)
    return torch.cat([torch.cos(value * freqs), torch.sin(value * freqs)]).to(torch.float32)


def size_block(*values: float) -> torch.Tensor:
    return torch.cat([sinusoid(float(v)) for v in values])


def reference_adm(pooled: torch.Tensor, width: int, height: int, scale: float, emphasized: bool) -> torch.Tensor:
    th, tw = 64 * round(height / 64), 64 * round(width / 64)
    if emphasized:
        sizes = size_block(int(height * scale), int(width * scale), 0, 0, th, tw)
    else:
        sizes = size_block(th, tw, 0, 0, th, tw)
    return torch.cat([pooled.to(torch.float32), sizes])


# -- text encoder ----------------------------------------------------------------------------------


def _seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def encode(prompt: str, kind: str, width: int, height: int) -> dict[str, torch.Tensor] | torch.Tensor:
    """One row of a host cond: SDXL base/refiner dict rows or an SD1.5 tensor row."""
    g = torch.Generator().manual_seed(_seed(f"{kind}:{prompt}"))
    if kind == "sd15":
        return torch.randn(TOKENS, CROSSATTN_SD15, generator=g)
    width_ca = CROSSATTN_SDXL if kind == "sdxl" else CROSSATTN_REFINER
    crossattn = torch.randn(TOKENS, width_ca, generator=g)
    pooled = torch.randn(POOLED, generator=g)
    if kind == "sdxl":
        vector = torch.cat([pooled, size_block(height, width, 0, 0, height, width)])
    else:
        vector = torch.cat([pooled, size_block(height, width, 0, 0, 6.0)])
    return {"crossattn": crossattn, "vector": vector}


# -- toy UNet ----------------------------------------------------------------------------------------


class ToyUNet:
    """ε(x·c_in, σ, crossattn, vector): a fixed 3×3 conv plus text/ADM embeddings, squashed by tanh.
    Records the vectors it sees (per call) so tests can check the ADM swap."""

    def __init__(self, kind: str = "sdxl", seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.kind = kind
        self.conv = torch.randn(CHANNELS, CHANNELS, 3, 3, generator=g) * 0.3
        ca = {"sdxl": CROSSATTN_SDXL, "sd15": CROSSATTN_SD15, "refiner": CROSSATTN_REFINER}[kind]
        self.w_ctx = torch.randn(ca, CHANNELS, generator=g) * 0.15
        adm = {"sdxl": VECTOR_BASE, "refiner": VECTOR_REFINER}.get(kind)
        self.w_adm = torch.randn(adm, CHANNELS, generator=g) * 0.03 if adm else None
        self.seen_vectors: list[torch.Tensor] = []
        self.seen_sigmas: list[torch.Tensor] = []

    def eps(self, x: torch.Tensor, sigma: torch.Tensor, crossattn: torch.Tensor, vector: torch.Tensor | None) -> torch.Tensor:
        s = sigma.reshape(-1, 1, 1, 1).to(torch.float32)
        h = F.conv2d(x / torch.sqrt(s**2 + 1), self.conv, padding=1)
        emb = crossattn.to(torch.float32).mean(1) @ self.w_ctx
        if self.w_adm is not None:
            assert vector is not None and vector.shape[1] == self.w_adm.shape[0]
            self.seen_vectors.append(vector.detach().clone())
            emb = emb + vector.to(torch.float32) @ self.w_adm
        self.seen_sigmas.append(sigma.detach().clone())
        return torch.tanh(h + emb[:, :, None, None] + 0.1 * torch.log(s))

    def denoised(self, x, sigma, crossattn, vector):
        """k-diffusion CompVisDenoiser convention: x0 = x − σ·ε."""
        return x - sigma.reshape(-1, 1, 1, 1) * self.eps(x, sigma, crossattn, vector)


# -- samplers (k-diffusion style loops) ----------------------------------------------------------


def sample_euler(model, x, sigmas, extra_args):
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        d = (x - denoised) / sigmas[i]
        x = x + d * (sigmas[i + 1] - sigmas[i])
    return x


def sample_dpmpp_2m(model, x, sigmas, extra_args):
    s_in = x.new_ones([x.shape[0]])
    old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        t, t_next = -sigmas[i].log(), -sigmas[i + 1].log() if sigmas[i + 1] > 0 else None
        if t_next is None:
            x = denoised
            continue
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            x = (sigmas[i + 1] / sigmas[i]) * x - (-h).expm1() * denoised
        else:
            h_last = t - (-sigmas[i - 1].log())
            r = h_last / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (sigmas[i + 1] / sigmas[i]) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x


SAMPLE_FUNCTIONS = {"Euler": sample_euler, "DPM++ 2M": sample_dpmpp_2m}


def sample_ddim(model, x, timesteps, extra_args):
    """Deterministic DDIM over integer timesteps; the model returns eps (A1111 timestep samplers)."""
    acp = alphas_cumprod()
    s_in = x.new_ones([x.shape[0]])
    for index in range(len(timesteps) - 1, -1, -1):
        t = int(timesteps[index])
        a_t = acp[t]
        a_prev = acp[int(timesteps[index - 1])] if index > 0 else torch.tensor(1.0)
        eps = model(x, t * s_in, **extra_args)
        pred_x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        x = a_prev.sqrt() * pred_x0 + (1 - a_prev).sqrt() * eps
    return x
