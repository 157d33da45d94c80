"""What the sampling tricks do at each step, without a model: the numbers behind the accordion's
schedule plot.

Per sampling step i (its first model call, at σ_i of the host's schedule): Fooocus's timestep
t(σ_i) and progress p, the effective CFG scale of adaptive CFG, the sharpness blend α, and whether
the ADM sizes are still the scaled ones. The same functions the sampling hooks call compute them.

The σ schedules are the k-diffusion / A1111 / Forge ones for the SDXL/SD1.5 discrete table:
Uniform (A1111's default; Forge's "Normal" is the same), Karras, Exponential, SGM Uniform and
Simple. Other schedulers are drawn with Uniform σ and say so (`SchedulePreview.note`). Second-order
samplers call the model again between steps; those extra calls are not drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from lib_fooocus.guidance.adm import emphasized_mask
from lib_fooocus.guidance.cfg import effective_cfg_scale, is_cfg_one
from lib_fooocus.guidance.schedule import (
    NUM_TIMESTEPS,
    karras_sigmas,
    progress_from_sigma,
    sdxl_sigmas,
    timestep_from_sigma,
)
from lib_fooocus.guidance.sharpness import sharpness_alpha

MAX_PREVIEW_STEPS = 500

# The host's scheduler labels (A1111 1.9+, Forge) and names -> what we draw.
SCHEDULER_ALIASES = {
    "automatic": "automatic",
    "uniform": "uniform",
    "normal": "uniform",
    "karras": "karras",
    "exponential": "exponential",
    "sgm uniform": "sgm_uniform",
    "sgm_uniform": "sgm_uniform",
    "simple": "simple",
}

# A1111 1.9+ / Forge: the scheduler "Automatic" means the sampler's own default, and a few samplers
# drop the next-to-last σ (sampler name -> (scheduler, discard_next_to_last_sigma)).
SAMPLER_DEFAULTS = {
    "dpm++ 2m": ("karras", False),
    "dpm++ sde": ("karras", False),
    "dpm++ 2m sde": ("exponential", False),
    "dpm++ 2m sde heun": ("exponential", False),
    "dpm++ 2s a": ("karras", False),
    "dpm++ 3m sde": ("exponential", True),
    "dpm2": ("karras", True),
    "dpm2 a": ("karras", True),
}


@dataclass(frozen=True)
class StepPoint:
    step: int  # 1-based
    sigma: float
    timestep: int
    progress: float
    effective_cfg: float
    sharpness_alpha: float
    adm_scaled: bool


@dataclass
class SchedulePreview:
    points: list[StepPoint]
    scheduler: str  # what was drawn: uniform, karras, exponential, sgm_uniform, simple
    cfg_scale: float
    note: str = ""
    tricks_off_reason: str = ""  # CFG 1: the tricks have nothing to act on
    adm_steps: list[int] = field(default_factory=list)


def resolve_scheduler(sampler: str | None, scheduler: str | None) -> tuple[str, bool, str]:
    """(scheduler drawn, discard next-to-last σ, note) for the tab's sampler and scheduler values.

    Old hosts (A1111 < 1.9) carry the scheduler in the sampler name ("DPM++ 2M Karras")."""
    sampler_name = str(sampler or "").strip().lower()
    for suffix in ("karras", "exponential"):
        if sampler_name.endswith(" " + suffix):
            base = sampler_name[: -len(suffix) - 1]
            discard = SAMPLER_DEFAULTS.get(base, ("", False))[1]
            return suffix, discard, ""
    default, discard = SAMPLER_DEFAULTS.get(sampler_name, ("uniform", False))
    label = str(scheduler or "automatic").strip().lower()
    resolved = SCHEDULER_ALIASES.get(label)
    if resolved is None:
        return "uniform", discard, f"The {scheduler} scheduler is drawn with Uniform σ (not modelled here)."
    if resolved == "automatic":
        return default, discard, ""
    return resolved, discard, ""


def _sigma_at(t: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """σ at fractional timesteps, interpolated linearly in log σ (k-diffusion's `t_to_sigma`)."""
    t = t.to(torch.float64).clamp(0, len(table) - 1)
    low = t.floor().long()
    high = t.ceil().long()
    weight = t - low
    log_table = table.to(torch.float64).log()
    return ((1 - weight) * log_table[low] + weight * log_table[high]).exp()


def schedule_sigmas(steps: int, scheduler: str, table: torch.Tensor | None = None) -> torch.Tensor:
    """`steps` σ followed by 0, float64, as the hosts build them for the 1000-step discrete model."""
    table = sdxl_sigmas() if table is None else table
    sigma_min, sigma_max = float(table[0]), float(table[-1])
    last = len(table) - 1
    if scheduler == "karras":
        return karras_sigmas(steps, sigma_min, sigma_max).to(torch.float64)  # float32 σ, as k-diffusion
    if scheduler == "exponential":
        sigmas = torch.linspace(math.log(sigma_max), math.log(sigma_min), steps, dtype=torch.float64).exp()
    elif scheduler == "sgm_uniform":
        sigmas = _sigma_at(torch.linspace(last, 0, steps + 1, dtype=torch.float64)[:-1], table)
    elif scheduler == "simple":
        stride = len(table) / steps
        sigmas = table.to(torch.float64)[[last - int(i * stride) for i in range(steps)]]
    else:  # uniform
        sigmas = _sigma_at(torch.linspace(last, 0, steps, dtype=torch.float64), table)
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def schedule_preview(
    *,
    steps: int,
    cfg_scale: float,
    sharpness: float,
    adaptive_cfg: float,
    adm_scaler_end: float,
    sampler: str | None = None,
    scheduler: str | None = None,
) -> SchedulePreview:
    """The per-step numbers for the plot (steps clamped to 1 … 500)."""
    steps = max(1, min(int(steps), MAX_PREVIEW_STEPS))
    drawn, discard, note = resolve_scheduler(sampler, scheduler)
    table = sdxl_sigmas()
    if discard:
        full = schedule_sigmas(steps + 1, drawn, table)
        sigmas = torch.cat([full[:-2], full[-1:]])
    else:
        sigmas = schedule_sigmas(steps, drawn, table)
    step_sigmas = sigmas[:steps].to(torch.float32)
    timesteps = timestep_from_sigma(step_sigmas, table)
    progress = progress_from_sigma(step_sigmas, table)
    cfg_scale = float(cfg_scale)
    off = "CFG 1: positive prompt only, nothing to act on" if is_cfg_one(cfg_scale) else ""
    if off:
        effective = torch.full_like(progress, cfg_scale)
        alpha = torch.zeros_like(progress)
    else:
        effective = effective_cfg_scale(cfg_scale, float(adaptive_cfg), progress)
        alpha = sharpness_alpha(float(sharpness), progress)
    adm = emphasized_mask(timesteps, float(adm_scaler_end))
    points = [
        StepPoint(
            step=i + 1,
            sigma=float(step_sigmas[i]),
            timestep=int(timesteps[i]),
            progress=float(progress[i]),
            effective_cfg=float(effective[i]),
            sharpness_alpha=float(alpha[i]),
            adm_scaled=bool(adm[i]),
        )
        for i in range(steps)
    ]
    return SchedulePreview(
        points=points,
        scheduler=drawn,
        cfg_scale=cfg_scale,
        note=note,
        tricks_off_reason=off,
        adm_steps=[point.step for point in points if point.adm_scaled],
    )


__all__ = [
    "MAX_PREVIEW_STEPS",
    "NUM_TIMESTEPS",
    "SchedulePreview",
    "StepPoint",
    "resolve_scheduler",
    "schedule_preview",
    "schedule_sigmas",
]
